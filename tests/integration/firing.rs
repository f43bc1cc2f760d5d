//! Schedules firing on the local stack: the local scheduler (localstack/scheduler.py) fires the schedules the
//! API stored, at the times EventBridge Scheduler would, and each firing runs its interval by itself. The test
//! clock lets an hour, a day or a daylight-saving change pass in seconds; every time is derived from the clock.

use aws_sdk_sfn::types::ExecutionStatus;
use batch_exports::schedules::schedule_name;
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::{Interval, S3DestinationConfig};
use chrono::{DateTime, Days, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use integration_tests::{
    assert_files_hold, fire_schedules, list_keys, local_stack, new_bucket, s3, settings, wait_for_execution, Api, Lake,
};
use serde_json::{json, Value};

use crate::api::unique_team;

/// Creates an export over the API (its schedule with it); returns its schedule's name.
async fn export(api: &Api, extra: Value) -> (String, String) {
    let mut body = json!({"name": "fired", "interval": "hour",
        "destination": {"type": "S3", "config": {"bucket_name": "fired-exports"}}});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    (schedule_name(&id), id)
}

fn times(firings: &[Value]) -> Vec<String> {
    firings.iter().map(|f| f["scheduled_time"].as_str().unwrap().to_string()).collect()
}

fn zulu(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The last daylight-saving change in Berlin before now: the first local day whose UTC offset differs from
/// the day before's.
fn last_berlin_change() -> NaiveDate {
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let offset = |d: NaiveDate| {
        berlin.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap()).naive_local() - d.and_hms_opt(12, 0, 0).unwrap()
    };
    let mut day = Utc::now().date_naive();
    while offset(day) == offset(day - Days::new(1)) {
        day = day - Days::new(1);
    }
    day
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_at_their_scheduled_times_under_the_test_clock() {
    let api = Api::new_team(unique_team()).await;
    let midnight = (Utc::now() - Duration::days(2)).duration_trunc(Duration::days(1)).unwrap();

    // Hourly: minute 1 of every hour, in UTC.
    let (hourly, _) = export(&api, json!({})).await;
    let fired = fire_schedules(&[hourly], midnight, midnight + Duration::hours(3)).await;
    let want: Vec<String> = (0..3).map(|h| zulu(midnight + Duration::hours(h) + Duration::minutes(1))).collect();
    assert_eq!(times(&fired), want);
    assert!(fired.iter().all(|f| f["status"] == 200), "{fired:?}");

    // Every 5 minutes: from minute 1.
    let (five, _) = export(&api, json!({"interval": "every 5 minutes"})).await;
    let fired = fire_schedules(&[five], midnight, midnight + Duration::minutes(20)).await;
    let want: Vec<String> = [1, 6, 11, 16].iter().map(|m| zulu(midnight + Duration::minutes(*m))).collect();
    assert_eq!(times(&fired), want);

    // Daily in Europe/Berlin, across its last daylight-saving change: 00:01 local every day, so the UTC time
    // moves by an hour at the change.
    let (daily, _) = export(&api, json!({"interval": "day", "timezone": "Europe/Berlin"})).await;
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let change = last_berlin_change();
    let local_0001 = |d: NaiveDate| berlin.from_local_datetime(&d.and_hms_opt(0, 1, 0).unwrap()).unwrap().to_utc();
    let days: Vec<NaiveDate> = (0..6).map(|i| change - Days::new(3) + Days::new(i)).collect();
    let fired = fire_schedules(&[daily], local_0001(days[0]) - Duration::minutes(1), local_0001(days[5])).await;
    let want: Vec<String> = days.iter().map(|d| zulu(local_0001(*d))).collect();
    assert_eq!(times(&fired), want, "the change is on {change}");
    let utc_hours: std::collections::BTreeSet<String> = want.iter().map(|t| t[11..13].to_string()).collect();
    assert_eq!(utc_hours.len(), 2, "the firings moved by an hour at the change: {want:?}");

    // Paused: the schedule is disabled and never fires.
    let (paused, _) = export(&api, json!({"paused": true})).await;
    assert!(fire_schedules(&[paused], midnight, midnight + Duration::hours(3)).await.is_empty());

    // An end date stops firing: the last firing is for the interval ending at end_at.
    let end_at = Utc::now().duration_trunc(Duration::hours(1)).unwrap() + Duration::hours(2);
    let (ending, _) = export(&api, json!({"end_at": zulu(end_at)})).await;
    let fired = fire_schedules(&[ending], end_at, end_at + Duration::hours(3)).await;
    assert_eq!(times(&fired), [zulu(end_at + Duration::minutes(1))], "nothing after the end date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_an_hourly_export_fires_24_completed_runs_each_exact() {
    let api = Api::new_team(unique_team()).await;
    let client = s3(&local_stack().await);
    let day = (Utc::now() - Duration::days(2)).duration_trunc(Duration::days(1)).unwrap();
    let mut lake = Lake::new(&client, settings().lake_bucket().unwrap());
    let mut events = SyntheticEvents::new(api.team as u64, api.team);
    for h in 0..24 {
        let hour = day + Duration::hours(h);
        lake.add(api.team, hour, "events.jsonl", events.events_between(hour, Duration::hours(1), 150)).await;
    }
    let bucket = new_bucket(&client, "fired-day").await;
    let config = json!({"bucket_name": bucket, "prefix": "{year}{month}{day}{hour}/"});
    let (schedule, id) = export(&api, json!({"destination": {"type": "S3", "config": config}})).await;

    // Each hour's run fires a minute after the hour ends: the day's 24 firings are in (01:00, 01:00 the next day].
    let (after, until) = (day + Duration::hours(1), day + Duration::days(1) + Duration::hours(1));
    let fired = fire_schedules(&[schedule.clone()], after, until).await;
    assert_eq!(fired.len(), 24);
    for firing in &fired {
        let answer: Value = serde_json::from_str(firing["answer"].as_str().unwrap()).unwrap();
        let execution = answer["execution_arn"].as_str().unwrap_or_else(|| panic!("no execution: {answer}"));
        let ended = wait_for_execution(execution).await;
        assert_eq!(ended.status(), &ExecutionStatus::Succeeded, "{execution}: {:?}", ended.cause());
    }
    // The same day fired again starts nothing: each interval's execution already ran.
    let again = fire_schedules(&[schedule], after, until).await;
    assert!(again.iter().all(|f| f["answer"].as_str().unwrap().contains("\"already_started\":true")), "{again:?}");

    let (status, page) = api.call("GET", &api.path(&format!("{id}/runs/?limit=100")), None).await;
    assert_eq!(status, 200, "{page}");
    let runs = page["results"].as_array().unwrap();
    assert_eq!(runs.len(), 24, "one run per hour, none twice");
    assert!(runs.iter().all(|r| r["status"] == "Completed" && r["attempt"] == 1), "{runs:?}");
    let keys = list_keys(&client, &bucket).await;
    assert_eq!(keys.len(), 24, "{keys:?}");
    let destination = S3DestinationConfig::new(&bucket);
    for h in 0..24 {
        let interval = Interval::new(day + Duration::hours(h), day + Duration::hours(h + 1)).unwrap();
        let folder = interval.end.format("%Y%m%d%H/").to_string();
        let key = keys.iter().find(|k| k.starts_with(&folder)).unwrap_or_else(|| panic!("no file in {folder}"));
        assert_files_hold(
            &client,
            &bucket,
            &[key.as_str()],
            &destination,
            &lake.expected(api.team, &interval, |_| true),
        )
        .await;
    }
}
