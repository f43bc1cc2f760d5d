//! The planning pass's field scanner: finds the four key fields of a JSON lake row (`team_id`, `uuid`, `event`,
//! `_inserted_at`) by walking the row's top-level members and skipping every other value without parsing it
//! (strings by their closing quote, objects and arrays by bracket depth outside strings).
//!
//! It only ever answers for rows it reads completely and unambiguously: a key field with an escape, a missing or
//! repeated key field, a `team_id` that is not a plain integer, or anything unexpected in the row's structure
//! gives `None`, and the caller asks the full parser (serde_json), whose answer or error is then the row's. The
//! values it skips are not validated here: the reading pass parses every row it exports with serde_json, so a
//! malformed value still fails the run with its object key and line.

use memchr::memchr2;

/// The key fields of one row, borrowed from the line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ScannedKeys<'a> {
    pub team_id: i64,
    pub uuid: &'a str,
    pub event: &'a str,
    pub inserted_at: &'a str,
}

/// The key fields of a JSON object line, or `None` when the full parser must decide.
pub(super) fn scan_keys(line: &[u8]) -> Option<ScannedKeys<'_>> {
    scan_ends(line).or_else(|| scan_members(line))
}

/// The fast path, for rows laid out as the lake's writers write them: `team_id`, `uuid` and `event` among the
/// leading members with plain values, and `_inserted_at` as the last member, so the large values in between
/// (`properties`, …) are never looked at. The last member is read from the end of the line: when the line
/// ends with `,"_inserted_at":"…"}` and the value has no quote or backslash, that is the object's last member in
/// every valid JSON text. (A row that is not valid JSON, or repeats a key field, fails the reading pass, whose
/// serde_json parse of the row is the judge.)
fn scan_ends(line: &[u8]) -> Option<ScannedKeys<'_>> {
    let inserted_at = last_member(line, b",\"_inserted_at\":")?;
    // `_inserted_at` is found already: met again among the leading members, it is the general path's.
    let mut found = Found { inserted_at: Some(inserted_at), ..Found::default() };
    let mut c = Cursor { bytes: line, at: 0 };
    c.expect(b'{')?;
    while found.team_id.is_none() || found.uuid.is_none() || found.event.is_none() {
        let key = c.key()?;
        if !found.read(key, &mut c)? {
            // A large value before the key fields: the general path.
            if matches!(c.bytes.get(c.at), Some(b'{' | b'[')) {
                return None;
            }
            c.skip_value()?;
        }
        c.whitespace();
        (c.next()? == b',').then_some(())?;
    }
    found.keys()
}

/// The string value of the last member when the line ends with `{key}"value"}` (`key` with its comma, quotes
/// and colon) and the value has no quote or backslash.
fn last_member<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let body = line.trim_ascii_end().strip_suffix(b"\"}")?;
    let open = body.iter().rposition(|b| *b == b'"' || *b == b'\\')?;
    (body[open] == b'"').then_some(())?;
    body[..open].strip_suffix(key)?;
    std::str::from_utf8(&body[open + 1..]).ok()
}

/// The general path: every top-level member, in any order, with any whitespace.
fn scan_members(line: &[u8]) -> Option<ScannedKeys<'_>> {
    let mut found = Found::default();
    let mut c = Cursor { bytes: line, at: 0 };
    c.expect(b'{')?;
    loop {
        let key = c.key()?;
        if !found.read(key, &mut c)? {
            c.skip_value()?;
        }
        c.whitespace();
        match c.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    c.whitespace();
    (c.at == line.len()).then_some(())?;
    found.keys()
}

/// The key fields found so far.
#[derive(Default)]
struct Found<'a> {
    team_id: Option<i64>,
    uuid: Option<&'a str>,
    event: Option<&'a str>,
    inserted_at: Option<&'a str>,
}

