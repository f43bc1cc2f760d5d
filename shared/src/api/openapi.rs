//! Keeps `openapi.json` (the API's OpenAPI document, at the repository root) true: the routes it lists are the
//! routes the API serves, its schemas have the fields the API returns, secret fields are write-only, its
//! request examples pass the API's validation, and the limits it states are the ones enforced.

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::Value;

use super::bodies::{parse, CreateBackfill, CreateExport, Shape};
use super::{backfill_view, export_view, run_view, ApiError, ROUTES};
use crate::backfills::Backfill;
use crate::batch_export::{BatchExport, Destination, ExportInterval};
use crate::network::EndpointPolicy;
use crate::runs::Run;
use crate::time::Interval;
use crate::S3DestinationConfig;

const DOCUMENT: &str = include_str!("../../../openapi.json");

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} has properties"))
        .keys()
        .cloned()
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn sample_export() -> BatchExport {
    let mut config = S3DestinationConfig::new("my-exports");
    config.aws_access_key_id = Some("AKIA".into());
    config.aws_secret_access_key = Some("secret".into());
    BatchExport::new("e", 1, "n", Destination::S3(config), ExportInterval::Hour)
}

#[test]
fn the_document_lists_exactly_the_served_routes() {
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete", "put"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let served: BTreeSet<_> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, served);
}

#[test]
fn schemas_hold_the_fields_the_api_returns() {
    let doc = document();
    let export = sample_export();
    assert_eq!(properties(&doc, "Export"), keys(&export_view(&export)));
    let all_config_fields = keys(&serde_json::to_value(S3DestinationConfig::new("b")).unwrap());
    assert_eq!(properties(&doc, "S3Config"), all_config_fields);
    for secret in export.destination.secret_fields() {
        assert_eq!(doc["components"]["schemas"]["S3Config"]["properties"][secret]["writeOnly"], true, "{secret}");
        assert!(export_view(&export)["destination"]["config"].get(*secret).is_none());
    }
    let bigquery: crate::destinations::bigquery::BigQueryDestinationConfig =
        serde_json::from_value(serde_json::json!({
        "project_id": "p", "dataset_id": "d", "private_key": "k", "private_key_id": "i", "client_email": "e@x"}))
        .unwrap();
    assert_eq!(properties(&doc, "BigQueryConfig"), keys(&serde_json::to_value(&bigquery).unwrap()));
    for secret in Destination::BigQuery(bigquery).secret_fields() {
        assert_eq!(doc["components"]["schemas"]["BigQueryConfig"]["properties"][secret]["writeOnly"], true, "{secret}");
    }
    let interval = Interval::parse("2026-11-20T00:00:00Z", "2026-11-20T01:00:00Z").unwrap();
    let run = Run::new("e", 1, interval, None, None, Utc::now());
    assert_eq!(properties(&doc, "Run"), keys(&run_view(&run)));
    let backfill = Backfill::new(&export, interval, 1, Utc::now());
    assert_eq!(properties(&doc, "Backfill"), keys(&backfill_view(&backfill)));
    let error = ApiError::validation("name", "must not be empty").body();
    assert_eq!(properties(&doc, "Error"), keys(&error));
}

#[test]
fn request_examples_pass_validation() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let body = serde_json::to_vec(&schemas["ExportCreate"]["example"]).unwrap();
    let mut export = sample_export();
    parse::<CreateExport>(&body, Shape::EXPORT).unwrap().apply(&mut export, &[], EndpointPolicy::default()).unwrap();
    let patch = serde_json::to_vec(&schemas["ExportPatch"]["example"]).unwrap();
    super::bodies::merge_patch(&export, &patch)
        .unwrap()
        .body
        .apply(&mut export, &[], EndpointPolicy::default())
        .unwrap();
    let body = serde_json::to_vec(&schemas["BackfillCreate"]["example"]).unwrap();
    parse::<CreateBackfill>(&body, Shape::FLAT).unwrap().check(Utc::now()).unwrap();
    // Create's required fields are the ones the API requires.
    for field in schemas["ExportCreate"]["required"].as_array().unwrap() {
        let mut without = schemas["ExportCreate"]["example"].clone();
        without.as_object_mut().unwrap().remove(field.as_str().unwrap());
        let err = parse::<CreateExport>(&serde_json::to_vec(&without).unwrap(), Shape::EXPORT).unwrap_err();
        assert!(matches!(err, ApiError::Validation { attr, .. } if attr == field.as_str().unwrap()));
    }
}

#[test]
fn documented_limits_are_the_enforced_ones() {
    use crate::destinations::s3::config::{MAX_EVENT_NAMES, MAX_FILE_SIZE_MB};
    use crate::limits::{MAX_NAME_CHARS, MAX_SECRET_BYTES};
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for schema in ["ExportCreate", "ExportPatch"] {
        assert_eq!(schemas[schema]["properties"]["name"]["maxLength"], MAX_NAME_CHARS, "{schema}.name");
    }
    let s3 = &schemas["S3Config"]["properties"];
    assert_eq!(
        (&s3["max_file_size_mb"]["minimum"], &s3["max_file_size_mb"]["maximum"]),
        (&1.into(), &MAX_FILE_SIZE_MB.into())
    );
    for list in ["include_events", "exclude_events"] {
        assert_eq!(s3[list]["maxItems"], MAX_EVENT_NAMES, "{list}");
        assert_eq!(s3[list]["items"]["maxLength"], MAX_NAME_CHARS, "{list}");
    }
    for (schema, field) in [
        ("S3Config", "aws_access_key_id"),
        ("S3Config", "aws_secret_access_key"),
        ("BigQueryConfig", "private_key"),
        ("BigQueryConfig", "private_key_id"),
    ] {
        assert_eq!(schemas[schema]["properties"][field]["maxLength"], MAX_SECRET_BYTES, "{schema}.{field}");
    }
    let concurrency = &schemas["BackfillCreate"]["properties"]["concurrency"]["maximum"];
    assert_eq!(concurrency, &Value::from(super::bodies::MAX_BACKFILL_CONCURRENCY));
    // Each bound is the first value refused: the maximum passes, one more fails, naming the field.
    let mut config = S3DestinationConfig::new("my-exports");
    config.max_file_size_mb = Some(MAX_FILE_SIZE_MB);
    config.validate().unwrap();
    config.max_file_size_mb = Some(MAX_FILE_SIZE_MB + 1);
    assert!(config.validate().unwrap_err().to_string().contains("max_file_size_mb"));
    config.max_file_size_mb = Some(0);
    assert!(config.validate().unwrap_err().to_string().contains("max_file_size_mb"));
}
