//! The capture queue's messages. Each message holds one team's events as lake JSON lines *without*
//! `_inserted_at` (the lake writer stamps it when it writes them, so it is the time they become visible),
//! zstd-compressed and base64-encoded, at most [`MAX_BODY_BYTES`]; its `team_id` and `events` are message
//! attributes. One request becomes as few messages as fit, sent in `SendMessageBatch` calls of at most ten
//! messages and SQS's 256 KiB.

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::aws_error::classify_sdk_error;
use crate::capture::CaptureError;
use crate::error::{ExportError, InternalContext, Result};
use crate::event::EventRow;

/// The largest message body: SQS takes 262,144 bytes per message and per batch call, attributes included.
pub const MAX_BODY_BYTES: usize = 250_000;
/// How much JSON goes into one message before it is compressed (~5–8× smaller once compressed).
const TARGET_RAW_BYTES: usize = 512 * 1024;
/// The zstd level of messages.
const LEVEL: i32 = 3;
/// Partial `SendMessageBatch` failures are sent again this many times before the request fails.
const SEND_ATTEMPTS: usize = 3;

/// One message for the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessage {
    pub team_id: i64,
    pub events: usize,
    /// base64 of the zstd of the JSON lines.
    pub body: String,
}

/// A team's rows as queue messages; an event too large to fit a message alone is refused (413).
pub fn encode(team_id: i64, rows: &[EventRow]) -> std::result::Result<Vec<QueuedMessage>, CaptureError> {
    let lines: Vec<Vec<u8>> = rows
        .iter()
        .map(|row| {
            let mut line = serde_json::to_vec(&row.as_queued_json()).expect("rows serialize");
            line.push(b'\n');
            line
        })
        .collect();
    let mut messages = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        if size > 0 && size + line.len() > TARGET_RAW_BYTES {
            pack(team_id, &lines[start..i], start, &mut messages)?;
            (start, size) = (i, 0);
        }
        size += line.len();
    }
    if start < lines.len() {
        pack(team_id, &lines[start..], start, &mut messages)?;
    }
    Ok(messages)
}

/// Compresses `lines` into one message, or splits them in halves until each half fits.
fn pack(
    team_id: i64,
    lines: &[Vec<u8>],
    first_index: usize,
    out: &mut Vec<QueuedMessage>,
) -> std::result::Result<(), CaptureError> {
    let compressed = zstd::bulk::compress(&lines.concat(), LEVEL).expect("zstd compresses into memory");
    let body = BASE64.encode(compressed);
    if body.len() <= MAX_BODY_BYTES {
        out.push(QueuedMessage { team_id, events: lines.len(), body });
        return Ok(());
    }
    if lines.len() == 1 {
        return Err(CaptureError::EventTooLarge { index: first_index, limit: MAX_BODY_BYTES / 4 * 3 });
    }
    let half = lines.len() / 2;
    pack(team_id, &lines[..half], first_index, out)?;
    pack(team_id, &lines[half..], first_index + half, out)
}

/// The JSON lines of a message body.
pub fn decode(body: &str) -> Result<Vec<u8>> {
    let compressed = BASE64.decode(body.trim()).internal("a capture message's base64")?;
    zstd::stream::decode_all(compressed.as_slice()).internal("a capture message's zstd")
}

/// Sends the messages to the queue; fails (retryably) unless every one was accepted.
pub async fn send(client: &aws_sdk_sqs::Client, queue_url: &str, messages: &[QueuedMessage]) -> Result<()> {
    let mut batch: Vec<&QueuedMessage> = Vec::new();
    let mut size = 0;
    for message in messages {
        if batch.len() == 10 || (size > 0 && size + message.body.len() > MAX_BODY_BYTES) {
            send_batch(client, queue_url, &batch).await?;
            (batch, size) = (Vec::new(), 0);
        }
        size += message.body.len();
        batch.push(message);
    }
    if !batch.is_empty() {
        send_batch(client, queue_url, &batch).await?;
    }
    Ok(())
}

