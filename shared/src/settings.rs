//! Every `BATCH_EXPORT_*` environment variable, named and read here only, once per process
//! ([`Settings::from_env`]), checked, with its default; the README's settings table lists the same names (a
//! unit test keeps them equal). The rest of the library takes its piece of [`Settings`], never the environment.

use std::path::PathBuf;

use chrono::Duration;

use crate::engine::chunks::ChunkLimits;
use crate::engine::encode::ParquetSettings;
use crate::engine::sink::UploadSettings;
use crate::engine::EngineSettings;
use crate::error::{ExportError, Result};
use crate::network::EndpointPolicy;
use crate::schedules::ScheduleSettings;
use crate::sources::lake::dedupe::DedupeSettings;
use crate::store::Tables;

/// Every variable this module reads.
pub const VARIABLES: [&str; 30] = [
    LAKE_BUCKET,
    LAKE_PREFIX,
    WORK_BUCKET,
    WORK_PREFIX,
    EXPORTS_TABLE,
    RUNS_TABLE,
    BACKFILLS_TABLE,
    API_KEYS_TABLE,
    PERSONS_TABLE,
    KMS_KEY_ID,
    SCHEDULE_GROUP,
    SCHEDULE_TARGET_ARN,
    SCHEDULER_ROLE_ARN,
    SCHEDULE_DELAY_MINUTES,
    STATE_MACHINE_ARN,
    BACKFILL_STATE_MACHINE_ARN,
    ALLOW_PRIVATE_ENDPOINTS,
    BIGQUERY_ENDPOINT,
    RUN_LEASE_SECONDS,
    CHUNK_CONCURRENCY,
    CHUNK_MAX_ROWS,
    CHUNK_MAX_MB,
    BATCH_SIZE,
    PART_SIZE_MB,
    MAX_PARTS_IN_FLIGHT,
    ROW_GROUP_MB,
    DEDUPE_BUFFER_ROWS,
    SPILL_DIR,
    CAPTURE_QUEUE_URL,
    CAPTURE_RATE_LIMIT,
];

pub const LAKE_BUCKET: &str = "BATCH_EXPORT_LAKE_BUCKET";
pub const LAKE_PREFIX: &str = "BATCH_EXPORT_LAKE_PREFIX";
pub const WORK_BUCKET: &str = "BATCH_EXPORT_WORK_BUCKET";
pub const WORK_PREFIX: &str = "BATCH_EXPORT_WORK_PREFIX";
pub const EXPORTS_TABLE: &str = "BATCH_EXPORT_EXPORTS_TABLE";
pub const RUNS_TABLE: &str = "BATCH_EXPORT_RUNS_TABLE";
pub const BACKFILLS_TABLE: &str = "BATCH_EXPORT_BACKFILLS_TABLE";
pub const API_KEYS_TABLE: &str = "BATCH_EXPORT_API_KEYS_TABLE";
pub const PERSONS_TABLE: &str = "BATCH_EXPORT_PERSONS_TABLE";
pub const KMS_KEY_ID: &str = "BATCH_EXPORT_KMS_KEY_ID";
pub const SCHEDULE_GROUP: &str = "BATCH_EXPORT_SCHEDULE_GROUP";
pub const SCHEDULE_TARGET_ARN: &str = "BATCH_EXPORT_SCHEDULE_TARGET_ARN";
pub const SCHEDULER_ROLE_ARN: &str = "BATCH_EXPORT_SCHEDULER_ROLE_ARN";
pub const SCHEDULE_DELAY_MINUTES: &str = "BATCH_EXPORT_SCHEDULE_DELAY_MINUTES";
pub const STATE_MACHINE_ARN: &str = "BATCH_EXPORT_STATE_MACHINE_ARN";
pub const BACKFILL_STATE_MACHINE_ARN: &str = "BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN";
pub const ALLOW_PRIVATE_ENDPOINTS: &str = "BATCH_EXPORT_ALLOW_PRIVATE_ENDPOINTS";
pub const BIGQUERY_ENDPOINT: &str = "BATCH_EXPORT_BIGQUERY_ENDPOINT";
pub const RUN_LEASE_SECONDS: &str = "BATCH_EXPORT_RUN_LEASE_SECONDS";
pub const CHUNK_CONCURRENCY: &str = "BATCH_EXPORT_CHUNK_CONCURRENCY";
pub const CHUNK_MAX_ROWS: &str = "BATCH_EXPORT_CHUNK_MAX_ROWS";
pub const CHUNK_MAX_MB: &str = "BATCH_EXPORT_CHUNK_MAX_MB";
pub const BATCH_SIZE: &str = "BATCH_EXPORT_BATCH_SIZE";
pub const PART_SIZE_MB: &str = "BATCH_EXPORT_PART_SIZE_MB";
pub const MAX_PARTS_IN_FLIGHT: &str = "BATCH_EXPORT_MAX_PARTS_IN_FLIGHT";
pub const ROW_GROUP_MB: &str = "BATCH_EXPORT_ROW_GROUP_MB";
pub const DEDUPE_BUFFER_ROWS: &str = "BATCH_EXPORT_DEDUPE_BUFFER_ROWS";
pub const SPILL_DIR: &str = "BATCH_EXPORT_SPILL_DIR";
pub const CAPTURE_QUEUE_URL: &str = "BATCH_EXPORT_CAPTURE_QUEUE_URL";
pub const CAPTURE_RATE_LIMIT: &str = "BATCH_EXPORT_CAPTURE_RATE_LIMIT";

