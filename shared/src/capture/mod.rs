//! Events in: PostHog's capture protocol (v0), as its SDKs speak it. [`payload`] finds a request's payload and
//! decodes it (form bodies, base64, gzip, the size limits), [`request`] reads its JSON shape and project token,
//! and [`event`] checks each event and normalises it into the lake's row (distinct id, uuid, clock-skew corrected
//! timestamp). Nothing here does I/O: the capture function authenticates the token, stamps the rows and hands
//! them to the lake path.
//!
//! One bad event fails its request, and the error names the event's index and field, so nothing of a request is
//! stored unless all of it is.

pub mod error;
pub mod event;
pub mod payload;
pub mod request;

pub use self::error::CaptureError;
pub use self::event::CapturedEvent;
pub use self::payload::CaptureHttp;

use chrono::{DateTime, Utc};

/// The paths of the single-event endpoints (a single event or an array): PostHog's `/e/`, `/i/v0/e/`,
/// `/capture/`, `/track/` and `/engage/`.
pub const EVENT_PATHS: [&str; 5] = ["/e/", "/i/v0/e/", "/capture/", "/track/", "/engage/"];
/// The path of the batch endpoint.
pub const BATCH_PATH: &str = "/batch/";

/// The most JSON a single-event request may carry, decompressed.
pub const MAX_EVENT_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// The most JSON a `/batch/` request may carry, decompressed.
pub const MAX_BATCH_REQUEST_BYTES: usize = 20 * 1024 * 1024;

/// A capture endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/e/`, `/i/v0/e/`, `/capture/`, `/track/`, `/engage/`.
    Event,
    /// `/batch/`.
    Batch,
}

impl Endpoint {
    /// The endpoint a path names (with or without its trailing `/`).
    pub fn of_path(path: &str) -> Option<Endpoint> {
        let path = path.trim_end_matches('/');
        if path == BATCH_PATH.trim_end_matches('/') {
            return Some(Endpoint::Batch);
        }
        EVENT_PATHS.iter().any(|p| p.trim_end_matches('/') == path).then_some(Endpoint::Event)
    }

    /// The most JSON a request may carry, decompressed.
    pub fn limit(&self) -> usize {
        match self {
            Endpoint::Event => MAX_EVENT_REQUEST_BYTES,
            Endpoint::Batch => MAX_BATCH_REQUEST_BYTES,
        }
    }
}

/// A request's events, checked and normalised, and the project token they were sent with.
#[derive(Debug, Clone)]
pub struct Captured {
    pub token: String,
    /// The batch's `historical_migration` flag (imports of past data).
    pub historical_migration: bool,
    pub events: Vec<CapturedEvent>,
}

/// Reads one capture request received at `now`: its payload, shape, token and every event. Any error fails the
/// whole request.
pub fn capture(http: &CaptureHttp<'_>, now: DateTime<Utc>) -> Result<Captured, CaptureError> {
    let endpoint = Endpoint::of_path(http.path).ok_or(CaptureError::UnknownEndpoint)?;
    let query = payload::QueryParams::parse(http.query);
    let json = payload::json_payload(http, &query, endpoint.limit())?;
    let parsed = request::parse(&json)?;
    let token = parsed.token()?;
    let sent_at = parsed.sent_at.or(query.sent_at);
    let events = parsed
        .events
        .iter()
        .enumerate()
        .map(|(index, raw)| event::normalize(index, raw, sent_at, now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Captured { token, historical_migration: parsed.historical_migration, events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_by_path() {
        for path in ["/e/", "/e", "/i/v0/e/", "/capture/", "/track", "/engage/"] {
            assert_eq!(Endpoint::of_path(path), Some(Endpoint::Event), "{path}");
        }
        assert_eq!(Endpoint::of_path("/batch/"), Some(Endpoint::Batch));
        assert_eq!(Endpoint::of_path("/batch"), Some(Endpoint::Batch));
        assert_eq!(Endpoint::of_path("/decide/"), None);
        assert_eq!(Endpoint::Batch.limit(), 20 << 20);
    }

    fn http<'a>(path: &'a str, body: &'a [u8]) -> CaptureHttp<'a> {
        CaptureHttp { path, query: "", content_type: Some("application/json"), body }
    }

    #[test]
    fn a_batch_is_read_whole_or_refused_whole() {
        let now = Utc::now();
        let sent = now + chrono::Duration::minutes(5); // the client's clock is 5 minutes fast
        let body = serde_json::json!({"api_key": "phc_x", "sent_at": sent.to_rfc3339(), "batch": [
            {"event": "a", "distinct_id": "d1", "properties": {"$lib": "posthog-python"}, "timestamp": sent.to_rfc3339()},
            {"event": "b", "distinct_id": 2, "uuid": "0190f5c0-0000-7000-8000-000000000001"},
        ]})
        .to_string();
        let captured = capture(&http("/batch/", body.as_bytes()), now).unwrap();
        assert_eq!(captured.token, "phc_x");
        assert_eq!(captured.events.len(), 2);
        assert_eq!(captured.events[0].timestamp, now, "corrected for the client's clock");
        assert_eq!(captured.events[1].distinct_id, "2");
        let row = captured.events[0].clone().into_row(7, now, now);
        assert_eq!((row.team_id, row.event.as_str()), (7, "a"));
        assert_eq!(row.properties.unwrap().get(), r#"{"$lib":"posthog-python"}"#);

        let bad =
            serde_json::json!({"api_key": "phc_x", "batch": [{"event": "a", "distinct_id": "d"}, {"event": "b"}]});
        let e = capture(&http("/batch/", bad.to_string().as_bytes()), now).unwrap_err();
        assert_eq!(e.attr().as_deref(), Some("batch.1.distinct_id"));
        assert_eq!(capture(&http("/decide/", b"{}"), now).unwrap_err(), CaptureError::UnknownEndpoint);
        let big = vec![b' '; MAX_EVENT_REQUEST_BYTES + 1];
        assert_eq!(capture(&http("/e/", &big), now).unwrap_err().status(), 413);
    }
}
