//! The engine's benchmark (a plain binary: `cargo bench -p batch-exports --bench export`; run it under
//! `taskset -c 0` for one-core figures). It prints Markdown tables for BENCHMARKS.md:
//!
//! 1. Encode: for every format × compression, 1M synthetic ~1 KB events through the engine's encode path
//!    (encoder interface, file splitting, part buffering, the upload channel, a discarding sink) beside the raw
//!    speed of the same serialisation and compression (serde_json / Arrow + the compressor, straight into a
//!    byte counter), measured in the same run, alternately, best of up to three.
//! 2. Lake: 1M events read from a local lake of NDJSON + zstd objects (both passes: plan and read) and
//!    exported as Parquet + zstd to a discarding sink, in a fresh child process, best of two.
//! 3. Memory: peak RSS (VmHWM) of a child process exporting 2M and 4M lake events the same way, and of one
//!    exporting the persons of 1M and 4M person changes.
//!
//! 4. With `--peer PYTHON` (a Python with duckdb 2.0.1; this replaces 2 and 3): the lake export beside DuckDB on
//!    one thread doing the same work on the same files (`benches/duckdb_peer.py`), for Parquet + zstd and
//!    JSONLines + gzip, interleaved, with the engine's encode-only rate of the same rows.
//!
//! Flags: `--events N` (default 1000000), `--skip-encode`, `--skip-memory`, `--lake-dir DIR`,
//! `--memory-events A,B` (default 2000000,4000000), `--persons-events A,B` (default 1000000,4000000),
//! `--peer PYTHON`.

mod common;

use common::Counter;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use batch_exports::destinations::s3::export::file_spec;
use batch_exports::destinations::s3::persons::export_persons;
use batch_exports::engine::encode::{writer_properties, ParquetSettings};
use batch_exports::engine::pipeline::write_files;
use batch_exports::event::{events_record_batch, events_schema};
use batch_exports::format::{Compression, FileFormat, FORMAT_COMPRESSIONS};
use batch_exports::model::Model;
use batch_exports::person::PersonChange;
use batch_exports::runs::ExportOutcome;
use batch_exports::sources::lake::dedupe::DedupeSettings;
use batch_exports::sources::lake::writer::{lake_object_key, write_ndjson};
use batch_exports::sources::lake::{plan_rows, table_partition_prefix, RowFilter};
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::{
    export_events, DiscardSink, EngineSettings, EventRow, Interval, LakeStore, Result, S3DestinationConfig,
};
use chrono::{DateTime, Duration, Utc};

const BATCH: usize = 8192;
const MB: f64 = 1_000_000.0;

fn hour() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap().to_utc()
}

fn interval() -> Interval {
    Interval::new(hour(), hour() + Duration::hours(1)).unwrap()
}

/// The raw path: the same serialisation and compression with no engine around it.
fn raw_encode(rows: &[EventRow], format: FileFormat, compression: Option<Compression>) -> u64 {
    match format {
        FileFormat::JSONLines => {
            // The compressors and levels of the engine's JSONLines files (see encode/compress.rs).
            let mut out: Box<dyn Write> = match compression {
                None => Box::new(Counter::default()),
                Some(Compression::Gzip) => {
                    Box::new(flate2::write::GzEncoder::new(Counter::default(), flate2::Compression::new(6)))
                }
                Some(Compression::Zstd) => Box::new(zstd::Encoder::new(Counter::default(), 3).unwrap().auto_finish()),
                Some(Compression::Brotli) => Box::new(brotli::CompressorWriter::new(Counter::default(), 65536, 4, 22)),
                Some(_) => unreachable!(),
            };
            let mut buf = Vec::with_capacity(1 << 24);
            let mut total = 0u64;
            for batch in rows.chunks(BATCH) {
                buf.clear();
                for row in batch {
                    serde_json::to_writer(&mut buf, &row.as_export_json()).unwrap();
                    buf.push(b'\n');
                }
                out.write_all(&buf).unwrap();
                total += buf.len() as u64;
            }
            out.flush().unwrap();
            drop(out);
            total
        }
        FileFormat::Parquet => {
            let schema = events_schema();
            let props = writer_properties(compression, &ParquetSettings::default());
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(Counter::default(), schema.clone(), Some(props)).unwrap();
            for batch in rows.chunks(BATCH) {
                writer.write(&events_record_batch(&schema, batch).unwrap()).unwrap();
            }
            writer.into_inner().unwrap().0
        }
    }
}

