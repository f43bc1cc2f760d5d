//! The API keys table: a project's keys, each item keyed by the SHA-256 of its key. Two kinds:
//! - **management API keys** (`bek_…`), which the management API takes; the key itself is never stored;
//! - **project tokens** (`phc_…`), one per project, which only capture takes. A project token is public (it is
//!   in every web page that sends events) and write-only, so it is stored as it is, under a second item keyed
//!   `project_token#{team_id}`, for the management API to show it.
//!
//! Each is refused where the other is expected.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::item_error;
use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, Result};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The management API's key.
    #[default]
    ApiKey,
    /// Capture's project token.
    ProjectToken,
}

/// What the table holds of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Hex SHA-256 of the key (or `project_token#{team_id}` for a project's token record): the partition key.
    pub key_hash: String,
    pub team_id: i64,
    pub label: String,
    /// The key's first characters, to tell keys apart in listings.
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub kind: KeyKind,
    /// A project token itself (public); never a management key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The hex SHA-256 of a key.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of a project's token record.
fn project_token_record(team_id: i64) -> String {
    format!("project_token#{team_id}")
}

/// A new random key with `prefix`: 256 bits of randomness (two UUIDv4s).
fn new_key(prefix: &str) -> String {
    format!("{prefix}{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl ApiKeyStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        ApiKeyStore { client, table: table.into() }
    }

    /// Creates a management API key for a team; returns the key (shown once: only its hash is stored) and its
    /// record.
    pub async fn create(&self, team_id: i64, label: &str, now: DateTime<Utc>) -> Result<(String, ApiKey)> {
        let key = new_key("bek_");
        let record = ApiKey {
            key_hash: hash_key(&key),
            team_id,
            label: label.to_string(),
            key_prefix: key[..8].to_string(),
            created_at: now,
            kind: KeyKind::ApiKey,
            token: None,
        };
        super::put_item(&self.client, &self.table, &record, None).await?;
        Ok((key, record))
    }

    /// The record of a management API key, if the key exists (a project token is not one).
    pub async fn find(&self, key: &str) -> Result<Option<ApiKey>> {
        Ok(self.get(&hash_key(key)).await?.filter(|k| k.kind == KeyKind::ApiKey))
    }

    /// The team of a project token, if the token exists (a management key is not one).
    pub async fn find_project_token(&self, token: &str) -> Result<Option<ApiKey>> {
        Ok(self.get(&hash_key(token)).await?.filter(|k| k.kind == KeyKind::ProjectToken))
    }

    /// A team's project token, if it has one.
    pub async fn project_token(&self, team_id: i64) -> Result<Option<String>> {
        Ok(self.get(&project_token_record(team_id)).await?.and_then(|k| k.token))
    }

    /// A team's project token, created on first use (both items in one transaction: a token is never findable
    /// without its record, nor the other way round). Two callers racing get the same token.
    pub async fn ensure_project_token(&self, team_id: i64, now: DateTime<Utc>) -> Result<String> {
        if let Some(token) = self.project_token(team_id).await? {
            return Ok(token);
        }
        let token = new_key("phc_");
        let record = |key_hash: String| ApiKey {
            key_hash,
            team_id,
            label: "project token".into(),
            key_prefix: token[..8].to_string(),
            created_at: now,
            kind: KeyKind::ProjectToken,
            token: Some(token.clone()),
        };
        let put = |item: &ApiKey| -> Result<TransactWriteItem> {
            let item = serde_dynamo::to_item(item).map_err(|e| item_error(&self.table, e))?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(key_hash)")
                .build()
                .map_err(|e| ExportError::internal(format!("a DynamoDB put: {e}")))?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let written = self
            .client
            .transact_write_items()
            .transact_items(put(&record(project_token_record(team_id)))?)
            .transact_items(put(&record(hash_key(&token)))?)
            .send()
            .await;
        match written {
            Ok(_) => Ok(token),
            // Another caller created the team's token first.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                self.project_token(team_id).await?.ok_or_else(|| {
                    ExportError::internal(format!("the project token of team {team_id} vanished while created"))
                })
            }
            Err(e) => Err(classify_sdk_error(e, "TransactWriteItems", &self.table, None)),
        }
    }

    async fn get(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key_hash", AttributeValue::S(key_hash.to_string()))
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "GetItem", &self.table, None))?;
        out.item.map(|item| serde_dynamo::from_item(item).map_err(|e| item_error(&self.table, e))).transpose()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_stored_as_sha256() {
        assert_eq!(super::hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn keys_are_long_and_prefixed() {
        let token = super::new_key("phc_");
        assert_eq!(token.len(), 4 + 64);
        assert!(token.starts_with("phc_"));
    }
}
