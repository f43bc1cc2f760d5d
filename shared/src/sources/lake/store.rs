//! Where lake objects are listed and read from: an S3 bucket (through the AWS SDK) or a local directory with
//! the same layout (used by the benchmark to measure the engine without a network).

use std::io::{self, Read};
use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio_util::io::SyncIoBridge;

use super::{partition_hours, table_partition_prefix, LakeFormat};
use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, Result};
use crate::time::Interval;

/// One object of the lake, as listed for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LakeObject {
    pub key: String,
    pub size: u64,
    /// The ETag at listing time; reads require the same one, so a replaced object fails the run (retryably).
    pub etag: Option<String>,
    pub format: LakeFormat,
    /// Start of the object's partition hour, microseconds.
    pub partition_start: i64,
}

impl LakeObject {
    /// Whether a time falls in the object's partition hour.
    pub fn partition_contains(&self, t: i64) -> bool {
        self.partition_start <= t && t < self.partition_start + 3_600_000_000
    }
}

/// The store a lake lives in.
#[derive(Debug, Clone)]
pub enum LakeStore {
    S3 { client: aws_sdk_s3::Client, bucket: String, prefix: String },
    Local { root: PathBuf },
}

/// Marks errors of the network stream under a decompressor, so they are told apart from corrupt data.
#[derive(Debug)]
struct NetworkReadError(io::Error);

impl std::fmt::Display for NetworkReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading from the network: {}", self.0)
    }
}

impl std::error::Error for NetworkReadError {}

struct NetworkReader<R>(R);

impl<R: Read> Read for NetworkReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| io::Error::other(NetworkReadError(e)))
    }
}

/// Maps an I/O error met while reading a lake object: network trouble is retryable, bad bytes are not.
pub(crate) fn read_error(key: &str, e: io::Error) -> ExportError {
    if e.get_ref().is_some_and(|inner| inner.is::<NetworkReadError>()) {
        ExportError::Transient { operation: "GetObject", resource: key.to_string(), message: e.to_string() }
    } else {
        ExportError::UnreadableObject { key: key.to_string(), reason: e.to_string() }
    }
}

impl LakeStore {
    /// A short name for messages.
    pub fn describe(&self) -> String {
        match self {
            LakeStore::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            LakeStore::Local { root } => root.display().to_string(),
        }
    }

    /// Lists the event objects of a team's partitions that an interval touches, sorted by key.
    pub async fn list(&self, team_id: i64, interval: &Interval) -> Result<Vec<LakeObject>> {
        self.list_table("events", team_id, interval).await
    }