fn config(format: FileFormat, compression: Option<Compression>) -> S3DestinationConfig {
    let mut c = S3DestinationConfig::new("bench");
    c.file_format = format;
    c.compression = compression;
    c
}

fn engine_encode(
    rt: &tokio::runtime::Runtime,
    rows: &'static [EventRow],
    format: FileFormat,
    compression: Option<Compression>,
) -> u64 {
    let source =
        move |on_batch: &mut dyn FnMut(&[EventRow]) -> Result<()>| rows.chunks(BATCH).try_for_each(&mut *on_batch);
    let spec = file_spec(&config(format, compression), interval(), Model::Events, None).unwrap();
    let files = rt.block_on(write_files(source, &DiscardSink, &spec, &EngineSettings::default())).unwrap();
    let outcome = ExportOutcome::new(files, None);
    assert_eq!(outcome.records, rows.len() as u64);
    outcome.bytes
}

fn label(format: FileFormat, compression: Option<Compression>) -> String {
    format!("{format:?} + {}", compression.map_or("none", |c| c.name()))
}

/// Writes `n` events into one hour partition of a local lake as NDJSON + zstd, 100k per object.
/// Writes `rows` as a lake of NDJSON + zstd objects of 100k events each (streaming: the rows need not be in
/// memory).
fn write_lake(dir: &Path, rows: impl Iterator<Item = EventRow>) {
    let mut rows = rows.peekable();
    let mut object = 0;
    while rows.peek().is_some() {
        let key = lake_object_key("", 1, hour(), &format!("part-{object:05}.jsonl.zst"));
        let path = dir.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut out = zstd::Encoder::new(io::BufWriter::new(std::fs::File::create(&path).unwrap()), 3).unwrap();
        let mut batch = Vec::with_capacity(BATCH);
        for row in rows.by_ref().take(100_000) {
            batch.push(row);
            if batch.len() == BATCH {
                write_ndjson(&mut out, &batch).unwrap();
                batch.clear();
            }
        }
        write_ndjson(&mut out, &batch).unwrap();
        out.finish().unwrap().flush().unwrap();
        object += 1;
    }
}

/// `n` synthetic events spread over the benchmark's hour, generated as they are written.
fn generated(n: usize) -> impl Iterator<Item = EventRow> {
    let mut gen = SyntheticEvents::new(99, 1);
    let step = 3_600_000_000i64 / n as i64;
    (0..n).map(move |i| gen.event(hour() + Duration::microseconds(step * i as i64)))
}

fn export_lake(rt: &tokio::runtime::Runtime, dir: &Path) -> (u64, u64) {
    export_lake_as(rt, dir, FileFormat::Parquet, Some(Compression::Zstd))
}

fn export_lake_as(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    format: FileFormat,
    compression: Option<Compression>,
) -> (u64, u64) {
    let lake = LakeStore::Local { root: dir.to_path_buf() };
    let config = config(format, compression);
    let outcome =
        rt.block_on(export_events(&lake, &DiscardSink, 1, interval(), &config, &EngineSettings::default())).unwrap();
    (outcome.records, outcome.bytes)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .map(|l| l.split_whitespace().last().unwrap_or("?").to_string())
        .unwrap_or_default()
}

