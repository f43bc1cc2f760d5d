//! What every function's `main` shares: errors reported to the Lambda runtime with the `errorType` the state
//! machine's `Retry`/`Catch` match (`RetryableError` / `NonRetryableError`), and logging set up for CloudWatch.

use lambda_runtime::Diagnostic;

use crate::error::ExportError;

impl From<ExportError> for Diagnostic {
    fn from(e: ExportError) -> Self {
        Diagnostic { error_type: e.error_type().to_string(), error_message: e.chain() }
    }
}

/// Logs to stdout at `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG` (default info), as the runtime's default subscriber does.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_retry_class() {
        let d: Diagnostic = ExportError::BucketNotFound { bucket: "b".into() }.into();
        assert_eq!(d.error_type, "NonRetryableError");
        assert_eq!(d.error_message, "bucket `b` does not exist");
        let d: Diagnostic =
            ExportError::Transient { operation: "UploadPart", resource: "b/k".into(), message: "503".into() }.into();
        assert_eq!(d.error_type, "RetryableError");
    }
}
