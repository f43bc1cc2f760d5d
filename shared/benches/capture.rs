//! The capture handler's benchmark (a plain binary: `taskset -c 0 cargo bench -p batch-exports --bench capture`
//! for one-core figures). It prints a Markdown table for BENCHMARKS.md.
//!
//! `/batch/` bodies of 100 events of ~1 KB each, in posthog-python's shape
//! (`{"api_key", "sent_at", "batch": [{"event", "distinct_id", "properties", "timestamp", "uuid"}]}`), plain and
//! gzip, go through what the capture function does with a request before storing it: decode the payload, read
//! the request, check and normalise every event (token, distinct id, uuid, clock skew), stamp the lake rows and
//! serialise them as lake JSON lines. Beside it, in the same run and alternately (best of three), the raw speed
//! of the least that work can be: decompressing the body and validating its JSON (`serde::de::IgnoredAny`).
//!
//! Flags: `--events N` (events per measurement, default 1000000).

mod common;

use common::Counter;

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Instant;

use batch_exports::capture::{capture, CaptureHttp};
use batch_exports::sources::lake::writer::write_ndjson;
use batch_exports::sources::synthetic::SyntheticEvents;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

const EVENTS_PER_BODY: usize = 100;
const BODIES: usize = 200;

/// `BODIES` distinct `/batch/` bodies of `EVENTS_PER_BODY` synthetic events, as posthog-python sends them.
fn bodies() -> Vec<Vec<u8>> {
    let now = Utc::now();
    let mut events = SyntheticEvents::new(1, 1);
    (0..BODIES)
        .map(|_| {
            let batch: Vec<Value> = events
                .events_between(now - Duration::minutes(1), Duration::minutes(1), EVENTS_PER_BODY)
                .into_iter()
                .map(|row| {
                    let properties: Value = serde_json::from_str(row.properties.as_ref().unwrap().get()).unwrap();
                    let timestamp = chrono::DateTime::from_timestamp_micros(row.timestamp).unwrap();
                    json!({"event": row.event, "distinct_id": row.distinct_id, "properties": properties,
                           "timestamp": timestamp.to_rfc3339(), "uuid": row.uuid, "type": "capture",
                           "library": "posthog-python", "library_version": "7.91.1"})
                })
                .collect();
            serde_json::to_vec(&json!({"api_key": "phc_bench", "sent_at": now.to_rfc3339(), "batch": batch})).unwrap()
        })
        .collect()
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// Events per second of the capture handler's work over `events` events of `bodies`.
fn handler(bodies: &[Vec<u8>], events: usize) -> f64 {
    let now = Utc::now();
    let mut out = Counter::default();
    let start = Instant::now();
    let mut done = 0;
    for body in bodies.iter().cycle() {
        let http = CaptureHttp { path: "/batch/", query: "", content_type: Some("application/json"), body };
        let captured = capture(&http, now).expect("a valid batch");
        let rows: Vec<_> = captured.events.into_iter().map(|e| e.into_row(1, now, now)).collect();
        write_ndjson(&mut out, &rows).unwrap();
        done += rows.len();
        if done >= events {
            break;
        }
    }
    black_box(out.0);
    done as f64 / start.elapsed().as_secs_f64()
}

/// Events per second of decompressing (when gzip) and validating the same bodies' JSON.
fn raw(bodies: &[Vec<u8>], events: usize) -> f64 {
    let start = Instant::now();
    let mut done = 0;
    let mut buffer = Vec::new();
    for body in bodies.iter().cycle() {
        let json: &[u8] = if body.starts_with(&[0x1f, 0x8b]) {
            buffer.clear();
            flate2::read::GzDecoder::new(body.as_slice()).read_to_end(&mut buffer).unwrap();
            &buffer
        } else {
            body
        };
        black_box(serde_json::from_slice::<serde::de::IgnoredAny>(json).unwrap());
        done += EVENTS_PER_BODY;
        if done >= events {
            break;
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--events N"))
        .unwrap_or(1_000_000);
    let plain = bodies();
    let gzipped: Vec<Vec<u8>> = plain.iter().map(|b| gzip(b)).collect();
    let bytes = |bodies: &[Vec<u8>]| bodies.iter().map(Vec::len).sum::<usize>() as f64 / bodies.len() as f64;
    println!(
        "`/batch/` bodies of {EVENTS_PER_BODY} events: {:.0} KB plain, {:.0} KB gzip; {events} events per measurement, best of 3.\n",
        bytes(&plain) / 1000.0,
        bytes(&gzipped) / 1000.0
    );
    println!("| body | capture handler (events/s) | raw: decompress + validate JSON (events/s) | handler / raw |");
    println!("|---|---:|---:|---:|");
    for (name, bodies) in [("plain JSON", &plain), ("gzip", &gzipped)] {
        let (mut best_handler, mut best_raw) = (0f64, 0f64);
        for _ in 0..3 {
            best_handler = best_handler.max(handler(bodies, events));
            best_raw = best_raw.max(raw(bodies, events));
        }
        println!(
            "| {name} | {:.0}k | {:.0}k | {:.0}% |",
            best_handler / 1000.0,
            best_raw / 1000.0,
            100.0 * best_handler / best_raw
        );
    }
}
