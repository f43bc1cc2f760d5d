//! Person processing of captured events, PostHog's simplified, so the persons model is fed by real traffic. The
//! lake writer applies a batch's person-affecting events in order (each distinct id's run of `$set` /
//! `$set_once` combined into one update, [`combine`]), keeping the state in the persons table ([`PersonStore`]),
//! and writes the resulting person changes to the persons lake layout (see [`crate::person`]).
//!
//! What affects persons:
//! - `$set` / `$set_once` in an event's properties (capture merges the top-level ones in): the event's distinct
//!   id gets a person if it has none, and the person's properties take `$set` (overwriting) and `$set_once` (only
//!   keys it lacks). `person_version` grows by one when the properties change, and not otherwise, so applying an
//!   event twice (a redelivered batch) changes nothing.
//! - `$identify` with `$anon_distinct_id`: the anonymous id joins the identified id's person. When both already
//!   have different persons, the anonymous id moves to the identified one's person (its
//!   `person_distinct_id_version` + 1), which takes the other person's properties it lacks. PostHog would also
//!   move the other person's remaining distinct ids and delete it; here they stay where they are.
//! - `$identify` alone gives its distinct id a person. Other events do not create persons.
//!
//! A person created for a distinct id has a stable id (a UUIDv5 of team and distinct id), so a redelivered batch
//! finds the person it created. Every write is conditional on the version read; on a conflict the event is
//! applied again from a fresh read.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{ExportError, Result};
use crate::person::PersonChange;
use crate::store::{DistinctIdState, PersonState, PersonStore};

/// Conflicting writers before an event gives up (its batch is then delivered again).
const MAX_ATTEMPTS: usize = 10;

/// What one event asks of persons.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonUpdate {
    pub distinct_id: String,
    pub set: Map<String, Value>,
    pub set_once: Map<String, Value>,
    /// `$identify`'s `$anon_distinct_id`, when it differs from the distinct id.
    pub anon_distinct_id: Option<String>,
}

/// What a lake line (one captured event) asks of persons, if anything.
pub fn person_update(line: &[u8]) -> Option<PersonUpdate> {
    let mentions = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    if !mentions(b"\"$set") && !mentions(b"\"$identify\"") {
        return None;
    }
    let event: Value = serde_json::from_slice(line).ok()?;
    let properties = event.get("properties").and_then(Value::as_object);
    let object =
        |name: &str| properties.and_then(|p| p.get(name)).and_then(Value::as_object).cloned().unwrap_or_default();
    let distinct_id = event.get("distinct_id")?.as_str()?.to_string();
    let identify = event.get("event").and_then(Value::as_str) == Some("$identify");
    let anon_distinct_id = properties
        .filter(|_| identify)
        .and_then(|p| p.get("$anon_distinct_id"))
        .and_then(Value::as_str)
        .filter(|anon| !anon.is_empty() && *anon != distinct_id)
        .map(str::to_string);
    let update = PersonUpdate { distinct_id, set: object("$set"), set_once: object("$set_once"), anon_distinct_id };
    (identify || !update.set.is_empty() || !update.set_once.is_empty()).then_some(update)
}

/// A batch's updates, combined so that each distinct id's run of `$set` / `$set_once` costs one application:
/// applying the result in order equals applying every update in order. Within a distinct id, a later `$set`
/// wins and an earlier `$set_once` wins (applying `$set_once` before `$set`, as [`apply`] does, keeps that
/// exact). An identify (`$anon_distinct_id`) involves two ids, so it is kept as it is, after everything
/// combined before it.
pub fn combine(updates: impl IntoIterator<Item = PersonUpdate>) -> Vec<PersonUpdate> {
    let mut out: Vec<PersonUpdate> = Vec::new();
    // Where each distinct id's combinable update is in `out`, since the last identify.
    let mut open: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for update in updates {
        if update.anon_distinct_id.is_some() {
            open.clear();
            out.push(update);
            continue;
        }
        match open.get(&update.distinct_id) {
            Some(&at) => {
                let combined = &mut out[at];
                combined.set.extend(update.set);
                for (key, value) in update.set_once {
                    combined.set_once.entry(key).or_insert(value);
                }
            }
            None => {
                open.insert(update.distinct_id.clone(), out.len());
                out.push(update);
            }
        }
    }
    out
}

