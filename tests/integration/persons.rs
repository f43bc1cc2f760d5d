//! The persons model to S3: person changes in the lake's `persons/` partitions, a run of one interval writing
//! the latest row per `(team_id, distinct_id)`, read back with the Parquet reader (the seed's column names and
//! types) and as JSONLines.

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};
use batch_exports::batch_export::{BatchExport, Destination, ExportInterval};
use batch_exports::destinations::s3::persons::export_persons;
use batch_exports::destinations::s3::{destination_client, S3Target};
use batch_exports::format::CompressedWriter;
use batch_exports::model::Model;
use batch_exports::person::PersonChange;
use batch_exports::runs::RunStatus;
use batch_exports::sources::lake::persons::latest_per_distinct_id;
use batch_exports::sources::lake::table_partition_prefix;
use batch_exports::store::{ExportStore, RunStore};
use batch_exports::{Compression, EngineSettings, FileFormat, Interval, LakeStore, S3DestinationConfig};
use chrono::{DateTime, Duration, Utc};
use integration_tests::{execute_machine, get_bytes, local_stack, new_bucket, s3, secret_box, settings};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};

fn change(team: i64, distinct_id: &str, person: &str, pv: i64, dv: i64, landed: DateTime<Utc>) -> PersonChange {
    PersonChange {
        team_id: team,
        distinct_id: distinct_id.into(),
        person_id: person.into(),
        properties: json!({"email": format!("{distinct_id}@example.com"), "version": pv}),
        person_version: pv,
        person_distinct_id_version: dv,
        created_at: landed - Duration::days(3),
        is_deleted: false,
        inserted_at: landed,
    }
}

/// Puts person changes into the lake's `persons/` partition of `hour`, as one newline-delimited JSON object.
async fn land(client: &aws_sdk_s3::Client, team: i64, hour: DateTime<Utc>, name: &str, changes: &[PersonChange]) {
    let mut body = Vec::new();
    for change in changes {
        serde_json::to_writer(&mut body, change).unwrap();
        body.push(b'\n');
    }
    let key = format!("{}{name}", table_partition_prefix("", "persons", team, hour));
    let bucket = std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap();
    client.put_object().bucket(bucket).key(key).body(body.into()).send().await.unwrap();
}

/// Distinct ids moving to another person, landed in the lake over three hours. First hour: `d1`, `d2`, `d3` are
/// p1's, at p1's `person_version` 5; `d9` is p2's, at version 1. Second hour: `d1`–`d3` move to p2 (their
/// `person_distinct_id_version` 2, with p2's version 1 as it was then). Third hour: p2 changes to version 3,
/// a change that comes in on `d9` only. Each moved id must end with p2's latest properties (version 3), never
/// p1's (a higher version, of another person).
pub struct MovedIds {
    pub team: i64,
    /// The three hours, in order.
    pub hours: [Interval; 3],
}

