//! `batch-export`: a small CLI over the engine, for the local stack and for trying an export by hand.
//!
//! - `make-bucket NAME` creates a bucket (idempotent).
//! - `seed-lake` writes deterministic sample events into the lake layout.
//! - `list BUCKET` lists keys and sizes.
//! - `export` exports one interval of a team's events to an S3 destination and prints what it wrote as JSON.
//! - `setup-local` creates the lake and work buckets, the tables, the KMS key alias, the schedule group and the
//!   two state machines (in the emulator's Step Functions, which the API starts) that the functions use (from
//!   the same environment variables as the functions; idempotent).
//! - `create-api-key` creates a project API key and prints it (once: only its hash is stored).
//! - `create-project-token` prints the project token capture takes (`phc_…`), creating it on first use.
//! - `create-export` writes an export record to the exports table.
//! - `show-run` prints the run record of an export's interval.
//!
//! AWS settings come from the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials), as for every function.

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use batch_exports::batch_export::{BatchExport, Destination};
use batch_exports::destinations::s3::{destination_client, lake_client, S3Target};
use batch_exports::format::Compression;
use batch_exports::schedules::Schedules;
use batch_exports::secrets::{ensure_key_alias, SecretBox};
use batch_exports::settings::Settings;
use batch_exports::sources::lake::writer::{lake_object_key, ndjson_bytes, parquet_bytes, put_object};
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::store::{create_tables, ApiKeyStore, ExportStore, RunStore};
use batch_exports::{export_events, EventRow, ExportError, Interval, LakeStore, S3DestinationConfig};
use chrono::{DateTime, Duration, Utc};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(about = "Batch exports from the event lake to S3, one interval at a time")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LakeObjectFormat {
    Jsonl,
    JsonlGz,
    JsonlZst,
    Parquet,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a bucket if it does not exist.
    MakeBucket { name: String },
    /// Writes sample events into the lake: `--events-per-hour` events in each of `--hours` hour partitions,
    /// in `--objects-per-hour` objects, plus `--repeat-percent` of them delivered twice.
    SeedLake {
        #[arg(long)]
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value_t = 1)]
        team_id: i64,
        /// First hour, e.g. 2026-11-21T10:00:00Z.
        #[arg(long)]
        start: DateTime<Utc>,
        #[arg(long, default_value_t = 1)]
        hours: u32,
        #[arg(long, default_value_t = 10_000)]
        events_per_hour: usize,
        #[arg(long, default_value_t = 4)]
        objects_per_hour: usize,
        #[arg(long, default_value_t = 1)]
        repeat_percent: usize,
        #[arg(long, value_enum, default_value = "jsonl-zst")]
        format: LakeObjectFormat,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Lists a bucket's keys and sizes.
    List { bucket: String },
    /// Exports `[start, end)` of a team's events to the destination in `--config` and prints the outcome.
    Export {
        #[arg(long)]
        lake_bucket: String,
        #[arg(long, default_value = "")]
        lake_prefix: String,
        #[arg(long)]
        team_id: i64,
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        /// The S3 destination config as JSON (the reference's field names).
        #[arg(long)]
        config: String,
    },
    /// Creates the buckets (`BATCH_EXPORT_LAKE_BUCKET`, `BATCH_EXPORT_WORK_BUCKET`), tables, KMS key, schedule
    /// group and state machines of the local stack.
    SetupLocal {
        /// Where the state machine definitions are.
        #[arg(long, default_value = "statemachines")]
        statemachines: std::path::PathBuf,
    },
    /// Creates an API key for a project (team) and prints it; keep it: it cannot be shown again.
    CreateApiKey {
        #[arg(long)]
        team_id: i64,
        #[arg(long, default_value = "first key")]
        label: String,
    },
    /// Prints the project token that PostHog's SDKs send events with (`phc_…`), creating it on first use.
    CreateProjectToken {
        #[arg(long)]
        team_id: i64,
    },
    /// Writes an export with an S3 destination to the exports table and prints it (secrets redacted).
    CreateExport {
        #[arg(long)]
        team_id: i64,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "local export")]
        name: String,
        /// `hour`, `day`, `week`, `every 5 minutes` or `every 15 minutes`.
        #[arg(long, default_value = "hour")]
        interval: String,
        /// The S3 destination config as JSON (the reference's field names).
        #[arg(long)]
        config: String,
    },
    /// Prints the run record of an export's interval (by its end).
    ShowRun {
        #[arg(long)]
        export_id: String,
        #[arg(long)]
        end: DateTime<Utc>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error ({}): {e}", e.error_type());
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), ExportError> {
    let settings = Settings::from_env()?;
    let tables = settings.tables.clone();
    let base = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let s3 = lake_client(&base);
    let dynamodb = aws_sdk_dynamodb::Client::new(&base);
    match command {
        Command::MakeBucket { name } => make_bucket(&s3, &name).await?,
        Command::CreateApiKey { team_id, label } => {
            let keys = ApiKeyStore::new(dynamodb, tables.api_keys);
            let (key, _) = keys.create(team_id, &label, Utc::now()).await?;
            println!("{key}");
        }
        Command::CreateProjectToken { team_id } => {
            let keys = ApiKeyStore::new(dynamodb, tables.api_keys);
            println!("{}", keys.ensure_project_token(team_id, Utc::now()).await?);
        }
        Command::SetupLocal { statemachines } => {
            for bucket in [settings.lake_bucket()?, settings.work_bucket()?] {
                make_bucket(&s3, bucket).await?;
            }
            create_tables(&dynamodb, &tables).await?;
            println!(
                "tables {}, {}, {}, {} and {} ready",
                tables.exports, tables.runs, tables.backfills, tables.api_keys, tables.persons
            );
            if let Some(queue_url) = &settings.capture_queue_url {
                batch_exports::ingest::queue::create_queues(&aws_sdk_sqs::Client::new(&base), queue_url).await?;
                println!("capture queue {queue_url} ready");
            }
            let alias = settings.kms_key_id()?;
            ensure_key_alias(&aws_sdk_kms::Client::new(&base), alias).await?;
            println!("KMS key {alias} ready");
            if let Ok(schedules) = settings.schedule_settings() {
                Schedules::new(aws_sdk_scheduler::Client::new(&base), schedules.clone()).ensure_group().await?;
                println!("schedule group {} ready", schedules.group);
            }
            let sfn = aws_sdk_sfn::Client::new(&base);
            for (arn, file) in
                [(&settings.state_machine_arn, "export"), (&settings.backfill_state_machine_arn, "backfill")]
            {
                let Some(arn) = arn else { continue };
                let definition = statemachines.join(format!("{file}.asl.json"));
                ensure_state_machine(&sfn, &arn, &definition).await?;
                println!("state machine {arn} ready");
            }
        }
        Command::CreateExport { team_id, id, name, interval, config } => {
            let interval = serde_json::from_value(serde_json::Value::String(interval.clone()))
                .map_err(|_| ExportError::config("interval", format!("`{interval}` is not an interval")))?;
            let destination = Destination::S3(S3DestinationConfig::from_json(&config)?);
            let export = BatchExport::new(id, team_id, name, destination, interval);
            let secrets = SecretBox::new(aws_sdk_kms::Client::new(&base), settings.kms_key_id()?);
            ExportStore::new(dynamodb, tables.exports, secrets).put(&export).await?;
            println!("created export {} of team {team_id}: {:?}", export.id, export.destination);
        }
        Command::ShowRun { export_id, end } => {
            let run = RunStore::new(dynamodb, tables.runs).get(&export_id, end).await?;
            let run =
                run.ok_or_else(|| ExportError::NotFound { what: "run", id: format!("{export_id} ending {end}") })?;
            println!("{}", serde_json::to_string_pretty(&run).expect("a run serializes"));
        }
        Command::SeedLake {
            bucket,
            prefix,
            team_id,
            start,
            hours,
            events_per_hour,
            objects_per_hour,
            repeat_percent,
            format,
            seed,
        } => {
            // Streamed object by object, so any number of events fits in memory (only the repeats are held).
            let mut generator = SyntheticEvents::new(seed, team_id);
            let per_object = events_per_hour.div_ceil(objects_per_hour.max(1)).max(1);
            let every = 100 / repeat_percent.clamp(1, 100);
            let repeat_count = events_per_hour * repeat_percent / 100;
            // The hour's objects cut its events, then its repeats, into runs of `per_object`.
            let last_first = events_per_hour.saturating_sub(1) / per_object * per_object;
            let step = 3_600_000_000i64 / events_per_hour.max(1) as i64;
            let (mut objects, mut events) = (0, 0);
            for h in 0..hours {
                let hour = start + Duration::hours(h as i64);
                // Repeats: some events delivered again later in the hour, as at-least-once ingestion does.
                let mut repeats = Vec::with_capacity(repeat_count);
                let mut tail = Vec::new();
                for first in (0..events_per_hour).step_by(per_object) {
                    let rows: Vec<_> = (first..(first + per_object).min(events_per_hour))
                        .map(|j| generator.event(hour + Duration::microseconds(step * j as i64)))
                        .collect();
                    for (j, row) in (first..).zip(&rows) {
                        if j % every == 0 && repeats.len() < repeat_count {
                            let mut again = row.clone();
                            again.inserted_at = (hour + Duration::minutes(59)).timestamp_micros();
                            repeats.push(again);
                        }
                    }
                    if first < last_first {
                        put_lake_object(&s3, &bucket, &prefix, hour, first / per_object, format, &rows).await?;
                        (objects, events) = (objects + 1, events + rows.len());
                    } else {
                        tail = rows;
                    }
                }
                tail.extend(repeats);
                for (i, rows) in tail.chunks(per_object).enumerate() {
                    put_lake_object(&s3, &bucket, &prefix, hour, last_first / per_object + i, format, rows).await?;
                    (objects, events) = (objects + 1, events + rows.len());
                }
            }
            println!("wrote {events} events ({objects} objects) to s3://{bucket}/{prefix}events/team_id={team_id}/");
        }
        Command::List { bucket } => {
            let mut pages = s3.list_objects_v2().bucket(&bucket).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| batch_exports::aws_error::classify_sdk_error(e, "ListObjectsV2", &bucket, None))?;
                for o in page.contents() {
                    println!("{:>12}  s3://{bucket}/{}", o.size().unwrap_or(0), o.key().unwrap_or_default());
                }
            }
        }
        Command::Export { lake_bucket, lake_prefix, team_id, start, end, config } => {
            let config = S3DestinationConfig::from_json(&config)?;
            let interval = Interval::parse(&start, &end)?;
            let lake = LakeStore::S3 { client: s3, bucket: lake_bucket, prefix: lake_prefix };
            let client = destination_client(&base, &config, settings.endpoints);
            let sink = S3Target::new(client, &config);
            let outcome = export_events(&lake, &sink, team_id, interval, &config, &settings.engine).await?;
            println!("{}", serde_json::to_string_pretty(&outcome).expect("outcome serializes"));
        }
    }
    Ok(())
}