/// The id of the person created for a distinct id.
fn new_person_id(team_id: i64, distinct_id: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{team_id}/{distinct_id}").as_bytes()).to_string()
}

/// Applies one event's update at `now`; returns the person changes of the distinct ids it touched, as the
/// persons layout holds them.
pub async fn apply(
    store: &PersonStore,
    team_id: i64,
    update: &PersonUpdate,
    now: DateTime<Utc>,
) -> Result<Vec<PersonChange>> {
    for _ in 0..MAX_ATTEMPTS {
        if let Some(changes) = try_apply(store, team_id, update, now).await? {
            return Ok(changes);
        }
    }
    Err(ExportError::Transient {
        operation: "person update",
        resource: format!("team {team_id}, distinct id {}", update.distinct_id),
        message: format!("other writers changed the person {MAX_ATTEMPTS} times in a row"),
    })
}

/// One attempt: `None` when another writer got in between (read again).
async fn try_apply(
    store: &PersonStore,
    team_id: i64,
    update: &PersonUpdate,
    now: DateTime<Utc>,
) -> Result<Option<Vec<PersonChange>>> {
    let identified = store.distinct_id(team_id, &update.distinct_id).await?;
    let anon = match &update.anon_distinct_id {
        Some(anon) => Some((anon.as_str(), store.distinct_id(team_id, anon).await?)),
        None => None,
    };
    // The person, the mappings to write (distinct id, new state, version read) and a person to take
    // properties from.
    let mut mappings: Vec<(&str, DistinctIdState, Option<i64>)> = Vec::new();
    let mut merge_from: Option<String> = None;
    let person_id = match (&identified, &anon) {
        (Some(d), None | Some((_, None))) => d.person_id.clone(),
        (None, Some((_, Some(a)))) => a.person_id.clone(),
        (Some(d), Some((_, Some(a)))) => {
            if a.person_id != d.person_id {
                merge_from = Some(a.person_id.clone());
            }
            d.person_id.clone()
        }
        (None, _) => new_person_id(team_id, &update.distinct_id),
    };
    if identified.is_none() {
        mappings.push((&update.distinct_id, DistinctIdState { person_id: person_id.clone(), version: 0 }, None));
    }
    if let Some((anon_id, state)) = &anon {
        match state {
            None => mappings.push((anon_id, DistinctIdState { person_id: person_id.clone(), version: 0 }, None)),
            Some(a) if a.person_id != person_id => mappings.push((
                anon_id,
                DistinctIdState { person_id: person_id.clone(), version: a.version + 1 },
                Some(a.version),
            )),
            Some(_) => {}
        }
    }

    let existing = store.person(team_id, &person_id).await?;
    let mut properties = existing.as_ref().map(|p| p.properties.clone()).unwrap_or_default();
    if let Some(other) = &merge_from {
        if let Some(other) = store.person(team_id, other).await? {
            for (key, value) in other.properties {
                properties.entry(key).or_insert(value);
            }
        }
    }
    for (key, value) in &update.set_once {
        properties.entry(key.clone()).or_insert_with(|| value.clone());
    }
    for (key, value) in &update.set {
        properties.insert(key.clone(), value.clone());
    }
    let person = match existing {
        None => {
            let person = PersonState { person_id: person_id.clone(), properties, version: 0, created_at: now };
            if !store.put_person(team_id, &person, None).await? {
                return Ok(None);
            }
            person
        }
        Some(existing) if existing.properties != properties => {
            let person = PersonState { properties, version: existing.version + 1, ..existing.clone() };
            if !store.put_person(team_id, &person, Some(existing.version)).await? {
                return Ok(None);
            }
            person
        }
        Some(existing) => existing,
    };
    // The person first, then the mappings: a distinct id never maps to a person that does not exist.
    for (distinct_id, state, read) in &mappings {
        if !store.put_distinct_id(team_id, distinct_id, state, *read).await? {
            return Ok(None);
        }
    }

    let mut touched: Vec<(&str, i64)> = Vec::new();
    let version_of = |id: &str, read: &Option<DistinctIdState>| {
        mappings.iter().find(|(m, ..)| *m == id).map(|(_, s, _)| s.version).or(read.as_ref().map(|r| r.version))
    };
    touched.push((&update.distinct_id, version_of(&update.distinct_id, &identified).unwrap_or(0)));
    if let Some((anon_id, state)) = &anon {
        touched.push((anon_id, version_of(anon_id, state).unwrap_or(0)));
    }
    Ok(Some(
        touched
            .into_iter()
            .map(|(distinct_id, distinct_version)| PersonChange {
                team_id,
                distinct_id: distinct_id.to_string(),
                person_id: person.person_id.clone(),
                properties: Value::Object(person.properties.clone()),
                person_version: person.version,
                person_distinct_id_version: distinct_version,
                created_at: person.created_at,
                is_deleted: false,
                inserted_at: now,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(distinct_id: &str, set: Value, set_once: Value, anon: Option<&str>) -> PersonUpdate {
        PersonUpdate {
            distinct_id: distinct_id.into(),
            set: set.as_object().unwrap().clone(),
            set_once: set_once.as_object().unwrap().clone(),
            anon_distinct_id: anon.map(str::to_string),
        }
    }

    /// The properties after applying updates of one distinct id in order, as `apply` does.
    fn applied(updates: &[PersonUpdate]) -> Map<String, Value> {
        let mut properties = Map::new();
        for u in updates {
            for (k, v) in &u.set_once {
                properties.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &u.set {
                properties.insert(k.clone(), v.clone());
            }
        }
        properties
    }

    #[test]
    fn combined_updates_apply_as_the_sequence_does() {
        use serde_json::json;
        let sequence = vec![
            update("d", json!({"a": 1}), json!({"k": "first", "s": 1}), None),
            update("e", json!({"x": 1}), json!({}), None),
            update("d", json!({"a": 2, "s": 9}), json!({"k": "second", "t": 2}), None),
            update("d", json!({}), json!({"a": 0, "u": 3}), None),
        ];
        let combined = combine(sequence.clone());
        assert_eq!(combined.len(), 2, "one per distinct id");
        let only =
            |id: &str, list: &[PersonUpdate]| list.iter().filter(|u| u.distinct_id == id).cloned().collect::<Vec<_>>();
        assert_eq!(applied(&only("d", &combined)), applied(&only("d", &sequence)));
        assert_eq!(
            applied(&combined[..1]),
            serde_json::from_value::<Map<String, Value>>(json!({"a": 2, "s": 9, "k": "first", "t": 2, "u": 3}))
                .unwrap()
        );
        // An identify is a barrier: what comes after it is combined afresh.
        let with_identify = combine(vec![
            update("d", json!({"a": 1}), json!({}), None),
            update("d", json!({}), json!({}), Some("anon")),
            update("d", json!({"a": 2}), json!({}), None),
        ]);
        assert_eq!(with_identify.len(), 3);
    }

    #[test]
    fn which_events_affect_persons() {
        let update = |line: &str| person_update(line.as_bytes());
        assert_eq!(update(r#"{"event":"$pageview","distinct_id":"d","properties":{"$lib":"web"}}"#), None);
        let set =
            update(r#"{"event":"e","distinct_id":"d","properties":{"$set":{"a":1},"$set_once":{"b":2}}}"#).unwrap();
        assert_eq!((set.set["a"].as_i64(), set.set_once["b"].as_i64(), set.anon_distinct_id), (Some(1), Some(2), None));
        let identify =
            update(r#"{"event":"$identify","distinct_id":"d","properties":{"$anon_distinct_id":"anon"}}"#).unwrap();
        assert_eq!(identify.anon_distinct_id.as_deref(), Some("anon"));
        assert!(identify.set.is_empty());
        let same = update(r#"{"event":"$identify","distinct_id":"d","properties":{"$anon_distinct_id":"d"}}"#).unwrap();
        assert_eq!(same.anon_distinct_id, None);
        assert_eq!(new_person_id(1, "d"), new_person_id(1, "d"));
        assert_ne!(new_person_id(1, "d"), new_person_id(2, "d"));
    }
}
