//! The management API over real HTTP: requests to the `api` function served by cargo lambda (its function-URL
//! emulation), with moto behind it (DynamoDB, KMS, EventBridge Scheduler, Step Functions). Every route, team
//! isolation, and secrets: never in a response, a log line or an execution input (the bad requests are
//! `bad_requests`'s).

use std::sync::atomic::{AtomicI64, Ordering};

use aws_sdk_scheduler::types::ScheduleState;
use batch_exports::batch_export::Destination;
use batch_exports::runs::{Run, RunStatus};
use batch_exports::schedules::schedule_name;
use batch_exports::store::{ApiKeyStore, ExportStore, RunStore};
use batch_exports::Interval;
use chrono::{DateTime, Duration, Utc};
use integration_tests::{
    execution_arn, function_logs, local_stack, raw_export_item, secret_box, settings, wait_for_execution, Api,
    ApiInstance,
};
use serde_json::{json, Value};

static NEXT: AtomicI64 = AtomicI64::new(0);

/// A team id no other test (or earlier run against the same stack) uses.
pub fn unique_team() -> i64 {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (Utc::now().timestamp_millis() % 1_000_000_000) * 100 + 60 + n
}

const ACCESS_KEY: &str = "AKIAAPITESTSECRET0001";
const SECRET_KEY: &str = "api-test-secret-access-key/do-not-leak";

