//! Export definitions: what an export sends (model, destination), how often (its interval) and between which
//! dates, with the reference's field names. A run loads its export by `(team_id, id)` from the exports table
//! ([`crate::store::ExportStore`]); step payloads carry only the ids, never the destination config.

use chrono::{DateTime, Datelike, Days, Duration, DurationRound, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::destinations::s3::config::S3DestinationConfig;
use crate::error::{ExportError, InternalContext, Result};
use crate::model::Model;
use crate::network::EndpointPolicy;
use crate::time::Interval;

/// How often an export runs; each run covers one interval ending at its scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportInterval {
    #[serde(rename = "hour")]
    Hour,
    #[serde(rename = "day")]
    Day,
    #[serde(rename = "week")]
    Week,
    #[serde(rename = "every 5 minutes")]
    Every5Minutes,
    #[serde(rename = "every 15 minutes")]
    Every15Minutes,
}

impl ExportInterval {
    pub fn duration(&self) -> Duration {
        match self {
            ExportInterval::Hour => Duration::hours(1),
            ExportInterval::Day => Duration::days(1),
            ExportInterval::Week => Duration::weeks(1),
            ExportInterval::Every5Minutes => Duration::minutes(5),
            ExportInterval::Every15Minutes => Duration::minutes(15),
        }
    }

    /// The interval a run scheduled at `scheduled` covers: the one ending at the last interval boundary at or
    /// before it (a scheduler firing a little late, or delayed for late data, still gets the interval that just
    /// ended). Hour and minute intervals are aligned on UTC; days start at midnight and weeks on Monday midnight
    /// in `tz` (so a day may last 23 or 25 hours across a daylight-saving change).
    pub fn interval_ending_at_or_before(&self, scheduled: DateTime<Utc>, tz: Tz) -> Result<Interval> {
        let days = match self {
            ExportInterval::Day => 1,
            ExportInterval::Week => 7,
            _ => {
                let step = self.duration();
                let end = scheduled.duration_trunc(step).internal("interval rounding")?;
                return Interval::new(end - step, end);
            }
        };
        let local = scheduled.with_timezone(&tz).date_naive();
        let end = match self {
            ExportInterval::Week => local - Days::new(local.weekday().num_days_from_monday() as u64),
            _ => local,
        };
        Interval::new(local_midnight(tz, end - Days::new(days)), local_midnight(tz, end))
    }
}

/// The first instant of a local date in `tz` (the end of a daylight-saving gap when midnight is skipped).
fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut time = date.and_time(NaiveTime::MIN);
    loop {
        if let Some(t) = tz.from_local_datetime(&time).earliest() {
            return t.with_timezone(&Utc);
        }
        time += Duration::minutes(15);
    }
}

/// Parses an IANA time zone name (`UTC`, `Europe/Berlin`).
pub fn parse_timezone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        ExportError::config("timezone", format!("`{name}` is not an IANA time zone name (e.g. Europe/Berlin)"))
    })
}

/// Where an export's rows go. Serialized as the reference does: `{"type": "S3", "config": {...}}`.
///
/// The one place that names every destination: each variant's facts are the methods below (adding a
/// destination adds a variant, and the compiler lists every method to extend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "config")]
pub enum Destination {
    S3(S3DestinationConfig),
    BigQuery(crate::destinations::bigquery::BigQueryDestinationConfig),
}

impl Destination {
    /// The destination's type name, as the API and the state machine call it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Destination::S3(_) => "S3",
            Destination::BigQuery(_) => "BigQuery",
        }
    }

    /// Every type name, as [`Destination::type_name`] gives them.
    pub const TYPE_NAMES: [&'static str; 2] = ["S3", "BigQuery"];

    /// A destination of type `type_name` (one of [`Destination::TYPE_NAMES`]) from its JSON config, which
    /// `parser` deserializes; `None` for an unknown type.
    pub fn from_config<P: ConfigParser>(
        type_name: &str,
        config: serde_json::Value,
        parser: &P,
    ) -> Option<std::result::Result<Destination, P::Error>> {
        Some(match type_name {
            "S3" => parser.parse(config).map(Destination::S3),
            "BigQuery" => parser.parse(config).map(Destination::BigQuery),
            _ => return None,
        })
    }

    /// The config fields that are credentials: encrypted at rest, never returned or logged.
    pub fn secret_fields(&self) -> &'static [&'static str] {
        match self {
            Destination::S3(_) => &["aws_access_key_id", "aws_secret_access_key"],
            Destination::BigQuery(_) => &["private_key", "private_key_id"],
        }
    }

    /// Checks the config, naming the field it finds wrong (relative to the config); `stored` names the secret
    /// fields the export keeps stored, and `policy` says where user-given endpoints may point.
    pub fn validate_with_stored(&self, stored: &[String], policy: EndpointPolicy) -> Result<()> {
        match self {
            Destination::S3(config) => config.validate_with_stored(stored, policy),
            Destination::BigQuery(config) => config.validate_with_stored(stored, policy),
        }
    }

    /// Whether a run may be split into several chunks (then its files carry the chunk in their names): an S3
    /// destination that splits files. Else a run is one chunk (BigQuery loads it in load jobs of bounded size).
    pub fn runs_in_chunks(&self) -> bool {
        match self {
            Destination::S3(config) => config.max_file_size_bytes().is_some(),
            Destination::BigQuery(_) => false,
        }
    }

    /// The event names the destination takes and leaves out (`include_events`, `exclude_events`; empty: all).
    pub fn event_names(&self) -> (&[String], &[String]) {
        match self {
            Destination::S3(config) => (&config.include_events, &config.exclude_events),
            Destination::BigQuery(_) => (&[], &[]),
        }
    }
}

