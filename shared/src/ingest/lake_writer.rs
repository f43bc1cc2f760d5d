//! The lake writer: the `lake-writer` function, fed batches of capture's queue messages by Lambda's SQS event
//! source. It writes each team's events of the batch as **one** lake object, stamping every row's
//! `_inserted_at` with the time of the write, in that hour's partition:
//! `{lake prefix}events/team_id={team}/date={D}/hour={H}/capture-{batch}.jsonl.zst`. An event is visible in the
//! lake from `_inserted_at` on (give or take the `PutObject`), so a run that starts after its interval ended
//! sees every event stamped inside it.
//!
//! Then it applies the batch's person-affecting events in order ([`super::persons`]) and writes the latest person
//! change of each distinct id they touched as one object of the persons layout,
//! `{lake prefix}persons/team_id={team}/date={D}/hour={H}/capture-{batch}.jsonl.zst`.
//!
//! The object's name is a hash of the batch's message ids: a batch delivered again (the function failed after
//! the write) overwrites its own object. Messages of a team whose write failed are reported as the batch's
//! failures (`ReportBatchItemFailures`), so SQS delivers only them again; after the queue's `maxReceiveCount`
//! a message goes to the dead-letter queue. A message that cannot be read fails alone, named by its id.

use std::collections::BTreeMap;
use std::collections::HashMap;

use chrono::{DateTime, DurationRound, Utc};
use serde::{Deserialize, Serialize};

use super::persons::{apply, combine, person_update};
use super::queue;
use crate::destinations::s3::lake_client;
use crate::error::{InternalContext, Result};
use crate::person::PersonChange;
use crate::settings::Settings;
use crate::sources::lake::table_partition_prefix;
use crate::sources::lake::writer::{lake_object_key, put_object};
use crate::store::{hash_key, PersonStore};
use crate::time::IsoMicros;

/// What the SQS event source hands the function (the fields the writer reads).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SqsRecord {
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub body: String,
    #[serde(rename = "messageAttributes", default)]
    pub attributes: HashMap<String, SqsAttribute>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SqsAttribute {
    #[serde(rename = "stringValue", default)]
    pub string_value: Option<String>,
    #[serde(rename = "dataType", default)]
    pub data_type: Option<String>,
}

/// The messages of a batch to deliver again.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SqsBatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Where the writer writes: the lake, and the persons state of person processing.
#[derive(Debug, Clone)]
pub struct LakeTarget {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
    pub persons: PersonStore,
}

impl LakeTarget {
    /// The lake of [`Settings`] (`BATCH_EXPORT_LAKE_BUCKET`, `BATCH_EXPORT_LAKE_PREFIX`). AWS clients honour
    /// `AWS_ENDPOINT_URL`.
    pub async fn from_env() -> Result<Self> {
        let settings = Settings::from_env()?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(LakeTarget {
            client: lake_client(&aws),
            bucket: settings.lake_bucket()?.to_string(),
            prefix: settings.lake_prefix.clone(),
            persons: PersonStore::new(aws_sdk_dynamodb::Client::new(&aws), settings.tables.persons.clone()),
        })
    }
}

/// Writes a batch of queue messages to the lake at `now`; returns the messages to deliver again.
pub async fn write_batch(lake: &LakeTarget, event: &SqsEvent, now: DateTime<Utc>) -> SqsBatchResponse {
    let mut failed: Vec<String> = Vec::new();
    // Each team's messages, decoded, in the batch's order.
    let mut teams: BTreeMap<i64, Vec<(&str, Vec<u8>)>> = BTreeMap::new();
    for record in &event.records {
        let team = record.attributes.get("team_id").and_then(|a| a.string_value.as_deref()?.parse::<i64>().ok());
        match (team, queue::decode(&record.body)) {
            (Some(team), Ok(lines)) => teams.entry(team).or_default().push((&record.message_id, lines)),
            (team, decoded) => {
                tracing::error!(message_id = %record.message_id, team_id = ?team, error = ?decoded.err().map(|e| e.chain()), "unreadable capture message");
                failed.push(record.message_id.clone());
            }
        }
    }
    let stamp = IsoMicros(now.timestamp_micros()).to_string();
    for (team, messages) in teams {
        let ids: Vec<&str> = messages.iter().map(|(id, _)| *id).collect();
        let written = write_team(lake, team, now, &stamp, &messages).await;
        match written {
            Ok(events) => tracing::info!(team_id = team, messages = ids.len(), events, "wrote to the lake"),
            Err(e) => {
                tracing::error!(team_id = team, messages = ids.len(), error = %e.chain(), "lake write failed");
                failed.extend(ids.iter().map(|id| id.to_string()));
            }
        }
    }
    SqsBatchResponse {
        batch_item_failures: failed.into_iter().map(|item_identifier| BatchItemFailure { item_identifier }).collect(),
    }
}

