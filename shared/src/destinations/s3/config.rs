//! The S3 destination's configuration, with the reference system's field names, and its validation.
//!
//! Parsing rejects unknown keys; [`S3DestinationConfig::validate`] checks every rule and names the field it
//! found wrong. Secrets (`aws_secret_access_key`) never appear in `Debug` output.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::destinations::s3::keys::KeyTemplate;
use crate::error::{ExportError, Result};
use crate::format::{Compression, FileFormat};
use crate::limits::{check_secret, MAX_NAME_CHARS};
use crate::network::EndpointPolicy;

/// Server-side encryption of exported objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encryption {
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    AwsKms,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

/// Configuration of an S3 (or S3-compatible) destination.
///
/// Decisions where the reference is silent: `region` defaults to `us-east-1`; `max_file_size_mb` of null
/// means no splitting; without `aws_access_key_id`/`aws_secret_access_key` the default AWS credential chain is
/// used (an instance or Lambda role); `include_events` and `exclude_events` may both be set (include first).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3DestinationConfig {
    pub bucket_name: String,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub aws_access_key_id: Option<String>,
    #[serde(default)]
    pub aws_secret_access_key: Option<String>,
    #[serde(default)]
    pub compression: Option<Compression>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub file_format: FileFormat,
    #[serde(default)]
    pub max_file_size_mb: Option<u64>,
    #[serde(default)]
    pub use_virtual_style_addressing: bool,
    #[serde(default)]
    pub include_events: Vec<String>,
    #[serde(default)]
    pub exclude_events: Vec<String>,
}

impl fmt::Debug for S3DestinationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3DestinationConfig")
            .field("bucket_name", &self.bucket_name)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("aws_access_key_id", &self.aws_access_key_id.as_ref().map(|_| "<redacted>"))
            .field("aws_secret_access_key", &self.aws_secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("compression", &self.compression)
            .field("encryption", &self.encryption)
            .field("kms_key_id", &self.kms_key_id)
            .field("endpoint_url", &self.endpoint_url)
            .field("file_format", &self.file_format)
            .field("max_file_size_mb", &self.max_file_size_mb)
            .field("use_virtual_style_addressing", &self.use_virtual_style_addressing)
            .field("include_events", &self.include_events)
            .field("exclude_events", &self.exclude_events)
            .finish()
    }
}

impl S3DestinationConfig {
    /// A config with every optional field at its default.
    pub fn new(bucket_name: impl Into<String>) -> Self {
        S3DestinationConfig {
            bucket_name: bucket_name.into(),
            region: default_region(),
            prefix: String::new(),
            aws_access_key_id: None,
            aws_secret_access_key: None,
            compression: None,
            encryption: None,
            kms_key_id: None,
            endpoint_url: None,
            file_format: FileFormat::JSONLines,
            max_file_size_mb: None,
            use_virtual_style_addressing: false,
            include_events: Vec::new(),
            exclude_events: Vec::new(),
        }
    }

