//! Runs: the record of one export run (one interval of one export), its statuses, and the small reference to
//! it that the state machine passes between steps.
//!
//! A run is keyed by export and interval end, so a second trigger of the same interval finds the same run.
//! Each execution working on a run is one `attempt`; every state transition is a conditional write on the
//! attempt and the current status ([`crate::store::RunStore`]), so an attempt that was taken over cannot
//! overwrite its successor's record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::Interval;

/// The reference's run statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    Starting,
    Running,
    Completed,
    /// Ended by an error retrying cannot fix.
    Failed,
    /// Ended by a retryable error after the state machine's retries ran out; a retry may succeed.
    FailedRetryable,
    Cancelled,
    TimedOut,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Starting => "Starting",
            RunStatus::Running => "Running",
            RunStatus::Completed => "Completed",
            RunStatus::Failed => "Failed",
            RunStatus::FailedRetryable => "FailedRetryable",
            RunStatus::Cancelled => "Cancelled",
            RunStatus::TimedOut => "TimedOut",
        }
    }

    /// Whether an execution is (or was, if it died) working on the run.
    pub fn is_in_flight(&self) -> bool {
        matches!(self, RunStatus::Starting | RunStatus::Running)
    }
}

/// One file a run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    pub key: String,
    pub bytes: u64,
    pub records: u64,
}

/// What a run exported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOutcome {
    pub records: u64,
    /// Bytes of the data files (the manifest not included).
    pub bytes: u64,
    pub files: Vec<WrittenFile>,
    pub manifest_key: Option<String>,
}

impl ExportOutcome {
    pub fn new(files: Vec<WrittenFile>, manifest_key: Option<String>) -> Self {
        ExportOutcome {
            records: files.iter().map(|f| f.records).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
            manifest_key,
        }
    }

    pub fn keys(&self) -> Vec<&str> {
        self.files.iter().map(|f| f.key.as_str()).collect()
    }
}

