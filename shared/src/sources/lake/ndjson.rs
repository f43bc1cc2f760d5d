//! Reading newline-delimited JSON lake objects (plain, gzip or zstd), streamed line by line: the planning
//! pass's key fields by the field scanner ([`super::scan`]), the reading pass's rows by serde_json, borrowed
//! from the decompressed buffer.

use std::borrow::Cow;
use std::io::Read;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::scan::scan_keys;
use super::store::read_error;
use super::{json_object_text, LakeObject, RowKey, RowSink};
use crate::error::{ExportError, Result, RowLocation};
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

/// A full lake row as JSON, borrowed from the line.
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
    #[serde(default, borrow)]
    properties: Option<&'a RawValue>,
    #[serde(default, borrow)]
    person_properties: Option<&'a RawValue>,
    #[serde(default, borrow)]
    elements_chain: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default, borrow)]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "_inserted_at")]
    inserted_at: Cow<'a, str>,
}

/// Calls `visit` with each non-blank line and its 1-based number. Lines are borrowed from the decompressed
/// stream's buffer; only a line split across two fills of the buffer is copied.
fn for_each_line(
    input: Box<dyn Read + Send>,
    compression: Option<Compression>,
    object: &LakeObject,
    visit: &mut dyn FnMut(RowLocation, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut reader = CompressedReader::open(input, compression).map_err(|e| read_error(&object.key, e))?;
    let mut carried = Vec::new();
    let mut number = 0u64;
    let mut line = |number: u64, text: &[u8]| -> Result<()> {
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        visit(RowLocation::Line(number), text)
    };
    loop {
        let buffer = reader.fill_buf().map_err(|e| read_error(&object.key, e))?;
        if buffer.is_empty() {
            if !carried.is_empty() {
                line(number + 1, &carried)?;
            }
            return Ok(());
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', buffer) {
            number += 1;
            if carried.is_empty() {
                line(number, &buffer[start..end])?;
            } else {
                carried.extend_from_slice(&buffer[start..end]);
                line(number, &carried)?;
                carried.clear();
            }
            start = end + 1;
        }
        carried.extend_from_slice(&buffer[start..]);
        let filled = buffer.len();
        reader.consume(filled);
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
        // The scanner reads almost every row; what it leaves, serde_json reads (or refuses, naming why).
        let parsed;
        let (team_id, uuid, event, inserted_at) = match scan_keys(line) {
            Some(k) => (k.team_id, k.uuid, k.event, k.inserted_at),
            None => {
                parsed = serde_json::from_slice::<KeyFields<'_>>(line)
                    .map_err(|e| ExportError::malformed(&object.key, at, e.to_string()))?;
                (parsed.team_id, &*parsed.uuid, &*parsed.event, &*parsed.inserted_at)
            }
        };
        let inserted_at = timestamp(object, at, "_inserted_at", inserted_at)?;
        visit(at, RowKey { team_id, uuid, event, inserted_at })
    })
}

pub(super) fn visit_rows(
    input: Box<dyn Read + Send>,
    compression: Option<Compression>,
    object: &LakeObject,
    rows: &mut RowSink<'_>,
) -> Result<()> {
    for_each_line(input, compression, object, &mut |at, line| {
        let malformed = |reason: String| ExportError::malformed(&object.key, at, reason);
        // UTF-8 checked once for the whole line (fast), so serde_json need not check each string it reads.
        let line = std::str::from_utf8(line).map_err(|e| malformed(format!("not UTF-8: {e}")))?;
        let r: LakeRow<'_> = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
        let inserted_at = timestamp(object, at, "_inserted_at", &r.inserted_at)?;
        let event_time = timestamp(object, at, "timestamp", &r.timestamp)?;
        let created_at = r.created_at.as_deref().map(|c| timestamp(object, at, "created_at", c)).transpose()?;
        let properties = json_object_text(r.properties, "properties").map_err(malformed)?;
        let person_properties = json_object_text(r.person_properties, "person_properties").map_err(malformed)?;
        let key = RowKey { team_id: r.team_id, uuid: &r.uuid, event: &r.event, inserted_at };
        if !rows.admit(object, at, &key)? {
            return Ok(());
        }
        let row = rows.slot();
        row.team_id = r.team_id;
        set(&mut row.uuid, &r.uuid);
        set(&mut row.event, &r.event);
        set(&mut row.distinct_id, &r.distinct_id);
        set_option(&mut row.person_id, r.person_id.as_deref());
        row.properties = properties;
        row.person_properties = person_properties;
        set_option(&mut row.elements_chain, r.elements_chain.as_deref());
        row.timestamp = event_time;
        row.created_at = created_at;
        row.inserted_at = inserted_at;
        rows.commit()
    })
}

/// Overwrites a reused row's text, keeping its allocation.
fn set(text: &mut String, value: &str) {
    text.clear();
    text.push_str(value);
}

fn set_option(text: &mut Option<String>, value: Option<&str>) {
    match (text.as_mut(), value) {
        (Some(text), Some(value)) => set(text, value),
        (_, value) => *text = value.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::CompressedWriter;
    use crate::sources::lake::LakeFormat;
    use std::io::Write;

    /// Every line, numbered as a reader counts them, whatever the buffer fills split: lines longer than a fill,
    /// CRLF endings, blank lines (counted, not visited) and a last line without its newline.
    #[test]
    fn lines_are_numbered_and_whole_across_buffer_fills() {
        let mut text = String::new();
        let mut expected = Vec::new();
        for n in 1..=3000u64 {
            let line = match n % 7 {
                0 => String::new(),
                1 => "x".repeat(300_000 + n as usize), // longer than one fill of the 256 KiB buffer
                _ => format!("line {n} {}", "y".repeat((n as usize * 37) % 2000)),
            };
            if !line.is_empty() {
                expected.push((n, line.clone()));
            }
            text.push_str(&line);
            text.push_str(if n % 5 == 0 { "\r\n" } else { "\n" });
        }
        text.push_str("last");
        expected.push((3001, "last".into()));
        let object =
            LakeObject { key: "k".into(), size: 0, etag: None, format: LakeFormat::Ndjson(None), partition_start: 0 };
        for compression in [None, Some(Compression::Zstd)] {
            let mut writer = CompressedWriter::new(Vec::new(), compression).unwrap();
            writer.write_all(text.as_bytes()).unwrap();
            let bytes = writer.finish().unwrap();
            let mut got = Vec::new();
            for_each_line(Box::new(std::io::Cursor::new(bytes)), compression, &object, &mut |at, line| {
                let RowLocation::Line(n) = at else { panic!("{at:?}") };
                got.push((n, String::from_utf8(line.to_vec()).unwrap()));
                Ok(())
            })
            .unwrap();
            assert_eq!(got.len(), expected.len(), "{compression:?}");
            assert!(got == expected, "{compression:?}: the lines differ");
        }
    }
}
