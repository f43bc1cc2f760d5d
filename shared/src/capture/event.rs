//! One captured event, checked and normalised as PostHog's capture and ingestion do: `event` a non-empty string;
//! `distinct_id` from `distinct_id`, `$distinct_id` or `properties.distinct_id`, stringified and cut to 200
//! characters; `uuid` kept when valid, else a new UUIDv7; `properties` an object, with the top-level `$set` and
//! `$set_once` merged into it; and the timestamp corrected for the client's clock, as PostHog does.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::request::{PropertiesPeek, RawObject};
use super::CaptureError;
use crate::event::EventRow;

/// The longest distinct id kept, in characters (longer ones are cut, as PostHog does).
pub const MAX_DISTINCT_ID_CHARS: usize = 200;
/// A timestamp further in the future than this is replaced by the time of capture (PostHog's rule).
const FUTURE_CUTOFF: Duration = Duration::hours(23);

/// An event as capture accepted it, before the lake stamps it.
#[derive(Debug, Clone)]
pub struct CapturedEvent {
    pub uuid: String,
    pub event: String,
    pub distinct_id: String,
    /// A JSON object.
    pub properties: Box<RawValue>,
    pub timestamp: DateTime<Utc>,
}

impl CapturedEvent {
    /// The lake's row of the event, for `team_id`, captured at `created_at` and landed at `inserted_at`.
    pub fn into_row(self, team_id: i64, created_at: DateTime<Utc>, inserted_at: DateTime<Utc>) -> EventRow {
        EventRow {
            team_id,
            uuid: self.uuid,
            event: self.event,
            distinct_id: self.distinct_id,
            person_id: None,
            properties: Some(self.properties),
            person_properties: None,
            elements_chain: None,
            timestamp: self.timestamp.timestamp_micros(),
            created_at: Some(created_at.timestamp_micros()),
            inserted_at: inserted_at.timestamp_micros(),
        }
    }
}

/// Checks and normalises event `index` of a request sent at `sent_at` (by the client's clock) and received at
/// `now`.
pub fn normalize(
    index: usize,
    raw: &RawObject<'_>,
    sent_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<CapturedEvent, CaptureError> {
    let invalid = |field: &'static str, reason: &str| CaptureError::invalid_event(index, field, reason);
    let event = match raw.event.map(|v| serde_json::from_str::<String>(v.get())) {
        None => return Err(invalid("event", "is required")),
        Some(Err(_)) => return Err(invalid("event", "must be a string")),
        Some(Ok(name)) if name.is_empty() => return Err(invalid("event", "must not be empty")),
        Some(Ok(name)) => name,
    };
    let peek = PropertiesPeek::of(raw.properties).ok_or_else(|| invalid("properties", "must be an object"))?;
    let distinct_id = [raw.distinct_id, raw.dollar_distinct_id, peek.distinct_id]
        .into_iter()
        .flatten()
        .find_map(distinct_id_text)
        .ok_or_else(|| invalid("distinct_id", "is required (or `$distinct_id`, or `properties.distinct_id`)"))?;
    let uuid = match raw.uuid.map(|v| serde_json::from_str::<String>(v.get())) {
        None => uuid::Uuid::now_v7().to_string(),
        Some(Ok(text)) if text.is_empty() => uuid::Uuid::now_v7().to_string(),
        Some(Ok(text)) => {
            uuid::Uuid::parse_str(&text).map_err(|_| invalid("uuid", "must be a UUID"))?.hyphenated().to_string()
        }
        Some(Err(_)) => return Err(invalid("uuid", "must be a string")),
    };
    let timestamp = match raw.timestamp.map(|v| serde_json::from_str::<String>(v.get())) {
        None => None,
        Some(Ok(text)) => Some(parse_time(&text).ok_or_else(|| invalid("timestamp", "is not a time (ISO 8601)"))?),
        Some(Err(_)) => return Err(invalid("timestamp", "must be a string (ISO 8601)")),
    };
    let offset = match raw.offset.map(|v| serde_json::from_str::<i64>(v.get())) {
        None => None,
        Some(Ok(ms)) => Some(ms),
        Some(Err(_)) => return Err(invalid("offset", "must be an integer (milliseconds)")),
    };
    let properties = properties_with_sets(index, raw)?;
    Ok(CapturedEvent { uuid, event, distinct_id, properties, timestamp: event_time(timestamp, offset, sent_at, now) })
}

/// A distinct id's text: strings as they are, numbers and containers as JSON; `None` for null or empty.
fn distinct_id_text(raw: &RawValue) -> Option<String> {
    let value: Value = serde_json::from_str(raw.get()).ok()?;
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s,
        other => other.to_string(),
    };
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(MAX_DISTINCT_ID_CHARS) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text,
    })
}

