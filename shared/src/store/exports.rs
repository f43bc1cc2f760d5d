//! The exports table: one item per export, keyed by `(team_id, id)`.

use aws_sdk_dynamodb::types::AttributeValue;

use super::item_error;
use crate::error::{ExportError, Result};
use crate::exports::BatchExport;
use crate::s3::classify_sdk_error;

#[derive(Debug, Clone)]
pub struct ExportStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl ExportStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        ExportStore { client, table: table.into() }
    }

    /// Loads an export; a missing one is [`ExportError::NotFound`].
    pub async fn get(&self, team_id: i64, id: &str) -> Result<BatchExport> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("team_id", AttributeValue::N(team_id.to_string()))
            .key("id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "GetItem", &self.table, None))?;
        let item = out.item.ok_or_else(|| ExportError::NotFound { what: "batch export", id: id.to_string() })?;
        serde_dynamo::from_item(item).map_err(|e| item_error(&self.table, e))
    }

    /// Writes an export (creates it, or replaces the item with the same id).
    pub async fn put(&self, export: &BatchExport) -> Result<()> {
        let item = serde_dynamo::to_item(export).map_err(|e| item_error(&self.table, e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "PutItem", &self.table, None))?;
        Ok(())
    }
}
