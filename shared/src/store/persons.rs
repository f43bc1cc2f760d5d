//! The persons table: the state capture's person processing keeps, one item per distinct id
//! (`{team}#d#{distinct_id}`: the person it maps to and the mapping's version) and one per person
//! (`{team}#p#{person_id}`: its properties, version and creation time). Every write is conditional on the
//! version read, so two writers racing on one person cannot lose either's change: the loser reads again.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::item_error;
use crate::aws_error::classify_sdk_error;
use crate::error::{InternalContext, Result};

/// The person a distinct id maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinctIdState {
    pub person_id: String,
    /// `person_distinct_id_version`: 0 when first mapped, +1 each time it moves to another person.
    pub version: i64,
}

/// A person's properties.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonState {
    pub person_id: String,
    pub properties: Map<String, Value>,
    /// `person_version`: 0 when created, +1 each time its properties change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    key: String,
    person_id: String,
    version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    properties: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct PersonStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn distinct_key(team_id: i64, distinct_id: &str) -> String {
    format!("{team_id}#d#{distinct_id}")
}

fn person_key(team_id: i64, person_id: &str) -> String {
    format!("{team_id}#p#{person_id}")
}

impl PersonStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        PersonStore { client, table: table.into() }
    }

    pub async fn distinct_id(&self, team_id: i64, distinct_id: &str) -> Result<Option<DistinctIdState>> {
        Ok(self
            .get(&distinct_key(team_id, distinct_id))
            .await?
            .map(|item| DistinctIdState { person_id: item.person_id, version: item.version }))
    }

    pub async fn person(&self, team_id: i64, person_id: &str) -> Result<Option<PersonState>> {
        let Some(item) = self.get(&person_key(team_id, person_id)).await? else { return Ok(None) };
        let properties = match &item.properties {
            Some(text) => serde_json::from_str(text).internal(format!("person {person_id}'s properties"))?,
            None => Map::new(),
        };
        Ok(Some(PersonState {
            person_id: item.person_id,
            properties,
            version: item.version,
            created_at: item.created_at.unwrap_or(DateTime::UNIX_EPOCH),
        }))
    }

    /// Maps a distinct id to a person, if the mapping is still at `read` (`None`: it did not exist); false when
    /// another writer changed it first.
    pub async fn put_distinct_id(
        &self,
        team_id: i64,
        distinct_id: &str,
        state: &DistinctIdState,
        read: Option<i64>,
    ) -> Result<bool> {
        let item = Item {
            key: distinct_key(team_id, distinct_id),
            person_id: state.person_id.clone(),
            version: state.version,
            properties: None,
            created_at: None,
        };
        self.put(item, read).await
    }

    /// Writes a person, if it is still at version `read` (`None`: it did not exist); false when another writer
    /// changed it first.
    pub async fn put_person(&self, team_id: i64, person: &PersonState, read: Option<i64>) -> Result<bool> {
        let item = Item {
            key: person_key(team_id, &person.person_id),
            person_id: person.person_id.clone(),
            version: person.version,
            properties: Some(Value::Object(person.properties.clone()).to_string()),
            created_at: Some(person.created_at),
        };
        self.put(item, read).await
    }

    async fn get(&self, key: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "GetItem", &self.table, None))?;
        out.item.map(|item| serde_dynamo::from_item(item).map_err(|e| item_error(&self.table, e))).transpose()
    }

    async fn put(&self, item: Item, read: Option<i64>) -> Result<bool> {
        let item = serde_dynamo::to_item(item).map_err(|e| item_error(&self.table, e))?;
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let request = match read {
            None => request.condition_expression("attribute_not_exists(#k)").expression_attribute_names("#k", "key"),
            Some(version) => request
                .condition_expression("version = :read")
                .expression_attribute_values(":read", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(classify_sdk_error(e, "PutItem", &self.table, None)),
        }
    }
}
