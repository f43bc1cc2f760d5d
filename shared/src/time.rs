//! Time: the interval a run covers, and how timestamps are read and written.
//!
//! Timestamps are kept as microseconds since the Unix epoch (UTC) and written as ISO 8601 strings of the form
//! `2023-07-28T12:34:56.123456Z` in JSON (the lake and JSONLines files) and as `TIMESTAMP(MICROS, UTC)` in Parquet.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ExportError, Result};

/// The data interval of a run: `[start, end)`, lower bound inclusive, upper bound exclusive. In JSON (step
/// payloads, run records) its bounds are `data_interval_start` and `data_interval_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    #[serde(rename = "data_interval_start")]
    pub start: DateTime<Utc>,
    #[serde(rename = "data_interval_end")]
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start >= end {
            return Err(ExportError::config(
                "data_interval_start",
                format!("must be before data_interval_end ({} >= {})", iso(start), iso(end)),
            ));
        }
        Ok(Interval { start, end })
    }

    /// Parses two ISO 8601 / RFC 3339 times with an offset.
    pub fn parse(start: &str, end: &str) -> Result<Self> {
        let parse = |field: &str, s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| ExportError::config(field, format!("`{s}` is not a tz-aware ISO 8601 time: {e}")))
        };
        Interval::new(parse("data_interval_start", start)?, parse("data_interval_end", end)?)
    }

    pub fn start_micros(&self) -> i64 {
        self.start.timestamp_micros()
    }

    pub fn end_micros(&self) -> i64 {
        self.end.timestamp_micros()
    }

    /// Whether a time (microseconds) falls in `[start, end)`.
    pub fn contains_micros(&self, t: i64) -> bool {
        self.start_micros() <= t && t < self.end_micros()
    }
}

/// An ISO 8601 rendering of an interval bound as the reference system names files: `2023-07-28T00:00:00+00:00`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Calendar fields of a time, zero-padded as the key templates need them.
pub fn calendar_fields(t: DateTime<Utc>) -> [(&'static str, String); 6] {
    [
        ("year", format!("{:04}", t.year())),
        ("month", format!("{:02}", t.month())),
        ("day", format!("{:02}", t.day())),
        ("hour", format!("{:02}", t.hour())),
        ("minute", format!("{:02}", t.minute())),
        ("second", format!("{:02}", t.second())),
    ]
}
/// Microseconds since the epoch, displayed and serialized as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoMicros(pub i64);

impl fmt::Display for IsoMicros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::from_timestamp_micros(self.0) {
            Some(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.timestamp_subsec_micros()
            ),
            None => Err(fmt::Error),
        }
    }
}

impl Serialize for IsoMicros {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses a lake timestamp: RFC 3339 with an offset (`2023-07-28T12:00:00.5Z`, `…+02:00`), or the
/// ClickHouse-style `2023-07-28 12:00:00.123456` taken as UTC. Returns microseconds since the epoch.
pub fn parse_timestamp_micros(s: &str) -> std::result::Result<i64, String> {
    if let Some(t) = parse_utc_fast(s.as_bytes()) {
        return Ok(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp_micros())
        .map_err(|_| format!("`{s}` is not an ISO 8601 timestamp"))
}

/// The common case, without a general parser: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`. Anything else
/// (other offsets, a space separator, leap seconds, out-of-range fields) returns `None` for the full parser.
fn parse_utc_fast(b: &[u8]) -> Option<i64> {
    fn digits(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |acc, c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i64))
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let value = digits(&fraction[..n])?;
        micros = if n <= 6 { value * 10i64.pow(6 - n as u32) } else { value / 10i64.pow(n as u32 - 6) };
        rest = &fraction[n..];
    }
    if rest != b"Z" && rest != b"+00:00" {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_timestamp_path_agrees_with_chrono() {
        let cases = [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59.999999Z",
            "2023-07-28T12:34:56.1Z",
            "2023-07-28T12:34:56.123456789+00:00",
            "1969-12-31T23:59:59.5Z",
            "2000-03-01T00:00:00Z",
            "2100-12-31T01:02:03.000004Z",
        ];
        for s in cases {
            let expected = DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
            assert_eq!(parse_utc_fast(s.as_bytes()), Some(expected), "{s}");
        }
        for s in [
            "2023-02-29T00:00:00Z",
            "2023-07-28T12:34:56+02:00",
            "2023-07-28 12:34:56Z",
            "2023-13-01T00:00:00Z",
            "2023-07-28T12:34:56.Z",
        ] {
            assert_eq!(parse_utc_fast(s.as_bytes()), None, "{s}");
        }
        let mut t = -86_400_000_000i64 * 365 * 30;
        while t < 86_400_000_000i64 * 365 * 100 {
            let s = IsoMicros(t).to_string();
            assert_eq!(parse_utc_fast(s.as_bytes()), Some(t), "{s}");
            t += 86_400_000_000 * 7 + 3_600_000_123;
        }
    }

    #[test]
    fn iso_micros_round_trips() {
        let t = parse_timestamp_micros("2023-07-28T12:34:56.123456Z").unwrap();
        assert_eq!(IsoMicros(t).to_string(), "2023-07-28T12:34:56.123456Z");
        let t2 = parse_timestamp_micros("2023-07-28T14:34:56.123456+02:00").unwrap();
        assert_eq!(t, t2);
        let t3 = parse_timestamp_micros("2023-07-28 12:34:56.123456").unwrap();
        assert_eq!(t, t3);
        assert!(parse_timestamp_micros("yesterday").is_err());
        assert_eq!(IsoMicros(0).to_string(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn interval_bounds_are_half_open() {
        let i = Interval::parse("2023-07-28T00:00:00Z", "2023-07-28T01:00:00+00:00").unwrap();
        assert!(i.contains_micros(i.start_micros()));
        assert!(!i.contains_micros(i.end_micros()));
        assert!(i.contains_micros(i.end_micros() - 1));
        assert_eq!(iso(i.start), "2023-07-28T00:00:00+00:00");
        let err = Interval::parse("2023-07-28T01:00:00Z", "2023-07-28T01:00:00Z").unwrap_err();
        assert!(err.to_string().contains("data_interval_start"), "{err}");
        let err = Interval::parse("2023-07-28T01:00:00", "2023-07-28T02:00:00Z").unwrap_err();
        assert!(err.to_string().contains("tz-aware"), "{err}");
    }
}
