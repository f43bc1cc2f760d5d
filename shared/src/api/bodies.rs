//! Request bodies and their validation, and the JSON views the API returns.
//!
//! Bodies are parsed strictly: unknown keys are rejected (at every level, the destination config too), required
//! fields are enforced, times must be ISO 8601 with a time zone, and then the rules across fields are checked
//! (`start_at < end_at`, the destination's rules: format/compression pairs, key template variables, …). Every
//! rejection is an [`ApiError::Validation`] naming the field as a dotted path (`destination.config.compression`).
//! Views never hold a destination's secret fields.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::backfills::Backfill;
use crate::batch_export::{parse_timezone, BatchExport, ConfigParser, Destination, ExportInterval};
use crate::limits::MAX_NAME_CHARS;
use crate::model::Model;
use crate::network::EndpointPolicy;
use crate::runs::Run;

/// Backfills run at most this many intervals at once.
pub const MAX_BACKFILL_CONCURRENCY: u32 = 10;

/// The largest request body, in bytes (every export item stays far below DynamoDB's 400 KB item limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where a body may hold objects and arrays; everywhere else a value is a scalar. serde's derives accept an
/// array in place of a struct and a one-key map in place of an enum; these shapes refuse both.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub objects: &'static [&'static str],
    pub arrays: &'static [&'static str],
}

impl Shape {
    /// A flat object of scalars (backfills, unpause).
    pub const FLAT: Shape = Shape { objects: &[], arrays: &[] };
    /// An export (create and patch).
    pub const EXPORT: Shape = Shape {
        objects: &["destination", "destination.config"],
        arrays: &["destination.config.include_events", "destination.config.exclude_events"],
    };

    /// Checks `value` at `path` (the body itself at `""`): objects and arrays only where allowed, arrays of
    /// scalars, no NUL in any string.
    fn check(&self, value: &Value, path: &str) -> Result<(), ApiError> {
        let attr = if path.is_empty() { "body" } else { path };
        match value {
            Value::Object(map) => {
                if !path.is_empty() && !self.objects.contains(&path) {
                    return Err(ApiError::validation(attr, "must not be an object"));
                }
                for (key, value) in map {
                    let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    self.check(value, &path)?;
                }
            }
            Value::Array(items) => {
                if path.is_empty() {
                    return Err(ApiError::validation(attr, "a JSON object is required, not an array"));
                }
                if !self.arrays.contains(&path) {
                    return Err(ApiError::validation(attr, "must not be an array"));
                }
                for (i, item) in items.iter().enumerate() {
                    if item.is_object() || item.is_array() {
                        return Err(ApiError::validation(format!("{path}[{i}]"), "must be a string"));
                    }
                    self.check(item, path)?;
                }
            }
            Value::String(text) if text.contains('\0') => {
                return Err(ApiError::validation(attr, "must not contain NUL characters"));
            }
            _ if path.is_empty() => return Err(ApiError::validation(attr, "a JSON object is required")),
            _ => {}
        }
        Ok(())
    }
}

/// A JSON value parsed strictly: a key repeated in an object is an error naming it (serde_json's `Value`
/// would keep the last one silently).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Strict;
        impl<'de> serde::de::Visitor<'de> for Strict {
            type Value = StrictValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
                let mut items = Vec::new();
                while let Some(StrictValue(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(StrictValue(Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
                let mut object = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if object.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!("{DUPLICATE}{key}` appears twice")));
                    }
                    let StrictValue(value) = map.next_value()?;
                    object.insert(key, value);
                }
                Ok(StrictValue(Value::Object(object)))
            }
        }
        d.deserialize_any(Strict)
    }
}

const DUPLICATE: &str = "the key `";

/// Parses a JSON body into `T`: one JSON object (nothing after it), of at most [`MAX_BODY_BYTES`], no key
/// twice, objects and arrays only where `shape` allows them; serde's errors are mapped to the field they are
/// about.
pub fn parse<T: DeserializeOwned>(body: &[u8], shape: Shape) -> Result<T, ApiError> {
    parse_value(parse_json(body, shape)?, "")
}

