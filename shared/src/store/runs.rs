//! The runs table: one item per (export, interval end), every state transition a conditional write on the
//! run's attempt and status.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Duration, Utc};

use super::{item_error, n, s, time_value as time};
use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, Result};
use crate::runs::ExportOutcome;
use crate::runs::{Run, RunRef, RunStatus};
use crate::time::Interval;

/// One page of runs, and the cursor of the next page if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Pass as `before` for the next page.
    pub next: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct RunStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// What [`RunStore::begin`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// This trigger owns a new attempt of the run (`Starting`).
    Started(Run),
    /// Another execution is working on the run; this trigger does nothing.
    InProgress(Run),
}

fn status(v: RunStatus) -> AttributeValue {
    s(v.as_str())
}

/// An update expression with its values (`#status` is the only attribute name that needs aliasing).
struct Update {
    expression: String,
    condition: String,
    values: HashMap<String, AttributeValue>,
}

impl RunStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        RunStore { client, table: table.into() }
    }

    fn key(export_id: &str, interval_end: DateTime<Utc>) -> HashMap<String, AttributeValue> {
        HashMap::from([("export_id".to_string(), s(export_id)), ("data_interval_end".to_string(), time(interval_end))])
    }

    pub async fn get(&self, export_id: &str, interval_end: DateTime<Utc>) -> Result<Option<Run>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(export_id, interval_end)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "GetItem", &self.table, None))?;
        out.item.map(|item| serde_dynamo::from_item(item).map_err(|e| item_error(&self.table, e))).transpose()
    }

    /// An export's runs, newest interval first.
    pub async fn list(&self, export_id: &str, limit: i32) -> Result<Vec<Run>> {
        super::latest_of_export(&self.client, &self.table, export_id, limit).await
    }

    /// One page of an export's runs, newest interval first: at most `limit` runs whose interval ends before
    /// `before` (the previous page's cursor) and lies inside `within` when given.
    pub async fn page(
        &self,
        export_id: &str,
        limit: i32,
        before: Option<DateTime<Utc>>,
        within: Option<Interval>,
    ) -> Result<RunPage> {
        // Sort keys compare as text: the bounds must have the same four-digit-year form.
        let lowest = within.map(|w| w.start).unwrap_or(DateTime::UNIX_EPOCH).max(DateTime::UNIX_EPOCH);
        let last = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z").expect("a time").to_utc();
        let mut highest = within.map(|w| w.end).unwrap_or(last).min(last);
        if let Some(before) = before {
            highest = highest.min(before - Duration::seconds(1));
        }
        if highest < lowest {
            return Ok(RunPage { runs: Vec::new(), next: None });
        }
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("export_id = :e AND data_interval_end BETWEEN :lo AND :hi")
            .expression_attribute_values(":e", s(export_id))
            .expression_attribute_values(":lo", time(lowest))
            .expression_attribute_values(":hi", time(highest))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(within) = within {
            query = query
                .filter_expression("data_interval_start >= :start")
                .expression_attribute_values(":start", time(within.start));
        }
        let out = query.send().await.map_err(|e| classify_sdk_error(e, "Query", &self.table, None))?;
        let runs = out
            .items()
            .iter()
            .map(|item| serde_dynamo::from_item::<_, Run>(item.clone()).map_err(|e| item_error(&self.table, e)))
            .collect::<Result<Vec<_>>>()?;
        let next = match out.last_evaluated_key() {
            Some(key) => Some(
                serde_dynamo::from_attribute_value(key["data_interval_end"].clone())
                    .map_err(|e| item_error(&self.table, e))?,
            ),
            None => None,
        };
        Ok(RunPage { runs, next })
    }

    /// A run by its id (through the `run_id` index).
    pub async fn get_by_id(&self, run_id: &str) -> Result<Option<Run>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(super::RUN_ID_INDEX)
            .key_condition_expression("run_id = :r")
            .expression_attribute_values(":r", s(run_id))
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "Query", &self.table, None))?;
        let Some(key) = out.items().first() else { return Ok(None) };
        // The index is eventually consistent: read the item itself.
        let run: Run = serde_dynamo::from_item(key.clone()).map_err(|e| item_error(&self.table, e))?;
        self.get(&run.export_id, run.data_interval_end).await
    }

    /// Cancels a run that is `Starting` or `Running`, whichever attempt holds it: the attempt's next transition
    /// then fails, so it stops. A run already ended is returned unchanged.
    pub async fn cancel(&self, run: &Run, now: DateTime<Utc>) -> Result<Run> {
        let update = Update {
            expression: "SET #status = :cancelled, finished_at = :now, updated_at = :now".into(),
            condition: "#status IN (:starting, :running)".into(),
            values: HashMap::from([
                (":cancelled".to_string(), status(RunStatus::Cancelled)),
                (":now".to_string(), time(now)),
                (":starting".to_string(), status(RunStatus::Starting)),
                (":running".to_string(), status(RunStatus::Running)),
            ]),
        };
        match self.update(&run.export_id, run.data_interval_end, update).await {
            Ok(run) => Ok(run),
            Err(UpdateError::ConditionFailed) => {
                Ok(self.get(&run.export_id, run.data_interval_end).await?.unwrap_or(run.clone()))
            }
            Err(UpdateError::Other(e)) => Err(e),
        }
    }

    /// Claims the run of `new`'s interval for a new attempt: creates it (attempt 1, `Starting`) if it does not
    /// exist; takes it over (attempt + 1, `Starting`, results of the previous attempt cleared) if it ended or
    /// if its execution has not written for `lease`; else reports it in progress.
    pub async fn begin(&self, new: Run, lease: Duration, now: DateTime<Utc>) -> Result<Begin> {
        let item = serde_dynamo::to_item(&new).map_err(|e| item_error(&self.table, e))?;
        let created = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(export_id)")
            .send()
            .await;
        match created {
            Ok(_) => return Ok(Begin::Started(new)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(classify_sdk_error(e, "PutItem", &self.table, None)),
        }
        // Two triggers racing for the same run: the conditional update lets one through; the other sees the
        // run in flight on its next read.
        for _ in 0..3 {
            let existing = self
                .get(&new.export_id, new.data_interval_end)
                .await?
                .ok_or_else(|| ExportError::internal(format!("run `{}` vanished while starting", new.run_id)))?;
            if existing.status.is_in_flight() && now - existing.updated_at < lease {
                return Ok(Begin::InProgress(existing));
            }
            let mut values = HashMap::from([
                (":starting".to_string(), status(RunStatus::Starting)),
                (":next".to_string(), n(existing.attempt + 1)),
                (":now".to_string(), time(now)),
                (":seen_attempt".to_string(), n(existing.attempt)),
                (":seen_status".to_string(), status(existing.status)),
            ]);
            let mut set = "#status = :starting, attempt = :next, started_at = :now, updated_at = :now".to_string();
            if let Some(execution) = &new.execution {
                values.insert(":execution".into(), s(execution.clone()));
                set.push_str(", execution = :execution");
            }
            if let Some(backfill) = &new.backfill_id {
                values.insert(":backfill".into(), s(backfill.clone()));
                set.push_str(", backfill_id = :backfill");
            }
            // What the earlier attempts wrote, for the attempt that completes to delete what it does not write.
            let earlier: Vec<AttributeValue> = existing.written_by_attempts().into_iter().map(s).collect();
            if !earlier.is_empty() {
                values.insert(":earlier".into(), AttributeValue::L(earlier));
                set.push_str(", earlier_files = :earlier");
            }
            let update = Update {
                expression: format!(
                    "SET {set} REMOVE finished_at, records_total_count, records_completed, bytes_exported, files, \
                     manifest_key, written_files, started_chunks, plans"
                ),
                condition: "attempt = :seen_attempt AND #status = :seen_status".into(),
                values,
            };
            match self.update(&new.export_id, new.data_interval_end, update).await {
                Ok(run) => return Ok(Begin::Started(run)),
                Err(UpdateError::ConditionFailed) => continue,
                Err(UpdateError::Other(e)) => return Err(e),
            }
        }
        let existing = self.get(&new.export_id, new.data_interval_end).await?;
        Err(ExportError::Superseded {
            run_id: new.run_id.clone(),
            message: format!("could not claim the run: it keeps changing ({:?})", existing.map(|r| r.status)),
        })
    }

    /// `Starting` → `Running`.
    pub async fn mark_running(&self, run: &RunRef, now: DateTime<Utc>) -> Result<Run> {
        self.transition(
            run,
            "SET #status = :running, updated_at = :now",
            &[RunStatus::Starting],
            [(":running", status(RunStatus::Running)), (":now", time(now))],
        )
        .await
    }

    /// Records the number of rows the run will export.
    pub async fn set_total(&self, run: &RunRef, total: u64, now: DateTime<Utc>) -> Result<Run> {
        self.transition(
            run,
            "SET records_total_count = :total, updated_at = :now",
            &[RunStatus::Running],
            [(":total", n(total)), (":now", time(now))],
        )
        .await
    }

    /// Keeps a retryable failure's message as the run's latest error (the retry is counted when the step starts
    /// again: [`RunStore::start_chunk`]).
    pub async fn record_error(&self, run: &RunRef, error: &str, now: DateTime<Utc>) -> Result<Run> {
        self.transition(
            run,
            "SET latest_error = :error, updated_at = :now",
            &[RunStatus::Running],
            [(":error", s(error)), (":now", time(now))],
        )
        .await
    }

    /// Records that chunk `chunk` of this attempt starts. A chunk that started before in this attempt is being
    /// retried by the state machine — after an error, or after its function crashed or timed out, which no
    /// process lived to record — and counts as one retry of the run. Returns whether it was a retry.
    pub async fn start_chunk(&self, run: &RunRef, chunk: usize, now: DateTime<Utc>) -> Result<bool> {
        let chunk_value = s(chunk.to_string());
        let update = Update {
            expression: "SET updated_at = :now ADD started_chunks :chunks".into(),
            condition: "attempt = :attempt AND #status = :running \
                        AND (attribute_not_exists(started_chunks) OR NOT contains(started_chunks, :chunk))"
                .into(),
            values: HashMap::from([
                (":now".to_string(), time(now)),
                (":chunks".to_string(), AttributeValue::Ss(vec![chunk.to_string()])),
                (":chunk".to_string(), chunk_value),
                (":attempt".to_string(), n(run.attempt)),
                (":running".to_string(), status(RunStatus::Running)),
            ]),
        };
        match self.update(&run.export_id, run.interval.end, update).await {
            Ok(_) => Ok(false),
            // Started before (or the run moved on: the transition below says which).
            Err(UpdateError::ConditionFailed) => {
                self.transition(
                    run,
                    "SET updated_at = :now ADD retries :one",
                    &[RunStatus::Running],
                    [(":now", time(now)), (":one", n(1))],
                )
                .await?;
                Ok(true)
            }
            Err(UpdateError::Other(e)) => Err(e),
        }
    }

    /// Records that this attempt plans the run; returns the plan's number in the attempt (1 for the first).
    /// Planning again — after a chunk found a lake object changed, or after planning failed — counts as one retry
    /// of the run and forgets which chunks of the earlier plan started, so the new plan's chunks are not retries.
    pub async fn start_plan(&self, run: &RunRef, now: DateTime<Utc>) -> Result<u32> {
        let first = Update {
            expression: "SET plans = :one, updated_at = :now".into(),
            condition: "attempt = :attempt AND #status = :running AND attribute_not_exists(plans)".into(),
            values: HashMap::from([
                (":one".to_string(), n(1)),
                (":now".to_string(), time(now)),
                (":attempt".to_string(), n(run.attempt)),
                (":running".to_string(), status(RunStatus::Running)),
            ]),
        };
        match self.update(&run.export_id, run.interval.end, first).await {
            Ok(record) => Ok(record.plans),
            // Planned before (or the run moved on: the transition below says which).
            Err(UpdateError::ConditionFailed) => {
                let record = self
                    .transition(
                        run,
                        "SET updated_at = :now ADD plans :one, retries :one REMOVE started_chunks",
                        &[RunStatus::Running],
                        [(":now", time(now)), (":one", n(1))],
                    )
                    .await?;
                Ok(record.plans)
            }
            Err(UpdateError::Other(e)) => Err(e),
        }
    }

    /// Records destination keys this attempt wrote (or is about to write), before they can be left behind.
    pub async fn record_written(&self, run: &RunRef, keys: &[String], now: DateTime<Utc>) -> Result<Run> {
        let keys: Vec<AttributeValue> = keys.iter().cloned().map(s).collect();
        self.transition(
            run,
            "SET written_files = list_append(if_not_exists(written_files, :empty), :keys), updated_at = :now",
            &[RunStatus::Running],
            [(":keys", AttributeValue::L(keys)), (":empty", AttributeValue::L(Vec::new())), (":now", time(now))],
        )
        .await
    }

    /// `Running` → `Completed`, with what the run wrote (the keys written and earlier ones are forgotten: the
    /// earlier ones it did not write again are deleted by then).
    pub async fn complete(&self, run: &RunRef, outcome: &ExportOutcome, now: DateTime<Utc>) -> Result<Run> {
        let keys: Vec<AttributeValue> = outcome.files.iter().map(|f| s(f.key.clone())).collect();
        let mut set = "SET #status = :completed, records_completed = :records, bytes_exported = :bytes, \
                       files = :files, finished_at = :now, updated_at = :now"
            .to_string();
        let mut values = vec![
            (":completed", status(RunStatus::Completed)),
            (":records", n(outcome.records)),
            (":bytes", n(outcome.bytes)),
            (":files", AttributeValue::L(keys)),
            (":now", time(now)),
        ];
        if let Some(manifest) = &outcome.manifest_key {
            set.push_str(", manifest_key = :manifest");
            values.push((":manifest", s(manifest.clone())));
        }
        set.push_str(" REMOVE latest_error, written_files, earlier_files");
        self.transition(run, &set, &[RunStatus::Running], values).await
    }

    /// `Starting`/`Running` → a terminal failure status, with the error text.
    pub async fn fail(&self, run: &RunRef, to: RunStatus, error: &str, now: DateTime<Utc>) -> Result<Run> {
        self.transition(
            run,
            "SET #status = :failed, latest_error = :error, finished_at = :now, updated_at = :now",
            &[RunStatus::Starting, RunStatus::Running],
            [(":failed", status(to)), (":error", s(error)), (":now", time(now))],
        )
        .await
    }

    /// An update allowed only for this attempt and in one of the `from` statuses.
    async fn transition(
        &self,
        run: &RunRef,
        expression: &str,
        from: &[RunStatus],
        values: impl IntoIterator<Item = (&'static str, AttributeValue)>,
    ) -> Result<Run> {
        let mut values: HashMap<String, AttributeValue> = values.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        values.insert(":attempt".into(), n(run.attempt));
        let mut allowed = Vec::new();
        for (i, from) in from.iter().enumerate() {
            values.insert(format!(":from{i}"), status(*from));
            allowed.push(format!(":from{i}"));
        }
        let update = Update {
            expression: expression.to_string(),
            condition: format!("attempt = :attempt AND #status IN ({})", allowed.join(", ")),
            values,
        };
        match self.update(&run.export_id, run.interval.end, update).await {
            Ok(run) => Ok(run),
            Err(UpdateError::ConditionFailed) => {
                let current = self.get(&run.export_id, run.interval.end).await?;
                Err(ExportError::Superseded {
                    run_id: run.run_id.clone(),
                    message: match current {
                        Some(c) => format!(
                            "attempt {} cannot move the run from {} (attempt {} holds it)",
                            run.attempt,
                            c.status.as_str(),
                            c.attempt
                        ),
                        None => "the run record does not exist".into(),
                    },
                })
            }
            Err(UpdateError::Other(e)) => Err(e),
        }
    }

    async fn update(&self, export_id: &str, interval_end: DateTime<Utc>, update: Update) -> Result<Run, UpdateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(export_id, interval_end)))
            .update_expression(update.expression)
            .condition_expression(format!("attribute_exists(export_id) AND {}", update.condition))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                serde_dynamo::from_item(item).map_err(|e| UpdateError::Other(item_error(&self.table, e)))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(UpdateError::ConditionFailed)
            }
            Err(e) => Err(UpdateError::Other(classify_sdk_error(e, "UpdateItem", &self.table, None))),
        }
    }
}

enum UpdateError {
    ConditionFailed,
    Other(ExportError),
}