    /// Lists the objects of a table of the lake (`events`, `persons`) in a team's partitions that an interval
    /// touches, sorted by key.
    pub async fn list_table(&self, table: &str, team_id: i64, interval: &Interval) -> Result<Vec<LakeObject>> {
        let mut objects = Vec::new();
        for hour in partition_hours(interval) {
            objects.extend(self.list_partition(table, team_id, hour).await?);
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The start of the earliest hour partition of a table (`events`, `persons`) holding data of a team
    /// (partition names sort by time), if any.
    pub async fn earliest_hour(&self, table: &str, team_id: i64) -> Result<Option<DateTime<Utc>>> {
        let team_prefix = |lake_prefix: &str| format!("{lake_prefix}{table}/team_id={team_id}/");
        let first = match self {
            LakeStore::S3 { client, bucket, prefix } => {
                let team = team_prefix(prefix);
                let out = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&team)
                    .max_keys(1)
                    .send()
                    .await
                    .map_err(|e| classify_sdk_error(e, "ListObjectsV2", bucket, None))?;
                out.contents().first().and_then(|o| o.key()).map(|k| k[team.len()..].to_string())
            }
            LakeStore::Local { root } => {
                let first_entry = |dir: PathBuf| -> Option<String> {
                    let mut names: Vec<String> = std::fs::read_dir(dir)
                        .ok()?
                        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                        .collect();
                    names.sort();
                    names.into_iter().next()
                };
                let team = root.join(team_prefix(""));
                first_entry(team.clone())
                    .and_then(|date| first_entry(team.join(&date)).map(|hour| format!("{date}/{hour}/")))
            }
        };
        // `date=2026-11-20/hour=07/...`
        Ok(first.and_then(|rest| {
            let mut parts = rest.split('/');
            let date = parts.next()?.strip_prefix("date=")?;
            let hour = parts.next()?.strip_prefix("hour=")?;
            let time = format!("{date}T{hour}:00:00Z");
            DateTime::parse_from_rfc3339(&time).ok().map(|t| t.to_utc())
        }))
    }

    async fn list_partition(&self, table: &str, team_id: i64, hour: DateTime<Utc>) -> Result<Vec<LakeObject>> {
        let mut found: Vec<(String, u64, Option<String>)> = Vec::new();
        match self {
            LakeStore::S3 { client, bucket, prefix } => {
                let partition = table_partition_prefix(prefix, table, team_id, hour);
                let mut pages = client.list_objects_v2().bucket(bucket).prefix(&partition).into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| classify_sdk_error(e, "ListObjectsV2", bucket, None))?;
                    for o in page.contents() {
                        let key = o.key().unwrap_or_default().to_string();
                        found.push((key, o.size().unwrap_or(0) as u64, o.e_tag().map(str::to_string)));
                    }
                }
            }
            LakeStore::Local { root } => {
                let partition = table_partition_prefix("", table, team_id, hour);
                let dir = root.join(&partition);
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(e.into()),
                };
                for entry in entries {
                    let entry = entry?;
                    if entry.file_type()?.is_file() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        found.push((format!("{partition}{name}"), entry.metadata()?.len(), None));
                    }
                }
            }
        }
        let mut objects = Vec::new();
        for (key, size, etag) in found {
            let name = key.rsplit('/').next().unwrap_or(&key);
            if name.is_empty() || name.starts_with('_') || name.starts_with('.') || key.ends_with('/') {
                continue;
            }
            let format = LakeFormat::from_key(&key).ok_or_else(|| ExportError::UnreadableObject {
                key: key.clone(),
                reason: "unknown extension (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)".into(),
            })?;
            objects.push(LakeObject { key, size, etag, format, partition_start: hour.timestamp_micros() });
        }
        Ok(objects)
    }

    /// Opens an object as a byte stream. Blocking: call from a blocking thread inside the Tokio runtime.
    pub fn open(&self, object: &LakeObject) -> Result<Box<dyn Read + Send>> {
        match self {
            LakeStore::S3 { client, bucket, .. } => {
                let handle = Handle::current();
                let mut request = client.get_object().bucket(bucket).key(&object.key);
                if let Some(etag) = &object.etag {
                    request = request.if_match(etag);
                }
                let output = handle.block_on(request.send()).map_err(|e| {
                    // 412: the object's ETag is no longer the planned one (it was replaced since planning).
                    if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) {
                        return ExportError::LakeObjectChanged { key: object.key.clone() };
                    }
                    classify_sdk_error(e, "GetObject", &object.key, None)
                })?;
                let reader = SyncIoBridge::new_with_handle(output.body.into_async_read(), handle);
                Ok(Box::new(NetworkReader(reader)))
            }
            LakeStore::Local { root } => {
                Ok(Box::new(std::fs::File::open(root.join(&object.key)).map_err(|e| read_error(&object.key, e))?))
            }
        }
    }

    /// Reads a whole object (Parquet needs random access to its footer). Blocking, as [`LakeStore::open`].
    pub fn read_whole(&self, object: &LakeObject) -> Result<Bytes> {
        let mut buf = Vec::with_capacity(object.size as usize);
        self.open(object)?.read_to_end(&mut buf).map_err(|e| read_error(&object.key, e))?;
        Ok(Bytes::from(buf))
    }
}
