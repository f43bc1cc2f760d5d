//! The BigQuery tables of each model (the seed's schemas) and the statements that move a stage table's rows into
//! the final table: `INSERT … SELECT` for events (adding `bq_ingested_timestamp`), `MERGE` on
//! `(team_id, distinct_id)` for persons (stage rows de-duplicated by key, newest versions first; an existing row is
//! updated only when a stage version is higher, and a person's newer properties reach all its rows; new keys are
//! inserted).
//!
//! Stage tables hold the JSON columns as `STRING` (that is how load jobs write them); with `use_json_type` the
//! final table's JSON columns are `JSON` and the statements convert with `PARSE_JSON`.

use serde_json::{json, Value};

use crate::model::Model;
use crate::time::Interval;

/// The JSON-valued columns of a model.
pub fn json_columns(model: Model) -> &'static [&'static str] {
    match model {
        Model::Events => &["properties", "set", "set_once"],
        Model::Persons => &["properties"],
    }
}

fn field(name: &str, kind: &str) -> Value {
    json!({"name": name, "type": kind, "mode": "NULLABLE"})
}

/// The final table's schema (`use_json_type`: JSON columns as `JSON`, else `STRING`).
pub fn final_schema(model: Model, use_json_type: bool) -> Value {
    let json_kind = if use_json_type { "JSON" } else { "STRING" };
    let columns = stage_columns(model);
    let mut fields: Vec<Value> = columns
        .iter()
        .map(|(name, kind)| field(name, if json_columns(model).contains(name) { json_kind } else { kind }))
        .collect();
    if model == Model::Events {
        fields.push(field("bq_ingested_timestamp", "TIMESTAMP"));
    }
    Value::Array(fields)
}

/// The stage table's schema: the model's columns, JSON ones as `STRING`.
pub fn stage_schema(model: Model) -> Value {
    Value::Array(stage_columns(model).iter().map(|(name, kind)| field(name, kind)).collect())
}

fn stage_columns(model: Model) -> &'static [(&'static str, &'static str)] {
    match model {
        Model::Events => &[
            ("uuid", "STRING"),
            ("event", "STRING"),
            ("properties", "STRING"),
            ("elements", "STRING"),
            ("set", "STRING"),
            ("set_once", "STRING"),
            ("distinct_id", "STRING"),
            ("team_id", "INT64"),
            ("ip", "STRING"),
            ("site_url", "STRING"),
            ("timestamp", "TIMESTAMP"),
        ],
        Model::Persons => &[
            ("team_id", "INT64"),
            ("distinct_id", "STRING"),
            ("person_id", "STRING"),
            ("properties", "STRING"),
            ("person_version", "INT64"),
            ("person_distinct_id_version", "INT64"),
        ],
    }
}

/// The field the final table is partitioned on by day, if the model has one.
pub fn partition_field(model: Model) -> Option<&'static str> {
    match model {
        Model::Events => Some("timestamp"),
        Model::Persons => None,
    }
}

/// The stage table of a run: `stage_{table}_{interval end}_{team}` (the reference's name).
pub fn stage_table(table: &str, interval: &Interval, team_id: i64) -> String {
    format!("stage_{table}_{}_{team_id}", interval.end.format("%Y%m%dT%H%M%SZ"))
}

/// A table's fully qualified, quoted name.
pub fn qualified(project: &str, dataset: &str, table: &str) -> String {
    format!("`{project}.{dataset}.{table}`")
}

fn select_expression(model: Model, column: &str, use_json_type: bool) -> String {
    if use_json_type && json_columns(model).contains(&column) {
        format!("PARSE_JSON({column})")
    } else {
        column.to_string()
    }
}

/// `INSERT INTO final (…) SELECT …, CURRENT_TIMESTAMP() FROM stage` for append-only models.
pub fn insert_statement(model: Model, final_table: &str, stage: &str, use_json_type: bool) -> String {
    let columns: Vec<&str> = stage_columns(model).iter().map(|(name, _)| *name).collect();
    let selected: Vec<String> = columns.iter().map(|c| select_expression(model, c, use_json_type)).collect();
    format!(
        "INSERT INTO {final_table} ({}, bq_ingested_timestamp) SELECT {}, CURRENT_TIMESTAMP() FROM {stage}",
        columns.join(", "),
        selected.join(", ")
    )
}

