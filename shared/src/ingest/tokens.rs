//! Project tokens → teams, as capture looks them up: the API keys table, with each answer kept for a while in
//! the instance (a found token for a minute, an unknown one for ten seconds), so that a burst of requests
//! costs one read, and a flood of unknown tokens costs one read per token every ten seconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::store::ApiKeyStore;

const FOUND_FOR: Duration = Duration::from_secs(60);
const UNKNOWN_FOR: Duration = Duration::from_secs(10);
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct TokenCache {
    keys: ApiKeyStore,
    entries: Mutex<HashMap<String, (Option<i64>, Instant)>>,
}

impl TokenCache {
    pub fn new(keys: ApiKeyStore) -> Self {
        TokenCache { keys, entries: Mutex::new(HashMap::new()) }
    }

    /// The team of a project token, `None` when no project has it (a management key is not a project token).
    pub async fn team_of(&self, token: &str) -> Result<Option<i64>> {
        let now = Instant::now();
        if let Some((team, at)) = self.entries.lock().expect("the token cache's lock").get(token) {
            let ttl = if team.is_some() { FOUND_FOR } else { UNKNOWN_FOR };
            if now.duration_since(*at) < ttl {
                return Ok(*team);
            }
        }
        let team = self.keys.find_project_token(token).await?.map(|k| k.team_id);
        let mut entries = self.entries.lock().expect("the token cache's lock");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(token.to_string(), (team, now));
        Ok(team)
    }
}
