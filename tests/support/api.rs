//! The API as a client calls it: a team's client of the API function, and extra instances of the function
//! with other settings.

use chrono::Utc;
use serde_json::Value;

use crate::functions::Functions;
use crate::stack::{local_stack, settings};

/// A client of the API function served by the local stack (`BATCH_EXPORT_API_URL`), with one team's API key.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub team: i64,
    pub key: String,
}

impl Api {
    /// A new team with its own API key.
    pub async fn new_team(team: i64) -> Api {
        let base = local_stack().await;
        let keys =
            batch_exports::store::ApiKeyStore::new(aws_sdk_dynamodb::Client::new(&base), settings().tables.api_keys);
        let (key, _) = keys.create(team, "tests", Utc::now()).await.unwrap();
        let url = std::env::var("BATCH_EXPORT_API_URL")
            .expect("BATCH_EXPORT_API_URL is not set: run the tests with scripts/test.sh, which serves the API");
        Api { url, team, key }
    }

    /// An export's runs, newest first (the first page), over the API.
    pub async fn runs(&self, export_id: &str) -> Vec<Value> {
        let (status, page) = self.call("GET", &self.path(&format!("{export_id}/runs/")), None).await;
        assert_eq!(status, 200, "{page}");
        page["results"].as_array().unwrap().clone()
    }

    /// The path of this team's exports, with `rest` appended.
    pub fn path(&self, rest: &str) -> String {
        format!("/api/projects/{}/batch_exports/{rest}", self.team)
    }

    /// Sends a request with this team's key; returns the status and the JSON body (null when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(Some(&format!("Bearer {}", self.key)), method, path, body.map(|b| b.to_string())).await
    }

    /// Sends a request with any `Authorization` header (or none) and a raw body.
    pub async fn call_as(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let body = body.unwrap_or_default().into_bytes();
        self.send(authorization, method, path, Some("application/json"), body).await
    }

    /// Sends any request: any `Authorization` and `Content-Type` header (or none), a raw body.
    pub async fn send(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let (method, authorization) = (method.to_string(), authorization.map(str::to_string));
        let content_type = content_type.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let mut request = ureq::http::Request::builder().method(method.as_str()).uri(&url);
            if let Some(a) = &authorization {
                request = request.header("Authorization", a);
            }
            if let Some(c) = &content_type {
                request = request.header("Content-Type", c);
            }
            let request = request.body(body).unwrap();
            let mut response = agent.run(request).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap();
            let json =
                if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
            (status, json)
        })
        .await
        .unwrap()
    }
}

/// One more instance of the `api` function with some settings changed (`env`), served by a [`Functions`] of its
/// own; stopped when dropped.
pub struct ApiInstance {
    _functions: Functions,
    /// Its function URL, for [`Api::url`].
    pub url: String,
}

impl ApiInstance {
    pub fn start(env: &[(&str, String)]) -> ApiInstance {
        let functions = Functions::start(&["api"], env);
        let url = format!("{}/lambda-url/api", functions.url());
        ApiInstance { _functions: functions, url }
    }
}
