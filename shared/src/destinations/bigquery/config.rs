//! The BigQuery destination's configuration, with the reference's field names: the table's place
//! (`project_id`, `dataset_id`, `table_id`), `use_json_type`, and the service account's key fields
//! (`private_key`, `private_key_id`, `client_email`, `token_uri`), of which the key itself is a write-only
//! secret. Unknown keys are rejected; [`BigQueryDestinationConfig::validate`] names the field it finds wrong.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ExportError, Result};
use crate::limits::check_secret;
use crate::network::EndpointPolicy;

/// Google's OAuth 2.0 token endpoint (the default `token_uri` of service-account keys).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQueryDestinationConfig {
    pub project_id: String,
    pub dataset_id: String,
    /// The table's id only (no project or dataset): `events`, `persons`, `MyExportTable`.
    #[serde(default = "default_table")]
    pub table_id: String,
    /// `properties`, `set`, `set_once` (and `person_properties`) as BigQuery `JSON` instead of `STRING`.
    #[serde(default)]
    pub use_json_type: bool,
    /// The service account's private key (PEM): write-only.
    #[serde(default)]
    pub private_key: Option<String>,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub client_email: Option<String>,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_table() -> String {
    "events".into()
}

fn default_token_uri() -> String {
    GOOGLE_TOKEN_URI.into()
}

impl fmt::Debug for BigQueryDestinationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BigQueryDestinationConfig")
            .field("project_id", &self.project_id)
            .field("dataset_id", &self.dataset_id)
            .field("table_id", &self.table_id)
            .field("use_json_type", &self.use_json_type)
            .field("private_key", &self.private_key.as_ref().map(|_| "<redacted>"))
            .field("private_key_id", &self.private_key_id.as_ref().map(|_| "<redacted>"))
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

/// BigQuery identifiers: letters, digits and underscores (datasets), plus `-` in projects.
fn check_id(field: &str, value: &str, max: usize, extra: &[char]) -> Result<()> {
    if value.is_empty() || value.len() > max {
        return Err(ExportError::config(field, format!("must be 1 to {max} characters long")));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || extra.contains(c))) {
        return Err(ExportError::config(field, format!("`{value}` holds `{c}`, which a BigQuery id cannot")));
    }
    Ok(())
}

impl BigQueryDestinationConfig {
    /// Checks every rule, naming the field; `token_uri` is checked against metadata addresses only (see
    /// [`crate::S3DestinationConfig::validate`]).
    pub fn validate(&self) -> Result<()> {
        self.validate_with_stored(&[], EndpointPolicy::PRIVATE_ALLOWED)
    }

    /// [`BigQueryDestinationConfig::validate`] for a config whose secret fields may be unset because the
    /// export keeps them stored (`stored` names them: a patch that does not resend the key), with `token_uri`
    /// checked under `policy`.
    pub fn validate_with_stored(&self, stored: &[String], policy: EndpointPolicy) -> Result<()> {
        check_id("project_id", &self.project_id, 30, &['-'])?;
        check_id("dataset_id", &self.dataset_id, 1024, &[])?;
        if self.table_id.contains('.') || self.table_id.contains(':') {
            return Err(ExportError::config("table_id", "must be the table's id only, without project or dataset"));
        }
        check_id("table_id", &self.table_id, 1024, &['-'])?;
        check_secret("private_key", self.private_key.as_deref())?;
        check_secret("private_key_id", self.private_key_id.as_deref())?;
        if let Some(key) = &self.private_key {
            // Signing a token parses the key whole (a PEM wrapper around garbage fails here, not at run time).
            let invalid = |e: jsonwebtoken::errors::Error| {
                ExportError::config("private_key", format!("is not a PEM-encoded RSA private key: {e}"))
            };
            let signing = jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).map_err(invalid)?;
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
                &serde_json::json!({}),
                &signing,
            )
            .map_err(invalid)?;
        } else if !stored.iter().any(|s| s == "private_key") {
            return Err(ExportError::config("private_key", "is required (the service account's key)"));
        }
        match &self.client_email {
            Some(email) if !email.contains('@') || email.len() > 254 => {
                return Err(ExportError::config("client_email", "is not a service account e-mail"))
            }
            Some(_) => {}
            None => return Err(ExportError::config("client_email", "is required with private_key")),
        }
        // Google's token endpoint is https; plain http only where private endpoints are allowed (a local stub).
        policy.check_url("token_uri", &self.token_uri, !policy.allow_private)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real RSA key (openssl), made once for the module's tests.
    fn key() -> &'static str {
        static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            let out = std::process::Command::new("openssl")
                .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
                .output()
                .expect("openssl");
            String::from_utf8(out.stdout).unwrap()
        })
    }

    fn config() -> BigQueryDestinationConfig {
        serde_json::from_value(serde_json::json!({
            "project_id": "my-project", "dataset_id": "BatchExports", "table_id": "events",
            "private_key": key(),
            "private_key_id": "k1", "client_email": "exports@my-project.iam.gserviceaccount.com"
        }))
        .unwrap()
    }

    fn field(c: &BigQueryDestinationConfig) -> String {
        match c.validate() {
            Err(ExportError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validation_names_the_field() {
        config().validate().unwrap();
        assert_eq!(config().token_uri, GOOGLE_TOKEN_URI);
        let mut c = config();
        c.table_id = "project:dataset.table".into();
        assert_eq!(field(&c), "table_id");
        let mut c = config();
        c.dataset_id = "my-dataset".into();
        assert_eq!(field(&c), "dataset_id");
        let mut c = config();
        c.private_key = None;
        assert_eq!(field(&c), "private_key");
        let mut c = config();
        c.client_email = None;
        assert_eq!(field(&c), "client_email");
        let mut c = config();
        c.private_key = Some("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n".into());
        assert_eq!(field(&c), "private_key");
        let mut c = config();
        c.private_key_id = Some(String::new());
        assert_eq!(field(&c), "private_key_id");
        let mut c = config();
        c.token_uri = "http://169.254.169.254/token".into();
        assert_eq!(field(&c), "token_uri");
        // A patch that leaves the stored key alone validates without it.
        let mut c = config();
        c.private_key = None;
        c.validate_with_stored(&["private_key".to_string()], EndpointPolicy::default()).unwrap();
        assert!(serde_json::from_value::<BigQueryDestinationConfig>(serde_json::json!({
            "project_id": "p", "dataset_id": "d", "tabel_id": "x"}))
        .is_err());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let text = format!("{:?}", config());
        assert!(!text.contains("BEGIN PRIVATE KEY") && !text.contains("k1"));
    }
}
