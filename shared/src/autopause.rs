//! Auto-pause: an export whose runs keep failing is paused, as the reference does, so it stops failing every
//! interval until someone looks.
//!
//! After a run ends `Failed` or `FailedRetryable`, the export's latest runs are counted: with
//! [`FAILURES_TO_PAUSE`] (10) failures among the last [`check_window`] runs (hour: 24, day: 7, week: 4,
//! every N minutes: 60/N — but never fewer than 10, so that the threshold can be reached: for day, week and
//! 15-minute exports that means 10 failures in a row), the export is paused with the reason recorded on it,
//! and its schedule is disabled.

use crate::batch_export::ExportInterval;
use crate::runs::{Run, RunStatus};

/// Failed runs in the window that pause an export.
pub const FAILURES_TO_PAUSE: usize = 10;

/// How many of the latest runs are looked at.
pub fn check_window(interval: ExportInterval) -> usize {
    let reference = match interval {
        ExportInterval::Hour => 24,
        ExportInterval::Day => 7,
        ExportInterval::Week => 4,
        ExportInterval::Every5Minutes => 60 / 5,
        ExportInterval::Every15Minutes => 60 / 15,
    };
    reference.max(FAILURES_TO_PAUSE)
}

/// The reason to pause, if the latest runs (newest first) fail too often.
pub fn pause_reason(interval: ExportInterval, latest: &[Run]) -> Option<String> {
    let window = check_window(interval);
    let failed = latest
        .iter()
        .take(window)
        .filter(|r| matches!(r.status, RunStatus::Failed | RunStatus::FailedRetryable))
        .count();
    (failed >= FAILURES_TO_PAUSE).then(|| {
        let last_error = latest.first().and_then(|r| r.latest_error.as_deref()).unwrap_or("unknown error");
        format!("paused automatically: {failed} of the last {window} runs failed (latest error: {last_error})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Interval;
    use chrono::{Duration, Utc};

    fn runs(statuses: &[RunStatus]) -> Vec<Run> {
        let now = Utc::now();
        statuses
            .iter()
            .enumerate()
            .map(|(i, status)| {
                let end = now - Duration::hours(i as i64 + 1);
                let interval = Interval::new(end - Duration::hours(1), end).unwrap();
                let mut run = Run::new("e", 1, interval, None, None, now);
                run.status = *status;
                run.latest_error = Some(format!("error {i}"));
                run
            })
            .collect()
    }

    #[test]
    fn windows_follow_the_reference_but_can_reach_the_threshold() {
        assert_eq!(check_window(ExportInterval::Hour), 24);
        assert_eq!(check_window(ExportInterval::Every5Minutes), 12);
        assert_eq!(check_window(ExportInterval::Day), 10);
        assert_eq!(check_window(ExportInterval::Week), 10);
        assert_eq!(check_window(ExportInterval::Every15Minutes), 10);
    }

    #[test]
    fn ten_failures_in_the_window_pause() {
        use RunStatus::*;
        let mut statuses = vec![Failed; 9];
        statuses.extend([Completed; 10]);
        assert_eq!(pause_reason(ExportInterval::Hour, &runs(&statuses)), None);
        statuses.insert(0, FailedRetryable);
        let reason = pause_reason(ExportInterval::Hour, &runs(&statuses)).unwrap();
        assert!(reason.contains("10 of the last 24 runs failed") && reason.contains("error 0"), "{reason}");
        // Ten failures spread beyond the window do not count.
        let spread: Vec<RunStatus> = (0..30).map(|i| if i % 3 == 0 { Failed } else { Completed }).collect();
        assert_eq!(pause_reason(ExportInterval::Hour, &runs(&spread)), None);
        // Daily exports pause after 10 failures in a row.
        assert!(pause_reason(ExportInterval::Day, &runs(&[Failed; 10])).is_some());
        let mut broken = vec![Failed; 10];
        broken[4] = Completed;
        assert!(pause_reason(ExportInterval::Day, &runs(&broken)).is_none());
    }
}
