//! `template.yaml` and the local stack agree: the tables the template declares are the ones `batch-export
//! setup-local` creates (same keys, attribute types, indexes and billing), its buckets are the lake and work
//! buckets the functions are configured with, and every `BATCH_EXPORT_*` variable it sets is one the settings
//! module reads. As the OpenAPI test keeps the routes true, this keeps the deployed stack true to the tested one.

use std::collections::BTreeSet;

use batch_exports::settings::VARIABLES;
use integration_tests::{local_stack, s3, settings};
use serde_yaml::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// A template value as text (a tagged `!Ref X` as `!Ref X`).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => format!("{} {}", t.tag, text(&t.value)),
        other => serde_yaml::to_string(other).unwrap().trim().to_string(),
    }
}

/// `(name, key type)` pairs of a table's (or index's) key schema as DynamoDB describes it.
fn key_pairs(keys: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> BTreeSet<(String, String)> {
    keys.iter().map(|k| (k.attribute_name().to_string(), k.key_type().as_str().to_string())).collect()
}

/// The logical ids of the template's resources of a type.
fn of_type(resources: &Value, kind: &str) -> BTreeSet<String> {
    let resources = resources.as_mapping().unwrap();
    resources.iter().filter(|(_, r)| r["Type"] == Value::from(kind)).map(|(id, _)| text(id)).collect()
}

/// `(name, type)` pairs of a list of `{AttributeName, AttributeType|KeyType}` maps.
fn pairs(list: &Value, second: &str) -> BTreeSet<(String, String)> {
    list.as_sequence().into_iter().flatten().map(|item| (text(&item["AttributeName"]), text(&item[second]))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_templates_tables_are_the_ones_setup_local_creates() {
    let template = template();
    let resources = &template["Resources"];
    let tables = settings().tables;
    let dynamodb = aws_sdk_dynamodb::Client::new(&local_stack().await);
    let declared = of_type(resources, "AWS::DynamoDB::Table");
    let ids = ["ExportsTable", "RunsTable", "BackfillsTable", "ApiKeysTable", "PersonsTable"];
    assert_eq!(declared, ids.iter().map(|s| s.to_string()).collect(), "the template's tables");
    let names = [&tables.exports, &tables.runs, &tables.backfills, &tables.api_keys, &tables.persons];
    for (id, name) in ids.iter().zip(names) {
        let props = &resources[*id]["Properties"];
        let local = dynamodb.describe_table().table_name(name).send().await.unwrap().table.unwrap();
        assert_eq!(pairs(&props["KeySchema"], "KeyType"), key_pairs(local.key_schema()), "{id}: key schema");
        let local_attributes: BTreeSet<(String, String)> = local
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name().to_string(), a.attribute_type().as_str().to_string()))
            .collect();
        assert_eq!(pairs(&props["AttributeDefinitions"], "AttributeType"), local_attributes, "{id}: attributes");
        let declared_indexes: BTreeSet<(String, BTreeSet<(String, String)>, String)> = props["GlobalSecondaryIndexes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|i| {
                (text(&i["IndexName"]), pairs(&i["KeySchema"], "KeyType"), text(&i["Projection"]["ProjectionType"]))
            })
            .collect();
        let local_indexes: BTreeSet<(String, BTreeSet<(String, String)>, String)> = local
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                let keys = key_pairs(i.key_schema());
                let projection = i.projection().and_then(|p| p.projection_type()).map(|p| p.as_str().to_string());
                (i.index_name().unwrap_or_default().to_string(), keys, projection.unwrap_or_default())
            })
            .collect();
        assert_eq!(declared_indexes, local_indexes, "{id}: indexes");
        let billing = local.billing_mode_summary().and_then(|b| b.billing_mode()).map(|b| b.as_str().to_string());
        assert_eq!(Some(text(&props["BillingMode"])), billing, "{id}: billing mode");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_templates_buckets_and_variables_are_the_ones_the_functions_use() {
    let template = template();
    let resources = &template["Resources"];
    let buckets = of_type(resources, "AWS::S3::Bucket");
    assert_eq!(buckets, ["LakeBucket", "WorkBucket"].iter().map(|s| s.to_string()).collect());
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(text(&globals["BATCH_EXPORT_LAKE_BUCKET"]), "!Ref LakeBucket");
    assert_eq!(text(&globals["BATCH_EXPORT_WORK_BUCKET"]), "!Ref WorkBucket");
    for (variable, table) in [
        ("BATCH_EXPORT_EXPORTS_TABLE", "ExportsTable"),
        ("BATCH_EXPORT_RUNS_TABLE", "RunsTable"),
        ("BATCH_EXPORT_BACKFILLS_TABLE", "BackfillsTable"),
        ("BATCH_EXPORT_API_KEYS_TABLE", "ApiKeysTable"),
    ] {
        assert_eq!(text(&globals[variable]), format!("!Ref {table}"), "{variable}");
    }
    // setup-local made the same two buckets for the local stack.
    let settings = settings();
    let client = s3(&local_stack().await);
    for bucket in [settings.lake_bucket().unwrap(), settings.work_bucket().unwrap()] {
        client.head_bucket().bucket(bucket).send().await.unwrap_or_else(|e| panic!("bucket {bucket}: {e:?}"));
    }
    // Every variable the template sets, globally or on a function, is one the settings module reads.
    let mut set = BTreeSet::new();
    let mut collect = |variables: &Value| {
        for (name, _) in variables.as_mapping().into_iter().flatten() {
            set.insert(text(name));
        }
    };
    collect(globals);
    for (_, resource) in resources.as_mapping().unwrap() {
        collect(&resource["Properties"]["Environment"]["Variables"]);
    }
    for name in set.iter().filter(|n| n.starts_with("BATCH_EXPORT_")) {
        assert!(VARIABLES.contains(&name.as_str()), "template.yaml sets {name}, which nothing reads");
    }
}

