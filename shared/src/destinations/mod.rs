//! Where runs go. Each destination lives in its own folder and provides:
//!
//! - its config (serde, with the reference's field names), validated, naming the field it finds wrong, and the
//!   secret fields it keeps sealed (the [`crate::batch_export::Destination`] variant and its methods);
//! - a client built from that config;
//! - how a run's rows land: file destinations give the engine a [`crate::engine::pipeline::FileSpec`] and a
//!   [`crate::engine::sink::FileSink`] ([`s3`]); table destinations load the rows themselves ([`bigquery`]);
//! - the state machine's branch for it (`statemachines/export.asl.json`) and the steps it runs.
//!
//! Destinations import the domain, the sources and the engine; never the steps or the API.

pub mod bigquery;
pub mod s3;
