//! The export engine end to end: lake objects in a moto S3 bucket, exported to another bucket, read back with
//! an independent reader and compared row for row with the source.

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use batch_exports::destinations::s3::config::Encryption;
use batch_exports::destinations::s3::export::file_spec;
use batch_exports::destinations::s3::{destination_client, destination_client_config, S3Target};
use batch_exports::engine::chunks::{plan_chunks, write_chunk};
use batch_exports::format::{Compression, FORMAT_COMPRESSIONS};
use batch_exports::model::Model;
use batch_exports::network::EndpointPolicy;
use batch_exports::sources::lake::writer::{ndjson_bytes, parquet_bytes};
use batch_exports::sources::lake::RowFilter;
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::{
    export_events, EngineSettings, EventRow, ExportError, ExportOutcome, Interval, S3DestinationConfig,
};
use chrono::{DateTime, Duration, Utc};
use integration_tests::{
    assert_files_hold, get_bytes, list_keys, local_stack, new_bucket, open_uploads, s3, ExportedRow, Lake,
};

const TEAM: i64 = 1;

fn hour(h: u32) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2024-05-01T{h:02}:00:00Z")).unwrap().to_utc()
}

/// Small parts, so that 100k events make multipart uploads with several parts in flight.
fn settings() -> EngineSettings {
    let mut s = EngineSettings::default();
    s.upload.part_size = 5 * 1024 * 1024;
    s.upload.max_parts_in_flight = 3;
    s
}