fn s3_export(name: &str, bucket: &str) -> Value {
    json!({
        "name": name,
        "interval": "hour",
        "destination": {"type": "S3", "config": {
            "bucket_name": bucket, "region": "us-east-1", "prefix": "events/{year}/",
            "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY,
            "file_format": "Parquet", "compression": "zstd"
        }}
    })
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [ACCESS_KEY, SECRET_KEY] {
        assert!(!text.contains(secret), "{what} holds the secret {secret}");
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn schedules() -> (aws_sdk_scheduler::Client, String) {
    let client = aws_sdk_scheduler::Client::new(&local_stack().await);
    (client, std::env::var("BATCH_EXPORT_SCHEDULE_GROUP").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_created_changed_paused_and_deleted_with_their_schedules() {
    let api = Api::new_team(unique_team()).await;
    let (scheduler, group) = schedules().await;
    let mut responses = String::new();

    let (status, created) = api.call("POST", &api.path(""), Some(s3_export("hourly to S3", "api-exports"))).await;
    assert_eq!(status, 201, "{created}");
    responses.push_str(&created.to_string());
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["team_id"], api.team);
    assert_eq!(created["interval"], "hour");
    assert_eq!(created["paused"], false);
    assert_eq!(created["destination"]["config"]["bucket_name"], "api-exports");
    assert!(created["destination"]["config"].get("aws_secret_access_key").is_none());

    // The schedule: hourly, a minute after each hour, targeting the trigger with the export's ids.
    let schedule = scheduler.get_schedule().name(schedule_name(&id)).group_name(&group).send().await.unwrap();
    assert_eq!(schedule.schedule_expression(), Some("cron(1 * * * ? *)"));
    assert_eq!(schedule.state(), Some(&ScheduleState::Enabled));
    let input: Value = serde_json::from_str(schedule.target().unwrap().input().unwrap()).unwrap();
    assert_eq!(input["export_id"], id.as_str());
    assert_eq!(input["scheduled_time"], "<aws.scheduler.scheduled-time>");

    let (status, got) = api.call("GET", &api.path(&format!("{id}/")), None).await;
    assert_eq!((status, &got["id"]), (200, &json!(id)));
    responses.push_str(&got.to_string());
    let (status, list) = api.call("GET", &api.path(""), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
    responses.push_str(&list.to_string());

    // Patch: the config is merged (the bucket, format and credentials stay), the schedule follows the export.
    let patch = json!({"interval": "day", "timezone": "Europe/Berlin",
                       "destination": {"config": {"prefix": "daily/{year}-{month}-{day}/"}}});
    let (status, patched) = api.call("PATCH", &api.path(&format!("{id}/")), Some(patch)).await;
    assert_eq!(status, 200, "{patched}");
    responses.push_str(&patched.to_string());
    let config = &patched["destination"]["config"];
    assert_eq!(config["prefix"], "daily/{year}-{month}-{day}/");
    assert_eq!(
        (config["bucket_name"].as_str(), config["file_format"].as_str()),
        (Some("api-exports"), Some("Parquet"))
    );
    let schedule = scheduler.get_schedule().name(schedule_name(&id)).group_name(&group).send().await.unwrap();
    assert_eq!(schedule.schedule_expression(), Some("cron(1 0 * * ? *)"));
    assert_eq!(schedule.schedule_expression_timezone(), Some("Europe/Berlin"));

    // The stored item holds the credentials encrypted only, both still there after the patch.
    let item = raw_export_item(api.team, &id).await;
    assert_no_secret("the stored item", &format!("{item:?}"));
    let sealed = item["encrypted_secrets"].as_m().unwrap();
    assert!(sealed.contains_key("aws_access_key_id") && sealed.contains_key("aws_secret_access_key"));

    let (status, paused) = api.call("POST", &api.path(&format!("{id}/pause/")), None).await;
    assert_eq!((status, &paused["paused"]), (200, &json!(true)));
    assert!(paused["last_paused_at"].is_string());
    let schedule = scheduler.get_schedule().name(schedule_name(&id)).group_name(&group).send().await.unwrap();
    assert_eq!(schedule.state(), Some(&ScheduleState::Disabled));
    let (status, unpaused) = api.call("POST", &api.path(&format!("{id}/unpause/")), None).await;
    assert_eq!((status, &unpaused["paused"]), (200, &json!(false)));
    let schedule = scheduler.get_schedule().name(schedule_name(&id)).group_name(&group).send().await.unwrap();
    assert_eq!(schedule.state(), Some(&ScheduleState::Enabled));
    responses.push_str(&paused.to_string());
    responses.push_str(&unpaused.to_string());

    // Unpause with a backfill of what was missed while paused: a backfill from the pause to now.
    api.call("POST", &api.path(&format!("{id}/pause/")), None).await;
    let (status, unpaused) =
        api.call("POST", &api.path(&format!("{id}/unpause/")), Some(json!({"backfill": true}))).await;
    assert_eq!(status, 200, "{unpaused}");
    assert_eq!(unpaused["backfill"]["status"], "Starting");
    let (_, backfills) = api.call("GET", &api.path(&format!("{id}/backfills/")), None).await;
    assert_eq!(backfills["results"][0]["id"], unpaused["backfill"]["id"]);

    let (status, _) = api.call("DELETE", &api.path(&format!("{id}/")), None).await;
    assert_eq!(status, 204);
    let (status, _) = api.call("GET", &api.path(&format!("{id}/")), None).await;
    assert_eq!(status, 404);
    let gone = scheduler.get_schedule().name(schedule_name(&id)).group_name(&group).send().await;
    assert!(gone.unwrap_err().as_service_error().unwrap().is_resource_not_found_exception());

    assert_no_secret("the API's responses", &responses);
    assert_no_secret("the functions' logs", &function_logs());
}

/// History is a backfill's job: an export whose `start_at` is a week ago is created as given, with an enabled
/// schedule that starts now (EventBridge Scheduler refuses a start date in the past), and no run is started for
/// the week before now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_may_start_in_the_past_and_end_only_in_the_future() {
    let api = Api::new_team(unique_team()).await;
    let (scheduler, group) = schedules().await;
    let week_ago = Utc::now() - Duration::days(7);
    let in_a_month = Utc::now() + Duration::days(30);
    let mut body = s3_export("since last week", "api-exports");
    body["start_at"] = json!(week_ago.to_rfc3339());
    body["end_at"] = json!(in_a_month.to_rfc3339());
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let kept = |field: &str| t(created[field].as_str().unwrap()).timestamp();
    assert_eq!((kept("start_at"), kept("end_at")), (week_ago.timestamp(), in_a_month.timestamp()));
    let id = created["id"].as_str().unwrap();
    let schedule = scheduler.get_schedule().name(schedule_name(id)).group_name(&group).send().await.unwrap();
    assert_eq!(schedule.state(), Some(&ScheduleState::Enabled));
    assert_eq!(schedule.start_date(), None, "no start date: the schedule runs from now");
    assert_eq!(schedule.end_date().map(|d| d.secs()), Some((in_a_month + Duration::minutes(1)).timestamp()));
    let (status, runs) = api.call("GET", &api.path(&format!("{id}/runs/")), None).await;
    assert_eq!((status, runs["results"].as_array().map(Vec::len)), (200, Some(0)), "{runs}");

    // A patch moving end_at into the past, or before start_at, is refused and changes nothing.
    for (end, attr) in [(Utc::now() - Duration::hours(1), "end_at"), (week_ago - Duration::days(1), "start_at")] {
        let patch = json!({"end_at": end.to_rfc3339()});
        let (status, error) = api.call("PATCH", &api.path(&format!("{id}/")), Some(patch)).await;
        assert_eq!((status, error["attr"].as_str()), (400, Some(attr)), "{error}");
    }
    let (_, unchanged) = api.call("GET", &api.path(&format!("{id}/")), None).await;
    assert_eq!(t(unchanged["end_at"].as_str().unwrap()).timestamp(), in_a_month.timestamp());
}

/// A project's token (capture's `api_token`) is created once, even by callers racing, and shown by the
/// management API; it is refused by the management API, as a management key is refused by capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_token_is_shown_by_the_api_and_refused_as_a_management_key() {
    let api = Api::new_team(unique_team()).await;
    let (status, project) = api.call("GET", &format!("/api/projects/{}/", api.team), None).await;
    assert_eq!((status, &project["api_token"]), (200, &Value::Null), "{project}");
    let keys = ApiKeyStore::new(aws_sdk_dynamodb::Client::new(&local_stack().await), settings().tables.api_keys);
    let (a, b) =
        tokio::join!(keys.ensure_project_token(api.team, Utc::now()), keys.ensure_project_token(api.team, Utc::now()));
    let token = a.unwrap();
    assert_eq!(b.unwrap(), token, "one token per project");
    assert!(token.starts_with("phc_"));
    let (status, project) = api.call("GET", &format!("/api/projects/{}", api.team), None).await;
    assert_eq!((status, project), (200, json!({"id": api.team, "api_token": token})));
    assert_eq!(keys.find_project_token(&token).await.unwrap().map(|k| k.team_id), Some(api.team));
    assert_eq!(keys.find_project_token(&api.key).await.unwrap(), None, "a management key is no project token");
    let (status, body) = api.call_as(Some(&format!("Bearer {token}")), "GET", &api.path(""), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = api.call("GET", &format!("/api/projects/{}/", api.team + 1), None).await;
    assert_eq!(status, 403, "another project's token is not shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_cannot_see_or_change_each_others_exports() {
    let a = Api::new_team(unique_team()).await;
    let b = Api::new_team(unique_team()).await;
    let (_, created) = a.call("POST", &a.path(""), Some(s3_export("team a", "team-a-exports"))).await;
    let id = created["id"].as_str().unwrap().to_string();

    // B's key on A's project: refused; A's export under B's project: not found, whatever the route.
    let (status, _) = b.call("GET", &a.path(&format!("{id}/")), None).await;
    assert_eq!(status, 403);
    for (method, rest, body) in [
        ("GET", format!("{id}/"), None),
        ("PATCH", format!("{id}/"), Some(json!({"name": "taken over"}))),
        ("DELETE", format!("{id}/"), None),
        ("POST", format!("{id}/pause/"), None),
        ("POST", format!("{id}/unpause/"), None),
        ("GET", format!("{id}/backfills/"), None),
        (
            "POST",
            format!("{id}/backfills/"),
            Some(json!({"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-02T00:00:00Z"})),
        ),
        ("GET", format!("{id}/runs/"), None),
    ] {
        let (status, error) = b.call(method, &b.path(&rest), body).await;
        assert_eq!(status, 404, "{method} {rest}: {error}");
    }
    let (_, list) = b.call("GET", &b.path(""), None).await;
    assert_eq!(list["results"], json!([]));

    // No key, a malformed header or an unknown key: 401.
    for header in [None, Some("Basic abc"), Some("Bearer bek_unknown")] {
        let (status, _) = a.call_as(header, "GET", &a.path(""), None).await;
        assert_eq!(status, 401, "{header:?}");
    }
    let (_, still) = a.call("GET", &a.path(&format!("{id}/")), None).await;
    assert_eq!((still["name"].as_str(), still["paused"].as_bool()), (Some("team a"), Some(false)));
    let (status, _) = a.call("GET", &a.path("missing-export/"), None).await;
    assert_eq!(status, 404);
    let (status, _) = a.call("PUT", &a.path(&format!("{id}/")), None).await;
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_first_in_pages_and_can_be_retried_and_cancelled() {
    let api = Api::new_team(unique_team()).await;
    let (_, created) = api.call("POST", &api.path(""), Some(s3_export("runs", "api-exports"))).await;
    let id = created["id"].as_str().unwrap().to_string();
    let base = local_stack().await;
    let runs = RunStore::new(aws_sdk_dynamodb::Client::new(&base), settings().tables.runs);
    // Five hourly runs: four failed, the newest still running.
    let first = t("2026-11-01T00:00:00Z");
    let mut records = Vec::new();
    for h in 0..5 {
        let interval = Interval::new(first + Duration::hours(h), first + Duration::hours(h + 1)).unwrap();
        let run = Run::new(&id, api.team, interval, Some(format!("{id}-{h}")), None, Utc::now());
        let batch_exports::store::Begin::Started(run) = runs.begin(run, Duration::hours(3), Utc::now()).await.unwrap()
        else {
            panic!("a new run")
        };
        let run = if h < 4 {
            runs.fail(&run.reference(), RunStatus::Failed, "bucket `x` does not exist", Utc::now()).await.unwrap()
        } else {
            run
        };
        records.push(run);
    }

    let (status, page) = api.call("GET", &api.path(&format!("{id}/runs/?limit=2")), None).await;
    assert_eq!(status, 200, "{page}");
    let ends = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["data_interval_end"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ends(&page), ["2026-11-01T05:00:00Z", "2026-11-01T04:00:00Z"]);
    let mut all = ends(&page);
    let mut next = page["next"].as_str().map(str::to_string);
    while let Some(path) = next {
        let (status, page) = api.call("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        all.extend(ends(&page));
        next = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(all.len(), 5, "every run once, newest first: {all:?}");
    assert!(all.windows(2).all(|w| w[0] > w[1]));
    let (_, within) = api
        .call("GET", &api.path(&format!("{id}/runs/?after=2026-11-01T01:00:00Z&before=2026-11-01T03:00:00Z")), None)
        .await;
    assert_eq!(ends(&within), ["2026-11-01T03:00:00Z", "2026-11-01T02:00:00Z"]);

    let failed = &records[1];
    let (status, run) = api.call("GET", &api.path(&format!("{id}/runs/{}/", failed.run_id)), None).await;
    assert_eq!((status, &run["status"], &run["id"]), (200, &json!("Failed"), &json!(failed.run_id)));
    assert_eq!(run["latest_error"], "bucket `x` does not exist");

    // A retry is a backfill of the run's one interval, started on the backfill state machine.
    let (status, backfill) = api.call("POST", &api.path(&format!("{id}/runs/{}/retry/", failed.run_id)), None).await;
    assert_eq!(status, 201, "{backfill}");
    assert_eq!(
        (backfill["start_at"].as_str(), backfill["end_at"].as_str()),
        (Some("2026-11-01T01:00:00Z"), Some("2026-11-01T02:00:00Z"))
    );
    // Its execution runs by itself; the lake holds nothing for the interval, so it completes with no run.
    let execution = execution_arn("BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN", backfill["id"].as_str().unwrap());
    let ended = wait_for_execution(&execution).await;
    let input: Value = serde_json::from_str(ended.input().unwrap()).unwrap();
    assert_eq!(input, json!({"backfill": {"team_id": api.team, "export_id": id, "backfill_id": backfill["id"]}}));
    let (status, got) =
        api.call("GET", &api.path(&format!("{id}/backfills/{}/", backfill["id"].as_str().unwrap())), None).await;
    assert_eq!((status, &got["id"], &got["status"]), (200, &backfill["id"], &json!("Completed")), "{got}");
    let (status, ended) = api
        .call("POST", &api.path(&format!("{id}/backfills/{}/cancel/", backfill["id"].as_str().unwrap())), None)
        .await;
    assert_eq!(status, 409, "an ended backfill cannot be cancelled: {ended}");

    // Cancelling: the running run is cancelled; an ended one is a conflict.
    let running = &records[4];
    let (status, run) = api.call("POST", &api.path(&format!("{id}/runs/{}/cancel/", running.run_id)), None).await;
    assert_eq!((status, &run["status"]), (200, &json!("Cancelled")), "{run}");
    let (status, _) = api.call("POST", &api.path(&format!("{id}/runs/{}/cancel/", failed.run_id)), None).await;
    assert_eq!(status, 409);
    // Another export's run is not found under this export.
    let (_, other) = api.call("POST", &api.path(""), Some(s3_export("other", "api-exports"))).await;
    let (status, _) =
        api.call("GET", &api.path(&format!("{}/runs/{}/", other["id"].as_str().unwrap(), failed.run_id)), None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigquery_exports_are_configured_over_the_api_with_a_write_only_key() {
    let api = Api::new_team(unique_team()).await;
    let key = integration_tests::rsa_key_pem(2048);
    let key = key.as_str();
    // A line of the key's body: what a leak would show.
    let marker = key.lines().nth(2).unwrap().to_string();
    let body = json!({"name": "to BigQuery", "interval": "hour", "model": "persons",
        "destination": {"type": "BigQuery", "config": {"project_id": "my-project", "dataset_id": "BatchExports",
            "table_id": "persons", "use_json_type": true, "private_key": key, "private_key_id": "kid-api-test",
            "client_email": "exports@my-project.iam.gserviceaccount.com"}}});
    let (status, created) = api.call("POST", &api.path(""), Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["destination"]["type"], "BigQuery");
    assert_eq!(created["model"], "persons");
    let config = &created["destination"]["config"];
    assert!(config.get("private_key").is_none() && config.get("private_key_id").is_none(), "{config}");
    assert_eq!(config["token_uri"], "https://oauth2.googleapis.com/token");
    let (_, got) = api.call("GET", &api.path(&format!("{}/", created["id"].as_str().unwrap())), None).await;
    assert!(!got.to_string().contains(&marker) && !got.to_string().contains("kid-api-test"));

    let mut missing = body.clone();
    missing["destination"]["config"].as_object_mut().unwrap().remove("project_id");
    let mut qualified = body.clone();
    qualified["destination"]["config"]["table_id"] = json!("my-project:BatchExports.persons");
    let mut no_key = body;
    no_key["destination"]["config"].as_object_mut().unwrap().remove("private_key");
    for (rule, body, attr) in [
        ("project_id is required", missing, "destination.config.project_id"),
        ("table_id is the id only", qualified, "destination.config.table_id"),
        ("a key is required", no_key, "destination.config.private_key"),
    ] {
        let (status, error) = api.call("POST", &api.path(""), Some(body)).await;
        assert_eq!((status, error["attr"].as_str()), (400, Some(attr)), "{rule}: {error}");
    }
    assert!(!function_logs().contains(&marker));
}

/// The exports table as the functions read it, secrets decrypted on demand.
async fn export_store() -> ExportStore {
    let base = local_stack().await;
    let kms = aws_sdk_kms::Client::new(&base);
    ExportStore::new(aws_sdk_dynamodb::Client::new(&base), settings().tables.exports, secret_box(kms))
}

/// A patch keeps the stored secrets it does not mention, replaces the ones it sets and removes the ones it sets
/// to `null`: a BigQuery export is patched without resending its key, and nulling both S3 keys removes their
/// ciphertexts (the export falls back to the default credential chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_keep_the_secrets_they_do_not_mention_and_remove_the_ones_they_null() {
    let api = Api::new_team(unique_team()).await;
    let store = export_store().await;
    let key = integration_tests::rsa_key_pem(2048);
    let body = json!({"name": "to BigQuery", "interval": "hour",
        "destination": {"type": "BigQuery", "config": {"project_id": "my-project", "dataset_id": "BatchExports",
            "private_key": key, "private_key_id": "kid-patch-test",
            "client_email": "exports@my-project.iam.gserviceaccount.com"}}});
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let bq_id = created["id"].as_str().unwrap().to_string();
    for patch in [
        json!({"name": "renamed"}),
        json!({"destination": {"config": {"table_id": "events_v2", "use_json_type": true}}}),
        json!({"destination": {"type": "BigQuery", "config": {"dataset_id": "Other"}}}),
    ] {
        let (status, patched) = api.call("PATCH", &api.path(&format!("{bq_id}/")), Some(patch.clone())).await;
        assert_eq!(status, 200, "{patch}: {patched}");
    }
    let opened = store.get_with_secrets(api.team, &bq_id).await.unwrap();
    let Destination::BigQuery(config) = opened.destination else { panic!("BigQuery") };
    assert_eq!((config.table_id.as_str(), config.dataset_id.as_str()), ("events_v2", "Other"));
    assert_eq!(config.private_key.as_deref(), Some(key.as_str()), "the stored key is kept");
    assert_eq!(config.private_key_id.as_deref(), Some("kid-patch-test"));

    // S3: one key replaced keeps its pair's other half; both nulled removes both ciphertexts.
    let (status, created) = api.call("POST", &api.path(""), Some(s3_export("keys", "api-exports"))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let rotate = json!({"destination": {"config": {"aws_secret_access_key": "rotated-secret"}}});
    let (status, patched) = api.call("PATCH", &api.path(&format!("{id}/")), Some(rotate)).await;
    assert_eq!(status, 200, "{patched}");
    let Destination::S3(config) = store.get_with_secrets(api.team, &id).await.unwrap().destination else { panic!() };
    assert_eq!(
        (config.aws_access_key_id.as_deref(), config.aws_secret_access_key.as_deref()),
        (Some(ACCESS_KEY), Some("rotated-secret"))
    );
    let nulled = json!({"destination": {"config": {"aws_access_key_id": null, "aws_secret_access_key": null}}});
    let (status, patched) = api.call("PATCH", &api.path(&format!("{id}/")), Some(nulled)).await;
    assert_eq!(status, 200, "{patched}");
    let stored = store.get_stored(api.team, &id).await.unwrap();
    assert!(stored.sealed.is_empty(), "no ciphertext is left: {:?}", stored.sealed_fields());
    let Destination::S3(config) = store.get_with_secrets(api.team, &id).await.unwrap().destination else { panic!() };
    assert_eq!((config.aws_access_key_id, config.aws_secret_access_key), (None, None));
    assert_eq!((config.bucket_name.as_str(), config.prefix.as_str()), ("api-exports", "events/{year}/"));
}

/// SSRF at the API: with private endpoints not allowed (the deployed setting), an `endpoint_url` or `token_uri`
/// at a metadata, loopback or private address is a 400 naming the field; a public one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_private_endpoints_off_the_api_refuses_private_and_metadata_addresses() {
    // The `api` function as template.yaml deploys it.
    let strict = ApiInstance::start(&[("BATCH_EXPORT_ALLOW_PRIVATE_ENDPOINTS", "false".into())]);
    let api = Api { url: strict.url.clone(), ..Api::new_team(unique_team()).await };
    let key = integration_tests::rsa_key_pem(2048);
    let bigquery = |token_uri: String| {
        json!({"name": "bq", "interval": "hour", "destination": {"type": "BigQuery", "config": {
            "project_id": "my-project", "dataset_id": "exports", "private_key": key, "private_key_id": "k",
            "client_email": "exports@my-project.iam.gserviceaccount.com", "token_uri": token_uri}}})
    };
    let s3 = |endpoint: String| {
        let mut body = s3_export("s3", "api-exports");
        body["destination"]["config"]["endpoint_url"] = json!(endpoint);
        body
    };
    for host in ["169.254.169.254", "[::ffff:169.254.169.254]", "127.0.0.1", "10.0.0.1", "[::1]", "localhost"] {
        let (status, error) = api.call("POST", &api.path(""), Some(s3(format!("http://{host}:9000/")))).await;
        let attr = error["attr"].as_str();
        assert_eq!((status, attr), (400, Some("destination.config.endpoint_url")), "{host}: {error}");
        let (status, error) = api.call("POST", &api.path(""), Some(bigquery(format!("https://{host}/token")))).await;
        let attr = error["attr"].as_str();
        assert_eq!((status, attr), (400, Some("destination.config.token_uri")), "{host}: {error}");
    }
    let (status, created) = api.call("POST", &api.path(""), Some(s3("https://minio.example.com".into()))).await;
    assert_eq!(status, 201, "a public endpoint is accepted: {created}");
    let (status, created) =
        api.call("POST", &api.path(""), Some(bigquery("https://oauth2.example.com/token".into()))).await;
    assert_eq!(status, 201, "a public token endpoint is accepted: {created}");
}
