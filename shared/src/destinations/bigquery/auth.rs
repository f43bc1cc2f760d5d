//! Service-account authentication: the OAuth 2.0 JWT-bearer grant (RFC 7523) at the key's `token_uri`.
//!
//! A JWT signed RS256 with the service account's private key (`iss` = `client_email`, `aud` = `token_uri`,
//! `scope` = BigQuery, one hour) is exchanged for an access token, which is cached until a minute before it
//! expires. A rejected key (`invalid_grant`, a malformed PEM) is not retryable; a token endpoint that fails with
//! 5xx or cannot be reached is.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::config::BigQueryDestinationConfig;
use crate::error::{ExportError, Result};

/// The scope BigQuery load and query jobs need.
pub const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "an_hour")]
    expires_in: u64,
}

fn an_hour() -> u64 {
    3600
}

/// Access tokens for one service account, fetched when needed.
pub struct TokenSource {
    http: reqwest::Client,
    client_email: String,
    token_uri: String,
    key: jsonwebtoken::EncodingKey,
    key_id: Option<String>,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

impl TokenSource {
    pub fn new(http: reqwest::Client, config: &BigQueryDestinationConfig) -> Result<Self> {
        let pem = config.private_key.as_deref().ok_or_else(|| ExportError::config("private_key", "is required"))?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| ExportError::config("private_key", format!("is not an RSA private key in PEM: {e}")))?;
        Ok(TokenSource {
            http,
            client_email: config.client_email.clone().unwrap_or_default(),
            token_uri: config.token_uri.clone(),
            key,
            key_id: config.private_key_id.clone(),
            cached: Mutex::new(None),
        })
    }

    /// A valid access token.
    pub async fn token(&self) -> Result<String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.fetch().await?;
        *cached = Some((token.clone(), Instant::now() + Duration::from_secs(lifetime.saturating_sub(60))));
        Ok(token)
    }

    async fn fetch(&self) -> Result<(String, u64)> {
        let now = chrono::Utc::now().timestamp();
        let claims =
            Claims { iss: &self.client_email, scope: BIGQUERY_SCOPE, aud: &self.token_uri, iat: now, exp: now + 3600 };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| ExportError::config("private_key", format!("cannot sign with the key: {e}")))?;
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
            .send()
            .await
            .map_err(|e| match crate::network::policy_refusal(&e) {
                // A token endpoint the policy refuses stays refused: not retried, naming the host.
                Some(message) => ExportError::EndpointUnreachable { endpoint: self.token_uri.clone(), message },
                None => ExportError::Transient {
                    operation: "token exchange",
                    resource: self.token_uri.clone(),
                    message: e.to_string(),
                },
            })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            let parsed: TokenResponse = serde_json::from_str(&body).map_err(|e| ExportError::Rejected {
                operation: "token exchange",
                resource: self.token_uri.clone(),
                message: format!("unexpected response: {e}"),
            })?;
            return Ok((parsed.access_token, parsed.expires_in));
        }
        let message = format!("HTTP {}: {}", status.as_u16(), body.chars().take(300).collect::<String>());
        let resource = format!("the service account {} at {}", self.client_email, self.token_uri);
        Err(if status.is_server_error() || status.as_u16() == 429 {
            ExportError::Transient { operation: "token exchange", resource, message }
        } else {
            ExportError::AccessDenied { operation: "token exchange", resource, message }
        })
    }
}