/// The event's properties (`{}` when absent) with the top-level `$set` and `$set_once` merged into theirs
/// (the top-level values win).
fn properties_with_sets(index: usize, raw: &RawObject<'_>) -> Result<Box<RawValue>, CaptureError> {
    let empty = || RawValue::from_string("{}".into()).expect("an empty object");
    if raw.set.is_none() && raw.set_once.is_none() {
        return Ok(match raw.properties {
            Some(p) => p.to_owned(),
            None => empty(),
        });
    }
    let mut properties: Map<String, Value> = match raw.properties {
        Some(p) => serde_json::from_str(p.get())
            .map_err(|_| CaptureError::invalid_event(index, "properties", "must be an object"))?,
        None => Map::new(),
    };
    for (field, raw_set) in [("$set", raw.set), ("$set_once", raw.set_once)] {
        let Some(raw_set) = raw_set else { continue };
        let set: Map<String, Value> = serde_json::from_str(raw_set.get())
            .map_err(|_| CaptureError::invalid_event(index, field, "must be an object"))?;
        let merged = properties.entry(field).or_insert_with(|| Value::Object(Map::new()));
        match merged {
            Value::Object(existing) => existing.extend(set),
            other => *other = Value::Object(set),
        }
    }
    let text = serde_json::to_string(&properties).expect("JSON values serialize");
    Ok(RawValue::from_string(text).expect("serialized JSON is JSON"))
}

/// The event's time, as PostHog computes it: with `sent_at`, the client's clock skew is removed
/// (`now + (timestamp − sent_at)`); an `offset` (milliseconds before sending) counts back from `now`; else the
/// timestamp as sent, or `now`. A time more than 23 hours ahead becomes `now`, one outside years 0–9999 the epoch.
pub fn event_time(
    timestamp: Option<DateTime<Utc>>,
    offset: Option<i64>,
    sent_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut time = match (timestamp, sent_at) {
        (Some(t), Some(sent)) => now + (t - sent),
        (Some(t), None) => t,
        (None, _) => now,
    };
    if let Some(ms) = offset {
        time = now - Duration::milliseconds(ms);
    }
    if time - now > FUTURE_CUTOFF {
        time = now;
    }
    if !(0..=9999).contains(&time.year()) {
        time = DateTime::UNIX_EPOCH;
    }
    time
}

