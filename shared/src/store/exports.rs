//! The exports table: one item per export, keyed by `(team_id, id)`, with the destination's credentials
//! encrypted ([`crate::secrets`]).

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use std::collections::HashMap;

use super::{item_error, time_value};
use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, Result};
use crate::exports::BatchExport;
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

    fn key(team_id: i64, id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("team_id".to_string(), AttributeValue::N(team_id.to_string())),
            ("id".to_string(), AttributeValue::S(id.to_string())),
        ])
    }

    async fn item(&self, team_id: i64, id: &str) -> Result<Value> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(team_id, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "GetItem", &self.table, None))?;
        let item = out.item.ok_or_else(|| ExportError::NotFound { what: "batch export", id: id.to_string() })?;
        serde_dynamo::from_item(item).map_err(|e| item_error(&self.table, e))
    }

    fn decode(&self, item: Value) -> Result<BatchExport> {
        serde_json::from_value(item).map_err(|e| item_error(&self.table, e))
    }

    /// Pauses an export, recording why; returns the export as it is now.
    pub async fn pause(
        &self,
        team_id: i64,
        id: &str,
        reason: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<BatchExport> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(team_id, id)))
            .update_expression("SET paused = :paused, paused_reason = :reason, last_paused_at = :now")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":paused", AttributeValue::Bool(true))
            .expression_attribute_values(":reason", AttributeValue::S(reason.to_string()))
            .expression_attribute_values(":now", time_value(now))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_conditional_check_failed_exception() => {
                    ExportError::NotFound { what: "batch export", id: id.to_string() }
                }
                _ => classify_sdk_error(e, "UpdateItem", &self.table, None),
            })?;
        let item: Value =
            serde_dynamo::from_item(out.attributes.unwrap_or_default()).map_err(|e| item_error(&self.table, e))?;
        self.decode(without_secrets(item))
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
