//! Rows as a stage table receives them: newline-delimited JSON in the stage schema
//! ([`super::schema::stage_schema`]), JSON-valued columns as JSON text.
//!
//! Events: `properties` as sent; `set` and `set_once` from the properties' `$set` and `$set_once`; `ip` from
//! `$ip`; `elements` is the elements chain; `site_url` is empty (deprecated in the reference too). Persons: the
//! seed's six columns.

use serde_json::{json, Value};

use crate::event::EventRow;
use crate::person::PersonRow;
use crate::time::IsoMicros;

/// One event as a stage row.
pub fn event_stage_row(row: &EventRow) -> Value {
    let properties: Option<Value> = row.properties.as_ref().and_then(|p| serde_json::from_str(p.get()).ok());
    let member = |name: &str| properties.as_ref().and_then(|p| p.get(name)).filter(|v| !v.is_null());
    json!({
        "uuid": row.uuid,
        "event": row.event,
        "properties": row.properties.as_ref().map(|p| p.get().to_string()),
        "elements": row.elements_chain.clone().unwrap_or_default(),
        "set": member("$set").map(|v| v.to_string()),
        "set_once": member("$set_once").map(|v| v.to_string()),
        "distinct_id": row.distinct_id,
        "team_id": row.team_id,
        "ip": member("$ip").and_then(|v| v.as_str()).map(str::to_string),
        "site_url": "",
        "timestamp": IsoMicros(row.timestamp).to_string(),
    })
}

/// One person row as a stage row (`properties` as JSON text).
pub fn person_stage_row(row: &PersonRow) -> Value {
    json!({
        "team_id": row.team_id,
        "distinct_id": row.distinct_id,
        "person_id": row.person_id,
        "properties": row.properties.to_string(),
        "person_version": row.person_version,
        "person_distinct_id_version": row.person_distinct_id_version,
    })
}

/// Events as newline-delimited JSON for a load job.
pub fn events_ndjson(rows: &[EventRow]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        serde_json::to_writer(&mut out, &event_stage_row(row)).expect("a JSON value serializes");
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_set_once_and_ip_come_from_the_properties() {
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap().to_utc();
        let mut row = crate::sources::synthetic::SyntheticEvents::new(1, 7)
            .events_between(start, chrono::Duration::hours(1), 1)
            .remove(0);
        row.properties = Some(
            serde_json::value::RawValue::from_string(r#"{"$set": {"plan": "pro"}, "$ip": "10.0.0.1", "x": 1}"#.into())
                .unwrap(),
        );
        let stage = event_stage_row(&row);
        assert_eq!(stage["set"], r#"{"plan":"pro"}"#);
        assert_eq!(stage["set_once"], Value::Null);
        assert_eq!(stage["ip"], "10.0.0.1");
        assert_eq!(stage["team_id"], 7);
        assert!(stage["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(events_ndjson(&[row.clone(), row]).split(|b| *b == b'\n').count(), 3);
    }
}
