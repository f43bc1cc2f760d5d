//! Backfills (historical exports): one export run per interval of a time range, one after another (or a few at
//! once), with progress recorded on a backfill record ([`crate::store::BackfillStore`]).
//!
//! A backfill of `[start_at, end_at)` runs every interval of its export whose end falls in `(start_at, end_at]`
//! — for an hourly export, `00:00`–`06:00` is six runs ending at 01:00 … 06:00. The range is first clipped to
//! the export's own `start_at`/`end_at`, and its start moved forward to the hour of the earliest data the lake
//! holds for the team, so a backfill "from the beginning" does not run years of empty intervals. An empty range
//! completes at once. Retrying a run is a backfill of its one interval.
//!
//! Backfills do not look at the destination: two backfills of one range export its data twice (as the
//! reference documents); re-running an interval overwrites the same keys in S3.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::batch_export::{parse_timezone, BatchExport, ExportInterval};
use crate::error::{ExportError, Result};
use crate::time::Interval;

/// A backfill's statuses (the reference's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackfillStatus {
    Starting,
    Running,
    Completed,
    Cancelled,
    Failed,
}

impl BackfillStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            BackfillStatus::Starting => "Starting",
            BackfillStatus::Running => "Running",
            BackfillStatus::Completed => "Completed",
            BackfillStatus::Cancelled => "Cancelled",
            BackfillStatus::Failed => "Failed",
        }
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self, BackfillStatus::Starting | BackfillStatus::Running)
    }
}

/// One backfill as the backfills table stores it (and the API returns it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backfill {
    pub export_id: String,
    /// A time-ordered UUID (v7): the table's sort key, so a query lists backfills newest first.
    pub id: String,
    pub team_id: i64,
    /// The range asked for.
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub status: BackfillStatus,
    /// Runs executed at once (1: one after another).
    pub concurrency: u32,
    /// The range actually run, once planned (clipped to the export's dates and to the earliest data).
    #[serde(default)]
    pub effective_start_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub effective_end_at: Option<DateTime<Utc>>,
    /// Runs the range holds, once planned.
    #[serde(default)]
    pub expected_runs: Option<u64>,
    /// Runs that ended (whatever their status), and how many of them did not complete.
    #[serde(default)]
    pub finished_runs: u64,
    #[serde(default)]
    pub failed_runs: u64,
    /// The sum of the finished runs' records.
    #[serde(default)]
    pub total_records: u64,
    /// The end of the last interval started.
    #[serde(default)]
    pub ran_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub latest_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_updated_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Backfill {
    pub fn new(export: &BatchExport, range: Interval, concurrency: u32, now: DateTime<Utc>) -> Self {
        Backfill {
            export_id: export.id.clone(),
            id: uuid::Uuid::now_v7().to_string(),
            team_id: export.team_id,
            start_at: range.start,
            end_at: range.end,
            status: BackfillStatus::Starting,
            concurrency: concurrency.max(1),
            effective_start_at: None,
            effective_end_at: None,
            expected_runs: None,
            finished_runs: 0,
            failed_runs: 0,
            total_records: 0,
            ran_until: None,
            latest_error: None,
            created_at: now,
            last_updated_at: now,
            finished_at: None,
        }
    }

    /// What the backfill state machine passes between its steps.
    pub fn reference(&self) -> BackfillRef {
        BackfillRef { team_id: self.team_id, export_id: self.export_id.clone(), backfill_id: self.id.clone() }
    }
}

/// The ids of a backfill: the backfill state machine's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillRef {
    pub team_id: i64,
    pub export_id: String,
    pub backfill_id: String,
}

/// The range a backfill runs: `[start, end)` clipped to the export's `start_at`/`end_at`, its start moved
/// forward to `earliest_data` (the first hour holding data). `None` when nothing is left.
pub fn effective_range(
    export: &BatchExport,
    requested: Interval,
    earliest_data: Option<DateTime<Utc>>,
) -> Option<Interval> {
    let mut start = requested.start;
    let mut end = requested.end;
    if let Some(s) = export.start_at {
        start = start.max(s);
    }
    if let Some(e) = export.end_at {
        end = end.min(e);
    }
    match earliest_data {
        Some(first) => start = start.max(first),
        // No data at all: nothing to run.
        None => return None,
    }
    (start < end).then_some(Interval { start, end })
}

/// The export intervals whose end falls in `(after, range.end]`, at most `limit` of them, in time order; `after`
/// defaults to the range start.
pub fn intervals_after(
    export: &BatchExport,
    range: Interval,
    after: Option<DateTime<Utc>>,
    limit: usize,
) -> Result<Vec<Interval>> {
    let tz = parse_timezone(&export.timezone)?;
    let mut out = Vec::new();
    let mut previous_end = after.unwrap_or(range.start);
    while out.len() < limit {
        // The interval holding `previous_end` in its first instant ends after it.
        let next = export.interval.interval_ending_at_or_before(previous_end + step(export.interval), tz)?;
        if next.end <= previous_end {
            return Err(ExportError::internal(format!("no interval follows {}", crate::time::iso(previous_end))));
        }
        if next.end > range.end {
            break;
        }
        out.push(next);
        previous_end = next.end;
    }
    Ok(out)
}