/// Every Task of the state machines has a `TimeoutSeconds` equal to its function's `Timeout` in the template
/// (the interpreter's default is 60 s, AWS's none), a nested run's is the export state machine's own, and every
/// function Task retries a crashed or timed-out invocation (`Lambda.Unknown`, `States.Timeout`) as it retries a
/// retryable error.
#[test]
fn every_task_times_out_with_its_function_and_retries_crashes_and_timeouts() {
    let template = template();
    let resources = &template["Resources"];
    let global = template["Globals"]["Function"]["Timeout"].as_u64().unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../statemachines");
    let export: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{root}/export.asl.json")).unwrap()).unwrap();
    let machine_timeout = export["TimeoutSeconds"].as_u64().expect("the export state machine has a timeout");
    fn tasks(states: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        for (name, state) in states.as_object().unwrap() {
            if state["Type"] == "Task" {
                out.push((name.clone(), state.clone()));
            }
            if let Some(inner) = state.get("ItemProcessor") {
                tasks(&inner["States"], out);
            }
        }
    }
    for file in ["export", "backfill"] {
        let definition: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{root}/{file}.asl.json")).unwrap()).unwrap();
        let mut all = Vec::new();
        tasks(&definition["States"], &mut all);
        for (name, task) in all {
            let resource = task["Resource"].as_str().unwrap();
            let timeout =
                task["TimeoutSeconds"].as_u64().unwrap_or_else(|| panic!("{file}.{name} has no TimeoutSeconds"));
            let Some(substitution) = resource.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
                assert_eq!(timeout, machine_timeout, "{file}.{name} waits for a whole export run");
                continue;
            };
            // `${XxxFunctionArn}` is what the state machine's DefinitionSubstitutions say: `!GetAtt Function.Arn`.
            let machine = if file == "export" { "ExportStateMachine" } else { "BackfillStateMachine" };
            let value = text(&resources[machine]["Properties"]["DefinitionSubstitutions"][substitution]);
            let function = value.trim_start_matches("!GetAtt ").trim_end_matches(".Arn");
            let declared = resources[function]["Properties"]["Timeout"].as_u64().unwrap_or(global);
            assert_eq!(timeout, declared, "{file}.{name}: the Task's timeout is {function}'s");
            let retried: Vec<&str> =
                task["Retry"][0]["ErrorEquals"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
            for error in ["RetryableError", "Lambda.Unknown", "States.Timeout"] {
                assert!(retried.contains(&error), "{file}.{name} does not retry {error}: {retried:?}");
            }
        }
    }
}
