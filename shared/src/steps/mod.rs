//! The steps of an export run on Step Functions, one per Lambda: [`start_run`], [`plan_run`],
//! [`export_chunk`], [`write_manifest`] and [`finish_run`]; [`trigger_run`], the schedules' target, which
//! starts the state machine; [`bigquery_load`] and [`bigquery_merge`], the steps of BigQuery runs; and
//! [`advance_backfill`], the step of the backfill state machine. Each is a plain async function of the
//! [`Services`] (clients and settings built once per Lambda instance) and its JSON input; the function crates
//! only wire them to the Lambda runtime ([`crate::lambda`]).
//!
//! Step payloads hold ids, times, counts and chunk numbers only; configs and credentials are loaded from the
//! exports table by the steps that need them, and larger state (chunk plans, file lists) is kept in the work
//! area ([`crate::store::work::WorkStore`]).

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

use crate::batch_export::BatchExport;
use crate::destinations::s3::lake_client;
use crate::engine::chunks::ChunkLimits;
use crate::engine::EngineSettings;
use crate::error::Result;
use crate::model::Model;
use crate::network::EndpointPolicy;
use crate::runs::RunRef;
use crate::schedules::ExistingSchedules;
use crate::secrets::SecretBox;
use crate::settings::Settings;
use crate::sources::lake::{LakeStore, RowFilter};
use crate::store::work::WorkStore;
use crate::store::{BackfillStore, ExportStore, RunStore};
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
    /// Where user-given endpoints (a destination's `endpoint_url`, `token_uri`) may connect.
    pub endpoints: EndpointPolicy,
    /// BigQuery's REST endpoint.
    pub bigquery_endpoint: String,
}

impl Services {
    /// The services as [`Settings`] configure them (every variable is in the README's settings table). AWS
    /// clients honour `AWS_ENDPOINT_URL`.
    pub async fn from_env() -> Result<Self> {
        let settings = Settings::from_env()?;
        let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
        let s3 = lake_client(&aws);
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let tables = settings.tables.clone();
        let secrets = SecretBox::new(aws_sdk_kms::Client::new(&aws), settings.kms_key_id()?);
        Ok(Services {
            exports: ExportStore::new(dynamodb.clone(), tables.exports, secrets),
            runs: RunStore::new(dynamodb.clone(), tables.runs),
            backfills: BackfillStore::new(dynamodb, tables.backfills),
            lake: LakeStore::S3 {
                client: s3.clone(),
                bucket: settings.lake_bucket()?.to_string(),
                prefix: settings.lake_prefix.clone(),
            },
            work: WorkStore {
                client: s3,
                bucket: settings.work_bucket()?.to_string(),
                prefix: settings.work_prefix.clone(),
            },
            run_lease: settings.run_lease,
            chunk_concurrency: settings.chunk_concurrency,
            sfn: aws_sdk_sfn::Client::new(&aws),
            schedules: ExistingSchedules::new(
                aws_sdk_scheduler::Client::new(&aws),
                &settings.schedule_group,
                settings.schedule_delay_minutes,
            ),
            state_machine_arn: settings.state_machine_arn.clone(),
            endpoints: settings.endpoints,
            bigquery_endpoint: settings.bigquery_endpoint.clone(),
            engine: settings.engine,
            chunks: settings.chunks,
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
    let (include, exclude) = export.destination.event_names();
    RowFilter::new(run.team_id, run.interval, include, exclude)
}
