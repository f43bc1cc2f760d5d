//! The library every function uses: the domain model (exports, runs, events), the lake reader, the encoders,
//! the S3 writer, the run entry point ([`export::export_events`]), the DynamoDB stores and the steps of a run
//! on Step Functions ([`steps`]).

pub mod api;
pub mod autopause;
pub mod aws_error;
pub mod backfills;
pub mod bigquery;
pub mod config;
pub mod encode;
pub mod error;
pub mod export;
pub mod exports;
pub mod keys;
pub mod lake;
pub mod lambda;
pub mod model;
pub mod network;
pub mod persons;
pub mod plan;
pub mod runs;
pub mod s3;
pub mod schedules;
pub mod secrets;
pub mod settings;
pub mod steps;
pub mod store;
pub mod synthetic;

pub use config::{Compression, Encryption, FileFormat, S3DestinationConfig};
pub use error::{ExportError, Result};
pub use export::{export_events, EngineSettings, ExportOutcome, FileSink};
pub use lake::LakeStore;
pub use model::{EventRow, Interval};
