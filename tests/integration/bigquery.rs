//! The BigQuery destination against bqemulator, authenticated with the service-account JWT-bearer flow at a
//! local token endpoint (tests/token_stub.py, which also fronts the emulator and refuses unknown tokens): the
//! final table created with the seed's schema, events loaded through a stage table holding exactly the source
//! rows, `use_json_type` on and off, a denied permission and a bad key as non-retryable errors naming what was
//! refused, and no stage table left behind.

use batch_exports::batch_export::{BatchExport, Destination, ExportInterval};
use batch_exports::destinations::bigquery::schema::stage_table;
use batch_exports::destinations::bigquery::{
    load_events, load_persons, BigQuery, BigQueryDestinationConfig, LoadTarget, TokenSource,
};
use batch_exports::network::{guarded_reqwest_client, EndpointPolicy};
use batch_exports::person::PersonRow;
use batch_exports::runs::RunStatus;
use batch_exports::sources::lake::persons::read_persons;
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::store::{ExportStore, RunStore};
use batch_exports::{ExportError, Interval};
use chrono::{Duration, Utc};
use integration_tests::bigquery::{Emulator, TokenStub};
use integration_tests::{
    execute_definition, execute_machine, rsa_key_pem, secret_box, settings, Api, Fault, FaultProxy, Functions,
};
use serde_json::json;

use crate::persons::MovedIds;