impl<'a> Found<'a> {
    /// Reads the value of `key` when it is a key field (`Some(false)` for any other key: its value is left to
    /// the caller). A repeated key field is the full parser's to refuse.
    fn read(&mut self, key: &[u8], c: &mut Cursor<'a>) -> Option<bool> {
        fn set_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
            slot.is_none().then(|| *slot = Some(value))
        }
        match key {
            b"team_id" => set_once(&mut self.team_id, c.integer()?)?,
            b"uuid" => set_once(&mut self.uuid, c.text()?)?,
            b"event" => set_once(&mut self.event, c.text()?)?,
            b"_inserted_at" => set_once(&mut self.inserted_at, c.text()?)?,
            _ => return Some(false),
        }
        Some(true)
    }

    fn keys(self) -> Option<ScannedKeys<'a>> {
        Some(ScannedKeys {
            team_id: self.team_id?,
            uuid: self.uuid?,
            event: self.event?,
            inserted_at: self.inserted_at?,
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn whitespace(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The next member's key; the cursor is then at its value.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.whitespace();
        let key = self.plain_string()?;
        self.expect(b':')?;
        self.whitespace();
        Some(key)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.whitespace();
        (self.next()? == byte).then_some(())
    }

    /// A string without escapes (the cursor is at its opening quote): its bytes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        (self.next()? == b'"').then_some(())?;
        let rest = &self.bytes[self.at..];
        let end = memchr2(b'"', b'\\', rest)?;
        (rest[end] == b'"').then_some(())?;
        self.at += end + 1;
        Some(&rest[..end])
    }

    /// A key field's string value, as UTF-8 text.
    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_string()?).ok()
    }

    /// A plain integer (`-?[0-9]+`), as serde reads an `i64`.
    fn integer(&mut self) -> Option<i64> {
        let start = self.at;
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).ok()?.parse().ok()
    }

    /// Skips one value of any kind (the cursor is at its first byte).
    fn skip_value(&mut self) -> Option<()> {
        match *self.bytes.get(self.at)? {
            b'"' => self.skip_string(),
            b'{' | b'[' => self.skip_container(),
            _ => {
                let start = self.at;
                while self.bytes.get(self.at).is_some_and(|b| !b",}] \t\n\r".contains(b)) {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }

    /// Skips a string, escapes included (the cursor is at its opening quote).
    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            let found = self.at + memchr2(b'"', b'\\', &self.bytes[self.at..])?;
            if self.bytes[found] == b'"' {
                self.at = found + 1;
                return Some(());
            }
            self.at = found + 2;
        }
    }

    /// Skips an object or array: brackets are counted outside strings, and strings end at their unescaped
    /// closing quote. (A plain byte loop: on rows of short strings it beats `memchr`, whose per-call cost
    /// outweighs its speed on a few bytes.)
    fn skip_container(&mut self) -> Option<()> {
        let bytes = self.bytes;
        let mut depth = 0usize;
        let mut i = self.at;
        while let Some(b) = bytes.get(i) {
            match b {
                b'"' => loop {
                    i += 1;
                    match *bytes.get(i)? {
                        b'"' => break,
                        b'\\' => i += 1,
                        _ => {}
                    }
                },
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        self.at = i + 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(line: &str) -> Option<(i64, &str, &str, &str)> {
        scan_keys(line.as_bytes()).map(|k| (k.team_id, k.uuid, k.event, k.inserted_at))
    }

    #[test]
    fn finds_the_key_fields_in_any_order_skipping_everything_else() {
        let canonical = r#"{"team_id":1,"uuid":"u-1","event":"e","properties":{"a":{"b":[1,{"c":"}]{["}]},"q":"say \"}\""},"person_id":null,"n":-1.5e3,"t":true,"_inserted_at":"2024-01-01T00:00:00Z"}"#;
        assert_eq!(keys(canonical), Some((1, "u-1", "e", "2024-01-01T00:00:00Z")));
        let reordered = r#" { "_inserted_at" : "T" , "x" : [ "]" , { } ] , "event":"é", "uuid":"u", "team_id" : -7 } "#;
        assert_eq!(keys(reordered), Some((-7, "u", "é", "T")));
        let backslash_at_end = r#"{"s":"a\\","team_id":2,"uuid":"u","event":"e","_inserted_at":"T"}"#;
        assert_eq!(keys(backslash_at_end), Some((2, "u", "e", "T")));
        // The last member looks like `_inserted_at` only inside a value: the members decide.
        let nested = r#"{"team_id":1,"uuid":"u","event":"e","_inserted_at":"T","p":{"a":1,"_inserted_at":"X"}}"#;
        assert_eq!(keys(nested), Some((1, "u", "e", "T")));
        let in_string = r#"{"team_id":1,"uuid":"u","event":"e","_inserted_at":"T","s":"x\",\"_inserted_at\":\"X"}"#;
        assert_eq!(keys(in_string), Some((1, "u", "e", "T")));
    }

    #[test]
    fn the_fast_path_reads_the_writers_layout_from_both_ends() {
        let line = br#"{"team_id":3,"uuid":"u","event":"e","properties":{"x":"}"},"_inserted_at":"T"}"#;
        let fast = scan_ends(line).unwrap();
        assert_eq!((fast.team_id, fast.uuid, fast.event, fast.inserted_at), (3, "u", "e", "T"));
        assert_eq!(scan_members(line), Some(fast));
        // Not the writers' layout: the general path reads it.
        for other in [
            &br#"{"_inserted_at":"T","team_id":3,"uuid":"u","event":"e"}"#[..],
            br#"{"p":{},"team_id":3,"uuid":"u","event":"e","_inserted_at":"T"}"#,
            br#"{"team_id":3,"uuid":"u","event":"e","_inserted_at" : "T"}"#,
        ] {
            assert_eq!(scan_ends(other), None);
            assert!(scan_members(other).is_some());
        }
    }

    #[test]
    fn leaves_to_the_full_parser_what_it_cannot_read_unambiguously() {
        for line in [
            r#"{"team_id":1,"uuid":"u\u0031","event":"e","_inserted_at":"T"}"#, // an escape in a key field
            r#"{"team_id":1,"uuid":"u","event":"e"}"#,                          // a missing field
            r#"{"team_id":1,"team_id":1,"uuid":"u","event":"e","_inserted_at":"T"}"#, // repeated
            r#"{"team_id":"1","uuid":"u","event":"e","_inserted_at":"T"}"#,     // not an integer
            r#"{"team_id":1.0,"uuid":"u","event":"e","_inserted_at":"T"}"#,
            r#"{"team_id":99999999999999999999,"uuid":"u","event":"e","_inserted_at":"T"}"#,
            r#"{"team_id":1,"uuid":"u","event":null,"_inserted_at":"T"}"#,
            r#"{"team_id":1,"uuid":"u","event":"e","_inserted_at":"T"} x"#, // trailing bytes
            r#"{"team_id":1,"uuid":"u","event":"e","_inserted_at":"T""#,    // unterminated
            r#"{"team_id":1,"uuid":"u","event":"e","p":{"a":[1}}"#,
            r#"{"team_id":1,"uuid":"u","event":"e","p":"open"#,
            r#"[1,2]"#,
            "",
        ] {
            assert_eq!(keys(line), None, "{line}");
        }
    }

    #[test]
    fn agrees_with_serde_json_on_every_row_it_reads() {
        #[derive(serde::Deserialize)]
        struct Keys {
            team_id: i64,
            uuid: String,
            event: String,
            _inserted_at: String,
        }
        let mut gen = crate::sources::synthetic::SyntheticEvents::new(5, 3);
        let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for row in gen.events_between(start, chrono::Duration::hours(1), 500) {
            let line = serde_json::to_string(&row.as_lake_json()).unwrap();
            let k: Keys = serde_json::from_str(&line).unwrap();
            assert_eq!(keys(&line), Some((k.team_id, &*k.uuid, &*k.event, &*k._inserted_at)), "{line}");
        }
    }
}