/// Reads every file a run wrote and checks it against the expected rows (see [`assert_files_hold`]), and each
/// file's record count.
async fn assert_exported(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    outcome: &ExportOutcome,
    config: &S3DestinationConfig,
    expected: &[ExportedRow],
) {
    let counts = assert_files_hold(client, bucket, &outcome.keys(), config, expected).await;
    for (file, count) in outcome.files.iter().zip(counts) {
        assert_eq!(count as u64, file.records, "{}", file.key);
    }
    assert_eq!(outcome.records, expected.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_and_compression_round_trips_100k_events() {
    let base = local_stack().await;
    let client = s3(&base);
    let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
    let mut gen = SyntheticEvents::new(11, TEAM);
    let first = gen.events_between(hour(10), Duration::hours(1), 100_000);
    let mut second = gen.events_between(hour(11), Duration::hours(1), 100_000);
    // The same event stored twice in one object, and events delivered again an hour later.
    second.extend(second[..200].to_vec());
    let redelivered: Vec<EventRow> = first
        .iter()
        .step_by(50)
        .enumerate()
        .map(|(i, r)| EventRow {
            inserted_at: (hour(11) + Duration::minutes(5)).timestamp_micros() + i as i64,
            ..r.clone()
        })
        .collect();
    lake.add(TEAM, hour(10), "part-0.jsonl.zst", first[..40_000].to_vec()).await;
    lake.add(TEAM, hour(10), "part-1.jsonl.gz", first[40_000..70_000].to_vec()).await;
    lake.add(TEAM, hour(10), "part-2.parquet", first[70_000..].to_vec()).await;
    lake.add(TEAM, hour(11), "part-0.jsonl", second[..50_000].to_vec()).await;
    lake.add(TEAM, hour(11), "part-1.jsonl.zst", second[50_000..].to_vec()).await;
    lake.add(TEAM, hour(11), "part-9-redelivery.jsonl.zst", redelivered).await;
    // Another team's events in the same hours are never read.
    let other = SyntheticEvents::new(12, 2).events_between(hour(10), Duration::hours(2), 2_000);
    lake.add(2, hour(10), "part-0.jsonl", other).await;

    let interval = Interval::new(hour(10) + Duration::minutes(30), hour(11) + Duration::minutes(30)).unwrap();
    let expected = lake.expected(TEAM, &interval, |_| true);
    assert!(expected.len() >= 100_000, "{} expected rows", expected.len());

    let destination = new_bucket(&client, "exports").await;
    for (format, compression) in FORMAT_COMPRESSIONS {
        let mut config = S3DestinationConfig::new(&destination);
        config.file_format = format;
        config.compression = compression;
        config.prefix = format!("{}-{}/{{table}}/", format.extension(), compression.map_or("none", |c| c.name()));
        config.max_file_size_mb = Some(40);
        let sink = S3Target::new(destination_client(&base, &config, integration_tests::settings().endpoints), &config);
        let outcome = export_events(&lake.store(), &sink, TEAM, interval, &config, &settings()).await.unwrap();
        assert_exported(&client, &destination, &outcome, &config, &expected).await;

        // The manifest lists every file, and the prefix holds nothing else.
        let manifest_key = outcome.manifest_key.clone().expect("a manifest when splitting");
        let manifest: serde_json::Value =
            serde_json::from_slice(&get_bytes(&client, &destination, &manifest_key).await).unwrap();
        assert_eq!(manifest, serde_json::json!({ "files": outcome.keys() }));
        let prefix = config.prefix.replace("{table}", "events");
        let mut stored: Vec<String> =
            list_keys(&client, &destination).await.into_iter().filter(|k| k.starts_with(&prefix)).collect();
        stored.sort();
        let mut written: Vec<String> = outcome.keys().iter().map(|k| k.to_string()).collect();
        written.push(manifest_key);
        written.sort();
        assert_eq!(stored, written);
    }
}

/// Fails every `UploadPart` request for one part number, as a destination refusing a part would.
#[derive(Debug)]
struct FailUploadPart(i32);

impl Intercept for FailUploadPart {
    fn name(&self) -> &'static str {
        "FailUploadPart"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let uri = context.request().uri();
        if uri.contains("uploadId=") && uri.contains(&format!("partNumber={}", self.0)) {
            return Err("injected failure of an UploadPart request".into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_aborts_the_upload() {
    let base = local_stack().await;
    let client = s3(&base);
    let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
    lake.add(
        TEAM,
        hour(10),
        "a.jsonl.zst",
        SyntheticEvents::new(3, TEAM).events_between(hour(10), Duration::hours(1), 30_000),
    )
    .await;
    let destination = new_bucket(&client, "exports").await;
    let config = S3DestinationConfig::new(&destination);
    let failing = aws_sdk_s3::Client::from_conf(
        destination_client_config(&base, &config, integration_tests::settings().endpoints)
            .interceptor(FailUploadPart(3))
            .build(),
    );
    let sink = S3Target::new(failing, &config);
    let interval = Interval::new(hour(10), hour(11)).unwrap();
    let error = export_events(&lake.store(), &sink, TEAM, interval, &config, &settings()).await.unwrap_err();
    assert!(error.to_string().contains("UploadPart"), "{error}");
    assert_eq!(open_uploads(&client, &destination).await, [], "an incomplete multipart upload was left behind");
    assert!(list_keys(&client, &destination).await.is_empty(), "a partial file was stored");
}

/// A lake object replaced between planning and reading (its ETag no longer matches: S3 answers 412) fails the
/// chunk with a retryable `LakeObjectChanged` naming the object, and leaves no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_object_replaced_after_planning_is_a_retryable_change() {
    let base = local_stack().await;
    let client = s3(&base);
    let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
    let mut gen = SyntheticEvents::new(6, TEAM);
    let key = lake
        .add_raw(
            TEAM,
            hour(10),
            "a.jsonl",
            ndjson_bytes(&gen.events_between(hour(10), Duration::minutes(30), 100), None).unwrap(),
        )
        .await;
    let interval = Interval::new(hour(10), hour(11)).unwrap();
    let filter = RowFilter::new(TEAM, interval, &[], &[]);
    let chunks = plan_chunks(&lake.store(), &filter, &settings(), None).await.unwrap();
    // Replaced after planning, as late data rewriting an object would.
    lake.add_raw(
        TEAM,
        hour(10),
        "a.jsonl",
        ndjson_bytes(&gen.events_between(hour(10), Duration::minutes(30), 50), None).unwrap(),
    )
    .await;

    let destination = new_bucket(&client, "exports").await;
    let config = S3DestinationConfig::new(&destination);
    let sink = S3Target::new(destination_client(&base, &config, integration_tests::settings().endpoints), &config);
    let spec = file_spec(&config, interval, Model::Events, None).unwrap();
    let error = write_chunk(&lake.store(), &sink, &filter, &chunks[0], &spec, &settings()).await.unwrap_err();
    match &error {
        ExportError::LakeObjectChanged { key: changed } => assert_eq!(changed, &key),
        other => panic!("expected a changed lake object, got {other}"),
    }
    assert!(error.is_retryable());
    assert!(list_keys(&client, &destination).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_row_after_uploaded_parts_fails_the_run_and_aborts_the_upload() {
    let base = local_stack().await;
    let client = s3(&base);
    let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
    let mut gen = SyntheticEvents::new(4, TEAM);
    lake.add(TEAM, hour(10), "a.jsonl", gen.events_between(hour(10), Duration::minutes(30), 20_000)).await;
    // Line 11 of the second object has an array for properties: valid JSON, so only the full read finds it,
    // after the first object's rows have gone out as parts.
    let mut text = String::from_utf8(
        ndjson_bytes(&gen.events_between(hour(10) + Duration::minutes(30), Duration::minutes(1), 10), None).unwrap(),
    )
    .unwrap();
    let bad = gen.event(hour(10) + Duration::minutes(40));
    let line = serde_json::to_string(&bad.as_lake_json()).unwrap();
    let start = line.find("\"properties\":").unwrap();
    let end = line.find(",\"person_properties\"").unwrap();
    text.push_str(&format!("{}\"properties\":[1,2]{}\n", &line[..start], &line[end..]));
    let key = lake.add_raw(TEAM, hour(10), "b.jsonl", text.into_bytes()).await;

    let destination = new_bucket(&client, "exports").await;
    let config = S3DestinationConfig::new(&destination);
    let sink = S3Target::new(destination_client(&base, &config, integration_tests::settings().endpoints), &config);
    let interval = Interval::new(hour(10), hour(11)).unwrap();
    let error = export_events(&lake.store(), &sink, TEAM, interval, &config, &settings()).await.unwrap_err();
    match &error {
        ExportError::MalformedRow { key: k, location, reason } => {
            assert_eq!(k, &key);
            assert_eq!(location.to_string(), "line 11");
            assert!(reason.contains("properties"), "{reason}");
        }
        other => panic!("expected a malformed row, got {other}"),
    }
    assert!(!error.is_retryable());
    assert_eq!(open_uploads(&client, &destination).await, []);
    assert!(list_keys(&client, &destination).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lake_rows_are_named_by_key_and_line_or_row() {
    let base = local_stack().await;
    let client = s3(&base);
    let destination = new_bucket(&client, "exports").await;
    let config = S3DestinationConfig::new(&destination);
    let sink = S3Target::new(destination_client(&base, &config, integration_tests::settings().endpoints), &config);
    let interval = Interval::new(hour(10), hour(11)).unwrap();
    let mut gen = SyntheticEvents::new(5, TEAM);

    let cases: Vec<(&str, Box<dyn Fn(&mut SyntheticEvents) -> Vec<u8>>, &str, &str)> = vec![
        (
            "bad.jsonl",
            Box::new(|g: &mut SyntheticEvents| {
                let mut b = ndjson_bytes(&g.events_between(hour(10), Duration::minutes(1), 3), None).unwrap();
                b.extend_from_slice(b"{\"uuid\": \"not closed\n");
                b
            }),
            "line 4",
            "EOF",
        ),
        (
            "no-uuid.jsonl",
            Box::new(|g: &mut SyntheticEvents| {
                let mut b = ndjson_bytes(&g.events_between(hour(10), Duration::minutes(1), 1), None).unwrap();
                b.extend_from_slice(b"\n{\"team_id\":1,\"event\":\"x\",\"_inserted_at\":\"2024-05-01T10:00:00Z\"}\n");
                b
            }),
            "line 3",
            "missing field `uuid`",
        ),
        (
            "misplaced.jsonl",
            Box::new(|g: &mut SyntheticEvents| ndjson_bytes(&[g.event(hour(10)), g.event(hour(12))], None).unwrap()),
            "line 2",
            "outside its partition hour",
        ),
        (
            "bad-time.jsonl.gz",
            Box::new(|g: &mut SyntheticEvents| {
                let mut e = g.event(hour(10));
                e.uuid = "nope".into();
                ndjson_bytes(&[g.event(hour(10)), e], Some(Compression::Gzip)).unwrap()
            }),
            "line 2",
            "not a UUID",
        ),
        (
            "null-event.parquet",
            Box::new(|g: &mut SyntheticEvents| {
                let rows = g.events_between(hour(10), Duration::minutes(1), 5);
                let mut b = parquet_bytes(&rows).unwrap();
                // Re-encode with one uuid that is not a UUID, at row 3.
                let mut rows2 = rows.clone();
                rows2[3].uuid = "row-three".into();
                b.clear();
                b.extend(parquet_bytes(&rows2).unwrap());
                b
            }),
            "row 3",
            "not a UUID",
        ),
    ];
    for (name, body, location, reason) in cases {
        let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
        let key = lake.add_raw(TEAM, hour(10), name, body(&mut gen)).await;
        let error = export_events(&lake.store(), &sink, TEAM, interval, &config, &settings()).await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&key) && text.contains(location) && text.contains(reason), "{name}: {text}");
        assert!(!error.is_retryable(), "{name}");
    }
    assert!(list_keys(&client, &destination).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_not_retryable() {
    let base = local_stack().await;
    let client = s3(&base);
    let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
    lake.add(
        TEAM,
        hour(10),
        "a.jsonl",
        SyntheticEvents::new(6, TEAM).events_between(hour(10), Duration::hours(1), 100),
    )
    .await;
    let config = S3DestinationConfig::new("no-such-bucket-anywhere");
    let sink = S3Target::new(destination_client(&base, &config, integration_tests::settings().endpoints), &config);
    let interval = Interval::new(hour(10), hour(11)).unwrap();
    let error = export_events(&lake.store(), &sink, TEAM, interval, &config, &settings()).await.unwrap_err();
    assert!(matches!(&error, ExportError::BucketNotFound { bucket } if bucket == "no-such-bucket-anywhere"), "{error}");
    assert!(!error.is_retryable());
    assert_eq!(error.error_type(), "NonRetryableError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_custom_endpoint_is_not_retryable() {
    let base = local_stack().await;
    let client = s3(&base);
    let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
    lake.add(
        TEAM,
        hour(10),
        "a.jsonl",
        SyntheticEvents::new(6, TEAM).events_between(hour(10), Duration::hours(1), 100),
    )
    .await;
    let mut config = S3DestinationConfig::new("bucket");
    config.endpoint_url = Some("http://127.0.0.1:9".into());
    let sink = S3Target::new(destination_client(&base, &config, integration_tests::settings().endpoints), &config);
    let interval = Interval::new(hour(10), hour(11)).unwrap();
    let error = export_events(&lake.store(), &sink, TEAM, interval, &config, &settings()).await.unwrap_err();
    assert!(matches!(error, ExportError::EndpointUnreachable { .. }), "{error}");
    assert!(!error.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_running_an_interval_writes_the_same_keys_and_content() {
    let base = local_stack().await;
    let client = s3(&base);
    let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
    lake.add(
        TEAM,
        hour(10),
        "a.jsonl.zst",
        SyntheticEvents::new(7, TEAM).events_between(hour(10), Duration::hours(1), 20_000),
    )
    .await;
    let destination = new_bucket(&client, "exports").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.compression = Some(Compression::Gzip);
    config.max_file_size_mb = Some(1);
    config.prefix = "{year}-{month}-{day}_{table}/".into();
    let sink = S3Target::new(destination_client(&base, &config, integration_tests::settings().endpoints), &config);
    let interval = Interval::new(hour(10), hour(11)).unwrap();
    let mut contents = Vec::new();
    for _ in 0..2 {
        let outcome = export_events(&lake.store(), &sink, TEAM, interval, &config, &settings()).await.unwrap();
        assert!(outcome.files.len() >= 2, "{} files", outcome.files.len());
        assert!(outcome
            .keys()
            .iter()
            .all(|k| k.starts_with("2024-05-01_events/2024-05-01T10:00:00+00:00-2024-05-01T11:00:00+00:00-")));
        let mut run = Vec::new();
        for key in outcome.keys().into_iter().chain(outcome.manifest_key.as_deref()) {
            run.push((key.to_string(), get_bytes(&client, &destination, key).await));
        }
        contents.push((run, list_keys(&client, &destination).await));
    }
    assert_eq!(contents[0], contents[1], "a re-run must overwrite the same keys with the same bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_filters_and_encryption() {
    let base = local_stack().await;
    let client = s3(&base);
    let mut lake = Lake::new(&client, &new_bucket(&client, "lake").await);
    lake.add(
        TEAM,
        hour(10),
        "a.jsonl",
        SyntheticEvents::new(8, TEAM).events_between(hour(10), Duration::hours(1), 5_000),
    )
    .await;
    let destination = new_bucket(&client, "exports").await;
    let interval = Interval::new(hour(10), hour(11)).unwrap();
    let cases: [(&[&str], &[&str], Option<Encryption>, Option<&str>); 3] = [
        (&["$pageview", "purchase"], &[], Some(Encryption::Aes256), None),
        (
            &[],
            &["$pageview", "$autocapture"],
            Some(Encryption::AwsKms),
            Some("arn:aws:kms:us-east-1:123456789012:key/test"),
        ),
        (&["$pageview", "purchase"], &["purchase"], None, None),
    ];
    for (i, (include, exclude, encryption, kms)) in cases.into_iter().enumerate() {
        let mut config = S3DestinationConfig::new(&destination);
        config.prefix = format!("case-{i}/");
        config.include_events = include.iter().map(|s| s.to_string()).collect();
        config.exclude_events = exclude.iter().map(|s| s.to_string()).collect();
        config.encryption = encryption;
        config.kms_key_id = kms.map(str::to_string);
        let sink = S3Target::new(destination_client(&base, &config, integration_tests::settings().endpoints), &config);
        let outcome = export_events(&lake.store(), &sink, TEAM, interval, &config, &settings()).await.unwrap();
        let expected =
            lake.expected(TEAM, &interval, |e| (include.is_empty() || include.contains(&e)) && !exclude.contains(&e));
        assert!(!expected.is_empty() && expected.len() < 5_000);
        assert_exported(&client, &destination, &outcome, &config, &expected).await;
        let head = client.head_object().bucket(&destination).key(&outcome.files[0].key).send().await.unwrap();
        assert_eq!(
            head.server_side_encryption().map(|s| s.as_str()),
            encryption.map(|e| match e {
                Encryption::Aes256 => "AES256",
                Encryption::AwsKms => "aws:kms",
            }),
            "case {i}"
        );
        assert_eq!(head.ssekms_key_id(), kms, "case {i}");
    }
}

/// Records the URI and Authorization header of the first request, then stops it (nothing is sent).
#[derive(Debug, Default)]
struct CaptureRequest(std::sync::Mutex<Option<(String, String)>>);

impl Intercept for CaptureRequest {
    fn name(&self) -> &'static str {
        "CaptureRequest"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let auth = request.headers().get("authorization").unwrap_or_default().to_string();
        self.0.lock().unwrap().get_or_insert((request.uri().to_string(), auth));
        Err("captured".into())
    }
}

#[tokio::test]
async fn custom_endpoints_addressing_styles_and_static_credentials() {
    let base = local_stack().await;
    for (virtual_style, expected_uri) in [
        (false, "http://s3.example.test:9000/my-bucket/2024-05-01T10:00:00+00:00-2024-05-01T11:00:00+00:00.jsonl"),
        (true, "http://my-bucket.s3.example.test:9000/2024-05-01T10:00:00+00:00-2024-05-01T11:00:00+00:00.jsonl"),
    ] {
        let config = S3DestinationConfig::from_json(&format!(
            r#"{{"bucket_name":"my-bucket","region":"eu-central-1","endpoint_url":"http://s3.example.test:9000",
                "use_virtual_style_addressing":{virtual_style},"aws_access_key_id":"AKIDFROMCONFIG","aws_secret_access_key":"secret"}}"#
        ))
        .unwrap();
        let capture = std::sync::Arc::new(CaptureRequest::default());
        let client = aws_sdk_s3::Client::from_conf(
            destination_client_config(&base, &config, integration_tests::settings().endpoints)
                .interceptor(SharedCapture(capture.clone()))
                .build(),
        );
        let target = S3Target::new(client, &config);
        let key = batch_exports::destinations::s3::keys::data_file_key(
            "",
            &Interval::new(hour(10), hour(11)).unwrap(),
            None,
            None,
            config.file_format,
            None,
        );
        assert!(target.put(&key, bytes::Bytes::from_static(b"{}")).await.is_err());
        let (uri, auth) = capture.0.lock().unwrap().clone().expect("a request was made");
        let without_query = uri.split('?').next().unwrap_or_default();
        assert_eq!(without_query.replace("%3A", ":").replace("%2B", "+"), expected_uri, "{uri}");
        assert!(auth.contains("Credential=AKIDFROMCONFIG/") && auth.contains("/eu-central-1/s3/"), "{auth}");
    }
}

/// SSRF: with private endpoints not allowed, a name that resolves to 127.0.0.1 (here `localhost`, where the
/// local stack's S3 listens) is refused when the client connects, and the upload fails naming the endpoint;
/// with them allowed (the local stack's setting), the same endpoint works.
#[tokio::test]
async fn endpoints_resolving_to_private_addresses_are_refused() {
    let base = local_stack().await;
    let bucket = new_bucket(&s3(&base), "ssrf").await;
    let port = std::env::var("AWS_ENDPOINT_URL").unwrap().rsplit(':').next().unwrap().trim_end_matches('/').to_string();
    let config = S3DestinationConfig::from_json(&format!(
        r#"{{"bucket_name":"{bucket}","endpoint_url":"http://localhost:{port}","aws_access_key_id":"testing","aws_secret_access_key":"testing"}}"#
    ))
    .unwrap();
    let strict = EndpointPolicy { allow_private: false };
    let client = aws_sdk_s3::Client::from_conf(destination_client_config(&base, &config, strict).build());
    let error = S3Target::new(client, &config).put("probe.json", bytes::Bytes::from_static(b"{}")).await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("localhost"), "{error}");
    assert!(list_keys(&s3(&base), &bucket).await.is_empty(), "nothing was written");
    // The literal is refused when the config is validated, whatever the setting for names.
    assert!(strict.check_url("endpoint_url", "http://127.0.0.1:9000", false).is_err());

    let allowed = EndpointPolicy { allow_private: true };
    let client = aws_sdk_s3::Client::from_conf(destination_client_config(&base, &config, allowed).build());
    S3Target::new(client, &config).put("probe.json", bytes::Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(list_keys(&s3(&base), &bucket).await, ["probe.json"]);
}

#[derive(Debug)]
struct SharedCapture(std::sync::Arc<CaptureRequest>);

impl Intercept for SharedCapture {
    fn name(&self) -> &'static str {
        "SharedCapture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.read_before_transmit(context, components, cfg)
    }
}
