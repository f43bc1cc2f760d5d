//! Reading newline-delimited JSON lake objects (plain, gzip or zstd), streamed line by line.

use std::borrow::Cow;
use std::io::{BufRead, Read};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::store::read_error;
use super::{json_object_text, LakeObject, RowKey};
use crate::error::{ExportError, Result, RowLocation};
use crate::event::EventRow;
use crate::format::CompressedReader;
use crate::format::Compression;
use crate::time::parse_timestamp_micros;

/// The fields the planning pass needs; the rest of the line is skipped without allocating.
#[derive(Deserialize)]
struct KeyFields<'a> {
    team_id: i64,
    #[serde(borrow)]
    uuid: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, rename = "_inserted_at")]
    inserted_at: Cow<'a, str>,
}

/// A full lake row as JSON.
#[derive(Deserialize)]
struct LakeRow<'a> {
    team_id: i64,
    #[serde(borrow)]
    uuid: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    distinct_id: Cow<'a, str>,
    #[serde(default, borrow)]
    person_id: Option<Cow<'a, str>>,
    #[serde(default)]
    properties: Option<Box<RawValue>>,
    #[serde(default)]
    person_properties: Option<Box<RawValue>>,
    #[serde(default, borrow)]
    elements_chain: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default, borrow)]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "_inserted_at")]
    inserted_at: Cow<'a, str>,
}

/// Calls `visit` with each non-blank line and its 1-based number.
fn for_each_line(
    input: Box<dyn Read + Send>,
    compression: Option<Compression>,
    object: &LakeObject,
    visit: &mut dyn FnMut(RowLocation, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut reader = CompressedReader::open(input, compression).map_err(|e| read_error(&object.key, e))?;
    let mut line = Vec::with_capacity(4096);
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| read_error(&object.key, e))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        visit(RowLocation::Line(number), text)?;
    }
}

fn timestamp(object: &LakeObject, at: RowLocation, field: &str, value: &str) -> Result<i64> {
    parse_timestamp_micros(value).map_err(|e| ExportError::malformed(&object.key, at, format!("`{field}`: {e}")))
}

pub(super) fn visit_keys(
    input: Box<dyn Read + Send>,
    compression: Option<Compression>,
    object: &LakeObject,
    visit: &mut dyn FnMut(RowLocation, RowKey<'_>) -> Result<()>,
) -> Result<()> {
    for_each_line(input, compression, object, &mut |at, line| {
        let k: KeyFields<'_> =
            serde_json::from_slice(line).map_err(|e| ExportError::malformed(&object.key, at, e.to_string()))?;
        let inserted_at = timestamp(object, at, "_inserted_at", &k.inserted_at)?;
        visit(at, RowKey { team_id: k.team_id, uuid: &k.uuid, event: &k.event, inserted_at })
    })
}

pub(super) fn visit_rows(
    input: Box<dyn Read + Send>,
    compression: Option<Compression>,
    object: &LakeObject,
    visit: &mut dyn FnMut(RowLocation, EventRow) -> Result<()>,
) -> Result<()> {
    for_each_line(input, compression, object, &mut |at, line| {
        let r: LakeRow<'_> =
            serde_json::from_slice(line).map_err(|e| ExportError::malformed(&object.key, at, e.to_string()))?;
        let malformed = |reason: String| ExportError::malformed(&object.key, at, reason);
        let row = EventRow {
            team_id: r.team_id,
            uuid: r.uuid.into_owned(),
            event: r.event.into_owned(),
            distinct_id: r.distinct_id.into_owned(),
            person_id: r.person_id.map(Cow::into_owned),
            properties: json_object_text(r.properties, "properties").map_err(malformed)?,
            person_properties: json_object_text(r.person_properties, "person_properties").map_err(malformed)?,
            elements_chain: r.elements_chain.map(Cow::into_owned),
            timestamp: timestamp(object, at, "timestamp", &r.timestamp)?,
            created_at: r.created_at.map(|c| timestamp(object, at, "created_at", &c)).transpose()?,
            inserted_at: timestamp(object, at, "_inserted_at", &r.inserted_at)?,
        };
        visit(at, row)
    })
}
