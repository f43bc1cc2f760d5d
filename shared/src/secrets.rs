//! Destination credentials at rest: every secret field of a destination config is encrypted with KMS before
//! the export item is written, and decrypted only where the credentials are used (the export-chunk and
//! write-manifest functions, whose roles alone may `kms:Decrypt`).
//!
//! Envelope encryption, so secrets of any size (a service account's RSA-8192 key is ~6 KB, past KMS's 4 KB
//! `Encrypt` limit) are stored: each field gets a data key from KMS `GenerateDataKey` (AES-256) under
//! `BATCH_EXPORT_KMS_KEY_ID`, with the encryption context `{team_id, export_id, field}`, and is sealed with it
//! locally (AES-256-GCM, a random 96-bit nonce, the context as associated data). The item keeps
//! `encrypted_secrets.{field}` = `{"key", "nonce", "data"}` (base64: the data key as KMS encrypted it, the nonce,
//! the ciphertext with its tag); the plaintext fields and the plaintext data keys are never stored. Opening
//! needs `kms:Decrypt` of the data key under the same context, so a ciphertext only opens as the field of the
//! export it was written for. (A field stored by an earlier version as a bare KMS ciphertext string still opens.)

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use serde_json::{Map, Value};

use crate::aws_error::classify_sdk_error;
use crate::batch_export::BatchExport;
use crate::error::{ExportError, InternalContext, Result};

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

    /// The item form of an export: its JSON with every secret field moved, encrypted, to `encrypted_secrets`.
    pub async fn seal(&self, export: &BatchExport) -> Result<Value> {
        let mut item = serde_json::to_value(export).internal("export JSON")?;
        let mut sealed = Map::new();
        let config = item["destination"]["config"].as_object_mut().expect("a destination has a config object");
        for field in export.destination.secret_fields() {
            let Some(Value::String(plain)) = config.remove(*field) else {
                config.remove(*field);
                continue;
            };
            sealed.insert(field.to_string(), self.seal_field(export.team_id, &export.id, field, plain).await?);
        }
        item[ENCRYPTED_SECRETS] = Value::Object(sealed);
        Ok(item)
    }

    async fn seal_field(&self, team_id: i64, export_id: &str, field: &str, plain: String) -> Result<Value> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context(team_id, export_id, field)))
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "GenerateDataKey", &self.key_id, None))?;
        let (Some(data_key), Some(wrapped)) = (out.plaintext, out.ciphertext_blob) else {
            return Err(ExportError::internal("KMS returned no data key"));
        };
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| ExportError::internal("no random nonce"))?;
        let mut data = plain.into_bytes();
        cipher(data_key.as_ref())?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad(team_id, export_id, field), &mut data)
            .map_err(|_| ExportError::internal(format!("sealing `{field}` failed")))?;
        Ok(serde_json::json!({"key": b64(wrapped.as_ref()), "nonce": b64(&nonce), "data": b64(&data)}))
    }

    /// Decrypts the secrets of an item (as [`SecretBox::seal`] wrote it) back into its destination config.
    pub async fn open(&self, mut item: Value) -> Result<Value> {
        let team_id = item["team_id"].as_i64().unwrap_or_default();
        let export_id = item["id"].as_str().unwrap_or_default().to_string();
        let Some(Value::Object(sealed)) = item.as_object_mut().and_then(|o| o.remove(ENCRYPTED_SECRETS)) else {
            return Ok(item);
        };
        for (field, stored) in sealed {
            let what = format!("the `{field}` of export `{export_id}`");
            let unreadable = || ExportError::internal(format!("{what} is not a sealed secret"));
            let decoded = |v: &Value| v.as_str().and_then(|c| aws_smithy_types::base64::decode(c).ok());
            let plain = match &stored {
                // Written by an earlier version: the value encrypted by KMS directly.
                Value::String(_) => {
                    self.decrypt(decoded(&stored).ok_or_else(unreadable)?, team_id, &export_id, &field).await?
                }
                Value::Object(parts) => {
                    let part = |name: &str| parts.get(name).and_then(decoded).ok_or_else(unreadable);
                    let (wrapped, nonce, mut data) = (part("key")?, part("nonce")?, part("data")?);
                    let data_key = self.decrypt(wrapped, team_id, &export_id, &field).await?;
                    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| unreadable())?;
                    let opened =
                        cipher(&data_key)?
                            .open_in_place(nonce, aad(team_id, &export_id, &field), &mut data)
                            .map_err(|_| ExportError::internal(format!("{what} does not open with its data key")))?;
                    opened.to_vec()
                }
                _ => return Err(unreadable()),
            };
            let plain = String::from_utf8(plain)
                .map_err(|_| ExportError::internal(format!("the secret `{field}` is not UTF-8")))?;
            item["destination"]["config"][&field] = Value::String(plain);
        }
        Ok(item)
    }

    /// KMS `Decrypt` of a blob encrypted under the field's context.
    async fn decrypt(&self, blob: Vec<u8>, team_id: i64, export_id: &str, field: &str) -> Result<Vec<u8>> {
        let out = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(blob))
            .set_encryption_context(Some(context(team_id, export_id, field)))
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "Decrypt", &format!("the `{field}` of export `{export_id}`"), None))?;
        Ok(out.plaintext.ok_or_else(|| ExportError::internal("KMS returned no plaintext"))?.into_inner())
    }
}

fn b64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

fn cipher(data_key: &[u8]) -> Result<LessSafeKey> {
    let key = UnboundKey::new(&AES_256_GCM, data_key)
        .map_err(|_| ExportError::internal("KMS returned a data key that is not AES-256"))?;
    Ok(LessSafeKey::new(key))
}

/// The associated data of a sealed field: its context, so a ciphertext moved to another field or export fails.
fn aad(team_id: i64, export_id: &str, field: &str) -> Aad<Vec<u8>> {
    Aad::from(format!("{team_id}/{export_id}/{field}").into_bytes())
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
    let key_id = key.key_metadata.map(|m| m.key_id).ok_or_else(|| ExportError::internal("KMS created no key"))?;
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
