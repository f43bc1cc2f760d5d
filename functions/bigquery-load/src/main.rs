//! The *BigQuery load* Lambda: creates the final table when missing and a fresh stage table, and loads the run's
//! rows into the stage with load jobs.
//!
//! A thin handler over [`batch_exports::steps::bigquery_load`]: clients and settings are built once per instance,
//! and errors reach Step Functions as `RetryableError` or `NonRetryableError`.

use batch_exports::runs::RunRef;
use batch_exports::steps::{bigquery_load, Services};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<RunRef>| bigquery_load(&services, event.payload))).await
}
