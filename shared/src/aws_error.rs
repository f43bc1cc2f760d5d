//! AWS SDK errors mapped onto the error taxonomy, for every service the functions call (S3, DynamoDB, KMS,
//! EventBridge Scheduler, Step Functions): throttling, timeouts and 5xx are retryable; missing buckets, access
//! denied and other rejections are not.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::ExportError;

/// How a service error response is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceErrorClass {
    BucketNotFound,
    AccessDenied,
    Transient,
    Rejected,
}

/// Classifies an AWS error response (S3 and DynamoDB, whose throttling and auth errors are HTTP 400s) by HTTP
/// status and error code.
pub fn classify_service_error(status: u16, code: Option<&str>) -> ServiceErrorClass {
    match code {
        Some("NoSuchBucket") => return ServiceErrorClass::BucketNotFound,
        Some(
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccountProblem"
            | "AllAccessDisabled"
            | "InvalidToken"
            | "ExpiredToken"
            | "KMS.AccessDeniedException"
            | "KMS.DisabledException"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "ExpiredTokenException",
        ) => return ServiceErrorClass::AccessDenied,
        Some(
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestTimeout"
            | "RequestTimeTooSkewed"
            | "InternalError"
            | "ServiceUnavailable"
            | "NoSuchUpload"
            | "OperationAborted"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "TransactionInProgressException",
        ) => return ServiceErrorClass::Transient,
        _ => {}
    }
    match status {
        401 | 403 => ServiceErrorClass::AccessDenied,
        408 | 429 | 500..=599 => ServiceErrorClass::Transient,
        _ => ServiceErrorClass::Rejected,
    }
}

/// Whether a transport failure means the endpoint cannot be reached at all (no such host, nothing listening).
fn is_unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::PermissionDenied) {
                return true;
            }
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("dns error")
            || text.contains("failed to lookup address")
            || text.contains("connection refused")
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Maps an AWS SDK error onto the taxonomy. `resource` is `bucket` or `bucket/key`; `endpoint` is the
/// destination's custom endpoint, whose unreachability is not retried (a configured endpoint that is down for
/// good is a configuration error; AWS's own endpoints being unreachable is a blip).
pub fn classify_sdk_error<E>(
    error: SdkError<E, HttpResponse>,
    operation: &'static str,
    resource: &str,
    endpoint: Option<&str>,
) -> ExportError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let resource = resource.to_string();
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let err = context.err();
            let code = err.code();
            let message = format!(
                "{} (HTTP {status}{})",
                err.message().unwrap_or("no message"),
                code.map(|c| format!(", {c}")).unwrap_or_default()
            );
            match classify_service_error(status, code) {
                ServiceErrorClass::BucketNotFound => {
                    ExportError::BucketNotFound { bucket: resource.split('/').next().unwrap_or_default().to_string() }
                }
                ServiceErrorClass::AccessDenied => ExportError::AccessDenied { operation, resource, message },
                ServiceErrorClass::Transient => ExportError::Transient { operation, resource, message },
                ServiceErrorClass::Rejected => ExportError::Rejected { operation, resource, message },
            }
        }
        SdkError::DispatchFailure(failure) => {
            let message = format!("{:?}", failure);
            match (endpoint, failure.as_connector_error()) {
                (Some(endpoint), Some(e)) if !failure.is_timeout() && is_unreachable(e) => {
                    ExportError::EndpointUnreachable { endpoint: endpoint.to_string(), message }
                }
                _ if failure.is_user() => ExportError::Rejected { operation, resource, message },
                _ => ExportError::Transient { operation, resource, message },
            }
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            ExportError::Transient { operation, resource, message: error_chain(&error) }
        }
        SdkError::ConstructionFailure(_) => ExportError::Rejected { operation, resource, message: error_chain(&error) },
        other => ExportError::Transient { operation, resource, message: error_chain(&other) },
    }
}

/// An error and its sources, joined.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors() {
        use ServiceErrorClass::*;
        let cases = [
            (404, Some("NoSuchBucket"), BucketNotFound),
            (403, Some("AccessDenied"), AccessDenied),
            (403, Some("InvalidAccessKeyId"), AccessDenied),
            (403, Some("SignatureDoesNotMatch"), AccessDenied),
            (403, None, AccessDenied),
            (503, Some("SlowDown"), Transient),
            (500, Some("InternalError"), Transient),
            (502, None, Transient),
            (429, None, Transient),
            (400, Some("RequestTimeout"), Transient),
            (404, Some("NoSuchUpload"), Transient),
            (400, Some("InvalidArgument"), Rejected),
            (400, Some("EntityTooSmall"), Rejected),
            (412, Some("PreconditionFailed"), Rejected),
            (400, Some("KMS.AccessDeniedException"), AccessDenied),
            (400, Some("ProvisionedThroughputExceededException"), Transient),
            (400, Some("RequestLimitExceeded"), Transient),
            (400, Some("ThrottlingException"), Transient),
            (400, Some("AccessDeniedException"), AccessDenied),
            (400, Some("UnrecognizedClientException"), AccessDenied),
            (400, Some("ResourceNotFoundException"), Rejected),
            (400, Some("ValidationException"), Rejected),
        ];
        for (status, code, class) in cases {
            assert_eq!(classify_service_error(status, code), class, "{status} {code:?}");
        }
    }

    #[test]
    fn unreachable_endpoints() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_unreachable(&refused));
        assert!(is_unreachable(&std::io::Error::other("dns error: failed to lookup address information")));
        assert!(!is_unreachable(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
    }
}
