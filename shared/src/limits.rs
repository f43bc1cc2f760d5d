//! Bounds shared by every destination's config and the API: names and secrets (the README's limits table and
//! `openapi.json` state the same; see `api::openapi`).

use crate::error::{ExportError, Result};

/// The longest name: an export's in characters, an event's in bytes.
pub const MAX_NAME_CHARS: usize = 255;

/// The longest secret (a key id, a secret key, a service account's PEM key), in bytes.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// A secret, when given, is not empty and at most [`MAX_SECRET_BYTES`].
pub fn check_secret(field: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) if v.trim().is_empty() => Err(ExportError::config(field, "must not be empty")),
        Some(v) if v.len() > MAX_SECRET_BYTES => {
            Err(ExportError::config(field, format!("must be at most {MAX_SECRET_BYTES} bytes")))
        }
        _ => Ok(()),
    }
}