/// The strict JSON parse of [`parse`], without the conversion to a type.
pub fn parse_json(body: &[u8], shape: Shape) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation("body", "a JSON object is required"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::validation("body", format!("must be at most {MAX_BODY_BYTES} bytes")));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = match serde_path_to_error::deserialize::<_, StrictValue>(&mut de) {
        Ok(StrictValue(value)) => value,
        Err(e) => {
            let parent = e.path().to_string();
            let message = e.into_inner().to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            let attr = match message.strip_prefix(DUPLICATE).and_then(|rest| rest.split('`').next()) {
                Some(key) if matches!(parent.as_str(), "." | "" | "?") => key.to_string(),
                Some(key) => format!("{parent}.{key}"),
                // Syntax errors, too deep a nesting: about the body as a whole.
                None => "body".to_string(),
            };
            return Err(ApiError::validation(attr, message));
        }
    };
    de.end().map_err(|_| ApiError::validation("body", "must hold one JSON value, with nothing after it"))?;
    shape.check(&value, "")?;
    Ok(value)
}

/// Parses a JSON value found at `at` (a dotted path) into `T`.
fn parse_value<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| field_error(at, e))
}

fn field_error<E: std::fmt::Display>(at: &str, e: serde_path_to_error::Error<E>) -> ApiError {
    let path = e.path().to_string();
    let message = e.into_inner().to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    // A missing key is reported on its parent (an unknown one on itself): name the key.
    let named = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    let path = match (named, path.as_str()) {
        (Some(key), "." | "" | "?") => key.to_string(),
        (Some(key), parent) => format!("{parent}.{key}"),
        (None, "." | "" | "?") => String::new(),
        (None, path) => path.to_string(),
    };
    let attr = match (at, path.as_str()) {
        ("", "") => "body".to_string(),
        (at, "") => at.to_string(),
        ("", path) => path.to_string(),
        (at, path) => format!("{at}.{path}"),
    };
    ApiError::validation(attr, message)
}

/// A destination as a body holds it: its type, and a config parsed by that type (so errors name the
/// config's fields: `destination.config.compression`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub config: Value,
}

impl DestinationBody {
    fn parse(self) -> Result<Destination, ApiError> {
        Destination::from_config(&self.kind, self.config, &FieldNamingParser("destination.config")).unwrap_or_else(
            || {
                let types = Destination::TYPE_NAMES.join(", ");
                Err(ApiError::validation(
                    "destination.type",
                    format!("`{}` is not a destination type ({types})", self.kind),
                ))
            },
        )
    }
}

/// Parses a config with [`parse_value`], naming a bad field under its prefix.
struct FieldNamingParser(&'static str);

impl ConfigParser for FieldNamingParser {
    type Error = ApiError;

    fn parse<T: DeserializeOwned>(&self, config: Value) -> Result<T, ApiError> {
        parse_value(config, self.0)
    }
}

/// An optional tz-aware ISO 8601 time; a time without an offset is refused (it would be ambiguous).
fn tz_aware<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    DateTime::parse_from_rfc3339(&text).map(|t| Some(t.to_utc())).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}` is not an ISO 8601 time with a time zone (e.g. 2026-11-21T00:00:00Z or +01:00)"
        ))
    })
}

/// The body of `POST /batch_exports/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateExport {
    pub name: String,
    #[serde(default)]
    pub model: Model,
    pub destination: DestinationBody,
    pub interval: ExportInterval,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default, deserialize_with = "tz_aware")]
    pub start_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "tz_aware")]
    pub end_at: Option<DateTime<Utc>>,
}

impl CreateExport {
    /// Applies the body to an export (a new one, or the stored one merged with a patch) and checks it;
    /// `stored` names the secret fields the export keeps stored (and the body does not replace). A new or
    /// changed `end_at` must be ahead of now (an export that ends in the past would never run; the past is a
    /// backfill's job); a `start_at` in the past is fine (runs start with the next interval).
    pub fn apply(self, export: &mut BatchExport, stored: &[String], policy: EndpointPolicy) -> Result<(), ApiError> {
        let previous_end = export.end_at;
        export.name = self.name;
        export.model = self.model;
        export.destination = self.destination.parse()?;
        export.interval = self.interval;
        export.timezone = self.timezone.unwrap_or_else(|| "UTC".into());
        export.start_at = self.start_at;
        export.end_at = self.end_at;
        check_export(export, stored, policy)?;
        match export.end_at {
            Some(end) if export.end_at != previous_end && end <= Utc::now() => {
                Err(ApiError::validation("end_at", "must be in the future (the past is a backfill's job)"))
            }
            _ => Ok(()),
        }
    }
}