/// One lake object of a team's messages; returns how many events it holds.
async fn write_team(
    lake: &LakeTarget,
    team: i64,
    now: DateTime<Utc>,
    stamp: &str,
    messages: &[(&str, Vec<u8>)],
) -> Result<usize> {
    let hour = now.duration_trunc(chrono::Duration::hours(1)).expect("an hour");
    let mut stamped = Vec::with_capacity(messages.iter().map(|(_, lines)| lines.len() + lines.len() / 20).sum());
    let mut events = 0;
    for (_, lines) in messages {
        events += stamp_lines(lines, stamp, &mut stamped);
    }
    let mut ids: Vec<&str> = messages.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    let digest = &hash_key(&ids.join("\n"))[..32];
    let key = lake_object_key(&lake.prefix, team, hour, &format!("capture-{digest}.jsonl.zst"));
    let body = zstd::bulk::compress(&stamped, 3)?;
    put_object(&lake.client, &lake.bucket, &key, body).await?;
    // Then the persons: the person-affecting events in order (each distinct id's run combined into one update),
    // and the latest change of each distinct id touched.
    let mut changes: BTreeMap<String, PersonChange> = BTreeMap::new();
    for update in combine(stamped.split(|&b| b == b'\n').filter_map(person_update)) {
        for change in apply(&lake.persons, team, &update, now).await? {
            changes.insert(change.distinct_id.clone(), change);
        }
    }
    if !changes.is_empty() {
        let mut lines = Vec::new();
        for change in changes.values() {
            serde_json::to_writer(&mut lines, change).internal("a person change")?;
            lines.push(b'\n');
        }
        let key = format!("{}capture-{digest}.jsonl.zst", table_partition_prefix(&lake.prefix, "persons", team, hour));
        put_object(&lake.client, &lake.bucket, &key, zstd::bulk::compress(&lines, 3)?).await?;
    }
    Ok(events)
}

/// Appends each JSON line of `lines` to `out` with `"_inserted_at": stamp` as its last field; returns how many.
fn stamp_lines(lines: &[u8], stamp: &str, out: &mut Vec<u8>) -> usize {
    let mut count = 0;
    for line in lines.split(|&b| b == b'\n') {
        let line = line.trim_ascii_end();
        let Some(open) = line.strip_suffix(b"}") else { continue };
        out.extend_from_slice(open);
        out.extend_from_slice(b",\"_inserted_at\":\"");
        out.extend_from_slice(stamp.as_bytes());
        out.extend_from_slice(b"\"}\n");
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_get_their_inserted_at_last() {
        let mut out = Vec::new();
        let n = stamp_lines(b"{\"a\":1}\n{\"b\":{\"c\":2}}\n", "2026-01-01T00:00:00Z", &mut out);
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":1,\"_inserted_at\":\"2026-01-01T00:00:00Z\"}\n{\"b\":{\"c\":2},\"_inserted_at\":\"2026-01-01T00:00:00Z\"}\n"
        );
    }

    #[test]
    fn the_sqs_event_and_answer_shapes() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [{
            "messageId": "m1", "receiptHandle": "r", "body": "eA==", "eventSource": "aws:sqs",
            "messageAttributes": {"team_id": {"stringValue": "7", "dataType": "Number"}}}]}))
        .unwrap();
        assert_eq!(event.records[0].attributes["team_id"].string_value.as_deref(), Some("7"));
        let answer = SqsBatchResponse { batch_item_failures: vec![BatchItemFailure { item_identifier: "m1".into() }] };
        assert_eq!(
            serde_json::to_value(answer).unwrap(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
        );
    }
}
