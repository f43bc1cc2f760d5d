//! The exports table: one item per export, keyed by `(team_id, id)`, with the destination's credentials
//! encrypted ([`crate::secrets`]).

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use super::item_error;
use crate::error::{ExportError, Result};
use crate::exports::BatchExport;
use crate::s3::classify_sdk_error;
use crate::secrets::{without_secrets, SecretBox};

#[derive(Debug, Clone)]
pub struct ExportStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    secrets: SecretBox,
}

impl ExportStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, secrets: SecretBox) -> Self {
        ExportStore { client, table: table.into(), secrets }
    }

    /// Loads an export without its credentials (the secret fields are `None`); a missing one is
    /// [`ExportError::NotFound`].
    pub async fn get(&self, team_id: i64, id: &str) -> Result<BatchExport> {
        self.decode(without_secrets(self.item(team_id, id).await?))
    }

    /// Loads an export with its credentials decrypted (needs `kms:Decrypt` on the key).
    pub async fn get_with_secrets(&self, team_id: i64, id: &str) -> Result<BatchExport> {
        let item = self.item(team_id, id).await?;
        self.decode(self.secrets.open(item).await?)
    }

    async fn item(&self, team_id: i64, id: &str) -> Result<Value> {
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

    fn decode(&self, item: Value) -> Result<BatchExport> {
        serde_json::from_value(item).map_err(|e| {
            ExportError::Internal(format!("an item of table `{}` does not match the model: {e}", self.table))
        })
    }

    /// Writes an export (creates it, or replaces the item with the same id), its credentials encrypted.
    pub async fn put(&self, export: &BatchExport) -> Result<()> {
        let sealed = self.secrets.seal(export).await?;
        let item = serde_dynamo::to_item(sealed).map_err(|e| item_error(&self.table, e))?;
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
