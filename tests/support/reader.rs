//! An independent reader of exported files: decoded with the compression crates, serde_json and the Parquet
//! reader directly, not with the engine's own code, so the tests compare what a user downloads with the source
//! rows.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::Array;
use batch_exports::event::EventRow;
use batch_exports::format::{Compression, FileFormat};
use batch_exports::S3DestinationConfig;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::stack::get_bytes;

/// A row as a user sees it in an exported file, normalised for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedRow {
    pub uuid: String,
    pub event: String,
    pub distinct_id: String,
    pub person_id: Option<String>,
    pub properties: Option<Value>,
    pub person_properties: Option<Value>,
    pub elements_chain: Option<String>,
    pub timestamp: i64,
    pub created_at: Option<i64>,
    pub inserted_at: i64,
}

impl From<&EventRow> for ExportedRow {
    fn from(r: &EventRow) -> Self {
        let json = |v: &Option<Box<serde_json::value::RawValue>>| {
            v.as_ref().map(|raw| serde_json::from_str(raw.get()).expect("source JSON"))
        };
        ExportedRow {
            uuid: r.uuid.clone(),
            event: r.event.clone(),
            distinct_id: r.distinct_id.clone(),
            person_id: r.person_id.clone(),
            properties: json(&r.properties),
            person_properties: json(&r.person_properties),
            elements_chain: r.elements_chain.clone(),
            timestamp: r.timestamp,
            created_at: r.created_at,
            inserted_at: r.inserted_at,
        }
    }
}

fn iso_micros(v: &Value) -> Option<i64> {
    v.as_str().map(|s| chrono::DateTime::parse_from_rfc3339(s).expect("ISO 8601 timestamp").timestamp_micros())
}

fn decompress(bytes: &[u8], compression: Option<Compression>) -> Box<dyn Read + '_> {
    match compression {
        None => Box::new(bytes),
        Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Some(Compression::Zstd) => Box::new(zstd::Decoder::new(bytes).expect("zstd")),
        Some(Compression::Brotli) => Box::new(brotli::Decompressor::new(bytes, 4096)),
        Some(other) => panic!("{other:?} is not a JSONLines compression"),
    }
}

/// Reads an exported file as a user would.
pub fn read_exported(bytes: Vec<u8>, format: FileFormat, compression: Option<Compression>) -> Vec<ExportedRow> {
    match format {
        FileFormat::JSONLines => BufReader::new(decompress(&bytes, compression))
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(&line.expect("line")).expect("JSON line");
                let obj = v.as_object().expect("object per line");
                assert_eq!(obj.len(), 10, "JSONLines columns: {:?}", obj.keys().collect::<Vec<_>>());
                let text = |k: &str| v[k].as_str().map(str::to_string);
                let nested = |k: &str| {
                    assert!(v[k].is_object() || v[k].is_null(), "{k} must be a nested object");
                    (!v[k].is_null()).then(|| v[k].clone())
                };
                ExportedRow {
                    uuid: text("uuid").expect("uuid"),
                    event: text("event").expect("event"),
                    distinct_id: text("distinct_id").expect("distinct_id"),
                    person_id: text("person_id"),
                    properties: nested("properties"),
                    person_properties: nested("person_properties"),
                    elements_chain: text("elements_chain"),
                    timestamp: iso_micros(&v["timestamp"]).expect("timestamp"),
                    created_at: iso_micros(&v["created_at"]),
                    inserted_at: iso_micros(&v["_inserted_at"]).expect("_inserted_at"),
                }
            })
            .collect(),
        FileFormat::Parquet => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                .expect("parquet")
                .build()
                .expect("reader");
            let mut rows = Vec::new();
            for batch in reader {
                let batch = batch.expect("batch");
                let col = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("column {name}")).clone();
                let strings: HashMap<&str, _> =
                    ["uuid", "event", "distinct_id", "person_id", "properties", "person_properties", "elements_chain"]
                        .into_iter()
                        .map(|n| (n, col(n).as_string::<i32>().clone()))
                        .collect();
                let times: HashMap<&str, _> = ["timestamp", "created_at", "_inserted_at"]
                    .into_iter()
                    .map(|n| (n, col(n).as_primitive::<TimestampMicrosecondType>().clone()))
                    .collect();
                for i in 0..batch.num_rows() {
                    let text = |n: &str| (!strings[n].is_null(i)).then(|| strings[n].value(i).to_string());
                    let json =
                        |n: &str| text(n).map(|s| serde_json::from_str::<Value>(&s).expect("JSON-encoded string"));
                    let time = |n: &str| (!times[n].is_null(i)).then(|| times[n].value(i));
                    rows.push(ExportedRow {
                        uuid: text("uuid").expect("uuid"),
                        event: text("event").expect("event"),
                        distinct_id: text("distinct_id").expect("distinct_id"),
                        person_id: text("person_id"),
                        properties: json("properties"),
                        person_properties: json("person_properties"),
                        elements_chain: text("elements_chain"),
                        timestamp: time("timestamp").expect("timestamp"),
                        created_at: time("created_at"),
                        inserted_at: time("_inserted_at").expect("_inserted_at"),
                    });
                }
            }
            rows
        }
    }
}

/// Reads the files at `keys` as a user would and checks them against the expected rows: same uuids, none
/// missing, none twice, every field equal. Returns the row count of each file.
pub async fn assert_files_hold(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[&str],
    config: &S3DestinationConfig,
    expected: &[ExportedRow],
) -> Vec<usize> {
    let mut got = Vec::new();
    let mut counts = Vec::new();
    for key in keys {
        let rows = read_exported(get_bytes(client, bucket, key).await, config.file_format, config.compression);
        counts.push(rows.len());
        got.extend(rows);
    }
    assert_eq!(got.len(), expected.len(), "row count for {:?}/{:?}", config.file_format, config.compression);
    let by_uuid: HashMap<&str, &ExportedRow> = got.iter().map(|r| (r.uuid.as_str(), r)).collect();
    assert_eq!(by_uuid.len(), got.len(), "a uuid was exported twice");
    for want in expected {
        let have = by_uuid.get(want.uuid.as_str()).unwrap_or_else(|| panic!("uuid {} is missing", want.uuid));
        assert_eq!(*have, want);
    }
    counts
}
