//! The *write manifest* Lambda: gathers every chunk's files and writes the manifest.
//!
//! A thin handler over [`batch_exports::steps::write_manifest`]: clients and settings are built once per instance, and
//! errors reach Step Functions as `RetryableError` or `NonRetryableError`.

use batch_exports::steps::{write_manifest, ManifestInput, Services};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<ManifestInput>| write_manifest(&services, event.payload))).await
}
