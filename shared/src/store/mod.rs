//! DynamoDB stores, one per table: [`ExportStore`] (export definitions), [`RunStore`] (run history, attempts
//! and retry state), [`BackfillStore`] (backfills and their progress) and [`ApiKeyStore`] (hashed management API
//! keys and the projects' tokens).
//!
//! Tables (their names come from `BATCH_EXPORT_EXPORTS_TABLE` and `BATCH_EXPORT_RUNS_TABLE`; `template.yaml`
//! defines the same keys):
//! - exports: partition key `team_id` (N), sort key `id` (S); one item per export.
//! - runs: partition key `export_id` (S), sort key `data_interval_end` (S, RFC 3339 UTC), so one export's run
//!   history is one query, newest first; global secondary index `run_id` (partition key `run_id`) finds a run by
//!   its id.
//! - backfills: partition key `export_id` (S), sort key `id` (S, a time-ordered UUID v7).
//! - API keys: partition key `key_hash` (S, hex SHA-256 of the key, or `project_token#{team_id}`).
//! - persons: partition key `key` (S): `{team_id}#d#{distinct_id}` (the person a distinct id maps to) and
//!   `{team_id}#p#{person_id}` (a person's properties): the state capture's person processing keeps.

mod api_keys;
mod backfills;
mod exports;
mod persons;
mod runs;
pub mod work;

pub use self::api_keys::{hash_key, ApiKey, ApiKeyStore, KeyKind};
pub use self::backfills::{BackfillStore, Progress};
pub use self::exports::{ExportStore, StoredExport};
pub use self::persons::{DistinctIdState, PersonState, PersonStore};
pub use self::runs::{Begin, RunPage, RunStore};
pub use self::work::WorkStore;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};

use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, Result};

/// The runs table's index by run id.
pub const RUN_ID_INDEX: &str = "run_id";

/// The table names, from the environment.
#[derive(Debug, Clone)]
pub struct Tables {
    pub exports: String,
    pub runs: String,
    pub backfills: String,
    pub api_keys: String,
    pub persons: String,
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().expect("key schema")
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().expect("attribute")
}

/// Creates the tables if they do not exist (the local stack's setup; on AWS the SAM template creates them).
pub async fn create_tables(client: &aws_sdk_dynamodb::Client, tables: &Tables) -> Result<()> {
    let exports = client
        .create_table()
        .table_name(&tables.exports)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("team_id", ScalarAttributeType::N))
        .attribute_definitions(attribute("id", ScalarAttributeType::S))
        .key_schema(key("team_id", KeyType::Hash))
        .key_schema(key("id", KeyType::Range));
    let run_id_index = GlobalSecondaryIndex::builder()
        .index_name(RUN_ID_INDEX)
        .key_schema(key("run_id", KeyType::Hash))
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .expect("index");
    let runs = client
        .create_table()
        .table_name(&tables.runs)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("export_id", ScalarAttributeType::S))
        .attribute_definitions(attribute("data_interval_end", ScalarAttributeType::S))
        .attribute_definitions(attribute("run_id", ScalarAttributeType::S))
        .key_schema(key("export_id", KeyType::Hash))
        .key_schema(key("data_interval_end", KeyType::Range))
        .global_secondary_indexes(run_id_index);
    let backfills = client
        .create_table()
        .table_name(&tables.backfills)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("export_id", ScalarAttributeType::S))
        .attribute_definitions(attribute("id", ScalarAttributeType::S))
        .key_schema(key("export_id", KeyType::Hash))
        .key_schema(key("id", KeyType::Range));
    let api_keys = client
        .create_table()
        .table_name(&tables.api_keys)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("key_hash", ScalarAttributeType::S))
        .key_schema(key("key_hash", KeyType::Hash));
    let persons = client
        .create_table()
        .table_name(&tables.persons)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("key", ScalarAttributeType::S))
        .key_schema(key("key", KeyType::Hash));
    for (name, request) in [
        (&tables.exports, exports),
        (&tables.runs, runs),
        (&tables.backfills, backfills),
        (&tables.api_keys, api_keys),
        (&tables.persons, persons),
    ] {
        match request.send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(classify_sdk_error(e, "CreateTable", name, None)),
        }
    }
    Ok(())
}

/// Maps a failure to convert a stored item into the model.
fn item_error(table: &str, e: impl std::error::Error + Send + Sync + 'static) -> ExportError {
    ExportError::Internal {
        context: format!("an item of table `{table}` does not match the model"),
        source: Some(Box::new(e)),
    }
}

/// The latest `limit` items of an export (by sort key, newest first) in a table keyed by `export_id`.
async fn latest_of_export<T: serde::de::DeserializeOwned>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    export_id: &str,
    limit: i32,
) -> Result<Vec<T>> {
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("export_id = :e")
        .expression_attribute_values(":e", s(export_id))
        .scan_index_forward(false)
        .limit(limit)
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "Query", table, None))?;
    out.items().iter().map(|item| serde_dynamo::from_item(item.clone()).map_err(|e| item_error(table, e))).collect()
}

/// Writes one item, only where `condition` holds when one is given.
async fn put_item<T: serde::Serialize>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: T,
    condition: Option<&str>,
) -> Result<()> {
    let item = serde_dynamo::to_item(item).map_err(|e| item_error(table, e))?;
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_string))
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "PutItem", table, None))?;
    Ok(())
}

/// A string attribute.
fn s(v: impl Into<String>) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(v.into())
}

/// A number attribute.
fn n(v: impl ToString) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::N(v.to_string())
}

/// A time as the tables store it (RFC 3339 UTC, as the models serialize it).
fn time_value(t: chrono::DateTime<chrono::Utc>) -> aws_sdk_dynamodb::types::AttributeValue {
    serde_dynamo::to_attribute_value(t).expect("a time converts")
}