/// The rules across fields of an export; `stored` names the secret fields kept from the stored export, and
/// `policy` says where user-given endpoints may point.
pub fn check_export(export: &BatchExport, stored: &[String], policy: EndpointPolicy) -> Result<(), ApiError> {
    if export.name.trim().is_empty() {
        return Err(ApiError::validation("name", "must not be empty"));
    }
    if export.name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation("name", format!("must be at most {MAX_NAME_CHARS} characters long")));
    }
    parse_timezone(&export.timezone).map_err(|_| {
        ApiError::validation("timezone", format!("`{}` is not an IANA time zone name", export.timezone))
    })?;
    if let (Some(start), Some(end)) = (export.start_at, export.end_at) {
        if start >= end {
            return Err(ApiError::validation("start_at", "must be before end_at"));
        }
    }
    export.destination.validate_with_stored(stored, policy).map_err(|e| match e {
        crate::ExportError::InvalidConfig { field, reason } => {
            ApiError::validation(format!("destination.config.{field}"), reason)
        }
        other => ApiError::Service(other),
    })
}

/// A patch merged into an export: the body to apply, and the secret fields the patch mentions (set to a new
/// value, or to `null` to remove them); the other stored secrets are kept.
#[derive(Debug)]
pub struct MergedPatch {
    pub body: CreateExport,
    pub mentioned_secrets: Vec<String>,
}

/// Merges a patch into an export's JSON (without secrets): top-level keys replace, the destination config is
/// merged key by key. The result is parsed as a [`CreateExport`], so a patch meets every rule a create does.
pub fn merge_patch(current: &BatchExport, patch: &[u8]) -> Result<MergedPatch, ApiError> {
    let Value::Object(patch) = parse_json(patch, Shape::EXPORT)? else { unreachable!("the shape is an object") };
    let mentioned_secrets = patch
        .get("destination")
        .and_then(|d| d.get("config"))
        .and_then(Value::as_object)
        .map(|config| SECRET_FIELDS.iter().filter(|f| config.contains_key(**f)).map(|f| f.to_string()).collect())
        .unwrap_or_default();
    if patch.contains_key("paused") {
        return Err(ApiError::validation("paused", "cannot be patched: use the pause and unpause routes"));
    }
    let current = export_view(current);
    let mut merged = Map::new();
    for key in ["name", "model", "destination", "interval", "timezone", "start_at", "end_at"] {
        if let Some(value) = current.get(key).filter(|v| !v.is_null()) {
            merged.insert(key.to_string(), value.clone());
        }
    }
    for (key, value) in patch {
        match (key.as_str(), value) {
            ("destination", Value::Object(mut destination)) => {
                let config = match destination.remove("config") {
                    Some(Value::Object(patch_config)) => {
                        let mut config = merged["destination"]["config"].as_object().cloned().unwrap_or_default();
                        config.extend(patch_config);
                        Value::Object(config)
                    }
                    Some(other) => other,
                    None => merged["destination"]["config"].clone(),
                };
                let mut new = merged["destination"].as_object().cloned().unwrap_or_default();
                new.extend(destination);
                new.insert("config".into(), config);
                merged.insert(key, Value::Object(new));
            }
            (_, value) => {
                merged.insert(key, value);
            }
        }
    }
    Ok(MergedPatch { body: parse_value(Value::Object(merged), "")?, mentioned_secrets })
}

/// Every destination's secret fields.
const SECRET_FIELDS: [&str; 4] = ["aws_access_key_id", "aws_secret_access_key", "private_key", "private_key_id"];