/// BigQuery's REST endpoint, unless `BATCH_EXPORT_BIGQUERY_ENDPOINT` says otherwise.
pub const DEFAULT_BIGQUERY_ENDPOINT: &str = "https://bigquery.googleapis.com";

/// The settings of every part, as the environment gives them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The lake bucket (required by the run steps).
    pub lake_bucket: Option<String>,
    pub lake_prefix: String,
    /// The work bucket (default: the lake bucket) and prefix (default `batch-export-runs/`).
    pub work_bucket: Option<String>,
    pub work_prefix: String,
    pub tables: Tables,
    /// The KMS key of destination credentials (required wherever they are sealed or opened).
    pub kms_key_id: Option<String>,
    pub schedule_group: String,
    /// What schedules invoke and as which role (required by the API, which creates schedules).
    pub schedule_target_arn: Option<String>,
    pub scheduler_role_arn: Option<String>,
    /// Minutes after each interval end a schedule fires (default 1, at most 4).
    pub schedule_delay_minutes: u32,
    pub state_machine_arn: Option<String>,
    pub backfill_state_machine_arn: Option<String>,
    pub endpoints: EndpointPolicy,
    pub bigquery_endpoint: String,
    /// How long a run may go without a write before another trigger may take it over (default 3 h).
    pub run_lease: Duration,
    /// Chunks exported at once (default 4).
    pub chunk_concurrency: usize,
    pub chunks: ChunkLimits,
    pub engine: EngineSettings,
    /// The SQS queue capture sends accepted events to (required by capture).
    pub capture_queue_url: Option<String>,
    /// Events per second one project token may send through one capture instance (default 20000; 0: no
    /// limit).
    pub capture_rate_limit: u32,
}