/// One run as the runs table stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub export_id: String,
    /// The sort key: interval end, RFC 3339 UTC (`2026-11-21T10:00:00Z`), so a query returns runs in time order.
    pub data_interval_end: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub run_id: String,
    pub team_id: i64,
    pub status: RunStatus,
    /// The execution attempt working on the run (1 for the first trigger, +1 for each later one).
    pub attempt: u32,
    /// Step retries after retryable errors, over all attempts.
    #[serde(default)]
    pub retries: u32,
    /// How many times this attempt planned the run (more than once when a lake object changed under a chunk).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub plans: u32,
    #[serde(default)]
    pub records_total_count: Option<u64>,
    #[serde(default)]
    pub records_completed: Option<u64>,
    #[serde(default)]
    pub bytes_exported: Option<u64>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub manifest_key: Option<String>,
    /// Destination keys this attempt wrote (data files as each chunk completes, the manifest before it is
    /// written), until the run completes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written_files: Vec<String>,
    /// Keys earlier attempts of the interval wrote (their recorded files, manifest and written keys), until the
    /// attempt that completes deletes the ones it did not write again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_files: Vec<String>,
    #[serde(default)]
    pub latest_error: Option<String>,
    /// The Step Functions execution of the latest attempt.
    #[serde(default)]
    pub execution: Option<String>,
    #[serde(default)]
    pub backfill_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Run {
    /// A new run of an export's interval: attempt 1, `Starting`, nothing exported yet.
    pub fn new(
        export_id: &str,
        team_id: i64,
        interval: Interval,
        execution: Option<String>,
        backfill_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Run {
            export_id: export_id.to_string(),
            data_interval_end: interval.end,
            data_interval_start: interval.start,
            run_id: run_id(export_id, interval.end),
            team_id,
            status: RunStatus::Starting,
            attempt: 1,
            retries: 0,
            plans: 0,
            records_total_count: None,
            records_completed: None,
            bytes_exported: None,
            files: Vec::new(),
            manifest_key: None,
            written_files: Vec::new(),
            earlier_files: Vec::new(),
            latest_error: None,
            execution,
            backfill_id,
            created_at: now,
            started_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    /// The keys earlier attempts wrote that a completing attempt keeping `kept` (its files and manifest) must
    /// delete: recorded on the run, never anything else under the prefix.
    pub fn stale_files(&self, kept: &std::collections::BTreeSet<&str>) -> std::collections::BTreeSet<String> {
        self.earlier_files
            .iter()
            .chain(&self.written_files)
            .filter(|key| !kept.contains(key.as_str()))
            .cloned()
            .collect()
    }

    /// Every key this run's record names as written: the files and manifest of the attempt that completed, the
    /// keys this attempt wrote so far and those of earlier attempts.
    pub(crate) fn written_by_attempts(&self) -> std::collections::BTreeSet<String> {
        self.files
            .iter()
            .chain(&self.manifest_key)
            .chain(&self.written_files)
            .chain(&self.earlier_files)
            .cloned()
            .collect()
    }

    pub fn interval(&self) -> Interval {
        Interval { start: self.data_interval_start, end: self.data_interval_end }
    }

    pub fn reference(&self) -> RunRef {
        RunRef {
            team_id: self.team_id,
            export_id: self.export_id.clone(),
            run_id: self.run_id.clone(),
            attempt: self.attempt,
            interval: self.interval(),
        }
    }
}

/// What the state machine passes between steps: ids, the interval and the attempt; never a config or secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRef {
    pub team_id: i64,
    pub export_id: String,
    pub run_id: String,
    pub attempt: u32,
    #[serde(flatten)]
    pub interval: Interval,
}

/// The id of the run of an export's interval: a UUID (v5) of the export id and the interval end, so every
/// trigger of the same interval names the same run.
pub fn run_id(export_id: &str, interval_end: DateTime<Utc>) -> String {
    let name = format!("{export_id}/{}", interval_end.timestamp());
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_stable_per_interval() {
        let end = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(run_id("e1", end), run_id("e1", end));
        assert_ne!(run_id("e1", end), run_id("e2", end));
        assert_ne!(run_id("e1", end), run_id("e1", end + chrono::Duration::hours(1)));
    }

    #[test]
    fn run_refs_carry_ids_and_times_only() {
        let interval = Interval::parse("2026-11-21T09:00:00Z", "2026-11-21T10:00:00Z").unwrap();
        let r = RunRef { team_id: 2, export_id: "e".into(), run_id: "r".into(), attempt: 1, interval };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"team_id": 2, "export_id": "e", "run_id": "r", "attempt": 1,
                "data_interval_start": "2026-11-21T09:00:00Z", "data_interval_end": "2026-11-21T10:00:00Z"})
        );
        assert_eq!(serde_json::from_value::<RunRef>(json).unwrap(), r);
    }

    #[test]
    fn a_completing_attempt_deletes_only_what_earlier_attempts_recorded_and_it_did_not_write() {
        let interval = Interval::parse("2026-11-21T09:00:00Z", "2026-11-21T10:00:00Z").unwrap();
        let mut run = Run::new("e", 1, interval, None, None, Utc::now());
        run.files = vec!["p/a-0.jsonl".into(), "p/a-1.jsonl".into(), "p/a-2.jsonl".into()];
        run.manifest_key = Some("p/a_manifest.json".into());
        run.written_files = vec!["p/a-3.jsonl".into()];
        // What the next attempt inherits: the completed attempt's files and manifest, and the written keys.
        let earlier = run.written_by_attempts();
        assert_eq!(earlier.len(), 5);
        let next = Run { earlier_files: earlier.into_iter().collect(), written_files: vec![], ..run };
        // It wrote two files (one of the same name) and no manifest.
        let kept = ["p/a-0.jsonl", "p/b.jsonl"].into_iter().collect();
        let stale: Vec<String> = next.stale_files(&kept).into_iter().collect();
        assert_eq!(stale, ["p/a-1.jsonl", "p/a-2.jsonl", "p/a-3.jsonl", "p/a_manifest.json"]);
    }
}
