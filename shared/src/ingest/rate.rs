//! The per-token rate limit of one capture instance: a token bucket per project token holding up to one
//! second of events, refilled at the limit. A request that would take more than the bucket holds is refused
//! whole (429): nothing of it is stored. Each capture instance (a Lambda execution environment) keeps its own
//! buckets, as PostHog's capture keeps one per process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    /// Events per second per token; 0: no limit.
    limit: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before the idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: u32) -> Self {
        RateLimiter { limit, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Takes `events` from `token`'s bucket at `now`; false (and nothing taken) when it holds fewer. A request
    /// larger than the whole bucket passes when the bucket is full, leaving it in debt.
    pub fn allow(&self, token: &str, events: usize, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let capacity = f64::from(self.limit);
        let mut buckets = self.buckets.lock().expect("the rate limiter's lock");
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(token) {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < 1.0);
        }
        let (level, at) = buckets.entry(token.to_string()).or_insert((capacity, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * capacity).min(capacity);
        *at = now;
        let wanted = events as f64;
        if *level >= wanted.min(capacity) {
            *level -= wanted;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_of_one_second_refilled_at_the_limit() {
        let limiter = RateLimiter::new(100);
        let t0 = Instant::now();
        assert!(limiter.allow("a", 60, t0));
        assert!(limiter.allow("a", 40, t0));
        assert!(!limiter.allow("a", 1, t0), "empty");
        assert!(limiter.allow("b", 100, t0), "another token has its own bucket");
        assert!(!limiter.allow("a", 20, t0 + Duration::from_millis(100)), "10 back after 0.1 s");
        assert!(limiter.allow("a", 20, t0 + Duration::from_millis(300)));
        assert!(limiter.allow("c", 500, t0), "a full bucket lets a larger request through");
        assert!(!limiter.allow("c", 1, t0 + Duration::from_secs(1)), "and is in debt for it");
        assert!(RateLimiter::new(0).allow("a", 1_000_000, t0), "0: no limit");
    }
}