fn hour() -> Interval {
    let start = (Utc::now() - Duration::days(1)).date_naive().and_hms_opt(10, 0, 0).unwrap().and_utc();
    Interval::new(start, start + Duration::hours(1)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_in_the_final_table_through_a_stage_table_with_json_or_string_columns() {
    let stub = TokenStub::start();
    let emulator = Emulator::new();
    let interval = hour();
    let rows = SyntheticEvents::new(5, 77).events_between(interval.start, Duration::hours(1), 2_500);
    for use_json_type in [false, true] {
        let dataset = emulator.create_dataset().await;
        let config = stub.config(&dataset, "exports@test-proj.iam.gserviceaccount.com", use_json_type);
        let bq = stub.client(&config);
        // Small jobs: several load jobs into the one stage table.
        let batches = rows.chunks(1_000).map(|c| c.to_vec());
        let outcome = load_events(
            &bq,
            LoadTarget {
                config: &config,
                interval: &interval,
                team_id: 77,
                job_prefix: &format!("job-{dataset}"),
                max_job_bytes: 400_000,
            },
            batches,
        )
        .await
        .unwrap();
        assert_eq!(outcome.rows, 2_500);
        assert!(outcome.load_jobs >= 2, "{outcome:?}");

        // Exactly the source rows, once each.
        let table = format!("`test-proj.{dataset}.events`");
        let got = emulator.query(&format!("SELECT COUNT(*), COUNT(DISTINCT uuid), SUM(team_id) FROM {table}")).await;
        assert_eq!(got[0], [json!("2500"), json!("2500"), json!((2_500 * 77).to_string())]);
        let first = &rows[0];
        let got = emulator
            .query(&format!(
                "SELECT event, distinct_id, timestamp, bq_ingested_timestamp FROM {table} WHERE uuid = '{}'",
                first.uuid
            ))
            .await;
        assert_eq!(got[0][0], json!(first.event));
        assert_eq!(got[0][1], json!(first.distinct_id));
        assert_eq!(got[0][2], json!(first.timestamp.to_string()));
        assert!(got[0][3].as_str().is_some(), "bq_ingested_timestamp is set");

        // The seed's schema, JSON or STRING, partitioned by day on timestamp; no stage table left.
        let meta = emulator.table(&dataset, "events").await;
        let kinds: Vec<(String, String)> = meta["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].as_str().unwrap().to_string()))
            .collect();
        let json_kind = if use_json_type { "JSON" } else { "STRING" };
        for column in ["properties", "set", "set_once"] {
            assert!(kinds.contains(&(column.to_string(), json_kind.to_string())), "{column}: {kinds:?}");
        }
        assert!(kinds.contains(&("bq_ingested_timestamp".to_string(), "TIMESTAMP".to_string())));
        assert_eq!(meta["timePartitioning"], json!({"type": "DAY", "field": "timestamp"}));
        assert_eq!(emulator.tables(&dataset).await, ["events"]);

        // A second run of the interval reloads the stage from scratch (the final table gets the rows again:
        // events are append-only, as in the reference).
        let again = load_events(
            &bq,
            LoadTarget {
                config: &config,
                interval: &interval,
                team_id: 77,
                job_prefix: &format!("job2-{dataset}"),
                max_job_bytes: 400_000,
            },
            [rows[..10].to_vec()],
        )
        .await;
        assert_eq!(again.unwrap().rows, 10);
        assert_eq!(emulator.tables(&dataset).await, ["events"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_permission_or_a_bad_key_fails_without_retry_naming_what_was_refused() {
    let stub = TokenStub::start();
    let emulator = Emulator::new();
    let interval = hour();
    let rows = SyntheticEvents::new(6, 78).events_between(interval.start, Duration::hours(1), 10);

    let dataset = emulator.create_dataset().await;
    let config = stub.config(&dataset, "denied@test-proj.iam.gserviceaccount.com", false);
    let error = load_events(
        &stub.client(&config),
        LoadTarget { config: &config, interval: &interval, team_id: 78, job_prefix: "denied", max_job_bytes: 1 << 20 },
        [rows.clone()],
    )
    .await
    .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(matches!(error, ExportError::AccessDenied { .. }), "{error:?}");
    assert!(error.to_string().contains("bigquery.tables.create"), "{error}");
    assert!(emulator.tables(&dataset).await.is_empty(), "nothing created");

    // A key the token endpoint does not know (another key pair): the exchange is refused.
    let other = TokenStub::start();
    let mut config = other.config(&dataset, "exports@test-proj.iam.gserviceaccount.com", false);
    config.token_uri = format!("{}/token", stub.url);
    let error = load_events(
        &stub.client(&config),
        LoadTarget { config: &config, interval: &interval, team_id: 78, job_prefix: "bad-key", max_job_bytes: 1 << 20 },
        [rows],
    )
    .await
    .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    assert!(!emulator.tables(&dataset).await.contains(&stage_table("events", &interval, 78)));
}

fn person(distinct_id: &str, person_id: &str, person_version: i64, distinct_version: i64, team: i64) -> PersonRow {
    PersonRow {
        team_id: team,
        distinct_id: distinct_id.into(),
        person_id: person_id.into(),
        properties: json!({"email": format!("{distinct_id}@example.com"), "v": person_version}),
        person_version,
        person_distinct_id_version: distinct_version,
        created_at: Utc::now(),
        is_deleted: false,
        inserted_at: Utc::now(),
    }
}

/// A new dataset whose `persons` table a persons export (JSON columns) writes, and its client.
async fn persons_table(stub: &TokenStub, emulator: &Emulator) -> (String, BigQueryDestinationConfig, BigQuery) {
    let dataset = emulator.create_dataset().await;
    let mut config = stub.config(&dataset, "exports@test-proj.iam.gserviceaccount.com", true);
    config.table_id = "persons".into();
    let bq = stub.client(&config);
    (dataset, config, bq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persons_runs_merge_by_key_and_older_versions_never_overwrite() {
    let (stub, emulator) = (TokenStub::start(), Emulator::new());
    let (dataset, config, bq) = persons_table(&stub, &emulator).await;
    let first = hour();
    let second = Interval::new(first.end, first.end + Duration::hours(1)).unwrap();

    let run1 = [person("a", "p-a", 2, 1, 9), person("b", "p-b", 5, 3, 9), person("c", "p-c", 1, 1, 9)];
    let target =
        LoadTarget { config: &config, interval: &first, team_id: 9, job_prefix: "persons-1", max_job_bytes: 1 << 20 };
    assert_eq!(load_persons(&bq, target, &run1).await.unwrap().rows, 3);
    // The second run: `a` newer (properties and mapping), `b` older on both counts, `c` moved to another person
    // (a newer mapping; that person's own version is lower, and versions of different persons are not compared),
    // `d` new; and `a` twice in the stage (the newest wins the de-duplication).
    let run2 = [
        person("a", "p-a2", 3, 2, 9),
        person("a", "p-a1", 1, 1, 9),
        person("b", "p-old", 4, 2, 9),
        PersonRow { properties: json!({"stale": true}), ..person("c", "p-c2", 0, 2, 9) },
        person("d", "p-d", 1, 1, 9),
    ];
    let target = LoadTarget { interval: &second, job_prefix: "persons-2", ..target };
    load_persons(&bq, target, &run2).await.unwrap();

    let got = emulator
        .query(&format!(
            "SELECT distinct_id, person_id, person_version, person_distinct_id_version, TO_JSON_STRING(properties) \
             FROM `test-proj.{dataset}.persons` ORDER BY distinct_id"
        ))
        .await;
    let rows: Vec<(String, String, String, String)> = got
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().into(),
                r[1].as_str().unwrap().into(),
                r[2].as_str().unwrap().into(),
                r[3].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |d: &str, p: &str, pv: i64, dv: i64| (d.to_string(), p.to_string(), pv.to_string(), dv.to_string());
    assert_eq!(
        rows,
        [expect("a", "p-a2", 3, 2), expect("b", "p-b", 5, 3), expect("c", "p-c2", 0, 2), expect("d", "p-d", 1, 1)],
        "one row per key, newest data"
    );
    assert!(got[2][4].as_str().unwrap().contains("stale"), "c takes its new person's properties: {:?}", got[2][4]);
    let meta = emulator.table(&dataset, "persons").await;
    assert!(meta["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "properties" && f["type"] == "JSON"));
    assert_eq!(emulator.tables(&dataset).await, ["persons"], "no stage table remains");
}

/// The moved ids of [`MovedIds`] through MERGE, one run per hour: the first maps them to p1 (version 5), the
/// second moves them to p2 (version 1, lower than p1's), and the third brings p2's version 3 on `d9` only —
/// which the MERGE carries to every row of p2 in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_moved_distinct_ids_take_their_new_persons_latest_properties() {
    let (stub, emulator) = (TokenStub::start(), Emulator::new());
    let (dataset, config, bq) = persons_table(&stub, &emulator).await;
    let client = integration_tests::s3(&integration_tests::local_stack().await);
    let team = Utc::now().timestamp_millis() % 1_000_000_000 * 100 + 96;
    let moved = MovedIds::land(&client, team).await;
    let lake = batch_exports::LakeStore::S3 {
        client,
        bucket: std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap(),
        prefix: String::new(),
    };
    for (n, interval) in moved.hours.iter().enumerate() {
        let rows: Vec<_> = read_persons(&lake, moved.team, interval, None).await.unwrap().map(Result::unwrap).collect();
        let job_prefix = format!("moved-{n}");
        let target = LoadTarget {
            config: &config,
            interval,
            team_id: moved.team,
            job_prefix: &job_prefix,
            max_job_bytes: 1 << 20,
        };
        load_persons(&bq, target, &rows).await.unwrap();
    }
    let got = emulator
        .query(&format!(
            "SELECT distinct_id, person_id, person_version, TO_JSON_STRING(properties) \
             FROM `test-proj.{dataset}.persons` ORDER BY distinct_id"
        ))
        .await;
    let rows = got
        .iter()
        .map(|r| {
            let text = |i: usize| r[i].as_str().unwrap().to_string();
            (text(0), text(1), text(2).parse().unwrap(), serde_json::from_str(&text(3)).unwrap())
        })
        .collect();
    MovedIds::assert_latest("BigQuery MERGE", rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_example_query_counts_what_the_source_data_says() {
    let stub = TokenStub::start();
    let emulator = Emulator::new();
    let dataset = emulator.create_dataset().await;
    let interval = hour();
    let team = 31;
    let events = SyntheticEvents::new(8, team).events_between(interval.start, Duration::hours(1), 3_000);
    // Persons for every other distinct id seen in the events.
    let mut distinct: Vec<&str> = events.iter().map(|e| e.distinct_id.as_str()).collect();
    distinct.sort();
    distinct.dedup();
    let persons: Vec<PersonRow> =
        distinct.iter().step_by(2).enumerate().map(|(i, d)| person(d, &format!("person-{i}"), 1, 1, team)).collect();

    let config = stub.config(&dataset, "exports@test-proj.iam.gserviceaccount.com", false);
    let bq = stub.client(&config);
    let target = LoadTarget {
        config: &config,
        interval: &interval,
        team_id: team,
        job_prefix: "ex-events",
        max_job_bytes: 1 << 22,
    };
    load_events(&bq, target, [events.clone()]).await.unwrap();
    let mut persons_config = config.clone();
    persons_config.table_id = "persons".into();
    let target = LoadTarget { config: &persons_config, job_prefix: "ex-persons", ..target };
    load_persons(&bq, target, &persons).await.unwrap();

    let sql = format!(
        "SELECT event, COUNT(persons.person_id) AS unique_persons_count \
         FROM `test-proj.{dataset}.events` AS events \
         LEFT JOIN `test-proj.{dataset}.persons` AS persons \
         ON events.distinct_id = persons.distinct_id AND events.team_id = persons.team_id \
         WHERE persons.person_id IS NOT NULL GROUP BY event ORDER BY unique_persons_count DESC, event"
    );
    let got: Vec<(String, u64)> = emulator
        .query(&sql)
        .await
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().parse().unwrap()))
        .collect();
    let mapped: std::collections::HashSet<&str> = persons.iter().map(|p| p.distinct_id.as_str()).collect();
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    for e in events.iter().filter(|e| mapped.contains(e.distinct_id.as_str())) {
        *expected.entry(e.event.clone()).or_default() += 1;
    }
    let mut expected: Vec<(String, u64)> = expected.into_iter().collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_runs_go_through_the_state_machine_to_bigquery_and_a_refused_one_fails_the_run() {
    let stub = TokenStub::start();
    let emulator = Emulator::new();
    let base = integration_tests::local_stack().await;
    let s3 = integration_tests::s3(&base);
    let team = Utc::now().timestamp_millis() % 1_000_000_000 * 100 + 97;
    let interval = hour();
    let mut lake = integration_tests::Lake::new(&s3, &std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap());
    let rows = SyntheticEvents::new(9, team).events_between(interval.start, Duration::hours(1), 1_500);
    lake.add(team, interval.start, "events.jsonl.zst", rows).await;
    let expected = lake.expected(team, &interval, |_| true);

    let tables = settings().tables;
    let dynamodb = aws_sdk_dynamodb::Client::new(&base);
    let exports = ExportStore::new(dynamodb.clone(), tables.exports, secret_box(aws_sdk_kms::Client::new(&base)));
    let runs = RunStore::new(dynamodb, tables.runs);
    let dataset = emulator.create_dataset().await;
    for (name, dataset) in [("ok", dataset.clone()), ("missing", "no_such_dataset".to_string())] {
        let config = stub.config(&dataset, "exports@test-proj.iam.gserviceaccount.com", true);
        let export = BatchExport::new(
            format!("bq-{name}-{team}"),
            team,
            "to BigQuery",
            Destination::BigQuery(config),
            ExportInterval::Hour,
        );
        exports.put(&export).await.unwrap();
        let input = json!({"team_id": team, "export_id": export.id, "data_interval_start": interval.start,
                           "data_interval_end": interval.end});
        let execution = execute_machine("export", &export.id, input).await;
        let run = runs.get(&export.id, interval.end).await.unwrap().unwrap();
        assert_no_key(&stub, &execution.history);
        if name == "ok" {
            assert_eq!(
                execution.status, "SUCCEEDED",
                "{:?} {:?} {:?}",
                execution.error, run.latest_error, execution.retries
            );
            assert_eq!(run.status, RunStatus::Completed);
            assert_eq!(run.records_completed, Some(expected.len() as u64));
            let got = emulator
                .query(&format!("SELECT COUNT(*), COUNT(DISTINCT uuid) FROM `test-proj.{dataset}.events`"))
                .await;
            assert_eq!(got[0], [json!(expected.len().to_string()), json!(expected.len().to_string())]);
            assert_eq!(emulator.tables(&dataset).await, ["events"], "no stage table remains");
        } else {
            assert_eq!(execution.status, "FAILED");
            assert_eq!(run.status, RunStatus::Failed, "{:?}", run.latest_error);
            let error = run.latest_error.unwrap_or_default();
            assert!(error.contains("no_such_dataset"), "the error names the dataset: {error}");
            assert!(execution.retries.is_empty(), "not retried: {:?}", execution.retries);
        }
    }
}

/// A lake object replaced while the BigQuery load is about to read it: the load fails with `LakeChangedError`,
/// the run is planned again, and the table holds exactly the new object's rows (the first load's stage table is
/// replaced, not merged). The run's functions read the lake through a proxy that holds the load's read (the
/// object's second GET: planning reads it first) while the test replaces the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_object_replaced_under_the_load_plans_the_run_again_and_the_table_matches_it() {
    let stub = TokenStub::start();
    let emulator = Emulator::new();
    let base = integration_tests::local_stack().await;
    let s3 = integration_tests::s3(&base);
    let team = Utc::now().timestamp_millis() % 1_000_000_000 * 100 + 95;
    let interval = hour();
    let mut lake = integration_tests::Lake::new(&s3, &std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap());
    let rows = SyntheticEvents::new(11, team).events_between(interval.start, Duration::hours(1), 1_000);
    lake.add(team, interval.start, "replaced.jsonl.zst", rows).await;
    let tables = settings().tables;
    let dynamodb = aws_sdk_dynamodb::Client::new(&base);
    let exports = ExportStore::new(dynamodb.clone(), tables.exports, secret_box(aws_sdk_kms::Client::new(&base)));
    let runs = RunStore::new(dynamodb, tables.runs);
    let dataset = emulator.create_dataset().await;
    let config = stub.config(&dataset, "exports@test-proj.iam.gserviceaccount.com", true);
    let export = BatchExport::new(
        format!("bq-replaced-{team}"),
        team,
        "to BigQuery",
        Destination::BigQuery(config),
        ExportInterval::Hour,
    );
    exports.put(&export).await.unwrap();
    let proxy = FaultProxy::with(&[Fault::delay("GET", "replaced.jsonl.zst", 4.0).after(1).times(1)]);
    let names = ["start-run", "plan-run", "bigquery-load", "bigquery-merge", "finish-run"];
    let functions = Functions::start(&names, &[("AWS_ENDPOINT_URL_S3", proxy.url.clone())]);

    let input = json!({"team_id": team, "export_id": export.id, "data_interval_start": interval.start,
                       "data_interval_end": interval.end});
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../statemachines/export.asl.json");
    let (name, port) = (export.id.clone(), functions.port());
    let execution = tokio::spawn(async move { execute_definition(root, &name, input, Some(port)).await });
    proxy.wait_for(0, 1).await;
    let rows = SyntheticEvents::new(12, team).events_between(interval.start, Duration::hours(1), 700);
    lake.add(team, interval.start, "replaced.jsonl.zst", rows).await;
    let expected = lake.expected(team, &interval, |_| true);

    let execution = execution.await.unwrap();
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    assert!(execution.history.contains("LakeChangedError"), "the load found the object changed");
    let run = runs.get(&export.id, interval.end).await.unwrap().unwrap();
    assert_eq!((run.status, run.plans, run.retries), (RunStatus::Completed, 2, 1), "planned twice, one retry");
    assert_eq!(run.records_completed, Some(expected.len() as u64));
    let got = emulator.query(&format!("SELECT uuid FROM `test-proj.{dataset}.events` ORDER BY uuid")).await;
    let mut uuids: Vec<&str> = expected.iter().map(|r| r.uuid.as_str()).collect();
    uuids.sort();
    let want: Vec<Vec<serde_json::Value>> = uuids.into_iter().map(|u| vec![json!(u)]).collect();
    assert_eq!(got, want, "the new object's rows, once each");
    assert_eq!(emulator.tables(&dataset).await, ["events"], "no stage table remains");
}

/// The private key never shows in an execution's history.
fn assert_no_key(stub: &TokenStub, history: &str) {
    let body = stub.key.lines().nth(1).unwrap();
    assert!(!history.contains(body), "the private key is in the execution history");
}

/// Secrets of any legitimate size: an RSA-8192 service-account key (over 6 KB of PEM, past the 4 KB KMS
/// `Encrypt` takes) is accepted by the API, stored sealed (no plaintext in the item), never returned, and
/// opened by the BigQuery steps, which sign with it and load the run into the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_service_account_key_round_trips_through_the_api_and_a_run() {
    let key = rsa_key_pem(8192);
    assert!(key.len() > 4096, "an RSA-8192 key's PEM is {} bytes", key.len());
    let stub = TokenStub::start_with(key.clone());
    let emulator = Emulator::new();
    let dataset = emulator.create_dataset().await;
    let team = Utc::now().timestamp_millis() % 1_000_000_000 * 100 + 96;
    let api = Api::new_team(team).await;
    let body = json!({"name": "RSA-8192 key", "interval": "hour", "destination": {"type": "BigQuery", "config": {
        "project_id": "test-proj", "dataset_id": dataset, "table_id": "events", "private_key": key,
        "private_key_id": "key-8192", "client_email": "exports@test-proj.iam.gserviceaccount.com",
        "token_uri": format!("{}/token", stub.url)}}});
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (_, got) = api.call("GET", &api.path(&format!("{id}/")), None).await;
    assert_no_key(&stub, &format!("{created}{got}"));
    assert!(got["destination"]["config"].get("private_key").is_none(), "{got}");

    let item = integration_tests::raw_export_item(team, &id).await;
    assert_no_key(&stub, &format!("{item:?}"));
    assert!(!format!("{item:?}").contains("key-8192"), "the key id is sealed too");

    let interval = hour();
    let s3 = integration_tests::s3(&integration_tests::local_stack().await);
    let mut lake = integration_tests::Lake::new(&s3, &std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap());
    let rows = SyntheticEvents::new(11, team).events_between(interval.start, Duration::hours(1), 300);
    lake.add(team, interval.start, "events.jsonl", rows).await;
    let expected = lake.expected(team, &interval, |_| true);
    let input = json!({"team_id": team, "export_id": id, "data_interval_start": interval.start,
                       "data_interval_end": interval.end});
    let execution = execute_machine("export", &id, input).await;
    assert_eq!(execution.status, "SUCCEEDED", "{:?} {:?}", execution.error, execution.retries);
    assert_no_key(&stub, &execution.history);
    let got = emulator.query(&format!("SELECT COUNT(DISTINCT uuid) FROM `test-proj.{dataset}.events`")).await;
    assert_eq!(got[0], [json!(expected.len().to_string())]);
}

/// SSRF at connect time: a token endpoint whose name resolves to a loopback address is refused when the
/// function connects (the API refuses such addresses written as literals; a name is only known by resolving it),
/// without retry and naming the host; with private endpoints allowed (the local stack's setting) it is reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_resolving_to_a_private_address_is_refused_when_connecting() {
    let stub = TokenStub::start();
    let port = stub.url.rsplit(':').next().unwrap().to_string();
    let mut config = stub.config("any", "exports@test-proj.iam.gserviceaccount.com", false);
    config.token_uri = format!("http://localhost:{port}/token");
    let strict = guarded_reqwest_client(EndpointPolicy { allow_private: false });
    let error = TokenSource::new(strict, &config).unwrap().token().await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("`localhost` resolves to 127.0.0.1"), "{error}");

    config.token_uri = format!("{}/token", stub.url);
    let allowed = guarded_reqwest_client(EndpointPolicy { allow_private: true });
    assert!(TokenSource::new(allowed, &config).unwrap().token().await.unwrap().starts_with("ya29."));
}
