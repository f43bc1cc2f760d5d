//! The *lake writer* Lambda: fed capture's queue by Lambda's SQS event source (batches, with
//! `ReportBatchItemFailures`), it writes each team's events of a batch as one lake object.
//!
//! A thin handler over [`batch_exports::ingest::lake_writer::write_batch`]: the lake client is built once per
//! instance; the messages it could not write are answered as the batch's failures, for SQS to deliver again.

use batch_exports::ingest::lake_writer::{write_batch, LakeTarget, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batch_exports::lambda::init_logging();
    let lake = LakeTarget::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let lake = &lake;
        async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(write_batch(lake, &event.payload, chrono::Utc::now()).await)
        }
    }))
    .await
}
