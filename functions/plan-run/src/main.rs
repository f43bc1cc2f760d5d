//! The *plan run* Lambda: plans which lake rows the run exports and splits them into chunks.
//!
//! A thin handler over [`batch_exports::steps::plan_run`]: clients and settings are built once per instance, and
//! errors reach Step Functions as `RetryableError` or `NonRetryableError`.

use batch_exports::runs::RunRef;
use batch_exports::steps::{plan_run, Services};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<RunRef>| plan_run(&services, event.payload))).await
}
