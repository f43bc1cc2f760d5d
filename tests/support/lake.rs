//! A lake fixture: objects uploaded to the local stack's lake as a test adds them, their rows remembered.

use std::collections::HashSet;

use batch_exports::event::EventRow;
use batch_exports::format::Compression;
use batch_exports::sources::lake::writer::{lake_object_key, ndjson_bytes, parquet_bytes, put_object};
use batch_exports::{Interval, LakeStore};
use chrono::{DateTime, Utc};

use crate::reader::ExportedRow;

/// A lake being written: objects are uploaded as added, and the rows are remembered in key order.
pub struct Lake {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub objects: Vec<(String, Vec<EventRow>)>,
}

impl Lake {
    /// A lake in `bucket` (which exists).
    pub fn new(client: &aws_sdk_s3::Client, bucket: &str) -> Lake {
        Lake { client: client.clone(), bucket: bucket.to_string(), objects: Vec::new() }
    }

    /// Uploads `rows` as the object `name` of the team's hour (replacing an object added before under that name).
    pub async fn add(&mut self, team: i64, hour: DateTime<Utc>, name: &str, rows: Vec<EventRow>) {
        let key = lake_object_key("", team, hour, name);
        let body = if name.ends_with(".parquet") {
            parquet_bytes(&rows).unwrap()
        } else if name.ends_with(".jsonl.zst") {
            ndjson_bytes(&rows, Some(Compression::Zstd)).unwrap()
        } else if name.ends_with(".jsonl.gz") {
            ndjson_bytes(&rows, Some(Compression::Gzip)).unwrap()
        } else {
            ndjson_bytes(&rows, None).unwrap()
        };
        put_object(&self.client, &self.bucket, &key, body).await.unwrap();
        self.objects.retain(|(k, _)| k != &key);
        self.objects.push((key, rows));
    }

    pub async fn add_raw(&mut self, team: i64, hour: DateTime<Utc>, name: &str, body: Vec<u8>) -> String {
        let key = lake_object_key("", team, hour, name);
        put_object(&self.client, &self.bucket, &key, body).await.unwrap();
        key
    }

    pub fn store(&self) -> LakeStore {
        LakeStore::S3 { client: self.client.clone(), bucket: self.bucket.clone(), prefix: String::new() }
    }

    /// What a run of `interval` must export, computed independently: the team's rows landed in the interval,
    /// passing the event filter, first occurrence of each uuid in key and row order.
    pub fn expected(&self, team: i64, interval: &Interval, keep_event: impl Fn(&str) -> bool) -> Vec<ExportedRow> {
        let mut objects: Vec<_> = self.objects.iter().collect();
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        let mut seen = HashSet::new();
        objects
            .into_iter()
            .flat_map(|(_, rows)| rows.iter())
            .filter(|r| r.team_id == team && interval.contains_micros(r.inserted_at) && keep_event(&r.event))
            .filter(|r| seen.insert(r.uuid.clone()))
            .map(ExportedRow::from)
            .collect()
    }
}
