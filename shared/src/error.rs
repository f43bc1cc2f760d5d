//! The error taxonomy of an export run.
//!
//! Every failure is one [`ExportError`] variant, and every variant is either retryable (the state machine's
//! `Retry` tries the step again with backoff: timeouts, throttling, 5xx, connection resets) or not (the run ends
//! `Failed` with the message: invalid config, malformed rows, missing bucket, access denied, an unreachable custom
//! endpoint). Two retryable variants have error types of their own, because trying the same step again cannot fix
//! them: a lake object that changed under the run (the state machine plans the run again) and a lake that kept
//! changing through every plan (the run ends `FailedRetryable`). [`ExportError::error_type`] is the name a Lambda
//! reports as its `errorType`, which the state machine's `Retry`/`Catch` match on.

use std::fmt;

/// Where in a lake object a malformed row sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLocation {
    /// 1-based line of a newline-delimited JSON object.
    Line(u64),
    /// 0-based row of a Parquet object.
    Row(u64),
}

impl fmt::Display for RowLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowLocation::Line(n) => write!(f, "line {n}"),
            RowLocation::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Every way an export run can fail.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The export's configuration is invalid; `field` names the offending config field.
    #[error("invalid config: `{field}`: {reason}")]
    InvalidConfig { field: String, reason: String },

    /// A lake row could not be read; nothing is skipped silently.
    #[error("malformed lake row in `{key}` at {location}: {reason}")]
    MalformedRow { key: String, location: RowLocation, reason: String },

    /// A lake object could not be read as a whole (bad compression stream, not Parquet, ...).
    #[error("unreadable lake object `{key}`: {reason}")]
    UnreadableObject { key: String, reason: String },

    /// The destination (or lake) bucket does not exist.
    #[error("bucket `{bucket}` does not exist")]
    BucketNotFound { bucket: String },

    /// Credentials were rejected or lack a permission.
    #[error("access denied: {operation} on `{resource}`: {message}")]
    AccessDenied { operation: &'static str, resource: String, message: String },

    /// A configured custom endpoint cannot be reached (DNS failure, connection refused).
    #[error("endpoint `{endpoint}` is unreachable: {message}")]
    EndpointUnreachable { endpoint: String, message: String },

    /// The service rejected the request for a reason retrying cannot fix (4xx other than throttling).
    #[error("{operation} on `{resource}` was rejected: {message}")]
    Rejected { operation: &'static str, resource: String, message: String },

    /// A failure that may pass: timeout, throttling, 5xx, connection reset.
    #[error("{operation} on `{resource}` failed (retryable): {message}")]
    Transient { operation: &'static str, resource: String, message: String },

    /// A lake object was replaced between planning and reading the run; the state machine plans the run again.
    #[error("lake object `{key}` changed during the run")]
    LakeObjectChanged { key: String },

    /// The interval's lake objects kept changing: this attempt planned the run `plans` times without reading a
    /// plan through. A later try, once writes to the interval settle, may succeed.
    #[error("the lake objects of the interval kept changing through {plans} plans of the run; try it again once they settle")]
    LakeUnsettled { plans: u32 },

    /// A record the run needs does not exist (an export deleted before its run, say).
    #[error("{what} `{id}` does not exist")]
    NotFound { what: &'static str, id: String },

    /// A run record changed under this step (another attempt took the run over); this step's work stops.
    #[error("run `{run_id}`: {message}")]
    Superseded { run_id: String, message: String },

    /// A local I/O failure (temporary files for de-duplication).
    #[error("local I/O failed: {0}")]
    LocalIo(#[from] std::io::Error),

    /// A bug or an impossible state; not retried. What caused it, if anything did, is its `source`.
    #[error("internal error: {context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// The `errorType` of retryable failures, matched by the state machine's `Retry`.
pub const RETRYABLE_ERROR_TYPE: &str = "RetryableError";
/// The `errorType` of failures that end the run `Failed`, matched by the state machine's `Catch`.
pub const NON_RETRYABLE_ERROR_TYPE: &str = "NonRetryableError";
/// The `errorType` of [`ExportError::LakeObjectChanged`]: the state machine plans the run again.
pub const LAKE_CHANGED_ERROR_TYPE: &str = "LakeChangedError";
/// The `errorType` of [`ExportError::LakeUnsettled`]: no step retries it, and the run ends `FailedRetryable`.
pub const LAKE_UNSETTLED_ERROR_TYPE: &str = "LakeUnsettledError";

impl ExportError {
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ExportError::InvalidConfig { field: field.into(), reason: reason.into() }
    }

    pub fn malformed(key: &str, location: RowLocation, reason: impl Into<String>) -> Self {
        ExportError::MalformedRow { key: key.to_string(), location, reason: reason.into() }
    }

    /// An internal error without a cause.
    pub fn internal(context: impl Into<String>) -> Self {
        ExportError::Internal { context: context.into(), source: None }
    }

    /// The message with every cause after it (`a: b: c`), as a Lambda reports it and a run records it.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// Whether trying the same run again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ExportError::Transient { .. }
                | ExportError::LakeObjectChanged { .. }
                | ExportError::LakeUnsettled { .. }
                | ExportError::LocalIo(_)
        )
    }

    /// The error type a Lambda reports for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            ExportError::LakeObjectChanged { .. } => LAKE_CHANGED_ERROR_TYPE,
            ExportError::LakeUnsettled { .. } => LAKE_UNSETTLED_ERROR_TYPE,
            e if e.is_retryable() => RETRYABLE_ERROR_TYPE,
            _ => NON_RETRYABLE_ERROR_TYPE,
        }
    }
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// Turns any error into an [`ExportError::Internal`] that keeps it as its source.
pub trait InternalContext<T> {
    fn internal(self, context: impl Into<String>) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> InternalContext<T> for std::result::Result<T, E> {
    fn internal(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| ExportError::Internal { context: context.into(), source: Some(Box::new(e)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_every_variant() {
        let retryable = [
            ExportError::Transient { operation: "UploadPart", resource: "b/k".into(), message: "503".into() },
            ExportError::LocalIo(std::io::Error::other("disk full")),
        ];
        for e in retryable {
            assert!(e.is_retryable(), "{e}");
            assert_eq!(e.error_type(), "RetryableError");
        }
        // Retryable, but not by trying the same step again: types of their own.
        let changed = ExportError::LakeObjectChanged { key: "k".into() };
        assert_eq!((changed.is_retryable(), changed.error_type()), (true, "LakeChangedError"));
        let unsettled = ExportError::LakeUnsettled { plans: 10 };
        assert_eq!((unsettled.is_retryable(), unsettled.error_type()), (true, "LakeUnsettledError"));
        let terminal = [
            ExportError::config("bucket_name", "must not be empty"),
            ExportError::malformed("k", RowLocation::Line(3), "bad"),
            ExportError::UnreadableObject { key: "k".into(), reason: "bad zstd".into() },
            ExportError::BucketNotFound { bucket: "b".into() },
            ExportError::AccessDenied { operation: "PutObject", resource: "b".into(), message: "no".into() },
            ExportError::EndpointUnreachable { endpoint: "http://x".into(), message: "refused".into() },
            ExportError::Rejected { operation: "PutObject", resource: "b".into(), message: "400".into() },
            ExportError::internal("bug"),
            ExportError::NotFound { what: "batch export", id: "x".into() },
            ExportError::Superseded { run_id: "r".into(), message: "attempt 2 took over".into() },
        ];
        for e in terminal {
            assert!(!e.is_retryable(), "{e}");
            assert_eq!(e.error_type(), "NonRetryableError");
        }
    }

    #[test]
    fn messages_name_the_field_and_location() {
        let e = ExportError::config("compression", "`lz4` is not supported for JSONLines");
        assert_eq!(e.to_string(), "invalid config: `compression`: `lz4` is not supported for JSONLines");
        let e = ExportError::malformed("events/x.jsonl", RowLocation::Line(7), "missing field `uuid`");
        assert_eq!(e.to_string(), "malformed lake row in `events/x.jsonl` at line 7: missing field `uuid`");
    }

    #[test]
    fn internal_errors_keep_their_cause() {
        let e = serde_json::from_str::<u8>("x").internal("decoding work/plan.json").unwrap_err();
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.to_string(), "internal error: decoding work/plan.json");
        assert!(e.chain().starts_with("internal error: decoding work/plan.json: expected value"), "{}", e.chain());
    }
}
