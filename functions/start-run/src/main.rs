//! The *start run* Lambda: claims the run of an interval (creates or reuses the run record).
//!
//! A thin handler over [`batch_exports::steps::start_run`]: clients and settings are built once per instance, and
//! errors reach Step Functions as `RetryableError` or `NonRetryableError`.

use batch_exports::steps::{start_run, Services, StartInput};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<StartInput>| start_run(&services, event.payload))).await
}
