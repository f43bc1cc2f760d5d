//! The library every function uses, by layer — each layer imports only the ones above it:
//!
//! - **Foundations:** [`error`] (the taxonomy), [`mod@format`] (file formats and compressions), [`limits`],
//!   [`network`] (where user endpoints may connect), [`aws_error`].
//! - **Domain:** [`time`] (intervals, timestamps), [`model`] (events or persons), [`event`] (the events row),
//!   [`person`] (the persons row and rule), [`batch_export`] (exports: model, interval, destination — the one
//!   place that names every destination), [`runs`] (runs and what they wrote), [`backfills`], [`capture`]
//!   (PostHog's capture protocol: requests in, lake rows out).
//! - **Sources** ([`sources`]): where rows come from — the lake (listing, passes, de-duplication, the events
//!   and persons readers) and synthetic events.
//! - **Engine** ([`engine`]): destination-agnostic — chunks, rows → encoded files, the sink seam it owns.
//! - **Destinations** ([`destinations`]): S3 (config, keys, clients, uploads behind the sink seam, manifest)
//!   and BigQuery (config, auth, client, schema, loads).
//! - **Orchestration:** [`settings`] (every `BATCH_EXPORT_*` variable, read once and handed to the parts),
//!   [`store`] (one struct per table, and the run's work area), [`secrets`], [`schedules`],
//!   [`autopause`], [`steps`] (one module per Lambda), [`api`] (the HTTP API), [`ingest`] (capture and the
//!   lake writer as services), [`lambda`] (errors for the runtime).

pub mod aws_error;
pub mod error;
pub mod format;
pub mod limits;
pub mod network;

pub mod backfills;
pub mod batch_export;
pub mod capture;
pub mod event;
pub mod model;
pub mod person;
pub mod runs;
pub mod time;

pub mod sources;

pub mod engine;

pub mod destinations;

pub mod api;
pub mod autopause;
pub mod ingest;
pub mod lambda;
pub mod schedules;
pub mod secrets;
pub mod settings;
pub mod steps;
pub mod store;

pub use destinations::s3::export::export_events;
pub use destinations::s3::{Encryption, S3DestinationConfig, S3Target};
pub use engine::sink::{DiscardSink, FileSink};
pub use engine::EngineSettings;
pub use error::{ExportError, Result};
pub use event::EventRow;
pub use format::{Compression, FileFormat};
pub use runs::ExportOutcome;
pub use sources::lake::LakeStore;
pub use time::Interval;

#[cfg(test)]
mod layout_tests;
