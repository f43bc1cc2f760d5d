//! Endpoints users give us (an S3 `endpoint_url`, a BigQuery `token_uri`) must not reach our own metadata
//! service or private network (SSRF).
//!
//! - The cloud metadata addresses (`169.254.0.0/16`, `fd00:ec2::/32`, and their IPv4-mapped forms) are always
//!   refused.
//! - Loopback, private (RFC 1918, `fc00::/7`), link-local, unspecified, CGNAT and other non-global addresses are
//!   refused unless `BATCH_EXPORT_ALLOW_PRIVATE_ENDPOINTS` is `true` (the local stack sets it; `template.yaml`
//!   leaves it off).
//!
//! The check runs twice: on the literal when a config is validated (the API answers 400), and on every address
//! a name resolves to when a function connects ([`GuardedResolver`], for the AWS SDK's and reqwest's clients),
//! so a public-looking name that resolves to `127.0.0.1` is refused as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::error::{ExportError, Result};

/// Which addresses user-given endpoints may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointPolicy {
    /// Loopback and private addresses allowed (never the metadata addresses).
    pub allow_private: bool,
}

impl EndpointPolicy {
    /// Private endpoints allowed (metadata addresses never): the check of a config's structure, where the
    /// deployment's policy is applied elsewhere (at the API, and to every connection).
    pub const PRIVATE_ALLOWED: EndpointPolicy = EndpointPolicy { allow_private: true };

    /// Why `ip` may not be reached, if it may not.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        if is_metadata(ip) {
            return Some("is a cloud metadata address");
        }
        if !self.allow_private && !is_global(ip) {
            return Some("is a loopback, private or link-local address (set BATCH_EXPORT_ALLOW_PRIVATE_ENDPOINTS=true to allow private endpoints)");
        }
        None
    }

    /// Checks a URL's host where it is an IP literal (or `localhost`); names are checked when resolved.
    pub fn check_host(&self, field: &str, host: &url::Host<&str>) -> Result<()> {
        let ip = match host {
            url::Host::Ipv4(v4) => IpAddr::V4(*v4),
            url::Host::Ipv6(v6) => IpAddr::V6(*v6),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                } else {
                    return Ok(());
                }
            }
        };
        match self.refusal(ip) {
            Some(reason) => Err(ExportError::config(field, format!("`{host}` {reason}"))),
            None => Ok(()),
        }
    }

    /// Parses a user-given endpoint URL: http(s) with a host, no credentials in it, its host allowed.
    pub fn check_url(&self, field: &str, text: &str, https_only: bool) -> Result<url::Url> {
        let url =
            url::Url::parse(text).map_err(|e| ExportError::config(field, format!("`{text}` is not a URL: {e}")))?;
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => !https_only,
            _ => false,
        };
        if !scheme_ok {
            let schemes = if https_only { "an https" } else { "an http(s)" };
            return Err(ExportError::config(field, format!("`{text}` is not {schemes} URL")));
        }
        let host = url.host().ok_or_else(|| ExportError::config(field, format!("`{text}` has no host")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ExportError::config(field, "must not hold credentials"));
        }
        self.check_host(field, &host)?;
        Ok(url)
    }

    /// A DNS resolver that refuses the addresses this policy refuses.
    pub fn resolver(&self) -> GuardedResolver {
        GuardedResolver { policy: *self }
    }
}

fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..2] == [169, 254],
        IpAddr::V6(v6) => v6.segments()[..2] == [0xfd00, 0x0ec2],
    }
}

/// Whether an address is publicly routable (the stable subset of the standard library's unstable `is_global`).
fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b)) // CGNAT
                || (a == 198 && (18..20).contains(&b))) // benchmarking
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::from_bits(1)
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

/// Resolves names with the system resolver and keeps only the addresses the policy allows; a name with none
/// left is an error naming it. Serves the AWS SDK's HTTP client and reqwest's.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: EndpointPolicy,
}

impl GuardedResolver {
    async fn lookup(self, name: String) -> std::io::Result<Vec<IpAddr>> {
        let policy = self.policy;
        tokio::task::spawn_blocking(move || {
            let addrs: Vec<IpAddr> = (name.as_str(), 0).to_socket_addrs()?.map(|a| a.ip()).collect();
            let refused = addrs.iter().find_map(|ip| policy.refusal(*ip).map(|r| (*ip, r)));
            match refused {
                // One refused address refuses the name: a resolver must not pick the allowed one by chance.
                Some((ip, reason)) => Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("the endpoint `{name}` resolves to {ip}, which {reason}"),
                )),
                None => Ok(addrs),
            }
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

impl aws_smithy_runtime_api::client::dns::ResolveDns for GuardedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> aws_smithy_runtime_api::client::dns::DnsFuture<'a> {
        let lookup = self.clone().lookup(name.to_string());
        aws_smithy_runtime_api::client::dns::DnsFuture::new(async move {
            lookup.await.map_err(aws_smithy_runtime_api::client::dns::ResolveDnsError::new)
        })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.clone().lookup(name.as_str().to_string());
        Box::pin(async move {
            let addrs = lookup.await?;
            Ok(Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0))) as reqwest::dns::Addrs)
        })
    }
}

/// The refusal of a [`GuardedResolver`] in an error's chain (a connection the policy did not allow), if any.
pub fn policy_refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return Some(io.to_string());
            }
        }
        current = e.source();
    }
    None
}

/// An HTTP client for the AWS SDK whose connections go only where the policy allows.
pub fn guarded_sdk_http_client(policy: EndpointPolicy) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_with_resolver(policy.resolver())
}

/// A reqwest client whose connections go only where the policy allows.
pub fn guarded_reqwest_client(policy: EndpointPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(policy.resolver()))
        .build()
        .expect("a reqwest client with the default TLS backend")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: EndpointPolicy, url: &str) -> bool {
        policy.check_url("endpoint_url", url, false).is_err()
    }

    #[test]
    fn metadata_is_always_refused_private_only_by_default() {
        let strict = EndpointPolicy { allow_private: false };
        let local = EndpointPolicy { allow_private: true };
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://169.254.170.2/",
        ] {
            assert!(refused(strict, url) && refused(local, url), "{url}");
        }
        for url in [
            "http://127.0.0.1:9000/",
            "http://10.0.0.1/",
            "http://[::1]/",
            "http://localhost:9000/",
            "http://192.168.1.1/",
        ] {
            assert!(refused(strict, url), "{url}");
            assert!(!refused(local, url), "{url}");
        }
        for url in ["https://s3.eu-west-1.amazonaws.com", "https://8.8.8.8/", "https://r2.example.com"] {
            assert!(!refused(strict, url), "{url}");
        }
        assert!(strict.check_url("token_uri", "http://oauth2.example.com/token", true).is_err());
        assert!(strict.check_url("endpoint_url", "http://user:pw@example.com/", false).is_err());
        assert!(strict.check_url("endpoint_url", "http://exa mple.com/", false).is_err());
    }

    #[tokio::test]
    async fn names_are_checked_on_the_addresses_they_resolve_to() {
        let strict = EndpointPolicy { allow_private: false }.resolver();
        let error = strict.clone().lookup("localhost".into()).await.unwrap_err();
        assert!(error.to_string().contains("localhost"), "{error}");
        let local = EndpointPolicy { allow_private: true }.resolver();
        assert!(!local.lookup("localhost".into()).await.unwrap().is_empty());
    }
}
