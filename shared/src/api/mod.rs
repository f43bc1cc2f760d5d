//! The management API (served by the `api` Lambda behind API Gateway): exports, their schedules, runs and
//! backfills under `/api/projects/{team_id}/batch_exports/`, as the reference's API shapes them.
//!
//! [`handle`] takes a framework-neutral [`ApiRequest`] (the Lambda adapts lambda_http's request to it) and
//! returns a status and a JSON body. Every request needs a project API key (`Authorization: Bearer …`), looked
//! up by its SHA-256 in the API keys table; the key's team must be the path's. Exports of other teams are not
//! found (404). Destination credentials are write-only: encrypted on the way in ([`crate::secrets`]), absent
//! from every response; request bodies are never logged.

mod bodies;
mod error;
mod handlers;
#[cfg(test)]
mod openapi;
mod routes;

pub use self::bodies::{backfill_view, export_view, run_view, MAX_BACKFILL_CONCURRENCY};
pub use self::error::ApiError;
pub use self::routes::{route, Route, ROUTES};

use aws_config::BehaviorVersion;
use serde_json::Value;

use crate::error::Result;
use crate::network::EndpointPolicy;
use crate::schedules::Schedules;
use crate::secrets::SecretBox;
use crate::settings::Settings;
use crate::store::{ApiKeyStore, BackfillStore, ExportStore, RunStore};

/// An HTTP request, as far as the API looks at it.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    /// The `Content-Type` header: a body must be JSON (`application/json`, with any parameters).
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
}

/// The clients and settings the API uses, built once per Lambda instance.
#[derive(Debug, Clone)]
pub struct ApiServices {
    pub exports: ExportStore,
    pub runs: RunStore,
    pub backfills: BackfillStore,
    pub api_keys: ApiKeyStore,
    pub schedules: Schedules,
    pub sfn: aws_sdk_sfn::Client,
    /// The export state machine (`BATCH_EXPORT_STATE_MACHINE_ARN`), whose executions a run cancel stops.
    pub export_state_machine_arn: Option<String>,
    /// The backfill state machine (`BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN`), started for every backfill.
    pub backfill_state_machine_arn: Option<String>,
    /// Where user-given endpoints may point.
    pub endpoints: EndpointPolicy,
}

impl ApiServices {
    /// The services as [`Settings`] configure them (the tables, the KMS key, the schedule settings, the two state
    /// machines, the endpoint policy). AWS clients honour `AWS_ENDPOINT_URL`.
    pub async fn from_env() -> Result<Self> {
        let settings = Settings::from_env()?;
        let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let tables = settings.tables.clone();
        Ok(ApiServices {
            exports: ExportStore::new(
                dynamodb.clone(),
                tables.exports,
                SecretBox::new(aws_sdk_kms::Client::new(&aws), settings.kms_key_id()?),
            ),
            runs: RunStore::new(dynamodb.clone(), tables.runs),
            backfills: BackfillStore::new(dynamodb.clone(), tables.backfills),
            api_keys: ApiKeyStore::new(dynamodb, tables.api_keys),
            schedules: Schedules::new(aws_sdk_scheduler::Client::new(&aws), settings.schedule_settings()?),
            sfn: aws_sdk_sfn::Client::new(&aws),
            export_state_machine_arn: settings.state_machine_arn,
            backfill_state_machine_arn: settings.backfill_state_machine_arn,
            endpoints: settings.endpoints,
        })
    }
}

/// Serves one request. Logs the method, the route and the status (never a body or a header).
pub async fn handle(services: &ApiServices, request: ApiRequest) -> ApiResponse {
    let result = async {
        let (team_id, route) = route(&request.method, &request.path)?;
        authorize(services, &request, team_id).await?;
        check_content_type(&request)?;
        handlers::serve(services, team_id, route, &request).await
    }
    .await;
    let response = match result {
        Ok((status, body)) => ApiResponse { status, body },
        Err(e) => ApiResponse { status: e.status(), body: e.body() },
    };
    if response.status >= 500 {
        tracing::error!(method = %request.method, path = %request.path, status = response.status, error = %response.body["detail"], "request failed");
    } else {
        tracing::info!(method = %request.method, path = %request.path, status = response.status, "request");
    }
    response
}

/// A request with a body says it is JSON (a missing header is taken as JSON, as curl without `-H` would
/// otherwise fail on every call).
fn check_content_type(request: &ApiRequest) -> Result<(), ApiError> {
    let Some(content_type) = request.content_type.as_deref() else { return Ok(()) };
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media == "application/json" || (media.starts_with("application/") && media.ends_with("+json")) {
        return Ok(());
    }
    Err(ApiError::validation("Content-Type", format!("`{content_type}` is not JSON: send `application/json`")))
}

/// Checks the request's API key against the path's project.
async fn authorize(services: &ApiServices, request: &ApiRequest, team_id: i64) -> Result<(), ApiError> {
    let header = request.authorization.as_deref().ok_or(ApiError::Unauthorized("an API key is required"))?;
    let key = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::Unauthorized("the Authorization header must be `Bearer <API key>`"))?;
    let record = services.api_keys.find(key).await?.ok_or(ApiError::Unauthorized("unknown API key"))?;
    if record.team_id != team_id {
        return Err(ApiError::Forbidden(team_id));
    }
    Ok(())
}