    /// Parses and validates a JSON config; errors name the field.
    pub fn from_json(json: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let config: S3DestinationConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            let field = if path != "." {
                path
            } else if let Some(name) = message.split('`').nth(1).filter(|_| message.contains("field")) {
                name.to_string()
            } else {
                "config".to_string()
            };
            ExportError::config(field, message)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The split size in bytes, if files are split (the size is bounded by [`MAX_FILE_SIZE_MB`] when validated;
    /// an unvalidated larger one saturates rather than overflows).
    pub fn max_file_size_bytes(&self) -> Option<u64> {
        self.max_file_size_mb.filter(|mb| *mb > 0).map(|mb| mb.saturating_mul(1024 * 1024))
    }

    /// Checks every rule; the first broken one is returned, naming its field. Where `endpoint_url` points is
    /// checked against metadata addresses only: the API checks it under the deployment's policy
    /// ([`S3DestinationConfig::validate_with_stored`]), and every connection is checked when made.
    pub fn validate(&self) -> Result<()> {
        self.validate_with_stored(&[], EndpointPolicy::PRIVATE_ALLOWED)
    }

    /// [`S3DestinationConfig::validate`] for a config whose secret fields may be unset because the export
    /// keeps them stored (`stored` names them: a patch that does not mention the credentials), with
    /// `endpoint_url` checked under `policy`.
    pub fn validate_with_stored(&self, stored: &[String], policy: EndpointPolicy) -> Result<()> {
        validate_bucket_name(&self.bucket_name, self.endpoint_url.is_some())?;
        validate_region(&self.region)?;
        validate_prefix(&self.prefix)?;
        let has = |field: &str, value: &Option<String>| value.is_some() || stored.iter().any(|s| s == field);
        match (
            has("aws_access_key_id", &self.aws_access_key_id),
            has("aws_secret_access_key", &self.aws_secret_access_key),
        ) {
            (true, false) => {
                return Err(ExportError::config("aws_secret_access_key", "is required when aws_access_key_id is set"))
            }
            (false, true) => {
                return Err(ExportError::config("aws_access_key_id", "is required when aws_secret_access_key is set"))
            }
            _ => {}
        }
        check_secret("aws_access_key_id", self.aws_access_key_id.as_deref())?;
        check_secret("aws_secret_access_key", self.aws_secret_access_key.as_deref())?;
        if let Some(c) = self.compression {
            if !c.supported_by(self.file_format) {
                return Err(ExportError::config(
                    "compression",
                    format!(
                        "`{}` is not supported for {:?} (use one of gzip, brotli, zstd)",
                        c.name(),
                        self.file_format
                    ),
                ));
            }
        }
        match (self.encryption, self.kms_key_id.as_deref()) {
            (Some(Encryption::AwsKms), None | Some("")) => {
                return Err(ExportError::config("kms_key_id", "is required when encryption is `aws:kms`"))
            }
            (Some(Encryption::Aes256) | None, Some(id)) if !id.is_empty() => {
                return Err(ExportError::config("kms_key_id", "is only allowed when encryption is `aws:kms`"))
            }
            (_, Some(id)) if id.len() > 2048 => {
                return Err(ExportError::config("kms_key_id", "must be at most 2048 characters long"))
            }
            _ => {}
        }
        if let Some(url) = &self.endpoint_url {
            policy.check_url("endpoint_url", url, false)?;
        }
        if let Some(mb) = self.max_file_size_mb {
            if !(1..=MAX_FILE_SIZE_MB).contains(&mb) {
                return Err(ExportError::config(
                    "max_file_size_mb",
                    format!("must be from 1 to {MAX_FILE_SIZE_MB} (S3's largest object), or null for one file"),
                ));
            }
        }
        for (field, names) in [("include_events", &self.include_events), ("exclude_events", &self.exclude_events)] {
            if names.iter().any(|n| n.is_empty()) {
                return Err(ExportError::config(field, "event names must not be empty"));
            }
            if names.len() > MAX_EVENT_NAMES || names.iter().any(|n| n.len() > MAX_NAME_CHARS) {
                return Err(ExportError::config(
                    field,
                    format!("at most {MAX_EVENT_NAMES} event names of at most {MAX_NAME_CHARS} bytes each"),
                ));
            }
        }
        Ok(())
    }
}

/// The largest `max_file_size_mb`: S3's largest object, 5 TiB.
pub const MAX_FILE_SIZE_MB: u64 = 5 * 1024 * 1024;

/// The most event names `include_events` or `exclude_events` may hold.
pub const MAX_EVENT_NAMES: usize = 1000;

/// S3's longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// What a rendered prefix leaves for file names (`{start}-{end}-{chunk}-{n}.parquet.zst`, the manifest).
const FILE_NAME_RESERVE: usize = 128;

/// The prefix: a valid template, no `.` or `..` path segment (a key must not climb out of its prefix), and short
/// enough that every key under it stays within S3's 1024-byte limit once rendered.
fn validate_prefix(prefix: &str) -> Result<()> {
    let template = KeyTemplate::parse(prefix)?;
    if prefix.split('/').any(|segment| segment == ".." || segment == ".") {
        return Err(ExportError::config("prefix", "must not hold `.` or `..` path segments"));
    }
    if prefix.contains('\0') {
        return Err(ExportError::config("prefix", "must not hold NUL characters"));
    }
    // Every variable renders at a fixed width, so any interval gives the rendered length.
    let sample = crate::time::Interval::new(
        chrono::DateTime::UNIX_EPOCH,
        chrono::DateTime::UNIX_EPOCH + chrono::Duration::hours(1),
    )?;
    let rendered = template.render(&sample, crate::model::Model::Persons).len();
    let limit = MAX_KEY_BYTES - FILE_NAME_RESERVE;
    if rendered > limit {
        return Err(ExportError::config(
            "prefix",
            format!("renders to {rendered} bytes; at most {limit} leave room for file names within S3's {MAX_KEY_BYTES}-byte keys"),
        ));
    }
    Ok(())
}

/// AWS region names (`us-east-1`, `us-gov-west-1`, `eu-central-2`), or `auto` (Cloudflare R2, GCS).
fn validate_region(region: &str) -> Result<()> {
    let parts: Vec<&str> = region.split('-').collect();
    let valid = region == "auto"
        || (region.len() <= 32
            && parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
            && parts[0].bytes().all(|b| b.is_ascii_lowercase())
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        return Err(ExportError::config(
            "region",
            format!("`{region}` is not a region name (like `us-east-1`, or `auto`)"),
        ));
    }
    Ok(())
}

/// S3's bucket naming rules (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>):
/// 3–63 characters of `a-z 0-9 . -`, starting and ending with a letter or digit, no `..`, not an IP address,
/// none of the reserved prefixes and suffixes. With a custom endpoint (an S3-compatible store), `_` is allowed too.
fn validate_bucket_name(name: &str, custom_endpoint: bool) -> Result<()> {
    let fail = |reason: &str| Err(ExportError::config("bucket_name", format!("`{name}` {reason}")));
    if name.len() < 3 || name.len() > 63 {
        return fail("must be 3 to 63 characters long");
    }
    let allowed = |b: u8| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-' || (custom_endpoint && b == b'_')
    };
    if !name.bytes().all(allowed) {
        return fail(if custom_endpoint {
            "may only contain lowercase letters, digits, `.`, `-` and `_`"
        } else {
            "may only contain lowercase letters, digits, `.` and `-`"
        });
    }
    let (first, last) = (name.as_bytes()[0], name.as_bytes()[name.len() - 1]);
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return fail("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return fail("must not hold two adjacent periods");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("must not be formatted as an IP address");
    }
    if let Some(p) = ["xn--", "sthree-", "amzn-s3-demo-"].iter().find(|p| name.starts_with(*p)) {
        return fail(&format!("must not start with the reserved prefix `{p}`"));
    }
    if let Some(s) = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].iter().find(|s| name.ends_with(*s)) {
        return fail(&format!("must not end with the reserved suffix `{s}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(json: &str) -> String {
        match S3DestinationConfig::from_json(json) {
            Err(ExportError::InvalidConfig { field, .. }) => field,
            other => panic!("expected a config error for {json}, got {other:?}"),
        }
    }

    #[test]
    fn sizes_are_bounded_and_never_overflow() {
        let mut c = S3DestinationConfig::new("bucket");
        c.max_file_size_mb = Some(MAX_FILE_SIZE_MB);
        c.validate().unwrap();
        assert_eq!(c.max_file_size_bytes(), Some(5 << 40));
        c.max_file_size_mb = Some(u64::MAX);
        assert_eq!(c.max_file_size_bytes(), Some(u64::MAX));
        c.prefix = "p/".repeat(449);
        assert!(c.validate().is_err());
        c.prefix = "{data_interval_start}/".repeat(60);
        assert!(format!("{:?}", c.validate()).contains("prefix"));
        let mut ok = S3DestinationConfig::new("under_score");
        ok.endpoint_url = Some("https://minio.example.com".into());
        ok.validate().unwrap();
    }

    #[test]
    fn minimal_config_takes_the_defaults() {
        let c = S3DestinationConfig::from_json(r#"{"bucket_name":"my-bucket"}"#).unwrap();
        assert_eq!(c, S3DestinationConfig::new("my-bucket"));
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.file_format, FileFormat::JSONLines);
        assert_eq!(c.max_file_size_bytes(), None);
    }

    #[test]
    fn full_config_parses() {
        let c = S3DestinationConfig::from_json(
            r#"{"bucket_name":"b-1","region":"eu-west-1","prefix":"{table}/{year}/","aws_access_key_id":"AK",
                "aws_secret_access_key":"SK","compression":"zstd","encryption":"aws:kms","kms_key_id":"k",
                "endpoint_url":"https://r2.example.com","file_format":"Parquet","max_file_size_mb":100,
                "use_virtual_style_addressing":true,"include_events":["$pageview"],"exclude_events":["$identify"]}"#,
        )
        .unwrap();
        assert_eq!(c.compression, Some(Compression::Zstd));
        assert_eq!(c.encryption, Some(Encryption::AwsKms));
        assert_eq!(c.max_file_size_bytes(), Some(100 * 1024 * 1024));
        let debug = format!("{c:?}");
        assert!(!debug.contains("SK") && !debug.contains("\"AK\""), "{debug}");
    }

    #[test]
    fn every_rule_names_its_field() {
        let cases = [
            (r#"{"region":"x"}"#, "bucket_name"),
            (r#"{"bucket_name":"b"}"#, "bucket_name"),
            (r#"{"bucket_name":"Bad_Bucket"}"#, "bucket_name"),
            (r#"{"bucket_name":"under_score"}"#, "bucket_name"),
            (r#"{"bucket_name":"192.168.1.1"}"#, "bucket_name"),
            (r#"{"bucket_name":"my..bucket"}"#, "bucket_name"),
            (r#"{"bucket_name":"xn--bucket"}"#, "bucket_name"),
            (r#"{"bucket_name":"bucket-s3alias"}"#, "bucket_name"),
            (r#"{"bucket_name":"bucket","region":"Europe"}"#, "region"),
            (r#"{"bucket_name":"bucket","prefix":"a/../b/"}"#, "prefix"),
            (r#"{"bucket_name":"bucket","max_file_size_mb":0}"#, "max_file_size_mb"),
            (r#"{"bucket_name":"bucket","max_file_size_mb":18446744073709551615}"#, "max_file_size_mb"),
            (r#"{"bucket_name":"bucket","aws_access_key_id":"","aws_secret_access_key":"s"}"#, "aws_access_key_id"),
            (r#"{"bucket_name":"bucket","endpoint_url":"http://exa mple.com/"}"#, "endpoint_url"),
            (r#"{"bucket_name":"bucket","endpoint_url":"http://169.254.169.254/latest/meta-data/"}"#, "endpoint_url"),
            (r#"{"bucket_name":"-bucket"}"#, "bucket_name"),
            (r#"{"bucket_name":"bucket","region":" "}"#, "region"),
            (r#"{"bucket_name":"bucket","colour":"red"}"#, "colour"),
            (r#"{"bucket_name":"bucket","compression":"lzma"}"#, "compression"),
            (r#"{"bucket_name":"bucket","compression":"lz4"}"#, "compression"),
            (r#"{"bucket_name":"bucket","compression":"snappy","file_format":"JSONLines"}"#, "compression"),
            (r#"{"bucket_name":"bucket","file_format":"CSV"}"#, "file_format"),
            (r#"{"bucket_name":"bucket","encryption":"aws:kms"}"#, "kms_key_id"),
            (r#"{"bucket_name":"bucket","encryption":"AES256","kms_key_id":"k"}"#, "kms_key_id"),
            (r#"{"bucket_name":"bucket","encryption":"DES"}"#, "encryption"),
            (r#"{"bucket_name":"bucket","aws_access_key_id":"AK"}"#, "aws_secret_access_key"),
            (r#"{"bucket_name":"bucket","aws_secret_access_key":"SK"}"#, "aws_access_key_id"),
            (r#"{"bucket_name":"bucket","endpoint_url":"minio:9000"}"#, "endpoint_url"),
            (r#"{"bucket_name":"bucket","prefix":"{nope}/"}"#, "prefix"),
            (r#"{"bucket_name":"bucket","prefix":"{year/"}"#, "prefix"),
            (r#"{"bucket_name":"bucket","max_file_size_mb":-1}"#, "max_file_size_mb"),
            (r#"{"bucket_name":"bucket","exclude_events":[""]}"#, "exclude_events"),
            (r#"{"bucket_name":"bucket","include_events":"$pageview"}"#, "include_events"),
        ];
        for (json, field) in cases {
            assert_eq!(field_of(json), field, "for {json}");
        }
    }
}
