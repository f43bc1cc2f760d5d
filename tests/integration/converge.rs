//! An export and its EventBridge schedule agree whatever clients do at once: bounded rounds of concurrent
//! requests over real HTTP (two instances of the `api` function serve them at once), each round ending with the
//! item and the schedule checked against each other; and a schedule left behind for a deleted or paused export,
//! fired as EventBridge Scheduler fires it (its target invoked through the Lambda Invoke API with its input).

use std::time::Duration as StdDuration;

use aws_sdk_scheduler::types::ScheduleState;
use batch_exports::batch_export::BatchExport;
use batch_exports::schedules::{
    schedule_expression, schedule_input, schedule_name, schedule_timezone, ScheduleSettings,
};
use batch_exports::store::{ExportStore, RunStore};
use batch_exports::ExportError;
use chrono::Utc;
use integration_tests::{fire_schedule, local_stack, secret_box, settings, Api, ApiInstance, FaultProxy};
use serde_json::{json, Value};

use crate::api::unique_team;

/// What one test needs to compare an export's item with its schedule.
struct Stack {
    exports: ExportStore,
    scheduler: aws_sdk_scheduler::Client,
    settings: ScheduleSettings,
}

impl Stack {
    async fn new() -> Stack {
        let base = local_stack().await;
        let secrets = secret_box(aws_sdk_kms::Client::new(&base));
        Stack {
            exports: ExportStore::new(aws_sdk_dynamodb::Client::new(&base), settings().tables.exports, secrets),
            scheduler: aws_sdk_scheduler::Client::new(&base),
            settings: settings().schedule_settings().unwrap(),
        }
    }

    async fn schedule(&self, id: &str) -> Option<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput> {
        match self.scheduler.get_schedule().name(schedule_name(id)).group_name(&self.settings.group).send().await {
            Ok(schedule) => Some(schedule),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => None,
            Err(e) => panic!("GetSchedule {id}: {e:?}"),
        }
    }

    /// Asserts that the export's item and its schedule agree: both gone, or the schedule written from the item
    /// (ENABLED unless paused, the interval's expression and time zone, the export's ids as input). Returns the
    /// export, if it exists.
    async fn assert_agree(&self, what: &str, team: i64, id: &str) -> Option<BatchExport> {
        let item = match self.exports.get(team, id).await {
            Ok(export) => Some(export),
            Err(ExportError::NotFound { .. }) => None,
            Err(e) => panic!("{what}: reading the export: {e}"),
        };
        match (item, self.schedule(id).await) {
            (None, None) => None,
            (Some(export), Some(schedule)) => {
                let state = if export.paused { ScheduleState::Disabled } else { ScheduleState::Enabled };
                let expected = (
                    Some(&state),
                    Some(schedule_expression(export.interval, self.settings.delay_minutes)),
                    Some(schedule_timezone(&export).unwrap()),
                    Some(schedule_input(&export)),
                );
                let got = (
                    schedule.state(),
                    schedule.schedule_expression().map(str::to_string),
                    schedule.schedule_expression_timezone().map(str::to_string),
                    schedule.target().and_then(|t| t.input()).map(str::to_string),
                );
                assert_eq!(got, expected, "{what}: the schedule disagrees with the item (paused: {})", export.paused);
                Some(export)
            }
            (item, schedule) => panic!(
                "{what}: the export is {} but its schedule is {}",
                if item.is_some() { "there" } else { "gone" },
                schedule.map(|s| format!("{:?}", s.state())).unwrap_or_else(|| "gone".into())
            ),
        }
    }
}

fn s3_export(name: &str) -> Value {
    json!({
        "name": name,
        "interval": "hour",
        "destination": {"type": "S3", "config": {"bucket_name": "converge-exports", "region": "us-east-1"}}
    })
}

