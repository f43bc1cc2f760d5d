//! The persons model: a mutable model, exported as one row per `(team_id, distinct_id)`, and its rule.
//!
//! **Lake layout.** Person changes land beside the events, under
//! `{lake prefix}persons/team_id={team}/date={YYYY-MM-DD}/hour={HH}/{name}.jsonl[.gz|.zst]`, partitioned by the
//! hour they landed, one JSON object per line:
//! `{"team_id", "distinct_id", "person_id", "properties": {…}, "person_version", "person_distinct_id_version",
//! "created_at", "is_deleted", "_inserted_at"}` (times RFC 3339). A change to a person's properties carries its
//! new `person_version`; a change of the person a distinct id maps to carries its new
//! `person_distinct_id_version`.
//!
//! **A run** takes the changes that landed in its interval and exports, per `(team_id, distinct_id)`, the pair
//! "mapped to their corresponding person_id and latest properties" (the seed): `person_id` and
//! `person_distinct_id_version` from the distinct id's change with the highest `person_distinct_id_version`;
//! `properties`, `person_version`, `created_at` and `is_deleted` from the change **of that person** (any of its
//! distinct ids) with the highest `person_version` (ties: the later landed). Versions of different persons are
//! never compared: a distinct id that moved to a person with a lower `person_version` takes that person's
//! properties. `_inserted_at` is the latest of the two changes. Destinations then merge these rows by the same
//! rule (BigQuery `MERGE`), so an older change never overwrites a newer one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One person change as the lake holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonChange {
    pub team_id: i64,
    pub distinct_id: String,
    pub person_id: String,
    #[serde(default)]
    pub properties: serde_json::Value,
    pub person_version: i64,
    pub person_distinct_id_version: i64,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub is_deleted: bool,
    #[serde(rename = "_inserted_at")]
    pub inserted_at: DateTime<Utc>,
}

/// One exported person row (the seed's persons model), as JSONLines writes it.
pub type PersonRow = PersonChange;

/// The latest state per `(team_id, distinct_id)` of the changes given (see the module doc), sorted by key.
pub fn latest_per_distinct_id(changes: impl IntoIterator<Item = PersonChange>) -> Vec<PersonRow> {
    // Later wins on equal versions: the one that landed later (then the later in the input).
    fn keep_newer(slot: &mut PersonChange, change: &PersonChange, version: fn(&PersonChange) -> i64) {
        if (version(change), change.inserted_at) >= (version(slot), slot.inserted_at) {
            *slot = change.clone();
        }
    }
    let mut mappings: HashMap<(i64, String), PersonChange> = HashMap::new();
    let mut persons: HashMap<(i64, String), PersonChange> = HashMap::new();
    for change in changes {
        let person_key = (change.team_id, change.person_id.clone());
        match persons.get_mut(&person_key) {
            Some(person) => keep_newer(person, &change, |c| c.person_version),
            None => {
                persons.insert(person_key, change.clone());
            }
        }
        let key = (change.team_id, change.distinct_id.clone());
        match mappings.get_mut(&key) {
            Some(mapping) => keep_newer(mapping, &change, |c| c.person_distinct_id_version),
            None => {
                mappings.insert(key, change);
            }
        }
    }
    let mut rows: Vec<PersonRow> = mappings
        .into_values()
        .map(|mapping| {
            let person = &persons[&(mapping.team_id, mapping.person_id.clone())];
            PersonRow {
                team_id: mapping.team_id,
                distinct_id: mapping.distinct_id,
                person_id: mapping.person_id,
                properties: person.properties.clone(),
                person_version: person.person_version,
                person_distinct_id_version: mapping.person_distinct_id_version,
                created_at: person.created_at,
                is_deleted: person.is_deleted,
                inserted_at: mapping.inserted_at.max(person.inserted_at),
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.team_id, &a.distinct_id).cmp(&(b.team_id, &b.distinct_id)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn change(distinct_id: &str, person: &str, pv: i64, dv: i64, landed: &str) -> PersonChange {
        PersonChange {
            team_id: 1,
            distinct_id: distinct_id.into(),
            person_id: person.into(),
            properties: serde_json::json!({"v": pv}),
            person_version: pv,
            person_distinct_id_version: dv,
            created_at: t("2026-01-01T00:00:00Z"),
            is_deleted: false,
            inserted_at: t(landed),
        }
    }

    #[test]
    fn each_distinct_id_takes_its_latest_person_and_that_persons_latest_properties() {
        let rows = latest_per_distinct_id([
            change("a", "p1", 3, 1, "2026-11-20T10:00:00Z"),
            change("a", "p1", 2, 1, "2026-11-20T10:01:00Z"),
            change("b", "p3", 1, 1, "2026-11-20T10:01:00Z"),
        ]);
        assert_eq!(rows.len(), 2);
        let a = &rows[0];
        assert_eq!((a.person_id.as_str(), a.person_version, a.person_distinct_id_version), ("p1", 3, 1));
        assert_eq!(a.properties, serde_json::json!({"v": 3}));
        assert_eq!(a.inserted_at, t("2026-11-20T10:01:00Z"));
        assert_eq!(rows[1].distinct_id, "b");
    }

    #[test]
    fn a_distinct_id_moved_to_another_person_takes_that_persons_properties() {
        // `a` moves from p1 (person_version 5) to p2 (person_version 1); p2's latest properties came in on `c`.
        let rows = latest_per_distinct_id([
            change("a", "p1", 5, 1, "2026-11-20T10:00:00Z"),
            change("a", "p2", 1, 2, "2026-11-20T10:05:00Z"),
            change("c", "p2", 4, 1, "2026-11-20T10:02:00Z"),
        ]);
        let a = &rows[0];
        assert_eq!((a.person_id.as_str(), a.person_distinct_id_version), ("p2", 2));
        assert_eq!((a.person_version, a.properties.clone()), (4, serde_json::json!({"v": 4})), "p2's latest, not p1's");
        let c = &rows[1];
        assert_eq!((c.person_id.as_str(), c.person_version), ("p2", 4));
    }
}