/// Runs this binary again with `args` and returns what it printed.
fn child(args: &[&str]) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap()).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let rt = runtime();

    if let Some(dir) = flag("--lake-child") {
        let dir = Path::new(&dir);
        let t = Instant::now();
        let planned = plan_only(&rt, dir);
        let plan_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (records, bytes) = export_lake(&rt, dir);
        assert_eq!(planned, records);
        println!("{records} {bytes} {plan_secs} {}", t.elapsed().as_secs_f64());
        return;
    }
    if let Some(dir) = flag("--export-child") {
        let (format, compression) = peer_output(&flag("--output").unwrap());
        let t = Instant::now();
        let (records, _) = export_lake_as(&rt, Path::new(&dir), format, compression);
        println!("{records} {}", t.elapsed().as_secs_f64());
        return;
    }
    if let Some(dir) = flag("--persons-memory-child") {
        let lake = LakeStore::Local { root: PathBuf::from(dir) };
        let config = config(FileFormat::Parquet, Some(Compression::Zstd));
        let settings = EngineSettings::default();
        let outcome = rt.block_on(export_persons(&lake, &DiscardSink, 1, &interval(), &config, &settings)).unwrap();
        println!("{} {} {:.1}", outcome.records, outcome.bytes, peak_rss_mib());
        return;
    }
    if let Some(dir) = flag("--memory-child") {
        let (records, bytes) = export_lake(&rt, Path::new(&dir));
        println!("{records} {bytes} {:.1}", peak_rss_mib());
        return;
    }

    let events: usize = flag("--events").map(|v| v.parse().unwrap()).unwrap_or(1_000_000);
    println!("CPUs allowed: {} (run under `taskset -c 0` for one core)\n", cpus_allowed());

    let t = Instant::now();
    let rows: &'static [EventRow] =
        Box::leak(SyntheticEvents::new(1, 1).events_between(hour(), Duration::hours(1), events).into_boxed_slice());
    let jsonl_mb = raw_encode(rows, FileFormat::JSONLines, None) as f64 / MB;
    eprintln!("generated {events} events ({jsonl_mb:.0} MB as JSONL) in {:.1}s", t.elapsed().as_secs_f64());

    if !args.iter().any(|a| a == "--skip-encode") {
        encode_table(&rt, rows, events, jsonl_mb);
    }

    let tmp = tempfile::tempdir().unwrap();
    // `--lake-dir DIR` keeps the lake between runs (written if DIR does not exist), for profiling.
    let lake_dir = flag("--lake-dir").map(PathBuf::from).unwrap_or_else(|| tmp.path().join("lake-1"));
    if !lake_dir.exists() {
        write_lake(&lake_dir, rows.iter().cloned());
    }
    if let Some(python) = flag("--peer") {
        peer_table(&rt, rows, &lake_dir, &python);
        return;
    }
    // In a fresh process (the encode table leaves a large, fragmented heap behind), best of two.
    let (mut secs, mut plan_secs, mut records, mut bytes) = (f64::MAX, f64::MAX, 0, 0);
    for _ in 0..2 {
        let line = child(&["--lake-child", lake_dir.to_str().unwrap()]);
        let v: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
        (records, bytes) = (v[0] as u64, v[1] as u64);
        plan_secs = plan_secs.min(v[2]);
        secs = secs.min(v[3]);
    }
    println!("\n### Lake to Parquet + zstd: {events} events, one core\n");
    println!("| lake | records | whole run (s) | events/s | of which planning pass (s) | output MB |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| NDJSON + zstd, local files | {records} | {secs:.2} | {:.0}k | {plan_secs:.2} | {:.0} |",
        records as f64 / secs / 1000.0,
        bytes as f64 / MB
    );
    memory_table(&args, &flag, tmp.path());
}

/// The first pass alone: list, read key fields, find repeats. Returns the planned record count.
fn plan_only(rt: &tokio::runtime::Runtime, dir: &Path) -> u64 {
    let lake = LakeStore::Local { root: dir.to_path_buf() };
    let objects = rt.block_on(lake.list(1, &interval())).unwrap();
    let filter = RowFilter::new(1, interval(), &[], &[]);
    plan_rows(&lake, &objects, &filter, &DedupeSettings::default()).unwrap().records
}

