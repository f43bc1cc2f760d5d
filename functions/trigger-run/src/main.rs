//! The *trigger run* Lambda, the target of every export's schedule: starts one execution of the export state
//! machine per interval, named after the export and the interval end.
//!
//! A thin handler over [`batch_exports::steps::trigger_run`]: clients and settings are built once per instance,
//! and errors reach EventBridge Scheduler (which retries them) as `RetryableError` or `NonRetryableError`.

use batch_exports::steps::{trigger_run, RunRequest, Services};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<RunRequest>| trigger_run(&services, event.payload))).await
}
