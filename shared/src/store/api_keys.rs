//! The API keys table: one item per project API key, keyed by the SHA-256 of the key (the key itself is never
//! stored); each key belongs to one team and sees only that team's exports.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::item_error;
use crate::aws_error::classify_sdk_error;
use crate::error::Result;

/// What the table holds of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Hex SHA-256 of the key: the partition key.
    pub key_hash: String,
    pub team_id: i64,
    pub label: String,
    /// The key's first characters, to tell keys apart in listings.
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
}

/// The hex SHA-256 of a key.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
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

    /// Creates a key for a team; returns the key (shown once: only its hash is stored) and its record.
    pub async fn create(&self, team_id: i64, label: &str, now: DateTime<Utc>) -> Result<(String, ApiKey)> {
        let key = format!("bek_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let record = ApiKey {
            key_hash: hash_key(&key),
            team_id,
            label: label.to_string(),
            key_prefix: key[..8].to_string(),
            created_at: now,
        };
        super::put_item(&self.client, &self.table, &record, None).await?;
        Ok((key, record))
    }

    /// The record of a key, if the key exists.
    pub async fn find(&self, key: &str) -> Result<Option<ApiKey>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key_hash", AttributeValue::S(hash_key(key)))
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
}