/// How many intervals [`intervals_after`] yields for the whole range.
pub fn count_intervals(export: &BatchExport, range: Interval) -> Result<u64> {
    let mut count = 0;
    let mut after = None;
    loop {
        let batch = intervals_after(export, range, after, 1000)?;
        count += batch.len() as u64;
        match batch.last() {
            Some(last) if batch.len() == 1000 => after = Some(last.end),
            _ => return Ok(count),
        }
    }
}

/// A time step that lands inside the next interval: the interval's length, plus an hour for days and weeks
/// (which last an hour more or less across a daylight-saving change).
fn step(interval: ExportInterval) -> Duration {
    match interval {
        ExportInterval::Day | ExportInterval::Week => interval.duration() + Duration::hours(1),
        _ => interval.duration(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_export::Destination;
    use crate::S3DestinationConfig;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn export(interval: ExportInterval, tz: &str) -> BatchExport {
        let mut e = BatchExport::new("e", 1, "e", Destination::S3(S3DestinationConfig::new("b")), interval);
        e.timezone = tz.into();
        e
    }

    fn ends(intervals: &[Interval]) -> Vec<String> {
        intervals.iter().map(|i| i.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).collect()
    }

    #[test]
    fn six_hours_are_six_runs() {
        let e = export(ExportInterval::Hour, "UTC");
        let range = Interval::new(t("2026-11-20T00:00:00Z"), t("2026-11-20T06:00:00Z")).unwrap();
        let all = intervals_after(&e, range, None, 100).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], Interval::new(t("2026-11-20T00:00:00Z"), t("2026-11-20T01:00:00Z")).unwrap());
        assert_eq!(all[5].end, t("2026-11-20T06:00:00Z"));
        assert_eq!(count_intervals(&e, range).unwrap(), 6);
        // Batches continue where the last one stopped.
        let first = intervals_after(&e, range, None, 4).unwrap();
        let rest = intervals_after(&e, range, Some(first[3].end), 4).unwrap();
        assert_eq!([first, rest].concat(), all);
    }

    #[test]
    fn unaligned_ranges_take_the_intervals_ending_inside() {
        let e = export(ExportInterval::Hour, "UTC");
        let range = Interval::new(t("2026-11-20T00:30:00Z"), t("2026-11-20T03:10:00Z")).unwrap();
        let all = intervals_after(&e, range, None, 100).unwrap();
        assert_eq!(ends(&all), ["2026-11-20T01:00:00Z", "2026-11-20T02:00:00Z", "2026-11-20T03:00:00Z"]);
        assert_eq!(all[0].start, t("2026-11-20T00:00:00Z"));
    }

    #[test]
    fn days_follow_the_time_zone_across_daylight_saving() {
        let e = export(ExportInterval::Day, "Europe/Berlin");
        // Berlin leaves summer time on 2026-10-25: that day lasts 25 hours.
        let range = Interval::new(t("2026-10-23T22:00:00Z"), t("2026-10-26T23:00:00Z")).unwrap();
        let all = intervals_after(&e, range, None, 100).unwrap();
        assert_eq!(ends(&all), ["2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z"]);
        assert_eq!(all[1].end - all[1].start, Duration::hours(25));
    }

    #[test]
    fn five_minute_and_weekly_intervals() {
        let five = export(ExportInterval::Every5Minutes, "UTC");
        let range = Interval::new(t("2026-11-20T00:00:00Z"), t("2026-11-20T01:00:00Z")).unwrap();
        assert_eq!(count_intervals(&five, range).unwrap(), 12);
        let weekly = export(ExportInterval::Week, "UTC");
        let range = Interval::new(t("2026-11-02T00:00:00Z"), t("2026-11-23T00:00:00Z")).unwrap();
        assert_eq!(count_intervals(&weekly, range).unwrap(), 3);
    }

    #[test]
    fn ranges_are_clipped_to_the_export_and_the_earliest_data() {
        let mut e = export(ExportInterval::Hour, "UTC");
        e.end_at = Some(t("2026-11-20T04:00:00Z"));
        let requested = Interval::new(t("2026-11-19T00:00:00Z"), t("2026-11-20T06:00:00Z")).unwrap();
        let range = effective_range(&e, requested, Some(t("2026-11-20T02:00:00Z"))).unwrap();
        assert_eq!(range, Interval::new(t("2026-11-20T02:00:00Z"), t("2026-11-20T04:00:00Z")).unwrap());
        assert_eq!(effective_range(&e, requested, None), None, "no data: nothing to run");
        assert_eq!(effective_range(&e, requested, Some(t("2026-11-20T05:00:00Z"))), None, "data only after end_at");
    }
}
