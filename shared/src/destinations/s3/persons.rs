//! A persons run to an S3 destination: one file of the interval's person rows.

use crate::destinations::s3::keys::{data_file_key, KeyTemplate};
use crate::destinations::s3::{S3DestinationConfig, S3Target};
use crate::engine::encode::persons::encode_persons;
use crate::error::Result;
use crate::model::Model;
use crate::runs::{ExportOutcome, WrittenFile};
use crate::sources::lake::persons::read_persons;
use crate::sources::lake::LakeStore;
use crate::time::Interval;

/// A persons run to an S3 destination: reads the interval's person changes, writes one file of the latest row
/// per `(team_id, distinct_id)` (named as an events file is, under the prefix rendered with `{table}` =
/// `persons`), and returns what it wrote. An interval without changes writes nothing.
pub async fn export_persons(
    lake: &LakeStore,
    target: &S3Target,
    team_id: i64,
    interval: &Interval,
    config: &S3DestinationConfig,
) -> Result<ExportOutcome> {
    config.validate()?;
    let rows = read_persons(lake, team_id, interval).await?;
    if rows.is_empty() {
        return Ok(ExportOutcome::new(Vec::new(), None));
    }
    let prefix = KeyTemplate::parse(&config.prefix)?.render(interval, Model::Persons);
    let file_n = config.max_file_size_mb.map(|_| 0);
    let key = data_file_key(&prefix, interval, None, file_n, config.file_format, config.compression);
    let body = encode_persons(&rows, config.file_format, config.compression)?;
    let bytes = body.len() as u64;
    target.put(&key, bytes::Bytes::from(body)).await?;
    let file = WrittenFile { key, bytes, records: rows.len() as u64 };
    Ok(ExportOutcome::new(vec![file], None))
}
