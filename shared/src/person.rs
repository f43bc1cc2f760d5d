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
//! rule (BigQuery `MERGE`), so an older change never overwrites a newer one. The lake's reader applies the rule
//! in bounded memory ([`crate::sources::lake::persons`]).

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
