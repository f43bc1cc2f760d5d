//! The catalogue of bad requests: what a user is likely to get wrong on every route of the management API, sent
//! over real HTTP to the `api` function. Each case is a 4xx whose body names the problem (`type`, and `attr` for
//! a validation error); none answers 5xx, and the function still serves afterwards. The README states the
//! catalogue's size.

use batch_exports::runs::{Run, RunStatus};
use batch_exports::store::{Begin, RunStore};
use batch_exports::Interval;
use chrono::{Duration, DurationRound, Utc};
use integration_tests::{local_stack, rsa_key_pem, settings, Api};
use serde_json::{json, Value};

use crate::api::unique_team;

/// One bad request and the answer it must get.
struct Case {
    rule: String,
    method: &'static str,
    path: String,
    authorization: Auth,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    kind: &'static str,
    attr: Option<String>,
}

enum Auth {
    Own,
    None,
    Header(String),
}

impl Case {
    fn new(rule: impl Into<String>, method: &'static str, path: String, body: Vec<u8>) -> Case {
        Case {
            rule: rule.into(),
            method,
            path,
            authorization: Auth::Own,
            content_type: Some("application/json"),
            body,
            status: 400,
            kind: "validation_error",
            attr: None,
        }
    }

    /// A 400 naming `attr`.
    fn invalid(mut self, attr: &str) -> Case {
        self.attr = Some(attr.to_string());
        self
    }

    /// Another 4xx, of the given error type (no `attr`).
    fn answers(mut self, status: u16, kind: &'static str) -> Case {
        self.status = status;
        self.kind = kind;
        self
    }

    fn content_type(mut self, content_type: Option<&'static str>) -> Case {
        self.content_type = content_type;
        self
    }

    fn auth(mut self, authorization: Auth) -> Case {
        self.authorization = authorization;
        self
    }
}

fn json_bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// `base` with the value at a dotted `path` set (or removed, for `None`).
fn set(base: &Value, path: &str, value: Option<Value>) -> Value {
    let mut body = base.clone();
    let keys: Vec<&str> = path.split('.').collect();
    let mut target = &mut body;
    for key in &keys[..keys.len() - 1] {
        target = &mut target[*key];
    }
    let last = keys[keys.len() - 1];
    match value {
        Some(v) => target[last] = v,
        None => {
            target.as_object_mut().unwrap().remove(last);
        }
    }
    body
}

fn s3_body() -> Value {
    json!({"name": "catalogue", "interval": "hour", "destination": {"type": "S3", "config": {
        "bucket_name": "catalogue-exports", "region": "us-east-1", "prefix": "events/{year}/",
        "aws_access_key_id": "AKIACATALOGUE0000001", "aws_secret_access_key": "catalogue-secret"}}})
}

fn bigquery_body(key: &str) -> Value {
    json!({"name": "catalogue bq", "interval": "hour", "destination": {"type": "BigQuery", "config": {
        "project_id": "my-project", "dataset_id": "BatchExports", "table_id": "events", "private_key": key,
        "private_key_id": "kid-1", "client_email": "exports@my-project.iam.gserviceaccount.com"}}})
}

fn days(n: i64) -> String {
    (Utc::now() + Duration::days(n)).to_rfc3339()
}

