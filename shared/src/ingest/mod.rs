//! Events in, as a service: the `capture` function answers PostHog's SDKs ([`handle_capture`]) and sends what it
//! accepts to a queue ([`queue`]); the `lake-writer` function, fed by the queue, writes the events into the lake
//! ([`lake_writer`]), where the export runs find them, and the person changes they make ([`persons`]).
//!
//! A capture request is read whole by [`crate::capture`], its project token resolved to a team ([`tokens`]),
//! held to the token's rate ([`rate`]), and answered 200 only once every message of it is in the queue (SQS
//! stores a message durably before it accepts it). A request that fails at any point stores nothing of its own
//! except, after a queue failure, the messages already accepted: the client's retry sends the same uuids again,
//! and the runs' de-duplication by uuid exports each event once.

pub mod lake_writer;
pub mod persons;
pub mod queue;
pub mod rate;
pub mod tokens;

use std::time::Instant;

use aws_config::BehaviorVersion;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use self::rate::RateLimiter;
use self::tokens::TokenCache;
use crate::capture::{capture, CaptureError, CaptureHttp};
use crate::error::Result;
use crate::settings::Settings;
use crate::store::ApiKeyStore;

/// What capture uses, built once per Lambda instance.
#[derive(Debug)]
pub struct CaptureServices {
    pub tokens: TokenCache,
    pub limiter: RateLimiter,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl CaptureServices {
    /// The services as [`Settings`] configure them (the API keys table, the queue, the rate limit). AWS clients
    /// honour `AWS_ENDPOINT_URL`.
    pub async fn from_env() -> Result<Self> {
        let settings = Settings::from_env()?;
        let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Ok(CaptureServices {
            tokens: TokenCache::new(ApiKeyStore::new(
                aws_sdk_dynamodb::Client::new(&aws),
                settings.tables.api_keys.clone(),
            )),
            limiter: RateLimiter::new(settings.capture_rate_limit),
            sqs: aws_sdk_sqs::Client::new(&aws),
            queue_url: settings.capture_queue_url()?.to_string(),
        })
    }
}

/// A status, a JSON body and how many events were accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureAnswer {
    pub status: u16,
    pub body: Value,
    pub events: usize,
}

/// Serves one capture request received at `now`: 200 `{"status": 1}` once its events are queued, else the
/// error's status and body.
pub async fn handle_capture(services: &CaptureServices, http: &CaptureHttp<'_>, now: DateTime<Utc>) -> CaptureAnswer {
    match accept(services, http, now).await {
        Ok(events) => CaptureAnswer { status: 200, body: json!({"status": 1}), events },
        Err(e) => CaptureAnswer { status: e.status(), body: e.body(), events: 0 },
    }
}

async fn accept(services: &CaptureServices, http: &CaptureHttp<'_>, now: DateTime<Utc>) -> Result<usize, CaptureError> {
    let captured = capture(http, now)?;
    let team = services
        .tokens
        .team_of(&captured.token)
        .await
        .map_err(|e| CaptureError::Unavailable(e.chain()))?
        .ok_or(CaptureError::UnknownToken)?;
    if !services.limiter.allow(&captured.token, captured.events.len(), Instant::now()) {
        return Err(CaptureError::RateLimited { limit: services.limiter.limit() });
    }
    // `_inserted_at` is the lake writer's to stamp: the rows are queued without it.
    let rows: Vec<_> = captured.events.into_iter().map(|e| e.into_row(team, now, now)).collect();
    let messages = queue::encode(team, &rows)?;
    queue::send(&services.sqs, &services.queue_url, &messages)
        .await
        .map_err(|e| CaptureError::Unavailable(e.chain()))?;
    Ok(rows.len())
}
