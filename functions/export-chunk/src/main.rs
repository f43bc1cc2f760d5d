//! The *export chunk* Lambda: encodes and uploads one chunk's files.
//!
//! A thin handler over [`batch_exports::steps::export_chunk`]: clients and settings are built once per instance, and
//! errors reach Step Functions as `RetryableError` or `NonRetryableError`.

use batch_exports::steps::{export_chunk, ChunkInput, Services};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<ChunkInput>| export_chunk(&services, event.payload))).await
}
