//! How a capture request fails, and how that looks on the wire: PostHog's status codes (400 for what the client
//! sent, 401 for an unknown token, 413 over the size limits, 429 over the rate limit, 503 when the lake write
//! failed, so the client retries), with a JSON body in the API's shape `{"type", "code", "detail", "attr"}` whose
//! `attr` names the field, `batch.{index}.{field}` for an event's.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// 404: not a capture path.
    #[error("no capture endpoint here: send events to /batch/ or /e/")]
    UnknownEndpoint,
    /// 400: the request has no payload.
    #[error("the request has no payload")]
    EmptyPayload,
    /// 400: the payload could not be decoded or parsed (base64, gzip, UTF-8, JSON).
    #[error("the payload could not be read: {0}")]
    Unreadable(String),
    /// 400: the payload holds no event.
    #[error("the request holds no event")]
    NoEvents,
    /// 413: the payload is over the endpoint's limit (decompressed).
    #[error("the payload is over this endpoint's limit of {limit} bytes (decompressed)")]
    TooLarge { limit: usize },
    /// 413: one event is too large to store, even alone (over the queue's message size once compressed).
    #[error("event {index} is too large to store: at most {limit} bytes once compressed")]
    EventTooLarge { index: usize, limit: usize },
    /// 400: no project token in the request.
    #[error("no project token: send it as `api_key` (or `token`) in the batch, or in each event")]
    MissingToken,
    /// 400: the events carry different tokens.
    #[error("the events carry different project tokens")]
    MultipleTokens,
    /// 400: the token is not a project token (`field` is where it was).
    #[error("`{field}`: {reason}")]
    InvalidToken { field: String, reason: String },
    /// 401: no project has this token.
    #[error("no project has this token")]
    UnknownToken,
    /// 400: one event is invalid; `index` is its position in the request (0 for a single event).
    #[error("event {index}: `{field}` {reason}")]
    InvalidEvent { index: usize, field: &'static str, reason: String },
    /// 429: the token sent more than its rate allows.
    #[error("rate limited: this token may send at most {limit} events per second")]
    RateLimited { limit: u32 },
    /// 503: the events could not be stored; nothing of the request was, and the client should retry.
    #[error("the events could not be stored, retry: {0}")]
    Unavailable(String),
}

impl CaptureError {
    pub fn invalid_event(index: usize, field: &'static str, reason: impl Into<String>) -> Self {
        CaptureError::InvalidEvent { index, field, reason: reason.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            CaptureError::UnknownEndpoint => 404,
            CaptureError::UnknownToken => 401,
            CaptureError::TooLarge { .. } | CaptureError::EventTooLarge { .. } => 413,
            CaptureError::RateLimited { .. } => 429,
            CaptureError::Unavailable(_) => 503,
            _ => 400,
        }
    }

    /// The field the error is about, as a dotted path.
    pub fn attr(&self) -> Option<String> {
        match self {
            CaptureError::InvalidEvent { index, field, .. } => Some(format!("batch.{index}.{field}")),
            CaptureError::EventTooLarge { index, .. } => Some(format!("batch.{index}")),
            CaptureError::InvalidToken { field, .. } => Some(field.clone()),
            CaptureError::MissingToken | CaptureError::MultipleTokens | CaptureError::UnknownToken => {
                Some("api_key".into())
            }
            _ => None,
        }
    }

    pub fn body(&self) -> Value {
        let (kind, code) = match self {
            CaptureError::UnknownEndpoint => ("invalid_request", "not_found"),
            CaptureError::UnknownToken => ("authentication_error", "invalid_api_key"),
            CaptureError::TooLarge { .. } | CaptureError::EventTooLarge { .. } => {
                ("invalid_request", "payload_too_large")
            }
            CaptureError::RateLimited { .. } => ("throttled_error", "rate_limited"),
            CaptureError::Unavailable(_) => ("server_error", "unavailable"),
            CaptureError::InvalidEvent { .. } => ("validation_error", "invalid_event"),
            _ => ("validation_error", "invalid_payload"),
        };
        json!({"type": kind, "code": code, "detail": self.to_string(), "attr": self.attr()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies_name_the_field() {
        let e = CaptureError::invalid_event(3, "distinct_id", "is required");
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.body(),
            json!({"type": "validation_error", "code": "invalid_event", "detail": "event 3: `distinct_id` is required",
                   "attr": "batch.3.distinct_id"})
        );
        assert_eq!(CaptureError::UnknownToken.status(), 401);
        assert_eq!(CaptureError::TooLarge { limit: 1 }.status(), 413);
        assert_eq!(CaptureError::RateLimited { limit: 1 }.status(), 429);
        assert_eq!(CaptureError::Unavailable("s3".into()).status(), 503);
        assert_eq!(CaptureError::MissingToken.attr().as_deref(), Some("api_key"));
    }
}
