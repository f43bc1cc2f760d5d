//! The JSON shapes of a capture request, read without copying: a single event object, a bare array of events,
//! or a batch `{"api_key"|"token", "historical_migration", "sent_at", "batch": [...]}`; and the project token it
//! carries (the batch's, else every event's `token`, `$token`, `api_key` or `properties.token`, which must agree).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::CaptureError;

/// One JSON object of a request: an event, or the batch object around events (which has the same fields and
/// more). Each field is kept as its raw JSON, so a value of the wrong type is an error naming its field, not a
/// parse error of the whole request.
#[derive(Debug, Default, Deserialize)]
pub struct RawObject<'a> {
    #[serde(borrow, default)]
    pub event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub distinct_id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "$distinct_id")]
    pub dollar_distinct_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub properties: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub offset: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub uuid: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "$set")]
    pub set: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "$set_once")]
    pub set_once: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub token: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "$token")]
    pub dollar_token: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub api_key: Option<&'a RawValue>,
    // The batch object's own fields.
    #[serde(borrow, default)]
    pub batch: Option<Vec<RawObject<'a>>>,
    #[serde(borrow, default)]
    pub historical_migration: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub sent_at: Option<&'a RawValue>,
}

/// The few properties capture itself reads (the rest are kept as sent).
#[derive(Debug, Default, Deserialize)]
pub struct PropertiesPeek<'a> {
    #[serde(borrow, default)]
    pub distinct_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub token: Option<&'a RawValue>,
}

impl<'a> PropertiesPeek<'a> {
    /// The properties' fields capture reads; `None` when they are not an object.
    pub fn of(properties: Option<&'a RawValue>) -> Option<PropertiesPeek<'a>> {
        match properties {
            None => Some(PropertiesPeek::default()),
            // A struct also reads from an array: only an object will do.
            Some(raw) if raw.get().starts_with('{') => serde_json::from_str(raw.get()).ok(),
            Some(_) => None,
        }
    }
}

/// A request read: its events and what the batch object said.
#[derive(Debug)]
pub struct ParsedRequest<'a> {
    /// The batch's `api_key` or `token`, and which of the two it was.
    pub batch_token: Option<(&'static str, &'a RawValue)>,
    pub historical_migration: bool,
    /// The batch's `sent_at`, when it is a time.
    pub sent_at: Option<DateTime<Utc>>,
    pub events: Vec<RawObject<'a>>,
}

/// Reads a request's JSON (a single event, an array of events, or a batch object).
pub fn parse(json: &[u8]) -> Result<ParsedRequest<'_>, CaptureError> {
    let unreadable = |e: serde_json::Error| CaptureError::Unreadable(format!("invalid JSON: {e}"));
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    let parsed = match first {
        Some(b'[') => ParsedRequest {
            batch_token: None,
            historical_migration: false,
            sent_at: None,
            events: serde_json::from_slice(json).map_err(unreadable)?,
        },
        Some(b'{') => {
            let mut object: RawObject = serde_json::from_slice(json).map_err(unreadable)?;
            match object.batch.take() {
                Some(events) => ParsedRequest {
                    batch_token: object.api_key.map(|t| ("api_key", t)).or(object.token.map(|t| ("token", t))),
                    historical_migration: object.historical_migration.is_some_and(|v| v.get() == "true"),
                    sent_at: object
                        .sent_at
                        .and_then(|v| serde_json::from_str::<&str>(v.get()).ok())
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.to_utc()),
                    events,
                },
                None => ParsedRequest {
                    batch_token: None,
                    historical_migration: false,
                    sent_at: None,
                    events: vec![object],
                },
            }
        }
        _ => return Err(CaptureError::Unreadable("the payload is not a JSON object or array of events".into())),
    };
    if parsed.events.is_empty() {
        return Err(CaptureError::NoEvents);
    }
    Ok(parsed)
}

