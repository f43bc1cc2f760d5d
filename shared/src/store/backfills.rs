//! The backfills table: one item per backfill, keyed by `(export_id, id)` with time-ordered ids, so one query
//! lists an export's backfills newest first. Every status change is a conditional write on the current status:
//! a cancelled backfill stays cancelled whatever its state machine does next.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::{item_error, n, s, time_value};
use crate::aws_error::classify_sdk_error;
use crate::backfills::{Backfill, BackfillRef, BackfillStatus};
use crate::error::{ExportError, Result};
use crate::time::Interval;

#[derive(Debug, Clone)]
pub struct BackfillStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn status(v: BackfillStatus) -> AttributeValue {
    s(v.as_str())
}

/// What a batch of runs added to a backfill: runs that ended, of which failed, their records, and the failed
/// intervals named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub finished: u64,
    pub failed: u64,
    pub records: u64,
    pub error: Option<String>,
}

impl BackfillStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        BackfillStore { client, table: table.into() }
    }

    fn key(export_id: &str, id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("export_id".to_string(), s(export_id)), ("id".to_string(), s(id))])
    }

    /// Writes a new backfill (a second write of the same id is refused).
    pub async fn create(&self, backfill: &Backfill) -> Result<()> {
        super::put_item(&self.client, &self.table, backfill, Some("attribute_not_exists(id)")).await
    }

    /// A backfill of an export; a missing one is [`ExportError::NotFound`].
    pub async fn get(&self, export_id: &str, id: &str) -> Result<Backfill> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(export_id, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "GetItem", &self.table, None))?;
        let item = out.item.ok_or_else(|| ExportError::NotFound { what: "backfill", id: id.to_string() })?;
        serde_dynamo::from_item(item).map_err(|e| item_error(&self.table, e))
    }

    /// An export's latest backfills, newest first.
    pub async fn list(&self, export_id: &str, limit: i32) -> Result<Vec<Backfill>> {
        super::latest_of_export(&self.client, &self.table, export_id, limit).await
    }

    /// `Starting` → `Running` with the range to run and the number of runs it holds (or → `Completed` at once
    /// when the range is empty). A backfill no longer `Starting` (cancelled) is returned unchanged.
    pub async fn plan(
        &self,
        backfill: &BackfillRef,
        range: Option<Interval>,
        expected_runs: u64,
        now: DateTime<Utc>,
    ) -> Result<Backfill> {
        let mut values = vec![(":expected", n(expected_runs)), (":now", time_value(now))];
        let expression = match range {
            Some(range) => {
                values.push((":to", status(BackfillStatus::Running)));
                values.push((":start", time_value(range.start)));
                values.push((":end", time_value(range.end)));
                "SET #status = :to, expected_runs = :expected, effective_start_at = :start, \
                 effective_end_at = :end, last_updated_at = :now"
            }
            None => {
                values.push((":to", status(BackfillStatus::Completed)));
                "SET #status = :to, expected_runs = :expected, last_updated_at = :now, finished_at = :now"
            }
        };
        self.transition(backfill, expression, &[BackfillStatus::Starting], values).await
    }

    /// Adds the runs that just finished to a backfill's progress and moves `ran_until` (also once it was
    /// cancelled: the runs of the batch under way when it was cancelled still finish and count); `error` names
    /// the intervals that failed, when some did.
    pub async fn record_progress(
        &self,
        backfill: &BackfillRef,
        progress: Progress,
        ran_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Backfill> {
        let mut values = vec![
            (":ran_until", time_value(ran_until)),
            (":now", time_value(now)),
            (":finished", n(progress.finished)),
            (":failed", n(progress.failed)),
            (":records", n(progress.records)),
        ];
        let set = match &progress.error {
            Some(error) => {
                values.push((":error", s(error)));
                "SET ran_until = :ran_until, last_updated_at = :now, latest_error = :error"
            }
            None => "SET ran_until = :ran_until, last_updated_at = :now",
        };
        let expression = format!("{set} ADD finished_runs :finished, failed_runs :failed, total_records :records");
        self.transition(backfill, &expression, &[BackfillStatus::Running, BackfillStatus::Cancelled], values).await
    }

    /// Ends a backfill that is still `Starting` or `Running` (`Completed`, `Failed` with the error, or
    /// `Cancelled`); a backfill already ended is returned unchanged.
    pub async fn finish(
        &self,
        backfill: &BackfillRef,
        to: BackfillStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Backfill> {
        let mut values = vec![(":to", status(to)), (":now", time_value(now))];
        let expression = match error {
            Some(error) => {
                values.push((":error", s(error)));
                "SET #status = :to, latest_error = :error, last_updated_at = :now, finished_at = :now"
            }
            None => "SET #status = :to, last_updated_at = :now, finished_at = :now",
        };
        self.transition(backfill, expression, &[BackfillStatus::Starting, BackfillStatus::Running], values).await
    }

    /// An update allowed only from one of the `from` statuses; otherwise the backfill is returned as it is.
    async fn transition(
        &self,
        backfill: &BackfillRef,
        expression: &str,
        from: &[BackfillStatus],
        values: impl IntoIterator<Item = (&'static str, AttributeValue)>,
    ) -> Result<Backfill> {
        let mut values: HashMap<String, AttributeValue> = values.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let mut allowed = Vec::new();
        for (i, from) in from.iter().enumerate() {
            values.insert(format!(":from{i}"), status(*from));
            allowed.push(format!(":from{i}"));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&backfill.export_id, &backfill.backfill_id)))
            .update_expression(expression)
            .condition_expression(format!("attribute_exists(id) AND #status IN ({})", allowed.join(", ")))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                serde_dynamo::from_item(out.attributes.unwrap_or_default()).map_err(|e| item_error(&self.table, e))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                self.get(&backfill.export_id, &backfill.backfill_id).await
            }
            Err(e) => Err(classify_sdk_error(e, "UpdateItem", &self.table, None)),
        }
    }
}
