//! The S3 destination's configuration, with the reference system's field names, and its validation.
//!
//! Parsing rejects unknown keys; [`S3DestinationConfig::validate`] checks every rule and names the field it
//! found wrong. Secrets (`aws_secret_access_key`) never appear in `Debug` output.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ExportError, Result};
use crate::keys::KeyTemplate;

/// The file format of exported files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FileFormat {
    #[default]
    JSONLines,
    Parquet,
}

impl FileFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            FileFormat::JSONLines => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// A compression method; `None` in the config (null or absent) means uncompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Brotli,
    Zstd,
    Lz4,
    Snappy,
}

impl Compression {
    pub const ALL: [Compression; 5] =
        [Compression::Gzip, Compression::Brotli, Compression::Zstd, Compression::Lz4, Compression::Snappy];

    pub fn name(&self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Brotli => "brotli",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
        }
    }

    /// The extension appended after the format's, for Parquet too (`.parquet.zst`).
    pub fn extension(&self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Brotli => "br",
            Compression::Zstd => "zst",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "sz",
        }
    }

    /// Whether `format` can be written with this compression.
    pub fn supported_by(&self, format: FileFormat) -> bool {
        match format {
            FileFormat::Parquet => true,
            FileFormat::JSONLines => matches!(self, Compression::Gzip | Compression::Brotli | Compression::Zstd),
        }
    }
}

/// Every format and compression pair a destination accepts (`None` is uncompressed).
pub const FORMAT_COMPRESSIONS: [(FileFormat, Option<Compression>); 10] = [
    (FileFormat::JSONLines, None),
    (FileFormat::JSONLines, Some(Compression::Gzip)),
    (FileFormat::JSONLines, Some(Compression::Brotli)),
    (FileFormat::JSONLines, Some(Compression::Zstd)),
    (FileFormat::Parquet, None),
    (FileFormat::Parquet, Some(Compression::Zstd)),
    (FileFormat::Parquet, Some(Compression::Lz4)),
    (FileFormat::Parquet, Some(Compression::Snappy)),
    (FileFormat::Parquet, Some(Compression::Gzip)),
    (FileFormat::Parquet, Some(Compression::Brotli)),
];

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
/// Decisions where the reference is silent: `region` defaults to `us-east-1`; `max_file_size_mb` of 0 or null
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

    /// The split size in bytes, if files are split.
    pub fn max_file_size_bytes(&self) -> Option<u64> {
        self.max_file_size_mb.filter(|mb| *mb > 0).map(|mb| mb * 1024 * 1024)
    }

    /// Checks every rule; the first broken one is returned, naming its field.
    pub fn validate(&self) -> Result<()> {
        validate_bucket_name(&self.bucket_name)?;
        if self.region.trim().is_empty() {
            return Err(ExportError::config("region", "must not be empty"));
        }
        KeyTemplate::parse(&self.prefix)?;
        match (&self.aws_access_key_id, &self.aws_secret_access_key) {
            (Some(_), None) => {
                return Err(ExportError::config("aws_secret_access_key", "is required when aws_access_key_id is set"))
            }
            (None, Some(_)) => {
                return Err(ExportError::config("aws_access_key_id", "is required when aws_secret_access_key is set"))
            }
            (Some(id), Some(_)) if id.trim().is_empty() => {
                return Err(ExportError::config("aws_access_key_id", "must not be empty"))
            }
            _ => {}
        }
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
            _ => {}
        }
        if let Some(url) = &self.endpoint_url {
            let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
                return Err(ExportError::config("endpoint_url", format!("`{url}` is not an http(s) URL with a host")));
            }
        }
        for (field, names) in [("include_events", &self.include_events), ("exclude_events", &self.exclude_events)] {
            if names.iter().any(|n| n.is_empty()) {
                return Err(ExportError::config(field, "event names must not be empty"));
            }
        }
        Ok(())
    }
}

/// S3 bucket naming rules, relaxed to also accept underscores (some S3-compatible stores allow them).
fn validate_bucket_name(name: &str) -> Result<()> {
    let fail = |reason: &str| Err(ExportError::config("bucket_name", format!("`{name}` {reason}")));
    if name.len() < 3 || name.len() > 63 {
        return fail("must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')) {
        return fail("may only contain lowercase letters, digits, `.`, `-` and `_`");
    }
    let (first, last) = (name.as_bytes()[0], name.as_bytes()[name.len() - 1]);
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return fail("must start and end with a letter or digit");
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

    #[test]
    fn format_compression_pairs() {
        for c in Compression::ALL {
            assert!(c.supported_by(FileFormat::Parquet));
        }
        let jsonl: Vec<_> = Compression::ALL.iter().filter(|c| c.supported_by(FileFormat::JSONLines)).collect();
        assert_eq!(jsonl, [&Compression::Gzip, &Compression::Brotli, &Compression::Zstd]);
        let mut supported = 2; // the two uncompressed pairs
        for format in [FileFormat::JSONLines, FileFormat::Parquet] {
            supported += Compression::ALL.iter().filter(|c| c.supported_by(format)).count();
        }
        assert_eq!(FORMAT_COMPRESSIONS.len(), supported);
        assert!(FORMAT_COMPRESSIONS.iter().all(|(f, c)| c.is_none_or(|c| c.supported_by(*f))));
    }
}