impl Settings {
    /// Reads and checks every variable (a number that is not one, or out of its range, is an error naming it).
    pub fn from_env() -> Result<Settings> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Settings::from_env`] over any lookup (the unit tests'), so that the environment is read in one place.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let text = |name: &str, default: &str| var(name).unwrap_or_else(|| default.to_string());
        let number = |name: &str, default: usize| -> Result<usize> {
            match var(name) {
                Some(v) => {
                    v.trim().parse().map_err(|_| ExportError::config(name, format!("`{v}` is not a whole number")))
                }
                None => Ok(default),
            }
        };
        let engine = EngineSettings::default();
        let chunks = ChunkLimits::default();
        let settings = Settings {
            lake_bucket: var(LAKE_BUCKET),
            lake_prefix: text(LAKE_PREFIX, ""),
            work_bucket: var(WORK_BUCKET),
            work_prefix: text(WORK_PREFIX, "batch-export-runs/"),
            tables: Tables {
                exports: text(EXPORTS_TABLE, "batch-exports"),
                runs: text(RUNS_TABLE, "batch-export-runs"),
                backfills: text(BACKFILLS_TABLE, "batch-export-backfills"),
                api_keys: text(API_KEYS_TABLE, "batch-export-api-keys"),
                persons: text(PERSONS_TABLE, "batch-export-persons"),
            },
            kms_key_id: var(KMS_KEY_ID),
            schedule_group: text(SCHEDULE_GROUP, "batch-exports"),
            schedule_target_arn: var(SCHEDULE_TARGET_ARN),
            scheduler_role_arn: var(SCHEDULER_ROLE_ARN),
            schedule_delay_minutes: number(SCHEDULE_DELAY_MINUTES, 1)? as u32,
            state_machine_arn: var(STATE_MACHINE_ARN),
            backfill_state_machine_arn: var(BACKFILL_STATE_MACHINE_ARN),
            endpoints: EndpointPolicy {
                allow_private: matches!(var(ALLOW_PRIVATE_ENDPOINTS).as_deref().map(str::trim), Some("true" | "1")),
            },
            bigquery_endpoint: text(BIGQUERY_ENDPOINT, DEFAULT_BIGQUERY_ENDPOINT),
            run_lease: Duration::seconds(number(RUN_LEASE_SECONDS, 10_800)? as i64),
            chunk_concurrency: number(CHUNK_CONCURRENCY, 4)?.max(1),
            chunks: ChunkLimits {
                max_rows: number(CHUNK_MAX_ROWS, chunks.max_rows as usize)? as u64,
                max_bytes: (number(CHUNK_MAX_MB, (chunks.max_bytes >> 20) as usize)? as u64) << 20,
            },
            engine: EngineSettings {
                batch_size: number(BATCH_SIZE, engine.batch_size)?,
                upload: UploadSettings {
                    part_size: number(PART_SIZE_MB, engine.upload.part_size >> 20)? << 20,
                    max_parts_in_flight: number(MAX_PARTS_IN_FLIGHT, engine.upload.max_parts_in_flight)?,
                },
                parquet: ParquetSettings {
                    max_row_group_rows: engine.parquet.max_row_group_rows,
                    max_row_group_bytes: number(ROW_GROUP_MB, engine.parquet.max_row_group_bytes >> 20)? << 20,
                },
                dedupe: DedupeSettings {
                    buffer_rows: number(DEDUPE_BUFFER_ROWS, engine.dedupe.buffer_rows)?,
                    spill_dir: var(SPILL_DIR).map(PathBuf::from),
                },
            },
            capture_queue_url: var(CAPTURE_QUEUE_URL),
            capture_rate_limit: u32::try_from(number(CAPTURE_RATE_LIMIT, 20_000)?)
                .map_err(|_| ExportError::config(CAPTURE_RATE_LIMIT, "is too large"))?,
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<()> {
        if self.schedule_delay_minutes > 4 {
            // A larger delay would run into the next 5-minute interval.
            return Err(ExportError::config(SCHEDULE_DELAY_MINUTES, "must be at most 4"));
        }
        if self.chunks.max_rows == 0 || self.chunks.max_bytes == 0 {
            return Err(ExportError::config(CHUNK_MAX_ROWS, "chunk limits must be greater than 0"));
        }
        self.engine.validate()
    }

    /// The lake bucket, which the run steps need.
    pub fn lake_bucket(&self) -> Result<&str> {
        self.lake_bucket.as_deref().ok_or_else(|| ExportError::config(LAKE_BUCKET, "is not set"))
    }

    /// The capture queue, which capture needs.
    pub fn capture_queue_url(&self) -> Result<&str> {
        self.capture_queue_url.as_deref().ok_or_else(|| ExportError::config(CAPTURE_QUEUE_URL, "is not set"))
    }

    /// The work bucket: `BATCH_EXPORT_WORK_BUCKET`, else the lake bucket.
    pub fn work_bucket(&self) -> Result<&str> {
        match &self.work_bucket {
            Some(bucket) => Ok(bucket),
            None => self.lake_bucket(),
        }
    }

    /// The KMS key of destination credentials.
    pub fn kms_key_id(&self) -> Result<&str> {
        self.kms_key_id.as_deref().ok_or_else(|| ExportError::config(KMS_KEY_ID, "is not set"))
    }

    /// What the API needs to create schedules: the target and role besides the group and delay.
    pub fn schedule_settings(&self) -> Result<ScheduleSettings> {
        let required =
            |value: &Option<String>, name: &str| value.clone().ok_or_else(|| ExportError::config(name, "is not set"));
        Ok(ScheduleSettings {
            group: self.schedule_group.clone(),
            target_arn: required(&self.schedule_target_arn, SCHEDULE_TARGET_ARN)?,
            role_arn: required(&self.scheduler_role_arn, SCHEDULER_ROLE_ARN)?,
            delay_minutes: self.schedule_delay_minutes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_and_checks() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.tables.exports.as_str(), s.schedule_group.as_str()), ("batch-exports", "batch-exports"));
        assert_eq!((s.schedule_delay_minutes, s.chunk_concurrency, s.run_lease), (1, 4, Duration::hours(3)));
        assert_eq!(s.bigquery_endpoint, DEFAULT_BIGQUERY_ENDPOINT);
        assert!(!s.endpoints.allow_private);
        assert!(s.lake_bucket().unwrap_err().to_string().contains(LAKE_BUCKET));
        let s = settings(&[(LAKE_BUCKET, "lake"), (ALLOW_PRIVATE_ENDPOINTS, "true")]).unwrap();
        assert_eq!((s.work_bucket().unwrap(), s.endpoints.allow_private), ("lake", true));
        for (name, value) in
            [(SCHEDULE_DELAY_MINUTES, "5"), (PART_SIZE_MB, "4"), (BATCH_SIZE, "0"), (CHUNK_MAX_MB, "x")]
        {
            let error = settings(&[(name, value)]).unwrap_err().to_string();
            assert!(error.contains(name), "{name}={value}: {error}");
        }
    }

    #[test]
    fn every_variable_is_in_the_readme_and_every_one_there_is_read_here() {
        let readme = include_str!("../../README.md");
        let table = readme.split("## Settings (environment)").nth(1).expect("the README's settings section");
        let table = table.split("\n## ").next().unwrap();
        for name in VARIABLES {
            assert!(table.contains(&format!("`{name}`")), "{name} is not in the README's settings table");
        }
        let mut documented: Vec<&str> = table
            .split('`')
            .filter(|word| {
                word.starts_with("BATCH_EXPORT_") && word.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .collect();
        documented.sort();
        documented.dedup();
        for name in documented {
            assert!(VARIABLES.contains(&name), "the README documents {name}, which nothing reads");
        }
    }
}