async fn send_batch(client: &aws_sdk_sqs::Client, queue_url: &str, messages: &[&QueuedMessage]) -> Result<()> {
    let number = |n: String| MessageAttributeValue::builder().data_type("Number").string_value(n).build();
    let mut pending: Vec<usize> = (0..messages.len()).collect();
    for _ in 0..SEND_ATTEMPTS {
        let entries = pending
            .iter()
            .map(|&i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&messages[i].body)
                    .message_attributes("team_id", number(messages[i].team_id.to_string())?)
                    .message_attributes("events", number(messages[i].events.to_string())?)
                    .build()
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .internal("a SendMessageBatch entry")?;
        let out = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "SendMessageBatch", queue_url, None))?;
        pending = out.failed().iter().filter_map(|f| f.id().parse().ok()).collect();
        if pending.is_empty() {
            return Ok(());
        }
    }
    Err(ExportError::Transient {
        operation: "SendMessageBatch",
        resource: queue_url.to_string(),
        message: format!("{} messages were not accepted after {SEND_ATTEMPTS} attempts", pending.len()),
    })
}

/// The visibility timeout of the queue on the local stack (on AWS, `template.yaml`'s: six times the lake writer's
/// timeout, as AWS advises for event sources).
const LOCAL_VISIBILITY_TIMEOUT_SECONDS: u32 = 30;
/// Deliveries of a message before SQS moves it to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// Creates the queue named by `queue_url` (its last segment) and its dead-letter queue `{name}-dead-letters`
/// (the local stack's setup; on AWS the SAM template creates them). Idempotent.
pub async fn create_queues(client: &aws_sdk_sqs::Client, queue_url: &str) -> Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let name = queue_url.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let dead_letters = format!("{name}-dead-letters");
    let created = client
        .create_queue()
        .queue_name(&dead_letters)
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "CreateQueue", &dead_letters, None))?;
    let dead_letters_url = created.queue_url().unwrap_or_default().to_string();
    let attributes = client
        .get_queue_attributes()
        .queue_url(&dead_letters_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "GetQueueAttributes", &dead_letters, None))?;
    let arn = attributes.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned().unwrap_or_default();
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT}).to_string();
    client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, LOCAL_VISIBILITY_TIMEOUT_SECONDS.to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "CreateQueue", name, None))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::synthetic::SyntheticEvents;
    use chrono::Utc;

    #[test]
    fn rows_round_trip_without_inserted_at_and_split_to_fit() {
        let rows = SyntheticEvents::new(3, 9).events_between(Utc::now(), chrono::Duration::minutes(1), 5_000);
        let messages = encode(9, &rows).unwrap();
        assert!(messages.len() > 1, "5,000 events of ~1 KB make several messages");
        assert!(messages.iter().all(|m| m.body.len() <= MAX_BODY_BYTES && m.team_id == 9));
        assert_eq!(messages.iter().map(|m| m.events).sum::<usize>(), 5_000);
        let lines: Vec<u8> = messages.iter().flat_map(|m| decode(&m.body).unwrap()).collect();
        let text = String::from_utf8(lines).unwrap();
        assert_eq!(text.lines().count(), 5_000);
        assert!(!text.contains("_inserted_at"));
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!((first["team_id"].as_i64(), first["uuid"].as_str()), (Some(9), Some(rows[0].uuid.as_str())));
    }

    #[test]
    fn an_event_too_large_alone_is_refused_by_index() {
        let mut rows = SyntheticEvents::new(3, 9).events_between(Utc::now(), chrono::Duration::minutes(1), 3);
        // ~400 KB of incompressible text.
        let mut x = 88_172_645_463_325_252u64;
        let noise: String = (0..400_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        rows[1].properties = Some(serde_json::value::RawValue::from_string(format!(r#"{{"x":"{noise}"}}"#)).unwrap());
        assert!(matches!(encode(9, &rows), Err(CaptureError::EventTooLarge { index: 1, .. })));
    }
}
