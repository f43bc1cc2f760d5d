//! Export schedules in EventBridge Scheduler (moto): what GetSchedule shows for the schedules of an hourly
//! export, a daily export in Europe/Berlin and a 5-minute export; how pausing, changing and deleting an export
//! change its schedule; and how the schedules' target starts one execution (moto's Step Functions) per interval.

use aws_sdk_scheduler::types::{FlexibleTimeWindowMode, ScheduleState};
use batch_exports::batch_export::{BatchExport, Destination, ExportInterval};
use batch_exports::schedules::{schedule_name, ScheduleSettings, Schedules};
use batch_exports::steps::{trigger_run, RunRequest, Services};
use batch_exports::S3DestinationConfig;
use chrono::{DateTime, Utc};
use integration_tests::local_stack;
use serde_json::{json, Value};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn export(id: &str, interval: ExportInterval, timezone: &str) -> BatchExport {
    let mut export = BatchExport::new(id, 42, id, Destination::S3(S3DestinationConfig::new("exports")), interval);
    export.timezone = timezone.into();
    export
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_of_hourly_daily_and_five_minute_exports() {
    let base = local_stack().await;
    let client = aws_sdk_scheduler::Client::new(&base);
    let settings = ScheduleSettings {
        group: format!("batch-exports-{}", std::process::id()),
        target_arn: "arn:aws:lambda:us-east-1:123456789012:function:trigger-run".into(),
        role_arn: "arn:aws:iam::123456789012:role/batch-exports-scheduler".into(),
        delay_minutes: 1,
    };
    let schedules = Schedules::new(client.clone(), settings.clone());
    schedules.ensure_group().await.unwrap();
    schedules.ensure_group().await.unwrap();

    let hourly = export("hourly", ExportInterval::Hour, "UTC");
    // Dates from the clock: a daily export starting at a Berlin midnight a week ahead, for a month.
    let now = Utc::now();
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let ahead = (now + chrono::Duration::days(7)).with_timezone(&berlin).date_naive();
    let midnight = |date: chrono::NaiveDate| {
        date.and_hms_opt(0, 0, 0).unwrap().and_local_timezone(berlin).earliest().unwrap().to_utc()
    };
    let (start_at, end_at) = (midnight(ahead), midnight(ahead + chrono::Days::new(31)));
    let mut daily = export("daily-berlin", ExportInterval::Day, "Europe/Berlin");
    daily.start_at = Some(start_at);
    daily.end_at = Some(end_at);
    // A start in the past (picking up history) is no start date: the schedule starts now.
    let mut since_last_week = export("since-last-week", ExportInterval::Hour, "UTC");
    since_last_week.start_at = Some(now - chrono::Duration::days(7));
    // A time zone matters only for days and weeks: a 5-minute export's schedule runs on UTC.
    let five = export("five-minutes", ExportInterval::Every5Minutes, "Europe/Berlin");
    let cases = [
        (&hourly, "cron(1 * * * ? *)", "UTC", None, None),
        (&daily, "cron(1 0 * * ? *)", "Europe/Berlin", Some(start_at), Some(end_at + chrono::Duration::minutes(1))),
        (&since_last_week, "cron(1 * * * ? *)", "UTC", None, None),
        (&five, "cron(1/5 * * * ? *)", "UTC", None, None),
    ];
    for (export, expression, timezone, start, end) in cases {
        schedules.put(export).await.unwrap();
        let got =
            client.get_schedule().name(schedule_name(&export.id)).group_name(&settings.group).send().await.unwrap();
        assert_eq!(got.schedule_expression(), Some(expression), "{}", export.id);
        assert_eq!(got.schedule_expression_timezone(), Some(timezone), "{}", export.id);
        assert_eq!(got.start_date().map(|d| d.secs()), start.map(|s| s.timestamp()), "{}", export.id);
        assert_eq!(got.end_date().map(|d| d.secs()), end.map(|e| e.timestamp()), "{}", export.id);
        assert_eq!(got.state(), Some(&ScheduleState::Enabled));
        assert_eq!(got.flexible_time_window().map(|w| w.mode()), Some(&FlexibleTimeWindowMode::Off));
        let target = got.target().expect("a target");
        assert_eq!(target.arn(), settings.target_arn);
        assert_eq!(target.role_arn(), settings.role_arn);
        let input: Value = serde_json::from_str(target.input().expect("an input")).unwrap();
        assert_eq!(
            input,
            json!({"team_id": 42, "export_id": export.id, "scheduled_time": "<aws.scheduler.scheduled-time>"})
        );
    }

    // Pausing disables the schedule; changing the interval changes the expression; both update in place.
    let mut paused = hourly.clone();
    paused.paused = true;
    schedules.put(&paused).await.unwrap();
    let got = client.get_schedule().name(schedule_name("hourly")).group_name(&settings.group).send().await.unwrap();
    assert_eq!(got.state(), Some(&ScheduleState::Disabled));
    let mut weekly = daily.clone();
    weekly.interval = ExportInterval::Week;
    schedules.put(&weekly).await.unwrap();
    let got =
        client.get_schedule().name(schedule_name("daily-berlin")).group_name(&settings.group).send().await.unwrap();
    assert_eq!(got.schedule_expression(), Some("cron(1 0 ? * MON *)"));

    // Deleting removes the schedule, and deleting again is fine.
    schedules.delete("five-minutes").await.unwrap();
    let gone = client.get_schedule().name(schedule_name("five-minutes")).group_name(&settings.group).send().await;
    assert!(gone.unwrap_err().as_service_error().is_some_and(|e| e.is_resource_not_found_exception()));
    schedules.delete("five-minutes").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_starts_one_execution_per_interval() {
    let base = local_stack().await;
    let sfn = aws_sdk_sfn::Client::new(&base);
    let definition = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../statemachines/export.asl.json"))
        .unwrap()
        .replace("${", "arn:aws:lambda:us-east-1:123456789012:function:")
        .replace("FunctionArn}", "");
    let machine = sfn
        .create_state_machine()
        .name(format!("export-{}", std::process::id()))
        .definition(definition)
        .role_arn("arn:aws:iam::123456789012:role/batch-exports-state-machine")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    let mut services = Services::from_env().await.unwrap();
    services.state_machine_arn = Some(machine.clone());
    let mut daily = export(&format!("trigger-{}", std::process::id()), ExportInterval::Day, "Europe/Berlin");
    daily.team_id = 4242;
    services.exports.put(&daily).await.unwrap();

    // Two firings for the same Berlin day (the second one a minute later, as a retried delivery might be).
    let mut names = Vec::new();
    for at in ["2026-11-20T23:01:00Z", "2026-11-20T23:02:30Z"] {
        let request = RunRequest {
            team_id: 4242,
            export_id: daily.id.clone(),
            scheduled_time: Some(t(at)),
            data_interval_start: None,
            data_interval_end: None,
            backfill_id: None,
        };
        names.push(trigger_run(&services, request).await.unwrap().execution_name);
    }
    assert_eq!(names[0], format!("{}-20261120T230000Z", daily.id));
    assert_eq!(names[0], names[1]);
    let executions = sfn.list_executions().state_machine_arn(&machine).send().await.unwrap();
    assert_eq!(executions.executions().len(), 1, "one execution for the interval");
    let described =
        sfn.describe_execution().execution_arn(executions.executions()[0].execution_arn()).send().await.unwrap();
    let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({"team_id": 4242, "export_id": daily.id, "data_interval_start": "2026-11-19T23:00:00Z",
               "data_interval_end": "2026-11-20T23:00:00Z"})
    );
}
