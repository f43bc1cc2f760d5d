//! The BigQuery destination: its config ([`config`]), service-account auth ([`auth`]), a small REST client
//! ([`client`]) and the models' tables and statements ([`schema`]). Data goes with load jobs into a stage
//! table, then into the final table (created when missing) by `INSERT … SELECT` (events) or `MERGE` (persons),
//! and the stage table is dropped after success and after failure.

pub mod auth;
pub mod client;
pub mod config;
pub mod load;
pub mod rows;
pub mod schema;

pub use self::auth::TokenSource;
pub use self::client::BigQuery;
pub use self::config::BigQueryDestinationConfig;
pub use self::load::{
    drop_stage, load_chunk_into_stage, load_events, load_persons, load_stage, merge_stage, prepare_stage, LoadOutcome,
    LoadTarget, StageLoader, MAX_JOB_BYTES,
};
