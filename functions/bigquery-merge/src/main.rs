//! The *BigQuery merge* Lambda: moves a run's stage rows into the final table (`INSERT` for events, `MERGE` for
//! persons) and drops the stage table; with `cleanup`, only drops it (the failure path).
//!
//! A thin handler over [`batch_exports::steps::bigquery_merge`]: clients and settings are built once per
//! instance, and errors reach Step Functions as `RetryableError` or `NonRetryableError`.

use batch_exports::steps::{bigquery_merge, BigQueryInput, Services};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<BigQueryInput>| bigquery_merge(&services, event.payload))).await
}
