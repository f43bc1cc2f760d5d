//! The steps of an export run on Step Functions, one per Lambda: [`start_run`], [`plan_run`],
//! [`export_chunk`], [`write_manifest`] and [`finish_run`]; [`trigger_run`], the schedules' target, which
//! starts the state machine; [`bigquery_load`] and [`bigquery_merge`], the steps of BigQuery runs; and
//! [`advance_backfill`], the step of the backfill state machine. Each is a plain async function of the
//! [`Services`] (clients and settings built once per Lambda instance) and its JSON input; the function crates
//! only wire them to the Lambda runtime ([`crate::lambda`]).
//!
//! Step payloads hold ids, times, counts and chunk numbers only; configs and credentials are loaded from the
//! exports table by the steps that need them, and larger state (chunk plans, file lists) is kept in the work
//! area ([`crate::plan::WorkStore`]).

mod advance_backfill;
mod bigquery;
mod export_chunk;
mod finish_run;
mod plan_run;
mod start_run;
mod trigger_run;
mod write_manifest;

pub use self::advance_backfill::{advance_backfill, AdvanceInput, AdvanceOutput, BatchRun};
pub use self::bigquery::{bigquery_load, bigquery_merge, BigQueryInput, BigQueryOutput};
pub use self::export_chunk::{export_chunk, ChunkInput, ChunkOutput};
pub use self::finish_run::{finish_run, FinishInput, FinishOutput, StepFailure};
pub use self::plan_run::{plan_run, PlanOutput};
pub use self::start_run::{start_run, RunRequest, StartInput, StartOutput};
pub use self::trigger_run::{execution_name, trigger_run, TriggerOutput};
pub use self::write_manifest::{write_manifest, ManifestInput, ManifestOutput};

use aws_config::{BehaviorVersion, SdkConfig};
use chrono::Duration;

use crate::error::{ExportError, Result};
use crate::export::{env_number, EngineSettings};
use crate::exports::{BatchExport, Destination};
use crate::lake::{LakeStore, RowFilter};
use crate::model::Model;
use crate::plan::{ChunkLimits, WorkStore};
use crate::runs::RunRef;
use crate::s3::lake_client;
use crate::schedules::ExistingSchedules;
use crate::secrets::SecretBox;
use crate::store::{BackfillStore, ExportStore, RunStore, Tables};
use crate::S3DestinationConfig;

/// Everything a step uses, built once per Lambda instance from the environment.
#[derive(Debug, Clone)]
pub struct Services {
    pub aws: SdkConfig,
    pub exports: ExportStore,
    pub runs: RunStore,
    pub backfills: BackfillStore,
    pub lake: LakeStore,
    pub work: WorkStore,
    pub engine: EngineSettings,
    pub chunks: ChunkLimits,
    /// How long a run may go without a write before another trigger may take it over.
    pub run_lease: Duration,
    /// Chunks exported at once (the Map state's `MaxConcurrencyPath`).
    pub chunk_concurrency: usize,
    pub sfn: aws_sdk_sfn::Client,
    /// The export schedules, kept in agreement with their exports (auto-pause, firings of a gone export).
    pub schedules: ExistingSchedules,
    /// The export state machine (`BATCH_EXPORT_STATE_MACHINE_ARN`), which the run trigger starts.
    pub state_machine_arn: Option<String>,
}

impl Services {
    /// Reads the environment (documented in the README):
    /// `BATCH_EXPORT_LAKE_BUCKET` (required), `BATCH_EXPORT_LAKE_PREFIX` (default empty),
    /// `BATCH_EXPORT_WORK_BUCKET` (default: the lake bucket), `BATCH_EXPORT_WORK_PREFIX` (default
    /// `batch-export-runs/`), `BATCH_EXPORT_RUN_LEASE_SECONDS` (default 10800, the state machine's timeout),
    /// `BATCH_EXPORT_CHUNK_CONCURRENCY` (default 4), `BATCH_EXPORT_KMS_KEY_ID` (required: the key of the
    /// destination credentials), `BATCH_EXPORT_STATE_MACHINE_ARN` (the trigger's), the schedules' group and
    /// delay ([`ExistingSchedules::from_env`]),
    /// the table names ([`Tables::from_env`]), the chunk limits ([`ChunkLimits::from_env`]) and the engine
    /// settings ([`EngineSettings::from_env`]). AWS clients honour `AWS_ENDPOINT_URL`.
    pub async fn from_env() -> Result<Self> {
        let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
        let lake_bucket = std::env::var("BATCH_EXPORT_LAKE_BUCKET")
            .map_err(|_| ExportError::config("BATCH_EXPORT_LAKE_BUCKET", "is not set"))?;
        let s3 = lake_client(&aws);
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let tables = Tables::from_env();
        let secrets = SecretBox::from_env(aws_sdk_kms::Client::new(&aws))?;
        Ok(Services {
            exports: ExportStore::new(dynamodb.clone(), tables.exports, secrets),
            runs: RunStore::new(dynamodb.clone(), tables.runs),
            backfills: BackfillStore::new(dynamodb, tables.backfills),
            lake: LakeStore::S3 {
                client: s3.clone(),
                bucket: lake_bucket.clone(),
                prefix: std::env::var("BATCH_EXPORT_LAKE_PREFIX").unwrap_or_default(),
            },
            work: WorkStore {
                client: s3,
                bucket: std::env::var("BATCH_EXPORT_WORK_BUCKET").unwrap_or(lake_bucket),
                prefix: std::env::var("BATCH_EXPORT_WORK_PREFIX").unwrap_or_else(|_| "batch-export-runs/".into()),
            },
            engine: EngineSettings::from_env()?,
            chunks: ChunkLimits::from_env()?,
            run_lease: Duration::seconds(env_number("BATCH_EXPORT_RUN_LEASE_SECONDS", 10_800)? as i64),
            chunk_concurrency: env_number("BATCH_EXPORT_CHUNK_CONCURRENCY", 4)?.max(1),
            sfn: aws_sdk_sfn::Client::new(&aws),
            schedules: ExistingSchedules::from_env(aws_sdk_scheduler::Client::new(&aws))?,
            state_machine_arn: std::env::var("BATCH_EXPORT_STATE_MACHINE_ARN").ok(),
            aws,
        })
    }

    /// A run's export (with its credentials decrypted when `with_secrets`).
    async fn export(&self, run: &RunRef, with_secrets: bool) -> Result<BatchExport> {
        if with_secrets {
            self.exports.get_with_secrets(run.team_id, &run.export_id).await
        } else {
            self.exports.get(run.team_id, &run.export_id).await
        }
    }

    /// The model and S3 destination config of a run's export (with its credentials decrypted when
    /// `with_secrets`) and the row filter it implies.
    async fn destination(&self, run: &RunRef, with_secrets: bool) -> Result<(Model, S3DestinationConfig, RowFilter)> {
        let export = self.export(run, with_secrets).await?;
        let config = export.s3_config()?.clone();
        let filter = row_filter(run, &export);
        Ok((export.model, config, filter))
    }
}

/// The rows of the lake a run of `export` takes (S3 destinations may include or exclude events by name).
fn row_filter(run: &RunRef, export: &BatchExport) -> RowFilter {
    match &export.destination {
        Destination::S3(config) => {
            RowFilter::new(run.team_id, run.interval, &config.include_events, &config.exclude_events)
        }
        Destination::BigQuery(_) => RowFilter::new(run.team_id, run.interval, &[], &[]),
    }
}