/// `MERGE` of a persons stage into the final table on `(team_id, distinct_id)`, by the persons rule
/// ([`crate::person`]): every row ends with its own person's latest properties.
///
/// The source is the stage's rows, de-duplicated by key (newest mapping, then newest person version, first),
/// plus, for each person the stage brings a newer version of, the final table's other rows of that person (the
/// distinct ids this run did not change) carrying that version's properties. A matched row takes the source's
/// `person_id` only where its `person_distinct_id_version` is higher; its `properties` and `person_version` come
/// from the source where the distinct id moved to the source's person (versions of different persons are not
/// compared) or where the person is the same and the source's `person_version` is higher, else they stay; keys
/// not in the final table are inserted.
pub fn merge_statement(final_table: &str, stage: &str, use_json_type: bool) -> String {
    let properties = if use_json_type { "PARSE_JSON(stage.properties)" } else { "stage.properties" };
    let moved = "(stage.person_distinct_id_version > final.person_distinct_id_version \
                 AND stage.person_id != final.person_id)";
    let newer = "(stage.person_id = final.person_id AND stage.person_version > final.person_version)";
    let columns = "team_id, distinct_id, person_id, properties, person_version, person_distinct_id_version";
    let source = format!(
        "SELECT {columns} FROM {stage} QUALIFY ROW_NUMBER() OVER (PARTITION BY team_id, distinct_id \
         ORDER BY person_distinct_id_version DESC, person_version DESC) = 1 \
         UNION ALL \
         SELECT kept.team_id, kept.distinct_id, kept.person_id, latest.properties, latest.person_version, \
         kept.person_distinct_id_version FROM {final_table} AS kept \
         JOIN (SELECT * FROM {stage} QUALIFY ROW_NUMBER() OVER (PARTITION BY team_id, person_id \
         ORDER BY person_version DESC) = 1) AS latest \
         ON kept.team_id = latest.team_id AND kept.person_id = latest.person_id \
         LEFT JOIN (SELECT DISTINCT team_id, distinct_id FROM {stage}) AS staged \
         ON staged.team_id = kept.team_id AND staged.distinct_id = kept.distinct_id \
         WHERE latest.person_version > kept.person_version AND staged.distinct_id IS NULL"
    );
    format!(
        "MERGE {final_table} AS final \
         USING ({source}) AS stage \
         ON final.team_id = stage.team_id AND final.distinct_id = stage.distinct_id \
         WHEN MATCHED AND (stage.person_version > final.person_version \
         OR stage.person_distinct_id_version > final.person_distinct_id_version) THEN UPDATE SET \
         person_id = IF(stage.person_distinct_id_version > final.person_distinct_id_version, stage.person_id, final.person_id), \
         person_distinct_id_version = GREATEST(stage.person_distinct_id_version, final.person_distinct_id_version), \
         properties = IF({moved} OR {newer}, {properties}, final.properties), \
         person_version = IF({moved} OR {newer}, stage.person_version, final.person_version) \
         WHEN NOT MATCHED BY TARGET THEN INSERT \
         (team_id, distinct_id, person_id, properties, person_version, person_distinct_id_version) VALUES \
         (stage.team_id, stage.distinct_id, stage.person_id, {properties}, stage.person_version, stage.person_distinct_id_version)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_schema_follows_the_seed() {
        let names: Vec<String> = final_schema(Model::Events, false)
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "uuid",
                "event",
                "properties",
                "elements",
                "set",
                "set_once",
                "distinct_id",
                "team_id",
                "ip",
                "site_url",
                "timestamp",
                "bq_ingested_timestamp"
            ]
        );
        let kinds = |json: bool| -> Vec<String> {
            final_schema(Model::Events, json)
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["name"] == "properties" || f["name"] == "set")
                .map(|f| f["type"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(kinds(true), ["JSON", "JSON"]);
        assert_eq!(kinds(false), ["STRING", "STRING"]);
        assert_eq!(partition_field(Model::Events), Some("timestamp"));
    }

    #[test]
    fn statements_and_stage_names() {
        let interval = Interval::parse("2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z").unwrap();
        assert_eq!(stage_table("events", &interval, 7), "stage_events_20261120T110000Z_7");
        let sql = insert_statement(Model::Events, "`p.d.events`", "`p.d.stage`", true);
        assert!(sql.starts_with("INSERT INTO `p.d.events` (uuid, event, properties,"), "{sql}");
        assert!(
            sql.contains("PARSE_JSON(properties)") && sql.contains("CURRENT_TIMESTAMP() FROM `p.d.stage`"),
            "{sql}"
        );
        assert!(!insert_statement(Model::Events, "f", "s", false).contains("PARSE_JSON"));
        let merge = merge_statement("`p.d.persons`", "`p.d.stage`", true);
        assert!(merge.starts_with("MERGE `p.d.persons` AS final USING (SELECT team_id, distinct_id,"), "{merge}");
        assert!(merge.contains("FROM `p.d.persons` AS kept JOIN"), "the person's other rows: {merge}");
        assert!(merge.contains("ON final.team_id = stage.team_id AND final.distinct_id = stage.distinct_id"));
        assert!(merge.contains("stage.person_id != final.person_id)"), "{merge}");
        assert!(merge.contains(", PARSE_JSON(stage.properties), final.properties)"), "{merge}");
        assert!(!merge_statement("f", "s", false).contains("PARSE_JSON"));
    }
}