/// Creates an export over the API; returns its id and its path.
async fn create(api: &Api, name: &str) -> (String, String) {
    let (status, created) = api.call("POST", &api.path(""), Some(s3_export(name))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let path = api.path(&format!("{id}/"));
    (id, path)
}

/// `call` after `delay_ms` milliseconds.
async fn later(api: &Api, delay_ms: u64, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    tokio::time::sleep(StdDuration::from_millis(delay_ms)).await;
    api.call(method, path, body).await
}

/// A PATCH racing a DELETE of the same export answers 200 (it landed first) or 404 (the export was gone), never
/// a 5xx; either way the export and its schedule end deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_racing_a_delete_is_a_200_or_a_404_and_leaves_no_schedule() {
    let (api, stack) = (Api::new_team(unique_team()).await, Stack::new().await);
    let mut answers = std::collections::BTreeMap::new();
    for round in 0..50u64 {
        let (id, path) = create(&api, "racing").await;
        let patch = json!({"name": format!("round {round}"), "interval": "day", "timezone": "Europe/Berlin"});
        // The DELETE leaves a little later each round, so that it lands before, during and after the PATCH.
        let ((patched, body), (deleted, _)) =
            tokio::join!(api.call("PATCH", &path, Some(patch)), later(&api, (round % 25) * 3, "DELETE", &path, None));
        assert!(matches!(patched, 200 | 404), "round {round}: PATCH answered {patched} {body}");
        assert_eq!(deleted, 204, "round {round}");
        *answers.entry(patched).or_insert(0) += 1;
        assert_eq!(api.call("GET", &path, None).await.0, 404, "round {round}: the export is deleted");
        assert!(stack.assert_agree(&format!("round {round}"), api.team, &id).await.is_none());
    }
    println!("PATCH answers over 50 races with DELETE: {answers:?}");
}

/// A pause and an unpause sent at once both answer 200, and the schedule is DISABLED exactly when the item says
/// paused, whichever landed last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_racing_an_unpause_leaves_the_schedule_as_the_item_says() {
    let (api, stack) = (Api::new_team(unique_team()).await, Stack::new().await);
    let (id, path) = create(&api, "flapping").await;
    let (pause, unpause) = (format!("{path}pause/"), format!("{path}unpause/"));
    let mut ended_paused = 0;
    for round in 0..50u64 {
        // Each request goes first in turn, by up to 12 ms.
        let lead = (round / 2 % 5) * 3;
        let (pause_delay, unpause_delay) = if round % 2 == 0 { (0, lead) } else { (lead, 0) };
        let ((paused, body), (unpaused, unpaused_body)) = tokio::join!(
            later(&api, pause_delay, "POST", &pause, None),
            later(&api, unpause_delay, "POST", &unpause, None)
        );
        assert_eq!((paused, unpaused), (200, 200), "round {round}: {body} {unpaused_body}");
        let export = stack.assert_agree(&format!("round {round}"), api.team, &id).await.expect("the export");
        ended_paused += export.paused as usize;
    }
    println!("pause∥unpause: {ended_paused} of 50 rounds ended paused");
}

/// Two PATCHes of different intervals and time zones (and a pause or an unpause) at once: all answer 200, and
/// the schedule has the final item's expression, time zone and state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_racing_patches_leave_the_schedule_as_the_item_says() {
    let (api, stack) = (Api::new_team(unique_team()).await, Stack::new().await);
    let (id, path) = create(&api, "patched twice").await;
    let mut intervals = std::collections::BTreeMap::new();
    for round in 0..20u64 {
        let daily = json!({"name": format!("daily {round}"), "interval": "day", "timezone": "Europe/Berlin"});
        let five = json!({"name": format!("five {round}"), "interval": "every 5 minutes", "timezone": "UTC"});
        let toggle = format!("{path}{}/", if round % 2 == 0 { "pause" } else { "unpause" });
        let ((a, a_body), (b, b_body), (c, c_body)) = tokio::join!(
            api.call("PATCH", &path, Some(daily)),
            later(&api, round % 4 * 2, "PATCH", &path, Some(five)),
            later(&api, round % 3 * 2, "POST", &toggle, None)
        );
        assert_eq!((a, b, c), (200, 200, 200), "round {round}: {a_body} {b_body} {c_body}");
        let export = stack.assert_agree(&format!("round {round}"), api.team, &id).await.expect("the export");
        *intervals.entry(format!("{:?}", export.interval)).or_insert(0) += 1;
    }
    println!("PATCH∥PATCH: the last interval over 20 rounds: {intervals:?}");
}