/// Create cases: `(rule, body, attr)` for bodies of valid JSON.
fn create_cases(s3: &Value, bq: &Value) -> Vec<(String, Value, &'static str)> {
    let c = |field: &str, v: Value| set(s3, &format!("destination.config.{field}"), Some(v));
    let b = |field: &str, v: Option<Value>| set(bq, &format!("destination.config.{field}"), v);
    let top = |field: &str, v: Option<Value>| set(s3, field, v);
    let garbage_pem = "-----BEGIN PRIVATE KEY-----\nMIIBogIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END PRIVATE KEY-----\n";
    let naive = (Utc::now() + Duration::days(7)).naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string();
    let names = |n: usize| Value::from((0..n).map(|i| format!("event-{i}")).collect::<Vec<_>>());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("body: a string", json!("export"), "body"),
        ("body: null", Value::Null, "body"),
        ("body: a number", json!(42), "body"),
        ("body: an array of the object", json!([s3]), "body"),
        ("body: an empty array", json!([]), "body"),
        ("name: missing", top("name", None), "name"),
        ("name: empty", top("name", Some(json!(""))), "name"),
        ("name: blank", top("name", Some(json!("   "))), "name"),
        ("name: 256 characters", top("name", Some(json!("n".repeat(256)))), "name"),
        ("name: a NUL", top("name", Some(json!("bad\u{0}name"))), "name"),
        ("name: a number", top("name", Some(json!(42))), "name"),
        ("name: null", top("name", Some(Value::Null)), "name"),
        ("name: an object", top("name", Some(json!({"en": "x"}))), "name"),
        ("destination: missing", top("destination", None), "destination"),
        ("destination: an array", top("destination", Some(json!(["S3", {"bucket_name": "b-b-b"}]))), "destination"),
        ("destination: a string", top("destination", Some(json!("S3"))), "destination"),
        ("destination.type: missing", set(s3, "destination.type", None), "destination.type"),
        ("destination.type: unknown", set(s3, "destination.type", Some(json!("FTP"))), "destination.type"),
        ("destination.type: lowercase", set(s3, "destination.type", Some(json!("s3"))), "destination.type"),
        ("destination.config: missing", set(s3, "destination.config", None), "destination.config"),
        ("destination.config: an array", set(s3, "destination.config", Some(json!([]))), "destination.config"),
        ("destination: unknown key", set(s3, "destination.kind", Some(json!("x"))), "destination.kind"),
        ("interval: missing", top("interval", None), "interval"),
        ("interval: unknown", top("interval", Some(json!("month"))), "interval"),
        ("interval: a map", top("interval", Some(json!({"hour": null}))), "interval"),
        ("interval: seconds", top("interval", Some(json!(3600))), "interval"),
        ("interval: capitalised", top("interval", Some(json!("Hour"))), "interval"),
        ("model: unknown", top("model", Some(json!("sessions"))), "model"),
        ("model: a map", top("model", Some(json!({"events": null}))), "model"),
        ("timezone: unknown", top("timezone", Some(json!("Mars/Olympus"))), "timezone"),
        ("timezone: an offset number", top("timezone", Some(json!(1))), "timezone"),
        ("start_at: no time zone", top("start_at", Some(json!(naive))), "start_at"),
        ("start_at: words", top("start_at", Some(json!("yesterday"))), "start_at"),
        ("start_at: epoch seconds", top("start_at", Some(json!(1_700_000_000))), "start_at"),
        ("end_at: in the past", top("end_at", Some(json!(days(-1)))), "end_at"),
        ("end_at: words", top("end_at", Some(json!("next tuesday"))), "end_at"),
        (
            "end_at: in the past, start_at too",
            set(&top("start_at", Some(json!(days(-7)))), "end_at", Some(json!(days(-1)))),
            "end_at",
        ),
        (
            "end_at: before start_at",
            set(&top("start_at", Some(json!(days(3)))), "end_at", Some(json!(days(2)))),
            "start_at",
        ),
        ("paused: a string", top("paused", Some(json!("yes"))), "paused"),
        ("unknown top-level key", top("colour", Some(json!("blue"))), "colour"),
        ("id: set by the client", top("id", Some(json!("my-id"))), "id"),
        ("bucket_name: missing", set(s3, "destination.config.bucket_name", None), "destination.config.bucket_name"),
        (
            "bucket_name: spaces and capitals",
            c("bucket_name", json!("No Such Bucket")),
            "destination.config.bucket_name",
        ),
        ("bucket_name: too short", c("bucket_name", json!("ab")), "destination.config.bucket_name"),
        ("bucket_name: too long", c("bucket_name", json!("b".repeat(64))), "destination.config.bucket_name"),
        ("bucket_name: an IP address", c("bucket_name", json!("192.168.1.1")), "destination.config.bucket_name"),
        ("bucket_name: two periods", c("bucket_name", json!("my..bucket")), "destination.config.bucket_name"),
        ("bucket_name: xn-- prefix", c("bucket_name", json!("xn--bucket")), "destination.config.bucket_name"),
        ("bucket_name: -s3alias suffix", c("bucket_name", json!("bucket-s3alias")), "destination.config.bucket_name"),
        ("bucket_name: starts with -", c("bucket_name", json!("-bucket")), "destination.config.bucket_name"),
        ("bucket_name: _ on AWS", c("bucket_name", json!("under_score")), "destination.config.bucket_name"),
        ("bucket_name: s3:// URL", c("bucket_name", json!("s3://my-bucket")), "destination.config.bucket_name"),
        ("bucket_name: a number", c("bucket_name", json!(42)), "destination.config.bucket_name"),
        ("region: a word", c("region", json!("Europe")), "destination.config.region"),
        ("region: empty", c("region", json!("")), "destination.config.region"),
        ("region: a display name", c("region", json!("US East (N. Virginia)")), "destination.config.region"),
        ("prefix: unknown variable", c("prefix", json!("{year}/{team}/")), "destination.config.prefix"),
        ("prefix: .. segment", c("prefix", json!("a/../b/")), "destination.config.prefix"),
        ("prefix: . segment", c("prefix", json!("./events/")), "destination.config.prefix"),
        ("prefix: past S3's key limit", c("prefix", json!("p/".repeat(500))), "destination.config.prefix"),
        (
            "prefix: renders past the key limit",
            c("prefix", json!("{data_interval_start}/".repeat(60))),
            "destination.config.prefix",
        ),
        ("prefix: unclosed brace", c("prefix", json!("events/{year")), "destination.config.prefix"),
        ("file_format: unknown", c("file_format", json!("CSV")), "destination.config.file_format"),
        ("file_format: lowercase", c("file_format", json!("parquet")), "destination.config.file_format"),
        ("compression: unknown", c("compression", json!("zip")), "destination.config.compression"),
        (
            "compression: JSONLines with lz4",
            set(&c("file_format", json!("JSONLines")), "destination.config.compression", Some(json!("lz4"))),
            "destination.config.compression",
        ),
        (
            "compression: JSONLines with snappy",
            set(&c("file_format", json!("JSONLines")), "destination.config.compression", Some(json!("snappy"))),
            "destination.config.compression",
        ),
        ("encryption: unknown", c("encryption", json!("rot13")), "destination.config.encryption"),
        ("encryption: aws:kms without a key", c("encryption", json!("aws:kms")), "destination.config.kms_key_id"),
        (
            "kms_key_id: with AES256",
            set(&c("encryption", json!("AES256")), "destination.config.kms_key_id", Some(json!("k"))),
            "destination.config.kms_key_id",
        ),
        (
            "aws_access_key_id: without the secret",
            set(s3, "destination.config.aws_secret_access_key", None),
            "destination.config.aws_secret_access_key",
        ),
        (
            "aws_secret_access_key: without the key id",
            set(s3, "destination.config.aws_access_key_id", None),
            "destination.config.aws_access_key_id",
        ),
        (
            "aws_secret_access_key: empty",
            c("aws_secret_access_key", json!("")),
            "destination.config.aws_secret_access_key",
        ),
        ("aws_access_key_id: empty", c("aws_access_key_id", json!("")), "destination.config.aws_access_key_id"),
        ("aws_access_key_id: blank", c("aws_access_key_id", json!("  ")), "destination.config.aws_access_key_id"),
        (
            "aws_secret_access_key: past the secret limit",
            c("aws_secret_access_key", json!("s".repeat(16 * 1024 + 1))),
            "destination.config.aws_secret_access_key",
        ),
        (
            "aws_secret_access_key: a number",
            c("aws_secret_access_key", json!(12345)),
            "destination.config.aws_secret_access_key",
        ),
        ("endpoint_url: ftp", c("endpoint_url", json!("ftp://host")), "destination.config.endpoint_url"),
        ("endpoint_url: a space", c("endpoint_url", json!("http://exa mple.com/")), "destination.config.endpoint_url"),
        (
            "endpoint_url: no scheme",
            c("endpoint_url", json!("minio.example.com:9000")),
            "destination.config.endpoint_url",
        ),
        (
            "endpoint_url: credentials in it",
            c("endpoint_url", json!("https://u:p@minio.example.com")),
            "destination.config.endpoint_url",
        ),
        (
            "endpoint_url: metadata",
            c("endpoint_url", json!("http://169.254.169.254/latest/meta-data/")),
            "destination.config.endpoint_url",
        ),
        (
            "endpoint_url: mapped metadata",
            c("endpoint_url", json!("http://[::ffff:169.254.169.254]/")),
            "destination.config.endpoint_url",
        ),
        (
            "endpoint_url: ECS metadata",
            c("endpoint_url", json!("http://169.254.170.2/v2/credentials")),
            "destination.config.endpoint_url",
        ),
        ("max_file_size_mb: 0", c("max_file_size_mb", json!(0)), "destination.config.max_file_size_mb"),
        ("max_file_size_mb: u64::MAX", c("max_file_size_mb", json!(u64::MAX)), "destination.config.max_file_size_mb"),
        ("max_file_size_mb: 2^44", c("max_file_size_mb", json!(1u64 << 44)), "destination.config.max_file_size_mb"),
        ("max_file_size_mb: negative", c("max_file_size_mb", json!(-1)), "destination.config.max_file_size_mb"),
        ("max_file_size_mb: a string", c("max_file_size_mb", json!("big")), "destination.config.max_file_size_mb"),
        ("max_file_size_mb: a fraction", c("max_file_size_mb", json!(1.5)), "destination.config.max_file_size_mb"),
        ("include_events: a string", c("include_events", json!("$pageview")), "destination.config.include_events"),
        (
            "include_events: objects",
            c("include_events", json!([{"event": "x"}])),
            "destination.config.include_events[0]",
        ),
        ("include_events: numbers", c("include_events", json!([1, 2])), "destination.config.include_events[0]"),
        ("include_events: too many", c("include_events", names(1001)), "destination.config.include_events"),
        (
            "exclude_events: a long name",
            c("exclude_events", json!(["e".repeat(256)])),
            "destination.config.exclude_events",
        ),
        (
            "use_virtual_style_addressing: a string",
            c("use_virtual_style_addressing", json!("yes")),
            "destination.config.use_virtual_style_addressing",
        ),
        ("unknown config key", c("bucket", json!("x")), "destination.config.bucket"),
        ("BigQuery: project_id missing", b("project_id", None), "destination.config.project_id"),
        (
            "BigQuery: project_id with spaces",
            b("project_id", Some(json!("my project"))),
            "destination.config.project_id",
        ),
        (
            "BigQuery: dataset_id with a dash",
            b("dataset_id", Some(json!("my-dataset"))),
            "destination.config.dataset_id",
        ),
        (
            "BigQuery: table_id qualified",
            b("table_id", Some(json!("my-project:BatchExports.events"))),
            "destination.config.table_id",
        ),
        ("BigQuery: private_key missing", b("private_key", None), "destination.config.private_key"),
        ("BigQuery: private_key not PEM", b("private_key", Some(json!("abc"))), "destination.config.private_key"),
        (
            "BigQuery: private_key a PEM wrapper",
            b("private_key", Some(json!(garbage_pem))),
            "destination.config.private_key",
        ),
        ("BigQuery: private_key_id empty", b("private_key_id", Some(json!(""))), "destination.config.private_key_id"),
        ("BigQuery: client_email missing", b("client_email", None), "destination.config.client_email"),
        (
            "BigQuery: client_email not an e-mail",
            b("client_email", Some(json!("exports"))),
            "destination.config.client_email",
        ),
        (
            "BigQuery: token_uri not http(s)",
            b("token_uri", Some(json!("ftp://oauth2.example.com/token"))),
            "destination.config.token_uri",
        ),
        (
            "BigQuery: token_uri at the metadata",
            b("token_uri", Some(json!("http://169.254.169.254/token"))),
            "destination.config.token_uri",
        ),
        (
            "BigQuery: use_json_type a string",
            b("use_json_type", Some(json!("yes"))),
            "destination.config.use_json_type",
        ),
        ("BigQuery: an S3 key in its config", b("bucket_name", Some(json!("b-b-b"))), "destination.config.bucket_name"),
    ];
    cases.into_iter().map(|(rule, body, attr)| (format!("create: {rule}"), body, attr)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_is_a_4xx_that_names_the_problem() {
    let api = Api::new_team(unique_team()).await;
    let other = Api::new_team(unique_team()).await;
    let key = rsa_key_pem(2048);
    let s3 = s3_body();
    let bq = bigquery_body(&key);

    // What the routes act on: an S3 export, a BigQuery export, an ended run and a backfill.
    let (status, created) = api.call("POST", &api.path(""), Some(s3.clone())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, created) = api.call("POST", &api.path(""), Some(bq.clone())).await;
    assert_eq!(status, 201, "{created}");
    let bq_id = created["id"].as_str().unwrap().to_string();
    let runs = RunStore::new(aws_sdk_dynamodb::Client::new(&local_stack().await), settings().tables.runs);
    let end = Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(1);
    let run = Run::new(&id, api.team, Interval::new(end - Duration::hours(1), end).unwrap(), None, None, Utc::now());
    let Begin::Started(run) = runs.begin(run, Duration::hours(3), Utc::now()).await.unwrap() else { panic!("a run") };
    runs.fail(&run.reference(), RunStatus::Failed, "bucket `x` does not exist", Utc::now()).await.unwrap();
    let run_id = run.run_id.clone();

    let mut cases: Vec<Case> = Vec::new();
    let post = |rule: &str, body: Vec<u8>| Case::new(rule, "POST", api.path(""), body);
    let valid = json_bytes(&s3);
    let valid_text = s3.to_string();

    // Bodies that are not one JSON object.
    cases.push(post("create: empty body", Vec::new()).invalid("body"));
    cases.push(post("create: blank body", b"  \n".to_vec()).invalid("body"));
    cases.push(post("create: truncated JSON", valid[..valid.len() - 1].to_vec()).invalid("body"));
    cases.push(post("create: trailing garbage", format!("{valid_text} x").into_bytes()).invalid("body"));
    cases.push(post("create: two objects", format!("{valid_text}{valid_text}").into_bytes()).invalid("body"));
    cases.push(post("create: single quotes", valid_text.replace('"', "'").into_bytes()).invalid("body"));
    let trailing_comma = format!("{},}}", &valid_text[..valid_text.len() - 1]);
    cases.push(post("create: a trailing comma", trailing_comma.into_bytes()).invalid("body"));
    cases.push(post("create: 10k-deep array", "[".repeat(10_000).into_bytes()).invalid("body"));
    cases.push(post("create: 10k-deep object", r#"{"a":"#.repeat(10_000).into_bytes()).invalid("body"));
    // (A JSON body that is not UTF-8 never reaches the function here: cargo lambda's URL emulation answers it with
    // its own 500. The parser's answer, a 400 naming `body`, is a unit test of `api::bodies`.)
    let duplicate = valid_text.replacen(r#""name":"catalogue""#, r#""name":"a","name":"b""#, 1);
    assert!(duplicate.contains(r#""name":"a""#), "{duplicate}");
    cases.push(post("create: name twice", duplicate.into_bytes()).invalid("name"));
    let duplicate = valid_text.replacen(r#""region":"us-east-1""#, r#""region":"us-east-1","region":"eu-west-1""#, 1);
    cases.push(post("create: region twice", duplicate.into_bytes()).invalid("destination.config.region"));
    let big = set(&s3, "name", Some(json!("n".repeat(450 * 1024))));
    cases.push(post("create: a 450 KB name", json_bytes(&big)).invalid("body"));
    let padded = set(&s3, "destination.config.exclude_events", Some(Value::from(vec!["e".repeat(200); 400])));
    cases.push(post("create: a body past 64 KB", json_bytes(&padded)).invalid("body"));
    cases.push(post("create: text/plain", valid.clone()).content_type(Some("text/plain")).invalid("Content-Type"));
    cases.push(
        post("create: a form", valid.clone())
            .content_type(Some("application/x-www-form-urlencoded"))
            .invalid("Content-Type"),
    );
    cases.push(post("create: XML", valid.clone()).content_type(Some("application/xml")).invalid("Content-Type"));
    for (rule, body, attr) in create_cases(&s3, &bq) {
        cases.push(post(&rule, json_bytes(&body)).invalid(attr));
    }

    // Patches.
    let export_path = |id: &str, rest: &str| api.path(&format!("{id}/{rest}"));
    let patch = |rule: &str, id: &str, body: Value| Case::new(rule, "PATCH", export_path(id, ""), json_bytes(&body));
    cases.push(patch("patch: paused", &id, json!({"paused": true})).invalid("paused"));
    cases.push(patch("patch: unknown key", &id, json!({"paused_by": "me"})).invalid("paused_by"));
    cases.push(patch("patch: interval", &id, json!({"interval": "fortnight"})).invalid("interval"));
    cases.push(patch("patch: name null", &id, json!({"name": null})).invalid("name"));
    cases.push(patch("patch: name empty", &id, json!({"name": ""})).invalid("name"));
    cases.push(patch("patch: end_at in the past", &id, json!({"end_at": days(-1)})).invalid("end_at"));
    cases.push(
        patch(
            "patch: compression pair",
            &id,
            json!({"destination": {"config": {"file_format": "JSONLines", "compression": "snappy"}}}),
        )
        .invalid("destination.config.compression"),
    );
    cases.push(
        patch("patch: bucket name", &id, json!({"destination": {"config": {"bucket_name": "192.168.1.1"}}}))
            .invalid("destination.config.bucket_name"),
    );
    cases.push(
        patch("patch: one S3 key removed", &id, json!({"destination": {"config": {"aws_access_key_id": null}}}))
            .invalid("destination.config.aws_access_key_id"),
    );
    cases.push(
        patch(
            "patch: max_file_size_mb overflow",
            &id,
            json!({"destination": {"config": {"max_file_size_mb": u64::MAX}}}),
        )
        .invalid("destination.config.max_file_size_mb"),
    );
    cases.push(patch("patch: destination as an array", &id, json!({"destination": ["S3", {}]})).invalid("destination"));
    cases.push(
        patch("patch: BigQuery key not PEM", &bq_id, json!({"destination": {"config": {"private_key": "abc"}}}))
            .invalid("destination.config.private_key"),
    );
    cases.push(
        patch("patch: BigQuery key removed", &bq_id, json!({"destination": {"config": {"private_key": null}}}))
            .invalid("destination.config.private_key"),
    );
    cases.push(
        Case::new("patch: trailing garbage", "PATCH", export_path(&id, ""), br#"{"name": "x"} }"#.to_vec())
            .invalid("body"),
    );
    cases.push(Case::new("patch: an array", "PATCH", export_path(&id, ""), b"[]".to_vec()).invalid("body"));
    cases.push(Case::new("patch: empty body", "PATCH", export_path(&id, ""), Vec::new()).invalid("body"));
    cases.push(
        Case::new("patch: text/plain", "PATCH", export_path(&id, ""), br#"{"name": "x"}"#.to_vec())
            .content_type(Some("text/plain"))
            .invalid("Content-Type"),
    );
    let missing = "0190a2b4-0000-7000-8000-000000000000";
    cases.push(patch("patch: unknown export", missing, json!({"name": "x"})).answers(404, "invalid_request"));
    cases.push(
        patch("patch: a 2,000-character id", &"x".repeat(2000), json!({"name": "x"})).answers(404, "invalid_request"),
    );

    // Pause and unpause.
    let post_to =
        |rule: &str, id: &str, rest: &str, body: &[u8]| Case::new(rule, "POST", export_path(id, rest), body.to_vec());
    cases.push(post_to("pause: unknown export", missing, "pause/", b"").answers(404, "invalid_request"));
    cases.push(post_to("unpause: unknown export", missing, "unpause/", b"").answers(404, "invalid_request"));
    cases.push(post_to("unpause: an array", &id, "unpause/", b"[]").invalid("body"));
    cases.push(post_to("unpause: unknown key", &id, "unpause/", br#"{"backfil": true}"#).invalid("backfil"));
    cases.push(post_to("unpause: backfill a string", &id, "unpause/", br#"{"backfill": "yes"}"#).invalid("backfill"));
    cases.push(post_to("unpause: not JSON", &id, "unpause/", b"backfill=true").invalid("body"));
    cases.push(post_to("unpause: trailing garbage", &id, "unpause/", br#"{"backfill": true}]"#).invalid("body"));

    // Backfills.
    let backfill = |rule: &str, body: Value| post_to(rule, &id, "backfills/", &json_bytes(&body));
    cases.push(post_to("backfill: empty body", &id, "backfills/", b"").invalid("body"));
    cases.push(post_to("backfill: an array", &id, "backfills/", b"[]").invalid("body"));
    cases.push(
        backfill("backfill: start after end", json!({"start_at": days(-1), "end_at": days(-2)})).invalid("start_at"),
    );
    cases.push(
        backfill("backfill: end in the future", json!({"start_at": days(-1), "end_at": days(1)})).invalid("end_at"),
    );
    let naive = (Utc::now() - Duration::days(2)).naive_utc().format("%Y-%m-%d %H:%M").to_string();
    cases.push(backfill("backfill: no time zone", json!({"start_at": naive, "end_at": days(-1)})).invalid("start_at"));
    cases.push(backfill("backfill: start_at a number", json!({"start_at": 0, "end_at": days(-1)})).invalid("start_at"));
    for concurrency in [json!(0), json!(11), json!("2"), json!(-1), json!(1.5)] {
        cases.push(
            backfill(
                &format!("backfill: concurrency {concurrency}"),
                json!({"start_at": days(-2), "end_at": days(-1), "concurrency": concurrency}),
            )
            .invalid("concurrency"),
        );
    }
    cases.push(backfill("backfill: unknown key", json!({"from": days(-2)})).invalid("from"));
    cases.push(
        post_to(
            "backfill: start_at twice",
            &id,
            "backfills/",
            format!(r#"{{"start_at": "{}", "start_at": "{}", "end_at": "{}"}}"#, days(-3), days(-2), days(-1))
                .as_bytes(),
        )
        .invalid("start_at"),
    );
    let range = json_bytes(&json!({"start_at": days(-2), "end_at": days(-1)}));
    cases.push(post_to("backfill: unknown export", missing, "backfills/", &range).answers(404, "invalid_request"));
    let get = |rule: &str, path: String| Case::new(rule, "GET", path, Vec::new());
    cases.push(
        get("backfill: unknown", export_path(&id, &format!("backfills/{missing}/"))).answers(404, "invalid_request"),
    );
    cases.push(
        post_to("backfill cancel: unknown", &id, &format!("backfills/{missing}/cancel/"), b"")
            .answers(404, "invalid_request"),
    );

    // Runs.
    let runs_path = |query: &str| export_path(&id, &format!("runs/?{query}"));
    for (query, attr) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=-5", "limit"),
        ("cursor=yesterday", "cursor"),
        ("after=2-1", "after"),
        ("before=tomorrow", "before"),
    ] {
        cases.push(get(&format!("runs: {query}"), runs_path(query)).invalid(attr));
    }
    cases.push(
        get("runs: after is after before", runs_path(&format!("after={}&before={}", zulu(1), zulu(-1))))
            .invalid("after"),
    );
    cases.push(get("runs: unknown export", export_path(missing, "runs/")).answers(404, "invalid_request"));
    cases.push(get("run: unknown", export_path(&id, &format!("runs/{missing}/"))).answers(404, "invalid_request"));
    cases.push(
        get("run: another export's", export_path(&bq_id, &format!("runs/{run_id}/"))).answers(404, "invalid_request"),
    );
    cases.push(
        post_to("retry: unknown run", &id, &format!("runs/{missing}/retry/"), b"").answers(404, "invalid_request"),
    );
    cases.push(
        post_to("cancel: unknown run", &id, &format!("runs/{missing}/cancel/"), b"").answers(404, "invalid_request"),
    );
    cases.push(
        post_to("cancel: an ended run", &id, &format!("runs/{run_id}/cancel/"), b"").answers(409, "invalid_request"),
    );

    // Routes and keys.
    cases.push(get("route: unknown", api.path(&format!("{id}/runz/"))).answers(404, "invalid_request"));
    cases.push(get("route: no project", "/api/projects/".into()).answers(404, "invalid_request"));
    cases.push(
        get("route: project not a number", "/api/projects/abc/batch_exports/".into()).answers(404, "invalid_request"),
    );
    cases.push(
        get("route: project past i64", "/api/projects/99999999999999999999/batch_exports/".into())
            .answers(404, "invalid_request"),
    );
    cases.push(get("export: unknown", export_path(missing, "")).answers(404, "invalid_request"));
    cases.push(get("export: a 2,000-character id", export_path(&"x".repeat(2000), "")).answers(404, "invalid_request"));
    cases.push(
        Case::new("delete: unknown export", "DELETE", export_path(missing, ""), Vec::new())
            .answers(404, "invalid_request"),
    );
    cases.push(
        Case::new("method: PUT an export", "PUT", export_path(&id, ""), valid.clone()).answers(405, "invalid_request"),
    );
    cases.push(
        Case::new("method: DELETE a pause", "DELETE", export_path(&id, "pause/"), Vec::new())
            .answers(405, "invalid_request"),
    );
    cases.push(
        Case::new("method: GET a retry", "GET", export_path(&id, &format!("runs/{run_id}/retry/")), Vec::new())
            .answers(405, "invalid_request"),
    );
    cases.push(get("auth: no key", api.path("")).auth(Auth::None).answers(401, "authentication_error"));
    cases.push(
        get("auth: unknown key", api.path(""))
            .auth(Auth::Header("Bearer phx_unknown".into()))
            .answers(401, "authentication_error"),
    );
    cases.push(
        get("auth: not a bearer", api.path(""))
            .auth(Auth::Header(format!("Basic {}", api.key)))
            .answers(401, "authentication_error"),
    );
    cases.push(
        get("auth: empty bearer", api.path(""))
            .auth(Auth::Header("Bearer ".into()))
            .answers(401, "authentication_error"),
    );
    cases.push(get("auth: another project", other.path("")).answers(403, "authentication_error"));
    cases.push(post("auth: no key, bad body", b"{".to_vec()).auth(Auth::None).answers(401, "authentication_error"));

    assert!(cases.len() >= 100, "the catalogue holds {} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let authorization = match &case.authorization {
            Auth::Own => Some(format!("Bearer {}", api.key)),
            Auth::None => None,
            Auth::Header(h) => Some(h.clone()),
        };
        let (status, body) =
            api.send(authorization.as_deref(), case.method, &case.path, case.content_type, case.body.clone()).await;
        let attr = body["attr"].as_str().map(str::to_string);
        let detail = body["detail"].as_str().unwrap_or_default();
        if status != case.status || body["type"] != case.kind || attr != case.attr || detail.is_empty() {
            wrong.push(format!(
                "{}: {status} {body} (expected {} {} {:?})",
                case.rule, case.status, case.kind, case.attr
            ));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases answered otherwise:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
    println!("{} bad requests, each a 4xx naming the problem", cases.len());

    // Nothing changed, and the function still serves.
    let (status, got) = api.call("GET", &export_path(&id, ""), None).await;
    assert_eq!((status, got["name"].as_str()), (200, Some("catalogue")), "{got}");
    let (status, list) = api.call("GET", &api.path(""), None).await;
    assert_eq!((status, list["results"].as_array().map(Vec::len)), (200, Some(2)), "{list}");
}

/// Now plus `hours`, as a query parameter (`Z`, no `+`).
fn zulu(hours: i64) -> String {
    (Utc::now() + Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
