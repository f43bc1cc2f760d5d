//! The export engine every function uses: the domain model, the lake reader, the encoders, the S3 writer and
//! the run entry point ([`export::export_events`]).

pub mod config;
pub mod encode;
pub mod error;
pub mod export;
pub mod keys;
pub mod lake;
pub mod model;
pub mod s3;
pub mod synthetic;

pub use config::{Compression, Encryption, FileFormat, S3DestinationConfig};
pub use error::{ExportError, Result};
pub use export::{export_events, EngineSettings, ExportOutcome, FileSink};
pub use lake::LakeStore;
pub use model::{EventRow, Interval};