/// Writes object `index` of a lake hour (`batch-{index}.{ext}`), in the team of its rows.
async fn put_lake_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    hour: DateTime<Utc>,
    index: usize,
    format: LakeObjectFormat,
    rows: &[EventRow],
) -> Result<(), ExportError> {
    let (body, ext) = match format {
        LakeObjectFormat::Jsonl => (ndjson_bytes(rows, None)?, "jsonl"),
        LakeObjectFormat::JsonlGz => (ndjson_bytes(rows, Some(Compression::Gzip))?, "jsonl.gz"),
        LakeObjectFormat::JsonlZst => (ndjson_bytes(rows, Some(Compression::Zstd))?, "jsonl.zst"),
        LakeObjectFormat::Parquet => (parquet_bytes(rows)?, "parquet"),
    };
    let team_id = rows.first().map_or(0, |r| r.team_id);
    let key = lake_object_key(prefix, team_id, hour, &format!("batch-{index:05}.{ext}"));
    put_object(s3, bucket, &key, body).await
}

/// Creates a bucket unless it exists.
async fn make_bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<(), ExportError> {
    match s3.create_bucket().bucket(name).send().await {
        Ok(_) => println!("created bucket {name}"),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {
            println!("bucket {name} exists")
        }
        Err(e) => return Err(batch_exports::aws_error::classify_sdk_error(e, "CreateBucket", name, None)),
    }
    Ok(())
}

/// Creates a state machine named as the last part of `arn` from a definition file, unless it exists (the local
/// stack's Step Functions records executions the API starts; the local interpreter runs them).
async fn ensure_state_machine(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    definition: &std::path::Path,
) -> Result<(), ExportError> {
    if sfn.describe_state_machine().state_machine_arn(arn).send().await.is_ok() {
        return Ok(());
    }
    let name = arn.rsplit(':').next().unwrap_or(arn);
    let text = std::fs::read_to_string(definition)
        .map_err(|e| ExportError::config("statemachines", format!("{}: {e}", definition.display())))?;
    sfn.create_state_machine()
        .name(name)
        .definition(text)
        .role_arn("arn:aws:iam::123456789012:role/batch-exports-state-machine")
        .send()
        .await
        .map_err(|e| batch_exports::aws_error::classify_sdk_error(e, "CreateStateMachine", name, None))?;
    Ok(())
}