/// Parses the times SDKs send: RFC 3339 (also with a `+HH` offset), a date and time without a zone (UTC), a
/// date, or milliseconds / seconds since the epoch as digits.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    // `2026-01-02T03:04:05.678+03` → `+03:00`.
    let bytes = text.as_bytes();
    if bytes.len() > 19
        && matches!(bytes[bytes.len() - 3], b'+' | b'-')
        && bytes[bytes.len() - 2..].iter().all(u8::is_ascii_digit)
    {
        if let Ok(t) = DateTime::parse_from_rfc3339(&format!("{text}:00")) {
            return Some(t.to_utc());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc());
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        return if text.len() >= 13 { DateTime::from_timestamp_millis(n) } else { DateTime::from_timestamp(n, 0) };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::request::parse;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    fn normalize_one(json: &str) -> Result<CapturedEvent, CaptureError> {
        let parsed = parse(json.as_bytes()).unwrap();
        normalize(0, &parsed.events[0], None, now())
    }

    #[test]
    fn required_fields_name_themselves() {
        let field = |json: &str| match normalize_one(json) {
            Err(CaptureError::InvalidEvent { field, .. }) => field,
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(field(r#"{"distinct_id":"d"}"#), "event");
        assert_eq!(field(r#"{"event":"","distinct_id":"d"}"#), "event");
        assert_eq!(field(r#"{"event":7,"distinct_id":"d"}"#), "event");
        assert_eq!(field(r#"{"event":"e"}"#), "distinct_id");
        assert_eq!(field(r#"{"event":"e","distinct_id":null}"#), "distinct_id");
        assert_eq!(field(r#"{"event":"e","distinct_id":""}"#), "distinct_id");
        assert_eq!(field(r#"{"event":"e","distinct_id":"d","properties":[1]}"#), "properties");
        assert_eq!(field(r#"{"event":"e","distinct_id":"d","uuid":"nope"}"#), "uuid");
        assert_eq!(field(r#"{"event":"e","distinct_id":"d","timestamp":"yesterday"}"#), "timestamp");
        assert_eq!(field(r#"{"event":"e","distinct_id":"d","timestamp":1700000000}"#), "timestamp");
        assert_eq!(field(r#"{"event":"e","distinct_id":"d","offset":"5"}"#), "offset");
        assert_eq!(field(r#"{"event":"e","distinct_id":"d","$set":"x"}"#), "$set");
    }

    #[test]
    fn distinct_ids_are_found_stringified_and_cut() {
        let id = |json: &str| normalize_one(json).unwrap().distinct_id;
        assert_eq!(id(r#"{"event":"e","distinct_id":"myid"}"#), "myid");
        assert_eq!(id(r#"{"event":"e","$distinct_id":"23"}"#), "23");
        assert_eq!(id(r#"{"event":"e","properties":{"distinct_id":"p"}}"#), "p");
        assert_eq!(id(r#"{"event":"e","distinct_id":23,"properties":{"distinct_id":"p"}}"#), "23");
        assert_eq!(id(r#"{"event":"e","distinct_id":23.4}"#), "23.4");
        assert_eq!(id(r#"{"event":"e","distinct_id":["a","b"]}"#), r#"["a","b"]"#);
        assert_eq!(id(r#"{"event":"e","distinct_id":{"string":"a","number":3}}"#), r#"{"number":3,"string":"a"}"#);
        let long = "é".repeat(250);
        assert_eq!(id(&format!(r#"{{"event":"e","distinct_id":"{long}"}}"#)).chars().count(), 200);
    }

    #[test]
    fn uuids_are_kept_or_made() {
        let given = normalize_one(r#"{"event":"e","distinct_id":"d","uuid":"0190F5C0-0000-7000-8000-000000000001"}"#);
        assert_eq!(given.unwrap().uuid, "0190f5c0-0000-7000-8000-000000000001");
        let made = normalize_one(r#"{"event":"e","distinct_id":"d","uuid":""}"#).unwrap().uuid;
        assert_eq!(uuid::Uuid::parse_str(&made).unwrap().get_version_num(), 7);
    }

    #[test]
    fn properties_are_kept_as_sent_and_top_level_sets_merged() {
        let e = normalize_one(r#"{"event":"e","distinct_id":"d","properties":{"$lib":"posthog-python","n":1.50}}"#);
        assert_eq!(e.unwrap().properties.get(), r#"{"$lib":"posthog-python","n":1.50}"#);
        assert_eq!(normalize_one(r#"{"event":"e","distinct_id":"d"}"#).unwrap().properties.get(), "{}");
        let e = normalize_one(
            r#"{"event":"$identify","distinct_id":"d","properties":{"$set":{"a":1,"b":1}},"$set":{"b":2},"$set_once":{"c":3}}"#,
        )
        .unwrap();
        let properties: Value = serde_json::from_str(e.properties.get()).unwrap();
        assert_eq!(properties, serde_json::json!({"$set": {"a": 1, "b": 2}, "$set_once": {"c": 3}}));
    }

    #[test]
    fn times_are_corrected_for_the_clients_clock() {
        let now = Utc::now();
        let t = |s: &str| parse_time(s).unwrap();
        // The client's clock is 1 h fast: its event 10 s before sending happened 10 s before now.
        let sent = now + Duration::hours(1);
        assert_eq!(event_time(Some(sent - Duration::seconds(10)), None, Some(sent), now), now - Duration::seconds(10));
        assert_eq!(event_time(None, Some(1500), None, now), now - Duration::milliseconds(1500));
        assert_eq!(event_time(None, None, None, now), now);
        let past = now - Duration::days(30);
        assert_eq!(event_time(Some(past), None, None, now), past);
        assert_eq!(event_time(Some(now + Duration::days(2)), None, None, now), now, "far future becomes now");
        assert_eq!(t("2026-01-02T03:04:05.678+03").to_rfc3339(), "2026-01-02T00:04:05.678+00:00");
        assert_eq!(t("2026-01-02T03:04:05Z"), t("2026-01-02 03:04:05"));
        assert_eq!(t("2026-01-02T03:04:05.5"), t("2026-01-02T03:04:05.500Z"));
        assert_eq!(t("2026-01-02"), t("2026-01-02T00:00:00Z"));
        assert_eq!(t("1767323045678").timestamp_millis(), 1_767_323_045_678);
        assert_eq!(t("1767323045").timestamp(), 1_767_323_045);
        assert_eq!(parse_time("2026-13-02"), None);
    }
}