/// How a caller deserializes a destination's config for [`Destination::from_config`] (the API's names the
/// field it finds wrong).
pub trait ConfigParser {
    type Error;
    fn parse<T: serde::de::DeserializeOwned>(&self, config: serde_json::Value) -> std::result::Result<T, Self::Error>;
}

/// One batch export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchExport {
    pub id: String,
    pub team_id: i64,
    pub name: String,
    #[serde(default)]
    pub model: Model,
    pub destination: Destination,
    pub interval: ExportInterval,
    /// IANA time zone in which day and week intervals start (default UTC).
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub paused: bool,
    /// No runs before this time (interval ends before it are refused), when set.
    #[serde(default)]
    pub start_at: Option<DateTime<Utc>>,
    /// No runs after this time, when set.
    #[serde(default)]
    pub end_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub last_paused_at: Option<DateTime<Utc>>,
    /// Why the export was paused by the system (auto-pause after repeated failures), if it was.
    #[serde(default)]
    pub paused_reason: Option<String>,
}

fn utc() -> String {
    "UTC".to_string()
}

impl BatchExport {
    /// A new, unpaused events export in UTC, with no start or end date.
    pub fn new(
        id: impl Into<String>,
        team_id: i64,
        name: impl Into<String>,
        destination: Destination,
        interval: ExportInterval,
    ) -> Self {
        BatchExport {
            id: id.into(),
            team_id,
            name: name.into(),
            model: Model::Events,
            destination,
            interval,
            timezone: utc(),
            paused: false,
            start_at: None,
            end_at: None,
            created_at: Utc::now(),
            last_paused_at: None,
            paused_reason: None,
        }
    }

    /// The interval a run scheduled at `scheduled` covers, in the export's time zone.
    pub fn interval_scheduled_at(&self, scheduled: DateTime<Utc>) -> Result<Interval> {
        self.interval.interval_ending_at_or_before(scheduled, parse_timezone(&self.timezone)?)
    }

    /// Checks that a run of `interval` is allowed: not ending in the future, inside `start_at`/`end_at`.
    pub fn check_run_interval(&self, interval: &Interval, now: DateTime<Utc>) -> Result<()> {
        if interval.end > now {
            return Err(ExportError::config(
                "data_interval_end",
                format!("{} is in the future (now is {})", crate::time::iso(interval.end), crate::time::iso(now)),
            ));
        }
        if let Some(start_at) = self.start_at.filter(|s| interval.start < *s) {
            return Err(ExportError::config(
                "data_interval_start",
                format!(
                    "{} is before the export's start_at {}",
                    crate::time::iso(interval.start),
                    crate::time::iso(start_at)
                ),
            ));
        }
        if let Some(end_at) = self.end_at.filter(|e| interval.end > *e) {
            return Err(ExportError::config(
                "data_interval_end",
                format!("{} is after the export's end_at {}", crate::time::iso(interval.end), crate::time::iso(end_at)),
            ));
        }
        Ok(())
    }

    /// The S3 destination config, validated.
    pub fn s3_config(&self) -> Result<&S3DestinationConfig> {
        let Destination::S3(config) = &self.destination else {
            return Err(ExportError::config("destination.type", "is not S3"));
        };
        config.validate()?;
        Ok(config)
    }