fn encode_table(rt: &tokio::runtime::Runtime, rows: &'static [EventRow], events: usize, jsonl_mb: f64) {
    println!("### Encode: {events} events, one core\n");
    println!("MB/s is uncompressed JSONL MB ({jsonl_mb:.0} MB) per second; output is the file size.\n");
    println!("| format + compression | raw rows/s | raw MB/s | engine rows/s | engine MB/s | engine/raw | output MB |");
    println!("|---|---|---|---|---|---|---|");
    for (format, compression) in FORMAT_COMPRESSIONS {
        // Best of up to three alternating runs (fewer for the slow codecs): the machines are shared and noisy.
        let (mut raw, mut engine, mut out) = (f64::MAX, f64::MAX, 0);
        for round in 0..3 {
            let t = Instant::now();
            raw_encode(rows, format, compression);
            raw = raw.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            out = engine_encode(rt, rows, format, compression);
            engine = engine.min(t.elapsed().as_secs_f64());
            if round == 0 && raw + engine > 20.0 {
                break;
            }
        }
        println!(
            "| {} | {:.0}k | {:.0} | {:.0}k | {:.0} | {:.0}% | {:.0} |",
            label(format, compression),
            events as f64 / raw / 1000.0,
            jsonl_mb / raw,
            events as f64 / engine / 1000.0,
            jsonl_mb / engine,
            raw / engine * 100.0,
            out as f64 / MB
        );
    }
}