impl ParsedRequest<'_> {
    /// The project token: the batch's, else the one every event carries (events may leave it out, but those
    /// that carry one must agree).
    pub fn token(&self) -> Result<String, CaptureError> {
        if let Some((field, raw)) = self.batch_token {
            return token_text(field, raw);
        }
        let mut found: Option<String> = None;
        for (index, event) in self.events.iter().enumerate() {
            let carried = [("token", event.token), ("$token", event.dollar_token), ("api_key", event.api_key)]
                .into_iter()
                .find_map(|(field, raw)| raw.map(|raw| (field, raw)));
            let token = match carried {
                Some((field, raw)) => Some(token_text(&format!("batch.{index}.{field}"), raw)?),
                None => match PropertiesPeek::of(event.properties).and_then(|p| p.token) {
                    Some(raw) => Some(token_text(&format!("batch.{index}.properties.token"), raw)?),
                    None => None,
                },
            };
            match (&found, token) {
                (Some(a), Some(b)) if *a != b => return Err(CaptureError::MultipleTokens),
                (None, Some(b)) => found = Some(b),
                _ => {}
            }
        }
        found.ok_or(CaptureError::MissingToken)
    }
}

/// A token's text: a non-empty JSON string that is not a personal or management API key.
fn token_text(field: &str, raw: &RawValue) -> Result<String, CaptureError> {
    let invalid = |reason: &str| CaptureError::InvalidToken { field: field.to_string(), reason: reason.to_string() };
    let token: String = serde_json::from_str(raw.get()).map_err(|_| invalid("must be a string"))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if token.starts_with("bek_") {
        return Err(invalid("is a management API key: events are sent with the project token (phc_…)"));
    }
    if token.starts_with("phx_") {
        return Err(invalid("is a personal API key: events are sent with the project token (phc_…)"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_of(json: &str) -> Result<String, CaptureError> {
        parse(json.as_bytes())?.token()
    }

    #[test]
    fn the_three_shapes() {
        let one = parse(br#"{"event":"e","distinct_id":"d","token":"phc_1"}"#).unwrap();
        assert_eq!(one.events.len(), 1);
        let array = parse(br#" [{"event":"a"},{"event":"b"}]"#).unwrap();
        assert_eq!(array.events.len(), 2);
        let batch = parse(
            br#"{"api_key":"phc_1","historical_migration":true,"sent_at":"2026-01-02T03:04:05.678Z","batch":[{"event":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(batch.events.len(), 1);
        assert!(batch.historical_migration);
        assert_eq!(batch.sent_at.unwrap().to_rfc3339(), "2026-01-02T03:04:05.678+00:00");
        assert_eq!(parse(br#"{"api_key":"k","batch":[]}"#).unwrap_err(), CaptureError::NoEvents);
        assert_eq!(parse(b"[]").unwrap_err(), CaptureError::NoEvents);
        let e = parse(br#"{"event": "e",}"#).unwrap_err();
        assert!(e.to_string().contains("line 1 column"), "{e}");
        assert!(matches!(parse(b"42"), Err(CaptureError::Unreadable(_))));
    }

    #[test]
    fn tokens_from_the_batch_or_every_event() {
        assert_eq!(token_of(r#"{"api_key":"phc_a","batch":[{"event":"e","token":"other"}]}"#).unwrap(), "phc_a");
        assert_eq!(token_of(r#"{"token":"phc_t","batch":[{"event":"e"}]}"#).unwrap(), "phc_t");
        assert_eq!(token_of(r#"{"event":"e","$token":"phc_s"}"#).unwrap(), "phc_s");
        assert_eq!(token_of(r#"{"event":"e","properties":{"token":"phc_p"}}"#).unwrap(), "phc_p");
        assert_eq!(
            token_of(r#"[{"event":"e","token":"phc_a"},{"event":"e"},{"event":"e","api_key":"phc_a"}]"#).unwrap(),
            "phc_a"
        );
        assert_eq!(
            token_of(r#"[{"event":"e","token":"a"},{"event":"e","token":"b"}]"#),
            Err(CaptureError::MultipleTokens)
        );
        assert_eq!(token_of(r#"{"event":"e"}"#), Err(CaptureError::MissingToken));
        let e = token_of(r#"{"api_key":"","batch":[{"event":"e"}]}"#).unwrap_err();
        assert_eq!(e.attr().as_deref(), Some("api_key"));
        let e = token_of(r#"{"api_key":"bek_123","batch":[{"event":"e"}]}"#).unwrap_err();
        assert!(e.to_string().contains("management API key"), "{e}");
        let e = token_of(r#"[{"event":"e","token":7}]"#).unwrap_err();
        assert_eq!(e.attr().as_deref(), Some("batch.0.token"));
    }
}