    /// The BigQuery destination config, validated.
    pub fn bigquery_config(&self) -> Result<&crate::destinations::bigquery::BigQueryDestinationConfig> {
        let Destination::BigQuery(config) = &self.destination else {
            return Err(ExportError::config("destination.type", "is not BigQuery"));
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn intervals_end_at_the_last_boundary() {
        let cases = [
            (ExportInterval::Hour, "2026-11-21T10:00:00Z", "2026-11-21T09:00:00Z", "2026-11-21T10:00:00Z"),
            (ExportInterval::Hour, "2026-11-21T10:01:30Z", "2026-11-21T09:00:00Z", "2026-11-21T10:00:00Z"),
            (ExportInterval::Day, "2026-11-21T00:02:00Z", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
            (ExportInterval::Every5Minutes, "2026-11-21T10:07:00Z", "2026-11-21T10:00:00Z", "2026-11-21T10:05:00Z"),
            (ExportInterval::Every15Minutes, "2026-11-21T10:15:30Z", "2026-11-21T10:00:00Z", "2026-11-21T10:15:00Z"),
            // 2026-11-23 is a Monday.
            (ExportInterval::Week, "2026-11-23T00:01:00Z", "2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"),
            (ExportInterval::Week, "2026-11-22T23:00:00Z", "2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z"),
        ];
        for (interval, scheduled, start, end) in cases {
            let got = interval.interval_ending_at_or_before(t(scheduled), Tz::UTC).unwrap();
            assert_eq!((got.start, got.end), (t(start), t(end)), "{interval:?} at {scheduled}");
        }
    }

    #[test]
    fn days_and_weeks_start_at_local_midnight() {
        let berlin: Tz = parse_timezone("Europe/Berlin").unwrap();
        let cases = [
            // Winter (UTC+1): the day ending at Berlin midnight 2026-11-21 is 2026-11-19T23:00Z..2026-11-20T23:00Z.
            (ExportInterval::Day, "2026-11-20T23:01:00Z", "2026-11-19T23:00:00Z", "2026-11-20T23:00:00Z"),
            // Summer time ends on 2026-10-25: that day has 25 hours.
            (ExportInterval::Day, "2026-10-25T23:01:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"),
            // Monday 2026-11-23 00:01 in Berlin.
            (ExportInterval::Week, "2026-11-22T23:01:00Z", "2026-11-15T23:00:00Z", "2026-11-22T23:00:00Z"),
            // Hours stay on UTC.
            (ExportInterval::Hour, "2026-11-21T10:01:00Z", "2026-11-21T09:00:00Z", "2026-11-21T10:00:00Z"),
        ];
        for (interval, scheduled, start, end) in cases {
            let got = interval.interval_ending_at_or_before(t(scheduled), berlin).unwrap();
            assert_eq!((got.start, got.end), (t(start), t(end)), "{interval:?} at {scheduled}");
        }
        let e = parse_timezone("Mars/Olympus").unwrap_err().to_string();
        assert!(e.contains("timezone") && e.contains("Mars/Olympus"), "{e}");
    }

    #[test]
    fn intervals_names_are_the_references() {
        let names: Vec<String> = [
            ExportInterval::Hour,
            ExportInterval::Day,
            ExportInterval::Week,
            ExportInterval::Every5Minutes,
            ExportInterval::Every15Minutes,
        ]
        .iter()
        .map(|i| serde_json::to_string(i).unwrap())
        .collect();
        assert_eq!(names, [r#""hour""#, r#""day""#, r#""week""#, r#""every 5 minutes""#, r#""every 15 minutes""#]);
    }

    #[test]
    fn run_intervals_are_checked() {
        let mut export =
            BatchExport::new("e", 1, "n", Destination::S3(S3DestinationConfig::new("bucket")), ExportInterval::Hour);
        export.start_at = Some(t("2026-01-01T00:00:00Z"));
        export.end_at = Some(t("2026-12-01T00:00:00Z"));
        let now = t("2026-11-21T10:30:00Z");
        let ok = Interval::parse("2026-11-21T09:00:00Z", "2026-11-21T10:00:00Z").unwrap();
        export.check_run_interval(&ok, now).unwrap();
        let future = Interval::parse("2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z").unwrap();
        let e = export.check_run_interval(&future, now).unwrap_err().to_string();
        assert!(e.contains("data_interval_end") && e.contains("in the future"), "{e}");
        let early = Interval::parse("2025-12-31T23:00:00Z", "2026-01-01T00:00:00Z").unwrap();
        assert!(export.check_run_interval(&early, now).unwrap_err().to_string().contains("start_at"));
        let json = serde_json::to_value(&export).unwrap();
        assert_eq!(json["destination"]["type"], "S3");
        assert_eq!(json["destination"]["config"]["bucket_name"], "bucket");
        assert_eq!(json["model"], "events");
    }
}
