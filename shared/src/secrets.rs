//! Destination credentials at rest: every secret field of a destination config is encrypted with KMS before
//! the export item is written, and decrypted only where the credentials are used (the export-chunk and
//! write-manifest functions, whose roles alone may `kms:Decrypt`).
//!
//! Each field is one KMS `Encrypt` (direct encryption: credentials are far below KMS's 4 KB limit) under
//! `BATCH_EXPORT_KMS_KEY_ID`, with the encryption context `{team_id, export_id, field}`, so a ciphertext only
//! decrypts as the field of the export it was written for. The item keeps the ciphertexts, base64, under
//! `encrypted_secrets.{field}`; the plaintext fields are absent from it.

use std::collections::BTreeMap;

use aws_sdk_kms::primitives::Blob;
use serde_json::Value;

use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, Result};
use crate::exports::BatchExport;

/// The attribute of an export item that holds its encrypted secrets.
pub const ENCRYPTED_SECRETS: &str = "encrypted_secrets";

/// Encrypts and decrypts the secret fields of destination configs.
#[derive(Debug, Clone)]
pub struct SecretBox {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl SecretBox {
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        SecretBox { client, key_id: key_id.into() }
    }

    /// `BATCH_EXPORT_KMS_KEY_ID` (a key id, ARN or alias).
    pub fn from_env(client: aws_sdk_kms::Client) -> Result<Self> {
        let key_id = std::env::var("BATCH_EXPORT_KMS_KEY_ID")
            .map_err(|_| ExportError::config("BATCH_EXPORT_KMS_KEY_ID", "is not set"))?;
        Ok(SecretBox::new(client, key_id))
    }

    /// The item form of an export: its JSON with every secret field moved, encrypted, to `encrypted_secrets`.
    pub async fn seal(&self, export: &BatchExport) -> Result<Value> {
        let mut item = serde_json::to_value(export).map_err(|e| ExportError::Internal(format!("export JSON: {e}")))?;
        let mut sealed = BTreeMap::new();
        let config = item["destination"]["config"].as_object_mut().expect("a destination has a config object");
        for field in export.destination.secret_fields() {
            let Some(Value::String(plain)) = config.remove(*field) else { continue };
            let out = self
                .client
                .encrypt()
                .key_id(&self.key_id)
                .plaintext(Blob::new(plain.into_bytes()))
                .set_encryption_context(Some(context(export.team_id, &export.id, field)))
                .send()
                .await
                .map_err(|e| classify_sdk_error(e, "Encrypt", &self.key_id, None))?;
            let blob = out.ciphertext_blob.ok_or_else(|| ExportError::Internal("KMS returned no ciphertext".into()))?;
            sealed.insert(field.to_string(), Value::String(aws_smithy_types::base64::encode(blob.as_ref())));
        }
        item[ENCRYPTED_SECRETS] = Value::Object(sealed.into_iter().collect());
        Ok(item)
    }

    /// Decrypts the secrets of an item (as [`SecretBox::seal`] wrote it) back into its destination config.
    pub async fn open(&self, mut item: Value) -> Result<Value> {
        let team_id = item["team_id"].as_i64().unwrap_or_default();
        let export_id = item["id"].as_str().unwrap_or_default().to_string();
        let Some(Value::Object(sealed)) = item.as_object_mut().and_then(|o| o.remove(ENCRYPTED_SECRETS)) else {
            return Ok(item);
        };
        for (field, cipher) in sealed {
            let cipher = cipher.as_str().and_then(|c| aws_smithy_types::base64::decode(c).ok()).ok_or_else(|| {
                ExportError::Internal(format!("export `{export_id}`: the secret `{field}` is not base64"))
            })?;
            let out = self
                .client
                .decrypt()
                .ciphertext_blob(Blob::new(cipher))
                .set_encryption_context(Some(context(team_id, &export_id, &field)))
                .send()
                .await
                .map_err(|e| {
                    classify_sdk_error(e, "Decrypt", &format!("the `{field}` of export `{export_id}`"), None)
                })?;
            let plain = out.plaintext.ok_or_else(|| ExportError::Internal("KMS returned no plaintext".into()))?;
            let plain = String::from_utf8(plain.into_inner())
                .map_err(|_| ExportError::Internal(format!("the secret `{field}` is not UTF-8")))?;
            item["destination"]["config"][&field] = Value::String(plain);
        }
        Ok(item)
    }
}

/// Creates a KMS key under `alias` unless the alias exists (the local stack's setup; on AWS the SAM template
/// creates the key).
pub async fn ensure_key_alias(client: &aws_sdk_kms::Client, alias: &str) -> Result<()> {
    match client.describe_key().key_id(alias).send().await {
        Ok(_) => return Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found_exception()) => {}
        Err(e) => return Err(classify_sdk_error(e, "DescribeKey", alias, None)),
    }
    let key = client
        .create_key()
        .description("batch-exports destination credentials")
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "CreateKey", alias, None))?;
    let key_id =
        key.key_metadata.map(|m| m.key_id).ok_or_else(|| ExportError::Internal("KMS created no key".into()))?;
    client
        .create_alias()
        .alias_name(alias)
        .target_key_id(key_id)
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "CreateAlias", alias, None))?;
    Ok(())
}

/// Drops the sealed secrets from an item, for readers that do not need credentials.
pub fn without_secrets(mut item: Value) -> Value {
    if let Some(o) = item.as_object_mut() {
        o.remove(ENCRYPTED_SECRETS);
    }
    item
}

fn context(team_id: i64, export_id: &str, field: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("team_id".to_string(), team_id.to_string()),
        ("export_id".to_string(), export_id.to_string()),
        ("field".to_string(), field.to_string()),
    ])
}
