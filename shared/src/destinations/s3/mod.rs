//! The S3 destination (and any S3-compatible store): its config, the keys it names files with, clients built
//! from the config, the upload behind the engine's sink seam, the manifest, and the persons file.

pub mod config;
pub mod export;
pub mod keys;
pub mod manifest;
pub mod persons;
mod upload;

pub use self::config::{Encryption, S3DestinationConfig};
pub use self::upload::S3Target;

use aws_config::SdkConfig;
use aws_sdk_s3::config::{Credentials, Region};

use crate::network::{guarded_sdk_http_client, EndpointPolicy};

/// The client config for a destination: its region, endpoint (path-style addressing against a custom endpoint
/// unless `use_virtual_style_addressing`), and its static credentials if the config has them (else the
/// default chain of `base`). `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_S3` in the environment count as a custom
/// endpoint, which is how the tests reach the local stack. A config's own `endpoint_url` is connected to only
/// where `policy` allows the addresses its host resolves to ([`crate::network`]).
pub fn destination_client_config(
    base: &SdkConfig,
    config: &S3DestinationConfig,
    policy: EndpointPolicy,
) -> aws_sdk_s3::config::Builder {
    let mut builder = aws_sdk_s3::config::Builder::from(base).region(Region::new(config.region.clone()));
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url).http_client(guarded_sdk_http_client(policy));
    }
    let custom_endpoint = config.endpoint_url.is_some() || custom_endpoint_in_env(base);
    builder = builder.force_path_style(custom_endpoint && !config.use_virtual_style_addressing);
    if let (Some(id), Some(secret)) = (&config.aws_access_key_id, &config.aws_secret_access_key) {
        builder = builder.credentials_provider(Credentials::new(id, secret, None, None, "s3-destination-config"));
    }
    builder
}

/// Whether the environment points the SDK at a custom S3 endpoint (the local stack), which needs path-style
/// addressing.
fn custom_endpoint_in_env(base: &SdkConfig) -> bool {
    base.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

/// A client for the lake bucket, with the environment's region, endpoint and credentials.
pub fn lake_client(base: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(base).force_path_style(custom_endpoint_in_env(base)).build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A client for a destination, connecting only where `policy` allows.
pub fn destination_client(
    base: &SdkConfig,
    config: &S3DestinationConfig,
    policy: EndpointPolicy,
) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(destination_client_config(base, config, policy).build())
}
