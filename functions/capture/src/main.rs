//! The *capture* Lambda: PostHog's capture endpoints (`/batch/`, `/e/`, `/i/v0/e/`, `/capture/`, `/track/`,
//! `/engage/`), behind API Gateway (an HTTP API) on AWS and behind cargo lambda's function-URL emulation locally.
//!
//! A thin adapter over [`batch_exports::ingest::handle_capture`]: the path, the raw query string, the
//! `Content-Type` header and the body go in; the status and JSON body come out, with CORS headers so that
//! browsers (posthog-js) may send events from any origin. Logs the path, the status and the number of events,
//! never a body, a header or a token.

use batch_exports::capture::CaptureHttp;
use batch_exports::ingest::{handle_capture, CaptureServices};
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    batch_exports::lambda::init_logging();
    let services = CaptureServices::from_env().await?;
    lambda_http::run(service_fn(|request: Request| respond(&services, request))).await
}

async fn respond(services: &CaptureServices, request: Request) -> Result<Response<Body>, Error> {
    let cors = Response::builder()
        .header("access-control-allow-origin", "*")
        .header("access-control-allow-methods", "GET, POST, OPTIONS")
        .header("access-control-allow-headers", "content-type");
    if request.method() == "OPTIONS" {
        return Ok(cors.status(200).body(Body::Empty)?);
    }
    let path = request.raw_http_path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let http = CaptureHttp { path: &path, query: &query, content_type: content_type.as_deref(), body: request.body() };
    let answer = handle_capture(services, &http, chrono::Utc::now()).await;
    if answer.status >= 500 {
        tracing::error!(path = %path, status = answer.status, error = %answer.body["detail"], "capture failed");
    } else {
        tracing::info!(path = %path, status = answer.status, events = answer.events, "capture");
    }
    Ok(cors
        .status(answer.status)
        .header("content-type", "application/json")
        .body(Body::Text(answer.body.to_string()))?)
}