fn memory_table(args: &[String], flag: &dyn Fn(&str) -> Option<String>, tmp: &Path) {
    if args.iter().any(|a| a == "--skip-memory") {
        return;
    }
    // A flag's comma-separated sizes, or the defaults.
    let sizes = |name: &str, defaults: [usize; 2]| -> Vec<usize> {
        flag(name).map(|v| v.split(',').map(|n| n.parse().unwrap()).collect()).unwrap_or(defaults.to_vec())
    };
    println!("\n### Peak memory of one export run (lake NDJSON + zstd → Parquet + zstd)\n");
    println!("| events | records exported | peak RSS (MiB) |");
    println!("|---|---|---|");
    for n in sizes("--memory-events", [2_000_000, 4_000_000]) {
        let dir: PathBuf = tmp.join(format!("lake-{n}"));
        write_lake(&dir, generated(n));
        let text = child(&["--memory-child", dir.to_str().unwrap()]);
        let parts: Vec<&str> = text.split_whitespace().collect();
        println!("| {n} | {} | {} |", parts[0], parts[2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!("\n### Peak memory of one persons run (lake person changes, NDJSON + zstd → Parquet + zstd)\n");
    println!("| person changes | distinct ids exported | output MB | peak RSS (MiB) |");
    println!("|---|---|---|---|");
    for n in sizes("--persons-events", [1_000_000, 4_000_000]) {
        let dir: PathBuf = tmp.join(format!("persons-{n}"));
        write_person_changes(&dir, n);
        let text = child(&["--persons-memory-child", dir.to_str().unwrap()]);
        let parts: Vec<&str> = text.split_whitespace().collect();
        let output_mb = parts[1].parse::<f64>().unwrap() / MB;
        println!("| {n} | {} | {output_mb:.0} | {} |", parts[0], parts[2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Writes `n` person changes into the benchmark hour's `persons/` partition as NDJSON + zstd, 500k per object:
/// `n / 2` distinct ids changed twice each, two distinct ids per person, ~250 bytes of properties each.
fn write_person_changes(dir: &Path, n: usize) {
    let ids = (n / 2).max(1);
    let step = 3_600_000_000i64 / n as i64;
    for (object, first) in (0..n).step_by(500_000).enumerate() {
        let key = format!("{}part-{object:05}.jsonl.zst", table_partition_prefix("", "persons", 1, hour()));
        let path = dir.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut out = zstd::Encoder::new(io::BufWriter::new(std::fs::File::create(&path).unwrap()), 3).unwrap();
        for i in first..(first + 500_000).min(n) {
            let id = i % ids;
            let landed = hour() + Duration::microseconds(step * i as i64);
            let change = PersonChange {
                team_id: 1,
                distinct_id: format!("user-{id:08}"),
                person_id: format!("0190a1b2-0000-7000-8000-{:012x}", id / 2),
                properties: serde_json::json!({
                    "email": format!("user{id}@example.com"), "name": format!("User {id}"), "plan": "free",
                    "$initial_browser": "Chrome", "$initial_os": "Mac OS X", "created_via": "signup",
                    "$initial_current_url": format!("https://app.example.com/project/{}/insights", id % 100),
                    "visits": i / ids, "company": format!("Company {}", id % 5000),
                }),
                person_version: (i / ids) as i64 + 1,
                person_distinct_id_version: 1,
                created_at: hour(),
                is_deleted: false,
                inserted_at: landed,
            };
            serde_json::to_writer(&mut out, &change).unwrap();
            out.write_all(b"\n").unwrap();
        }
        out.finish().unwrap().flush().unwrap();
    }
}

/// The outputs compared with the peer: `parquet-zstd` and `jsonl-gzip`.
fn peer_output(name: &str) -> (FileFormat, Option<Compression>) {
    match name {
        "parquet-zstd" => (FileFormat::Parquet, Some(Compression::Zstd)),
        "jsonl-gzip" => (FileFormat::JSONLines, Some(Compression::Gzip)),
        other => panic!("no output {other}"),
    }
}

/// The engine beside DuckDB (one thread, in this process's cores: run under `taskset -c 0`) on the same lake,
/// interleaved, best of three each; and the engine's encode-only rate of the same rows, from memory.
fn peer_table(rt: &tokio::runtime::Runtime, rows: &'static [EventRow], lake: &Path, python: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/duckdb_peer.py");
    let (start, end) = (interval().start.to_rfc3339(), interval().end.to_rfc3339());
    let out = tempfile::tempdir().unwrap();
    println!(
        "\n### Lake (NDJSON + zstd) beside DuckDB 1 thread: {} events, one core, best of 3 interleaved\n",
        rows.len()
    );
    println!("| output | engine (events/s) | DuckDB (events/s) | engine / DuckDB | encode only (events/s) | engine / encode only |");
    println!("|---|---:|---:|---:|---:|---:|");
    for name in ["parquet-zstd", "jsonl-gzip"] {
        let (format, compression) = peer_output(name);
        let (mut ours, mut theirs, mut encode) = (0f64, 0f64, 0f64);
        for _ in 0..3 {
            let line = child(&["--export-child", lake.to_str().unwrap(), "--output", name]);
            let v: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
            assert_eq!(v[0] as usize, rows.len());
            ours = ours.max(v[0] / v[1]);
            let target = out.path().join(format!("peer-{name}"));
            let peer = std::process::Command::new(python)
                .args([script, lake.to_str().unwrap(), &start, &end, name, target.to_str().unwrap()])
                .output()
                .expect("the peer's python (with duckdb 2.0.1)");
            assert!(peer.status.success(), "{}", String::from_utf8_lossy(&peer.stderr));
            let v: Vec<f64> =
                String::from_utf8_lossy(&peer.stdout).split_whitespace().map(|x| x.parse().unwrap()).collect();
            assert_eq!(v[0] as usize, rows.len(), "DuckDB exported another count");
            theirs = theirs.max(v[0] / v[1]);
            let t = Instant::now();
            engine_encode(rt, rows, format, compression);
            encode = encode.max(rows.len() as f64 / t.elapsed().as_secs_f64());
        }
        println!(
            "| {} | {:.0}k | {:.0}k | {:.2}× | {:.0}k | {:.0}% |",
            label(format, compression),
            ours / 1000.0,
            theirs / 1000.0,
            ours / theirs,
            encode / 1000.0,
            100.0 * ours / encode
        );
    }
}