/// The body of `POST /backfills/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBackfill {
    /// Default: the earliest data in the lake.
    #[serde(default, deserialize_with = "tz_aware")]
    pub start_at: Option<DateTime<Utc>>,
    /// Default: now.
    #[serde(default, deserialize_with = "tz_aware")]
    pub end_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub concurrency: Option<u32>,
}

impl CreateBackfill {
    /// The range and concurrency, checked: `start_at < end_at`, `end_at` not in the future.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(crate::Interval, u32), ApiError> {
        let end = self.end_at.unwrap_or(now);
        if end > now {
            return Err(ApiError::validation("end_at", "must not be in the future"));
        }
        let start = self.start_at.unwrap_or(DateTime::UNIX_EPOCH);
        if start >= end {
            return Err(ApiError::validation("start_at", "must be before end_at"));
        }
        let concurrency = self.concurrency.unwrap_or(1);
        if !(1..=MAX_BACKFILL_CONCURRENCY).contains(&concurrency) {
            return Err(ApiError::validation(
                "concurrency",
                format!("must be between 1 and {MAX_BACKFILL_CONCURRENCY}"),
            ));
        }
        Ok((crate::Interval { start, end }, concurrency))
    }
}

/// The body of `POST /unpause` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unpause {
    #[serde(default)]
    pub backfill: bool,
}

/// An export as the API returns it: every field, the destination config without its secret fields.
pub fn export_view(export: &BatchExport) -> Value {
    let mut value = serde_json::to_value(export).expect("an export serializes");
    if let Some(config) = value["destination"]["config"].as_object_mut() {
        for field in export.destination.secret_fields() {
            config.remove(*field);
        }
    }
    value
}

/// A run as the API returns it: the stored record with `id` (the run id) first.
pub fn run_view(run: &Run) -> Value {
    let mut value = serde_json::to_value(run).expect("a run serializes");
    value["id"] = Value::String(run.run_id.clone());
    // The keys a run in flight has written so far (see `steps::write_manifest`) and how often it planned are its
    // own bookkeeping.
    if let Some(fields) = value.as_object_mut() {
        fields.remove("written_files");
        fields.remove("earlier_files");
        fields.remove("plans");
    }
    value
}

/// A backfill as the API returns it, with its progress as a fraction (null until planned).
pub fn backfill_view(backfill: &Backfill) -> Value {
    let mut value = serde_json::to_value(backfill).expect("a backfill serializes");
    value["progress"] = match backfill.expected_runs {
        Some(0) => Value::from(1.0),
        Some(expected) => Value::from(backfill.finished_runs as f64 / expected as f64),
        None => Value::Null,
    };
    value
}

