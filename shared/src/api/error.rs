//! The API's errors and how they look on the wire: a status code and a JSON body in the reference's shape,
//! `{"type", "code", "detail", "attr"}` (`attr` names the offending field of a validation error).

use serde_json::{json, Value};

use crate::error::ExportError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request body or query is invalid; `attr` is the field (dotted path), `detail` the reason.
    #[error("{attr}: {detail}")]
    Validation { attr: String, detail: String },
    /// 401: no API key, or an unknown one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: the key belongs to another project.
    #[error("this API key cannot access project {0}")]
    Forbidden(i64),
    /// 404: no such route, or no such export, run or backfill in this project.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// 409: the request does not fit the resource's state (cancelling a finished backfill).
    #[error("{0}")]
    Conflict(String),
    /// 5xx: a failure of a service behind the API (503 when retrying may help).
    #[error(transparent)]
    Service(ExportError),
}

impl ApiError {
    pub fn validation(attr: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Validation { attr: attr.into(), detail: detail.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Validation { .. } => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict(_) => 409,
            ApiError::Service(e) if e.is_retryable() => 503,
            ApiError::Service(_) => 500,
        }
    }

    pub fn body(&self) -> Value {
        let (kind, code) = match self {
            ApiError::Validation { .. } => ("validation_error", "invalid_input"),
            ApiError::Unauthorized(_) => ("authentication_error", "not_authenticated"),
            ApiError::Forbidden(_) => ("authentication_error", "permission_denied"),
            ApiError::NotFound(_) => ("invalid_request", "not_found"),
            ApiError::MethodNotAllowed(_) => ("invalid_request", "method_not_allowed"),
            ApiError::Conflict(_) => ("invalid_request", "conflict"),
            ApiError::Service(_) => ("server_error", "error"),
        };
        let detail = match self {
            ApiError::Validation { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        let attr = match self {
            ApiError::Validation { attr, .. } => Value::String(attr.clone()),
            _ => Value::Null,
        };
        json!({"type": kind, "code": code, "detail": detail, "attr": attr})
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::NotFound { what, id } => ApiError::NotFound(format!("{what} `{id}` does not exist")),
            ExportError::InvalidConfig { field, reason } => ApiError::Validation { attr: field, detail: reason },
            other => ApiError::Service(other),
        }
    }
}
