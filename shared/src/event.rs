//! The events model's row: one event as the lake holds it and the events model exports it, with its JSON views
//! (the lake's, the export's) and its Arrow form (the seed's Parquet schema).

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{InternalContext, Result};
use crate::time::IsoMicros;

/// One event as the lake holds it and the events model exports it (`team_id` is only in the lake).
#[derive(Debug, Clone, Default)]
pub struct EventRow {
    pub team_id: i64,
    pub uuid: String,
    pub event: String,
    pub distinct_id: String,
    pub person_id: Option<String>,
    /// A JSON object, kept as its JSON text.
    pub properties: Option<Box<RawValue>>,
    /// A JSON object, kept as its JSON text.
    pub person_properties: Option<Box<RawValue>>,
    pub elements_chain: Option<String>,
    /// Microseconds since the epoch, UTC.
    pub timestamp: i64,
    pub created_at: Option<i64>,
    pub inserted_at: i64,
}

impl PartialEq for EventRow {
    fn eq(&self, other: &Self) -> bool {
        let text = |v: &Option<Box<RawValue>>| v.as_ref().map(|r| r.get().to_string());
        self.team_id == other.team_id
            && self.uuid == other.uuid
            && self.event == other.event
            && self.distinct_id == other.distinct_id
            && self.person_id == other.person_id
            && text(&self.properties) == text(&other.properties)
            && text(&self.person_properties) == text(&other.person_properties)
            && self.elements_chain == other.elements_chain
            && self.timestamp == other.timestamp
            && self.created_at == other.created_at
            && self.inserted_at == other.inserted_at
    }
}

/// How an [`EventRow`] is written as JSON: the lake's rows carry `team_id`, the export's JSONLines do not.
#[derive(Serialize)]
pub struct JsonEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<i64>,
    pub uuid: &'a str,
    pub event: &'a str,
    pub distinct_id: &'a str,
    pub person_id: Option<&'a str>,
    pub properties: Option<&'a RawValue>,
    pub person_properties: Option<&'a RawValue>,
    pub elements_chain: Option<&'a str>,
    pub timestamp: IsoMicros,
    pub created_at: Option<IsoMicros>,
    /// `None` only in [`EventRow::as_queued_json`].
    #[serde(rename = "_inserted_at", skip_serializing_if = "Option::is_none")]
    pub inserted_at: Option<IsoMicros>,
}

impl EventRow {
    /// The export's JSONLines view of the row (no `team_id`).
    pub fn as_export_json(&self) -> JsonEvent<'_> {
        self.as_json(false)
    }

    /// The lake's view of the row (with `team_id`).
    pub fn as_lake_json(&self) -> JsonEvent<'_> {
        self.as_json(true)
    }

    /// The lake's view without `_inserted_at`, which the lake writer adds when it writes the row (capture's
    /// queue).
    pub fn as_queued_json(&self) -> JsonEvent<'_> {
        JsonEvent { inserted_at: None, ..self.as_json(true) }
    }

    fn as_json(&self, with_team: bool) -> JsonEvent<'_> {
        JsonEvent {
            team_id: with_team.then_some(self.team_id),
            uuid: &self.uuid,
            event: &self.event,
            distinct_id: &self.distinct_id,
            person_id: self.person_id.as_deref(),
            properties: self.properties.as_deref(),
            person_properties: self.person_properties.as_deref(),
            elements_chain: self.elements_chain.as_deref(),
            timestamp: IsoMicros(self.timestamp),
            created_at: self.created_at.map(IsoMicros),
            inserted_at: Some(IsoMicros(self.inserted_at)),
        }
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The events model's Parquet/Arrow schema, in the seed's column order.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("distinct_id", DataType::Utf8, false),
        Field::new("person_id", DataType::Utf8, true),
        Field::new("properties", DataType::Utf8, true),
        Field::new("person_properties", DataType::Utf8, true),
        Field::new("elements_chain", DataType::Utf8, true),
        Field::new("timestamp", utc_micros(), false),
        Field::new("created_at", utc_micros(), true),
        Field::new("_inserted_at", utc_micros(), false),
    ]))
}

/// Builds one record batch of the events schema from rows.
pub fn events_record_batch(schema: &SchemaRef, rows: &[EventRow]) -> Result<RecordBatch> {
    let n = rows.len();
    let strings = |f: &dyn Fn(&EventRow) -> Option<&str>, bytes_per_row: usize| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * bytes_per_row);
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let times = |f: &dyn Fn(&EventRow) -> Option<i64>| -> ArrayRef {
        let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let columns = vec![
        strings(&|r| Some(&r.uuid), 36),
        strings(&|r| Some(&r.event), 16),
        strings(&|r| Some(&r.distinct_id), 36),
        strings(&|r| r.person_id.as_deref(), 36),
        strings(&|r| r.properties.as_deref().map(|p| p.get()), 600),
        strings(&|r| r.person_properties.as_deref().map(|p| p.get()), 200),
        strings(&|r| r.elements_chain.as_deref(), 8),
        times(&|r| Some(r.timestamp)),
        times(&|r| r.created_at),
        times(&|r| Some(r.inserted_at)),
    ];
    RecordBatch::try_new(schema.clone(), columns).internal("record batch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_and_export_json_views() {
        let row = EventRow {
            team_id: 7,
            uuid: "u".into(),
            event: "e".into(),
            distinct_id: "d".into(),
            person_id: None,
            properties: Some(RawValue::from_string(r#"{"a":1}"#.into()).unwrap()),
            person_properties: None,
            elements_chain: Some(String::new()),
            timestamp: 0,
            created_at: Some(1),
            inserted_at: 2,
        };
        let lake = serde_json::to_string(&row.as_lake_json()).unwrap();
        assert!(lake.starts_with(r#"{"team_id":7,"uuid":"u""#), "{lake}");
        let export = serde_json::to_string(&row.as_export_json()).unwrap();
        assert_eq!(
            export,
            r#"{"uuid":"u","event":"e","distinct_id":"d","person_id":null,"properties":{"a":1},"person_properties":null,"elements_chain":"","timestamp":"1970-01-01T00:00:00.000000Z","created_at":"1970-01-01T00:00:00.000001Z","_inserted_at":"1970-01-01T00:00:00.000002Z"}"#
        );
    }
}