/// A query parameter parsed as a tz-aware time.
pub fn query_time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.to_utc())
                .map_err(|_| ApiError::validation(name, format!("`{v}` is not an ISO 8601 time with a time zone")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::S3DestinationConfig;

    fn attr(body: &str) -> String {
        match parse::<CreateExport>(body.as_bytes(), Shape::EXPORT).and_then(|b| {
            let mut e =
                BatchExport::new("e", 1, "x", Destination::S3(S3DestinationConfig::new("b-b-b")), ExportInterval::Hour);
            b.apply(&mut e, &[], EndpointPolicy::default())
        }) {
            Err(ApiError::Validation { attr, .. }) => attr,
            other => panic!("{body}: {other:?}"),
        }
    }

    const OK: &str = r#""destination": {"type": "S3", "config": {"bucket_name": "my-bucket"}}, "interval": "hour""#;

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(attr(&format!("{{{OK}}}")), "name");
        assert_eq!(attr(&format!(r#"{{"name": "n", {OK}, "colour": 1}}"#)), "colour");
        assert_eq!(attr(r#"{"name": "n", "interval": "hour"}"#), "destination");
        assert_eq!(
            attr(
                r#"{"name": "n", "interval": "hour", "destination": {"type": "S3", "config": {"bucket_name": "b-b", "x": 1}}}"#
            ),
            "destination.config.x"
        );
        assert_eq!(
            attr(r#"{"name": "n", "interval": "hour", "destination": {"type": "S3", "config": {}}}"#),
            "destination.config.bucket_name"
        );
        assert_eq!(attr(&format!(r#"{{"name": "n", {OK}, "start_at": "2026-01-01T00:00:00"}}"#)), "start_at");
        assert_eq!(attr(&format!(r#"{{"name": "n", "name": "m", {OK}}}"#)), "name");
        assert_eq!(attr(&format!(r#"{{"name": "n", {OK}}} {{}}"#)), "body");
        assert_eq!(attr(&format!(r#"[{{"name": "n", {OK}}}]"#)), "body");
        assert_eq!(attr(&"[".repeat(10_000)), "body");
        assert_eq!(
            attr(
                &format!(r#"{{"name": "n", {OK}}}"#).replace(r#""interval": "hour""#, r#""interval": {"hour": null}"#)
            ),
            "interval"
        );
        assert_eq!(attr(&format!(r#"{{"name": "n\u0000", {OK}}}"#)), "name");
        assert_eq!(attr(&format!(r#"{{"name": "{}", {OK}}}"#, "n".repeat(256))), "name");
        let not_utf8 = [b"{\"".as_slice(), &[0xff, 0xfe], b"\": 1}"].concat();
        let parsed = parse::<CreateExport>(&not_utf8, Shape::EXPORT);
        assert!(matches!(&parsed, Err(ApiError::Validation { attr, .. }) if attr == "body"), "{parsed:?}");
    }

    #[test]
    fn a_past_start_is_accepted_a_past_or_early_end_is_not() {
        let now = Utc::now();
        let body = |start: DateTime<Utc>, end: Option<DateTime<Utc>>| {
            let end = end.map(|e| format!(r#", "end_at": "{}""#, e.to_rfc3339())).unwrap_or_default();
            format!(r#"{{"name": "n", {OK}, "start_at": "{}"{end}}}"#, start.to_rfc3339())
        };
        let apply = |body: &str, export: &mut BatchExport| {
            parse::<CreateExport>(body.as_bytes(), Shape::EXPORT)
                .and_then(|b| b.apply(export, &[], EndpointPolicy::default()))
        };
        let mut export =
            BatchExport::new("e", 1, "x", Destination::S3(S3DestinationConfig::new("b-b-b")), ExportInterval::Hour);
        apply(&body(now - chrono::Duration::days(7), None), &mut export).unwrap();
        assert_eq!(export.start_at, Some(now - chrono::Duration::days(7)));
        assert_eq!(attr(&body(now - chrono::Duration::days(7), Some(now - chrono::Duration::days(1)))), "end_at");
        assert_eq!(attr(&body(now + chrono::Duration::days(2), Some(now + chrono::Duration::days(1)))), "start_at");
        // An end that has passed since it was set is no reason to refuse a patch of another field.
        let end = now - chrono::Duration::hours(1);
        export.end_at = Some(end);
        let patch = format!(r#"{{"name": "renamed", "end_at": "{}"}}"#, end.to_rfc3339());
        merge_patch(&export, patch.as_bytes())
            .unwrap()
            .body
            .apply(&mut export, &[], EndpointPolicy::default())
            .unwrap();
        assert_eq!(export.name, "renamed");
    }

    #[test]
    fn patches_merge_the_config() {
        let mut config = S3DestinationConfig::new("bucket-one");
        config.prefix = "p/".into();
        let export = BatchExport::new("e", 1, "x", Destination::S3(config), ExportInterval::Hour);
        let merged = merge_patch(&export, br#"{"destination": {"config": {"bucket_name": "bucket-two"}}}"#).unwrap();
        assert!(merged.mentioned_secrets.is_empty());
        let merged = merged.body;
        let Destination::S3(config) = merged.destination.parse().unwrap() else { panic!("S3") };
        assert_eq!((config.bucket_name.as_str(), config.prefix.as_str()), ("bucket-two", "p/"));
        assert_eq!(merged.name, "x");
        let removal = br#"{"destination": {"config": {"aws_access_key_id": null, "aws_secret_access_key": null}}}"#;
        assert_eq!(
            merge_patch(&export, removal).unwrap().mentioned_secrets,
            ["aws_access_key_id", "aws_secret_access_key"]
        );
    }
}
