//! The exports table: one item per export, keyed by `(team_id, id)`, with the destination's credentials
//! encrypted ([`crate::secrets`]).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde_json::Value;

use std::collections::HashMap;

use super::{item_error, time_value};
use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, Result};
use crate::exports::BatchExport;
use crate::secrets::{without_secrets, SecretBox, ENCRYPTED_SECRETS};

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
        let values = [
            (":paused", AttributeValue::Bool(true)),
            (":reason", AttributeValue::S(reason.to_string())),
            (":now", time_value(now)),
        ];
        self.update_item(team_id, id, "SET paused = :paused, paused_reason = :reason, last_paused_at = :now", values)
            .await
    }

    /// Unpauses an export (clearing the pause reason); returns the export as it is now.
    pub async fn unpause(&self, team_id: i64, id: &str) -> Result<BatchExport> {
        self.update_item(
            team_id,
            id,
            "SET paused = :paused REMOVE paused_reason",
            [(":paused", AttributeValue::Bool(false))],
        )
        .await
    }

    /// Updates an existing export's item; returns the export as it is now, without credentials.
    async fn update_item<const N: usize>(
        &self,
        team_id: i64,
        id: &str,
        expression: &str,
        values: [(&str, AttributeValue); N],
    ) -> Result<BatchExport> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(team_id, id)))
            .update_expression(expression)
            .condition_expression("attribute_exists(id)")
            .set_expression_attribute_values(Some(values.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.update_error(e, "UpdateItem", id))?;
        let item: Value =
            serde_dynamo::from_item(out.attributes.unwrap_or_default()).map_err(|e| item_error(&self.table, e))?;
        self.decode(without_secrets(item))
    }

    /// A team's exports (without credentials), by id.
    pub async fn list(&self, team_id: i64) -> Result<Vec<BatchExport>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("team_id = :t")
            .expression_attribute_values(":t", AttributeValue::N(team_id.to_string()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut exports = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| classify_sdk_error(e, "Query", &self.table, None))?;
            let value: Value = serde_dynamo::from_item(item).map_err(|e| item_error(&self.table, e))?;
            exports.push(self.decode(without_secrets(value))?);
        }
        Ok(exports)
    }

    /// Deletes an export's item (its runs and backfills stay).
    pub async fn delete(&self, team_id: i64, id: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(team_id, id)))
            .condition_expression("attribute_exists(id)")
            .send()
            .await
            .map_err(|e| self.update_error(e, "DeleteItem", id))?;
        Ok(())
    }

    /// Replaces an export, encrypting the credentials it carries; a secret field it leaves unset keeps the
    /// stored ciphertext (a patch that does not mention the credentials keeps them, undecrypted).
    pub async fn update(&self, export: &BatchExport) -> Result<()> {
        let stored = self.item(export.team_id, &export.id).await?;
        let mut sealed = self.secrets.seal(export).await?;
        if let (Some(Value::Object(old)), Some(Value::Object(new))) =
            (stored.get(ENCRYPTED_SECRETS), sealed.get_mut(ENCRYPTED_SECRETS))
        {
            for (field, cipher) in old {
                new.entry(field.clone()).or_insert_with(|| cipher.clone());
            }
        }
        super::put_item(&self.client, &self.table, sealed, Some("attribute_exists(id)")).await
    }

    /// Maps a failed conditional write on an export: a missing export is [`ExportError::NotFound`].
    fn update_error<E>(&self, e: SdkError<E, HttpResponse>, operation: &'static str, id: &str) -> ExportError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if e.code() == Some("ConditionalCheckFailedException") {
            return ExportError::NotFound { what: "batch export", id: id.to_string() };
        }
        classify_sdk_error(e, operation, &self.table, None)
    }

    /// Creates an export, its credentials encrypted; an existing id is refused.
    pub async fn create(&self, export: &BatchExport) -> Result<()> {
        let sealed = self.secrets.seal(export).await?;
        super::put_item(&self.client, &self.table, sealed, Some("attribute_not_exists(id)")).await
    }

    /// Writes an export (creates it, or replaces the item with the same id), its credentials encrypted.
    pub async fn put(&self, export: &BatchExport) -> Result<()> {
        let sealed = self.secrets.seal(export).await?;
        super::put_item(&self.client, &self.table, sealed, None).await
    }
}
