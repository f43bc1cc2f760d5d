//! The events model's rows as the encoders write them: the export's JSON view (no `team_id`) and the seed's
//! Arrow schema ([`crate::event`]).

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::ExportRow;
use crate::error::{InternalContext, Result};
use crate::event::{events_record_batch, events_schema, EventRow};

impl ExportRow for EventRow {
    fn schema() -> SchemaRef {
        events_schema()
    }

    fn record_batch(schema: &SchemaRef, rows: &[Self]) -> Result<RecordBatch> {
        events_record_batch(schema, rows)
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Result<()> {
        serde_json::to_writer(out, &self.as_export_json()).internal(format!("serializing event {}", self.uuid))
    }
}
