//! The data models an export can carry: the events model (append-only) and the persons model (mutable).

use serde::{Deserialize, Serialize};

/// The tables (models) a run can export: `events` (append-only) and `persons` (mutable: one row per
/// `(team_id, distinct_id)`, see [`crate::person`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    #[default]
    Events,
    Persons,
}

impl Model {
    /// The `{table}` of key templates.
    pub fn table(&self) -> &'static str {
        match self {
            Model::Events => "events",
            Model::Persons => "persons",
        }
    }
}
