//! The *API* Lambda: the HTTP management API under `/api/projects/{team_id}/batch_exports/`, behind API Gateway
//! (an HTTP API) on AWS and behind cargo lambda's function-URL emulation locally.
//!
//! A thin adapter over [`batch_exports::api`]: the request's method, path, query, `Authorization` header and
//! body go to [`batch_exports::api::handle`], whose status and JSON body become the response.

use batch_exports::api::{handle, ApiRequest, ApiServices};
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    batch_exports::lambda::init_logging();
    let services = ApiServices::from_env().await?;
    lambda_http::run(service_fn(|request: Request| respond(&services, request))).await
}

async fn respond(services: &ApiServices, request: Request) -> Result<Response<Body>, Error> {
    let query = request.query_string_parameters();
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let api_request = ApiRequest {
        method: request.method().as_str().to_string(),
        path: request.raw_http_path().to_string(),
        query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: request.body().to_vec(),
    };
    let response = handle(services, api_request).await;
    let builder = Response::builder().status(response.status);
    Ok(match response.status {
        204 => builder.body(Body::Empty)?,
        _ => builder.header("content-type", "application/json").body(Body::Text(response.body.to_string()))?,
    })
}
