//! The exports table: one item per export, keyed by `(team_id, id)`, with the destination's credentials
//! encrypted ([`crate::secrets`]).
//!
//! Every write bumps the item's `version` (1 when created): a replace is conditional on the version it read, so
//! a patch cannot overwrite a pause (or another patch) that landed between its read and its write, and writers
//! of the export's schedule can tell whether the item changed after they wrote it ([`crate::schedules::converge`]).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde_json::{Map, Value};

use std::collections::HashMap;

use super::{item_error, time_value};
use crate::aws_error::classify_sdk_error;
use crate::batch_export::BatchExport;
use crate::error::{ExportError, Result};
use crate::secrets::{without_secrets, SecretBox, ENCRYPTED_SECRETS};

/// An export as its item holds it: the export (without credentials), the item's version, and the sealed
/// secrets (ciphertexts only) by field.
#[derive(Debug, Clone)]
pub struct StoredExport {
    pub export: BatchExport,
    pub version: u64,
    pub sealed: Map<String, Value>,
}

impl StoredExport {
    fn from_item(store: &ExportStore, mut item: Value) -> Result<Self> {
        let version = item.get(VERSION).and_then(Value::as_u64).unwrap_or(0);
        let sealed = match item.as_object_mut().and_then(|o| o.remove(ENCRYPTED_SECRETS)) {
            Some(Value::Object(sealed)) => sealed,
            _ => Map::new(),
        };
        Ok(StoredExport { export: store.decode(item)?, version, sealed })
    }

    /// The secret fields that hold a stored ciphertext.
    pub fn sealed_fields(&self) -> Vec<String> {
        self.sealed.keys().cloned().collect()
    }
}

/// The attribute that counts an export item's writes.
const VERSION: &str = "version";

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

    /// Loads an export as stored: without credentials, with its version and sealed secrets.
    pub async fn get_stored(&self, team_id: i64, id: &str) -> Result<StoredExport> {
        StoredExport::from_item(self, self.item(team_id, id).await?)
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
    ) -> Result<StoredExport> {
        let values = [
            (":paused", AttributeValue::Bool(true)),
            (":reason", AttributeValue::S(reason.to_string())),
            (":now", time_value(now)),
        ];
        self.update_item(team_id, id, "SET paused = :paused, paused_reason = :reason, last_paused_at = :now", values)
            .await
    }

    /// Unpauses an export (clearing the pause reason); returns the export as it is now.
    pub async fn unpause(&self, team_id: i64, id: &str) -> Result<StoredExport> {
        self.update_item(
            team_id,
            id,
            "SET paused = :paused REMOVE paused_reason",
            [(":paused", AttributeValue::Bool(false))],
        )
        .await
    }

    /// Updates an existing export's item (and bumps its version); returns the export as it is now.
    async fn update_item<const N: usize>(
        &self,
        team_id: i64,
        id: &str,
        expression: &str,
        values: [(&str, AttributeValue); N],
    ) -> Result<StoredExport> {
        let mut values: HashMap<String, AttributeValue> = values.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        values.insert(":one".into(), AttributeValue::N("1".into()));
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(team_id, id)))
            .update_expression(format!("{expression} ADD {VERSION} :one"))
            .condition_expression("attribute_exists(id)")
            .set_expression_attribute_values(Some(values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.update_error(e, "UpdateItem", id))?;
        let item: Value =
            serde_dynamo::from_item(out.attributes.unwrap_or_default()).map_err(|e| item_error(&self.table, e))?;
        StoredExport::from_item(self, item)
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

    /// Replaces the export `stored` was read as, encrypting the credentials it carries and keeping the stored
    /// ciphertexts of the secret fields in `keep` (the ones a patch did not mention); every other stored secret
    /// is removed. Returns the export as written, or `None` when the item changed since it was read (the caller
    /// reads and merges again); a deleted export is [`ExportError::NotFound`].
    pub async fn replace(
        &self,
        export: &BatchExport,
        stored: &StoredExport,
        keep: &[String],
    ) -> Result<Option<StoredExport>> {
        let mut sealed = self.secrets.seal(export).await?;
        if let Some(Value::Object(new)) = sealed.get_mut(ENCRYPTED_SECRETS) {
            for field in export.destination.secret_fields() {
                if let (false, true, Some(cipher)) =
                    (new.contains_key(*field), keep.iter().any(|k| k == field), stored.sealed.get(*field))
                {
                    new.insert(field.to_string(), cipher.clone());
                }
            }
        }
        let version = stored.version + 1;
        sealed[VERSION] = Value::from(version);
        let (condition, current) = match stored.version {
            0 => ("attribute_exists(id) AND attribute_not_exists(#version)", None),
            v => ("#version = :version", Some(AttributeValue::N(v.to_string()))),
        };
        let item = serde_dynamo::to_item(&sealed).map_err(|e| item_error(&self.table, e))?;
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#version", VERSION)
            .set_expression_attribute_values(current.map(|v| HashMap::from([(":version".to_string(), v)])))
            .send()
            .await;
        match written {
            Ok(_) => Ok(Some(StoredExport::from_item(self, sealed)?)),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                // Changed or deleted since it was read: which one?
                self.get_stored(export.team_id, &export.id).await?;
                Ok(None)
            }
            Err(e) => Err(classify_sdk_error(e, "PutItem", &self.table, None)),
        }
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

    /// Creates an export (version 1), its credentials encrypted; an existing id is refused.
    pub async fn create(&self, export: &BatchExport) -> Result<StoredExport> {
        let mut sealed = self.secrets.seal(export).await?;
        sealed[VERSION] = Value::from(1);
        super::put_item(&self.client, &self.table, &sealed, Some("attribute_not_exists(id)")).await?;
        StoredExport::from_item(self, sealed)
    }

    /// Writes an export (creates it, or replaces the item with the same id), its credentials encrypted.
    pub async fn put(&self, export: &BatchExport) -> Result<()> {
        let sealed = self.secrets.seal(export).await?;
        super::put_item(&self.client, &self.table, sealed, None).await
    }
}