/// The interleaving the loops above can only hope for, made certain: a write whose schedule update is slow (an
/// `api` instance reaching EventBridge Scheduler through a proxy that holds its first UpdateSchedule for a
/// second) is overtaken by a later write through the normal instance. The slow writer's stale schedule lands
/// last, and its re-read of the item puts the schedule right: a pause overtaken by an unpause ends ENABLED, a
/// PATCH to `day` overtaken by one to `every 5 minutes` ends with the 5-minute expression.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_schedule_lands_last_still_leaves_the_items_state() {
    let (api, stack) = (Api::new_team(unique_team()).await, Stack::new().await);
    let day = json!({"interval": "day", "timezone": "Europe/Berlin"});
    let cases = [
        ("pause", ("POST", "pause/", None), ("POST", "unpause/", None)),
        ("patch", ("PATCH", "", Some(day)), ("PATCH", "", Some(json!({"interval": "every 5 minutes"})))),
    ];
    for (what, (slow_method, slow_rest, slow_body), (fast_method, fast_rest, fast_body)) in cases {
        let proxy = FaultProxy::delaying("PUT", "/schedules/", 1, 1.0);
        let slow_instance = ApiInstance::start(&[("AWS_ENDPOINT_URL_SCHEDULER", proxy.url.clone())]);
        let slow_api = Api { url: slow_instance.url.clone(), ..api.clone() };
        let (id, path) = create(&api, what).await;
        let (slow_path, fast_path) = (format!("{path}{slow_rest}"), format!("{path}{fast_rest}"));
        // The later write leaves while the slow one's schedule update is held.
        let ((slow, slow_answer), (fast, fast_answer)) = tokio::join!(
            slow_api.call(slow_method, &slow_path, slow_body),
            later(&api, 400, fast_method, &fast_path, fast_body)
        );
        assert_eq!((slow, fast), (200, 200), "{what}: {slow_answer} {fast_answer}");
        let export = stack.assert_agree(what, api.team, &id).await.expect("the export");
        match what {
            "pause" => assert!(!export.paused, "the unpause landed last"),
            _ => assert_eq!(export.interval, batch_exports::batch_export::ExportInterval::Every5Minutes),
        }
    }
}

/// The executions of the export state machine started for an export (their names begin with its id).
async fn executions_of(export_id: &str) -> usize {
    let sfn = aws_sdk_sfn::Client::new(&local_stack().await);
    let machine = std::env::var("BATCH_EXPORT_STATE_MACHINE_ARN").unwrap();
    let listed = sfn.list_executions().state_machine_arn(machine).max_results(1000).send().await.unwrap();
    listed.executions().iter().filter(|e| e.name().starts_with(export_id)).count()
}

/// A schedule that outlived its export (as a lost race could leave it) fires trigger-run, which starts no run
/// and deletes the schedule; one left ENABLED for a paused export starts no run and ends DISABLED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_left_behind_fires_no_run_and_is_put_right() {
    let (api, stack) = (Api::new_team(unique_team()).await, Stack::new().await);
    let runs = RunStore::new(aws_sdk_dynamodb::Client::new(&local_stack().await), settings().tables.runs);

    // Deleted: only the item goes, the schedule stays ENABLED.
    let (gone, _) = create(&api, "deleted behind the schedule's back").await;
    stack.exports.delete(api.team, &gone).await.unwrap();
    let schedule = stack.schedule(&gone).await.expect("the schedule is left");
    assert_eq!(schedule.state(), Some(&ScheduleState::Enabled));
    let output = fire_schedule(&schedule, Utc::now()).await;
    assert_eq!(output["skipped"], "the export does not exist", "{output}");
    assert!(stack.schedule(&gone).await.is_none(), "the schedule is deleted");
    assert_eq!(executions_of(&gone).await, 0, "no execution is started");
    assert!(runs.list(&gone, 10).await.unwrap().is_empty(), "no run is recorded");

    // Paused: only the item is paused, the schedule stays ENABLED.
    let (paused, _) = create(&api, "paused behind the schedule's back").await;
    stack.exports.pause(api.team, &paused, "a pause whose schedule write was lost", Utc::now()).await.unwrap();
    let schedule = stack.schedule(&paused).await.expect("the schedule");
    assert_eq!(schedule.state(), Some(&ScheduleState::Enabled));
    let output = fire_schedule(&schedule, Utc::now()).await;
    assert_eq!(output["skipped"], "the export is paused", "{output}");
    assert_eq!(executions_of(&paused).await, 0, "no execution is started");
    assert!(runs.list(&paused, 10).await.unwrap().is_empty(), "no run is recorded");
    let export = stack.assert_agree("after the firing", api.team, &paused).await.expect("the export");
    assert!(export.paused);

    // The same firing for the export once unpaused starts its run.
    let (status, body) = api.call("POST", &api.path(&format!("{paused}/unpause/")), None).await;
    assert_eq!(status, 200, "{body}");
    let output = fire_schedule(&stack.schedule(&paused).await.unwrap(), Utc::now()).await;
    assert!(output["execution_arn"].is_string(), "{output}");
    assert_eq!(executions_of(&paused).await, 1);
}