impl MovedIds {
    pub const MOVED: [&'static str; 3] = ["d1", "d2", "d3"];

    pub async fn land(client: &aws_sdk_s3::Client, team: i64) -> MovedIds {
        let start = (Utc::now() - Duration::days(1)).date_naive().and_hms_opt(6, 0, 0).unwrap().and_utc();
        let hours = [0, 1, 2].map(|h| {
            let from = start + Duration::hours(h);
            Interval::new(from, from + Duration::hours(1)).unwrap()
        });
        let person = |distinct_id: &str, person: &str, version: i64, mapping: i64, landed: DateTime<Utc>| {
            let properties = json!({"name": person, "person_version": version});
            PersonChange { properties, ..change(team, distinct_id, person, version, mapping, landed) }
        };
        let at = |hour: usize| hours[hour].start + Duration::minutes(5);
        let mut before: Vec<PersonChange> = Self::MOVED.iter().map(|d| person(d, "p1", 5, 1, at(0))).collect();
        before.push(person("d9", "p2", 1, 1, at(0)));
        land(client, team, hours[0].start, "before.jsonl", &before).await;
        let moves: Vec<PersonChange> = Self::MOVED.iter().map(|d| person(d, "p2", 1, 2, at(1))).collect();
        land(client, team, hours[1].start, "moves.jsonl", &moves).await;
        land(client, team, hours[2].start, "after.jsonl", &[person("d9", "p2", 3, 1, at(2))]).await;
        MovedIds { team, hours }
    }

    /// The three hours as one interval.
    pub fn all(&self) -> Interval {
        Interval::new(self.hours[0].start, self.hours[2].end).unwrap()
    }

    /// Asserts that `rows` (`distinct_id`, `person_id`, `person_version`, properties) map every moved id and `d9`
    /// to p2 at its latest version.
    pub fn assert_latest(what: &str, mut rows: Vec<(String, String, i64, Value)>) {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let p2 = |d: &str| (d.to_string(), "p2".to_string(), 3, json!({"name": "p2", "person_version": 3}));
        let want: Vec<_> = Self::MOVED.iter().chain(&["d9"]).map(|d| p2(d)).collect();
        assert_eq!(rows, want, "{what}: every moved id takes p2's latest properties, not p1's");
    }
}

/// The moved ids through S3, in both formats, read back with the Parquet reader and as JSON lines: one run of
/// the three hours. (Runs of one hour each write what changed in each: the third hour's file holds `d9` only,
/// and a reader takes the latest row per distinct id; see the README.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_distinct_ids_take_their_new_persons_latest_properties_in_both_formats() {
    let base = local_stack().await;
    let client = s3(&base);
    let team = Utc::now().timestamp_millis() % 1_000_000_000 * 100 + 97;
    let moved = MovedIds::land(&client, team).await;
    let lake = LakeStore::S3 {
        client: client.clone(),
        bucket: std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap(),
        prefix: String::new(),
    };
    let destination = new_bucket(&client, "persons-moved").await;
    for format in [FileFormat::Parquet, FileFormat::JSONLines] {
        let mut config = S3DestinationConfig::new(&destination);
        config.prefix = format!("{format:?}/");
        config.file_format = format;
        let target = S3Target::new(destination_client(&base, &config, settings().endpoints), &config);
        let outcome =
            export_persons(&lake, &target, team, &moved.all(), &config, &EngineSettings::default()).await.unwrap();
        let bytes = get_bytes(&client, &destination, &outcome.files[0].key).await;
        let rows: Vec<(String, String, i64, Value)> = match format {
            FileFormat::Parquet => {
                let reader =
                    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap().build().unwrap();
                let mut rows = Vec::new();
                for batch in reader {
                    let batch = batch.unwrap();
                    let column = |name: &str| batch.column_by_name(name).unwrap().clone();
                    let (distinct, person, properties, version) =
                        (column("distinct_id"), column("person_id"), column("properties"), column("person_version"));
                    for i in 0..batch.num_rows() {
                        rows.push((
                            distinct.as_string::<i32>().value(i).to_string(),
                            person.as_string::<i32>().value(i).to_string(),
                            version.as_primitive::<Int64Type>().value(i),
                            serde_json::from_str(properties.as_string::<i32>().value(i)).unwrap(),
                        ));
                    }
                }
                rows
            }
            FileFormat::JSONLines => String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|line| {
                    let row: Value = serde_json::from_str(line).unwrap();
                    let text = |name: &str| row[name].as_str().unwrap().to_string();
                    (
                        text("distinct_id"),
                        text("person_id"),
                        row["person_version"].as_i64().unwrap(),
                        row["properties"].clone(),
                    )
                })
                .collect(),
        };
        MovedIds::assert_latest(&format!("{format:?}"), rows);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_run_writes_one_row_per_distinct_id_that_reads_back_with_the_seed_schema() {
    let base = local_stack().await;
    let client = s3(&base);
    let lake_bucket = std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap();
    let team = Utc::now().timestamp_millis() % 1_000_000_000 * 100 + 99;
    let start = (Utc::now() - Duration::days(1)).date_naive().and_hms_opt(4, 0, 0).unwrap().and_utc();
    let interval = Interval::new(start, start + Duration::hours(1)).unwrap();
    let at = |minutes: i64| start + Duration::minutes(minutes);
    let changes = vec![
        change(team, "a", "p1", 1, 1, at(1)),
        change(team, "a", "p1", 2, 1, at(10)),
        change(team, "b", "p2", 7, 1, at(5)),
        change(team, "a", "p3", 2, 2, at(20)),
        change(team, "c", "p4", 1, 1, at(30)),
    ];
    // Two objects in the hour's partition, and a change that landed in the next hour (not this run's).
    for (name, rows) in [("one.jsonl.zst", &changes[..2]), ("two.jsonl.zst", &changes[2..])] {
        let mut out = CompressedWriter::new(Vec::new(), Some(Compression::Zstd)).unwrap();
        for row in rows {
            serde_json::to_writer(&mut out, row).unwrap();
            out.write_all(b"\n").unwrap();
        }
        let key = format!("{}{name}", table_partition_prefix("", "persons", team, start));
        client.put_object().bucket(&lake_bucket).key(key).body(out.finish().unwrap().into()).send().await.unwrap();
    }
    let later = change(team, "a", "p9", 9, 9, start + Duration::minutes(70));
    let key = format!("{}late.jsonl", table_partition_prefix("", "persons", team, start + Duration::hours(1)));
    client
        .put_object()
        .bucket(&lake_bucket)
        .key(key)
        .body(serde_json::to_vec(&later).unwrap().into())
        .send()
        .await
        .unwrap();
    let lake = LakeStore::S3 { client: client.clone(), bucket: lake_bucket, prefix: String::new() };
    let expected: Vec<_> =
        latest_per_distinct_id(changes.into_iter().map(Ok), 1 << 20, None).unwrap().map(Result::unwrap).collect();
    assert_eq!(expected.len(), 3);

    let destination = new_bucket(&client, "persons").await;
    for (format, compression, extension) in
        [(FileFormat::Parquet, Some(Compression::Zstd), ".parquet.zst"), (FileFormat::JSONLines, None, ".jsonl")]
    {
        let mut config = S3DestinationConfig::new(&destination);
        config.prefix = "{table}/".into();
        config.file_format = format;
        config.compression = compression;
        let target = S3Target::new(destination_client(&base, &config, settings().endpoints), &config);
        let outcome =
            export_persons(&lake, &target, team, &interval, &config, &EngineSettings::default()).await.unwrap();
        assert_eq!(outcome.records, 3);
        let key = &outcome.files[0].key;
        assert!(key.starts_with("persons/") && key.ends_with(extension), "{key}");
        let bytes = get_bytes(&client, &destination, key).await;
        match format {
            FileFormat::Parquet => {
                let reader =
                    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap().build().unwrap();
                let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
                let schema = batches[0].schema();
                let columns: Vec<(String, DataType)> =
                    schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
                let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
                assert_eq!(
                    columns,
                    [
                        ("team_id".into(), DataType::Int64),
                        ("distinct_id".into(), DataType::Utf8),
                        ("person_id".into(), DataType::Utf8),
                        ("properties".into(), DataType::Utf8),
                        ("person_distinct_id_version".into(), DataType::Int64),
                        ("person_version".into(), DataType::Int64),
                        ("created_at".into(), time.clone()),
                        ("_inserted_at".into(), time),
                        ("is_deleted".into(), DataType::Boolean),
                    ]
                );
                let batch = &batches[0];
                assert_eq!(batch.num_rows(), 3);
                for (i, want) in expected.iter().enumerate() {
                    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(i), team);
                    assert_eq!(batch.column(1).as_string::<i32>().value(i), want.distinct_id);
                    assert_eq!(batch.column(2).as_string::<i32>().value(i), want.person_id);
                    let properties: Value = serde_json::from_str(batch.column(3).as_string::<i32>().value(i)).unwrap();
                    assert_eq!(properties, want.properties);
                    assert_eq!(batch.column(4).as_primitive::<Int64Type>().value(i), want.person_distinct_id_version);
                    assert_eq!(batch.column(5).as_primitive::<Int64Type>().value(i), want.person_version);
                    let inserted = batch.column(7).as_primitive::<TimestampMicrosecondType>().value(i);
                    assert_eq!(inserted, want.inserted_at.timestamp_micros());
                    assert!(!batch.column(8).as_boolean().value(i));
                    assert!(batch.column(6).is_valid(i));
                }
            }
            FileFormat::JSONLines => {
                let rows: Vec<Value> =
                    String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
                assert_eq!(rows.len(), 3);
                assert_eq!(rows[0]["distinct_id"], "a");
                assert_eq!((rows[0]["person_id"].as_str(), rows[0]["person_version"].as_i64()), (Some("p3"), Some(2)));
                assert!(rows[0]["properties"].is_object(), "properties nested in JSONLines");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_export_runs_through_the_state_machine() {
    let base = local_stack().await;
    let client = s3(&base);
    let lake_bucket = std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap();
    let team = Utc::now().timestamp_millis() % 1_000_000_000 * 100 + 98;
    let start = (Utc::now() - Duration::days(1)).date_naive().and_hms_opt(5, 0, 0).unwrap().and_utc();
    let changes = [
        change(team, "x", "p1", 1, 1, start),
        change(team, "x", "p1", 2, 1, start),
        change(team, "y", "p2", 1, 1, start),
    ];
    let mut rows = Vec::new();
    for c in &changes {
        serde_json::to_writer(&mut rows, c).unwrap();
        rows.push(b'\n');
    }
    let key = format!("{}changes.jsonl", table_partition_prefix("", "persons", team, start));
    client.put_object().bucket(&lake_bucket).key(key).body(rows.into()).send().await.unwrap();

    let destination = new_bucket(&client, "persons-run").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.prefix = "{table}/".into();
    config.max_file_size_mb = Some(10);
    let mut export =
        BatchExport::new(format!("persons-{team}"), team, "persons", Destination::S3(config), ExportInterval::Hour);
    export.model = Model::Persons;
    let tables = settings().tables;
    let dynamodb = aws_sdk_dynamodb::Client::new(&base);
    let secrets = secret_box(aws_sdk_kms::Client::new(&base));
    ExportStore::new(dynamodb.clone(), tables.exports, secrets).put(&export).await.unwrap();

    let input = json!({"team_id": team, "export_id": export.id, "data_interval_start": start,
                       "data_interval_end": start + Duration::hours(1)});
    let execution = execute_machine("export", &format!("persons-{team}"), input).await;
    assert_eq!(execution.status, "SUCCEEDED", "{:?} {}", execution.error, execution.output);
    let run = RunStore::new(dynamodb, tables.runs).get(&export.id, start + Duration::hours(1)).await.unwrap().unwrap();
    assert_eq!((run.status, run.records_total_count, run.records_completed), (RunStatus::Completed, Some(2), Some(2)));
    assert!(run.files[0].starts_with("persons/") && run.files[0].ends_with("-0.jsonl"), "{:?}", run.files);
    assert!(run.manifest_key.as_deref().is_some_and(|k| k.starts_with("persons/")), "{:?}", run.manifest_key);
}
