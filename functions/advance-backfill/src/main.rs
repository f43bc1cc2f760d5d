//! The *advance backfill* Lambda, the step of the backfill state machine: plans a backfill, records the progress
//! of each batch of runs and hands out the next batch, and ends the backfill.
//!
//! A thin handler over [`batch_exports::steps::advance_backfill`]: clients and settings are built once per
//! instance, and errors reach Step Functions as `RetryableError` or `NonRetryableError`.

use batch_exports::steps::{advance_backfill, AdvanceInput, Services};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<AdvanceInput>| advance_backfill(&services, event.payload))).await
}
