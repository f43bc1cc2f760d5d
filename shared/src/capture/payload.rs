//! Where a capture request's payload is and how it is encoded, as PostHog's SDKs send it: the body, or the
//! `data` field of a form body or of the query string; possibly base64 (the whole payload, or a form's `data`);
//! possibly gzip, told by its magic bytes (the `compression=gzip-js` hint is not needed, and `lz64` is refused).
//! The result is the JSON text, at most the endpoint's limit once decompressed.

use std::borrow::Cow;
use std::io::Read;

use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use chrono::{DateTime, Datelike, Utc};

use super::CaptureError;

/// The content type of form bodies (`data=…`).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 8];
/// Standard base64, with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// One HTTP request to a capture endpoint, as the function receives it.
#[derive(Debug, Clone, Copy)]
pub struct CaptureHttp<'a> {
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// What a request's query string says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct QueryParams {
    /// `compression` (`gzip`, `gzip-js`, `base64`, `lz64`).
    pub compression: Option<String>,
    /// `_`: when the client sent the request, in milliseconds (posthog-js); ignored when it is not past 2020,
    /// as PostHog does (older SDKs sent seconds).
    pub sent_at: Option<DateTime<Utc>>,
    /// `data`: the payload itself (GET requests).
    pub data: Option<String>,
}

impl QueryParams {
    pub fn parse(query: &str) -> QueryParams {
        let mut params = QueryParams::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "compression" => params.compression = Some(value.into_owned()),
                "_" => {
                    params.sent_at =
                        value.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis).filter(|t| t.year() > 2020);
                }
                "data" if !value.is_empty() => params.data = Some(value.into_owned()),
                _ => {}
            }
        }
        params
    }
}

/// The JSON text of a request's payload, at most `limit` bytes once decompressed.
pub fn json_payload<'a>(
    http: &CaptureHttp<'a>,
    query: &QueryParams,
    limit: usize,
) -> Result<Cow<'a, [u8]>, CaptureError> {
    let mut compression = query.compression.clone();
    let mut payload: Cow<'a, [u8]> = match &query.data {
        Some(data) => Cow::Owned(data.clone().into_bytes()),
        None if http.body.is_empty() => return Err(CaptureError::EmptyPayload),
        None => Cow::Borrowed(http.body),
    };
    let is_form = http.content_type.is_some_and(|t| t.split(';').next().unwrap_or("").trim() == FORM_CONTENT_TYPE);
    // A JSON (or gzip) body sent with a form content type (curl's `-d` default) is taken as it is.
    let raw_payload = payload.starts_with(&GZIP_MAGIC)
        || matches!(payload.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['));
    if is_form && query.data.is_none() && !raw_payload {
        let mut data = None;
        for (key, value) in url::form_urlencoded::parse(&payload) {
            match key.as_ref() {
                "data" => data = Some(value.into_owned()),
                "compression" => compression = Some(value.into_owned()),
                _ => {}
            }
        }
        let data = data.ok_or_else(|| CaptureError::Unreadable("a form body needs a `data` field".into()))?;
        // Form decoding turned base64's `+` into spaces.
        payload =
            Cow::Owned(if looks_like_base64(data.as_bytes(), true) { data.replace(' ', "+") } else { data }.into());
    }
    if compression.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("lz64") || c.eq_ignore_ascii_case("lz-string")) {
        return Err(CaptureError::Unreadable("compression `lz64` is not supported: send gzip-js or plain JSON".into()));
    }
    if !payload.starts_with(&GZIP_MAGIC) && looks_like_base64(&payload, false) {
        let text: Vec<u8> = payload.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        let decoded = BASE64.decode(&text).map_err(|e| CaptureError::Unreadable(format!("invalid base64: {e}")))?;
        payload = Cow::Owned(decoded);
    }
    if payload.starts_with(&GZIP_MAGIC) {
        payload = Cow::Owned(gunzip(&payload, limit)?);
    }
    if payload.len() > limit {
        return Err(CaptureError::TooLarge { limit });
    }
    Ok(payload)
}

/// Whether a payload is base64 rather than JSON: not starting like JSON, and only base64's characters
/// (`loose`: also spaces, which form decoding makes of `+`).
fn looks_like_base64(payload: &[u8], loose: bool) -> bool {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, None | Some(b'{' | b'[' | b'"')) {
        return false;
    }
    payload
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r') || (loose && b == b' '))
}

/// Decompresses a gzip payload, refusing more than `limit` bytes of output.
fn gunzip(compressed: &[u8], limit: usize) -> Result<Vec<u8>, CaptureError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit + 1));
    let read = flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CaptureError::Unreadable(format!("invalid gzip data: {e}")))?;
    if read > limit {
        return Err(CaptureError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn http<'a>(query: &'a str, content_type: Option<&'a str>, body: &'a [u8]) -> CaptureHttp<'a> {
        CaptureHttp { path: "/batch/", query, content_type, body }
    }

    fn decode(query: &str, content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>, CaptureError> {
        let request = http(query, content_type, body);
        json_payload(&request, &QueryParams::parse(query), 1 << 20).map(|p| p.into_owned())
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn plain_gzip_base64_and_form_payloads() {
        let json = br#"{"event":"e","distinct_id":"d"}"#;
        assert_eq!(decode("", None, json).unwrap(), json);
        // Gzip is told by its magic bytes, with or without the hint.
        assert_eq!(decode("", None, &gzip(json)).unwrap(), json);
        assert_eq!(decode("compression=gzip-js&_=1700000000000", None, &gzip(json)).unwrap(), json);
        // Base64 of JSON, and of gzip.
        assert_eq!(decode("", None, BASE64.encode(json).as_bytes()).unwrap(), json);
        assert_eq!(decode("", None, BASE64.encode(gzip(json)).as_bytes()).unwrap(), json);
        // A form body with base64 data whose `+` became spaces... and one with plain JSON.
        let encoded = BASE64.encode(b"{\"event\":\"\xc3\xa9>>?\"}");
        assert!(encoded.contains('+') || encoded.contains('/'), "{encoded}");
        let form = format!("data={}&ver=1.2", encoded.replace('+', " ").replace('/', "%2F"));
        assert_eq!(decode("", Some(FORM_CONTENT_TYPE), form.as_bytes()).unwrap(), b"{\"event\":\"\xc3\xa9>>?\"}");
        let form = "data=%7B%22event%22%3A%22e%22%7D";
        assert_eq!(
            decode("", Some("application/x-www-form-urlencoded; charset=utf-8"), form.as_bytes()).unwrap(),
            br#"{"event":"e"}"#
        );
        // JSON sent with curl's default form content type.
        assert_eq!(decode("", Some(FORM_CONTENT_TYPE), json).unwrap(), json);
        // GET with the payload in the query.
        assert_eq!(decode("data=%7B%22event%22%3A%22e%22%7D", None, b"").unwrap(), br#"{"event":"e"}"#);
    }

    #[test]
    fn bad_payloads_are_refused_with_their_reason() {
        assert_eq!(decode("", None, b""), Err(CaptureError::EmptyPayload));
        let e = decode("", None, &gzip(b"{}")[..10]).unwrap_err();
        assert!(matches!(&e, CaptureError::Unreadable(m) if m.contains("gzip")), "{e}");
        let e = decode("", Some(FORM_CONTENT_TYPE), b"ver=1").unwrap_err();
        assert!(e.to_string().contains("`data`"), "{e}");
        let e = decode("compression=lz64", None, b"N4IgZg").unwrap_err();
        assert!(e.to_string().contains("lz64"), "{e}");
        let e = decode("", None, b"eyJldmVudCI6ImUifQ=x").unwrap_err();
        assert!(matches!(&e, CaptureError::Unreadable(m) if m.contains("base64")), "{e}");
    }

    #[test]
    fn the_limit_holds_after_decompression() {
        let big = vec![b' '; 3 << 20];
        let request = http("", None, &big);
        assert_eq!(
            json_payload(&request, &QueryParams::default(), 2 << 20),
            Err(CaptureError::TooLarge { limit: 2 << 20 })
        );
        let bomb = gzip(&big);
        assert!(bomb.len() < 10_000, "a small body that inflates past the limit");
        let request = http("", None, &bomb);
        assert_eq!(
            json_payload(&request, &QueryParams::default(), 2 << 20),
            Err(CaptureError::TooLarge { limit: 2 << 20 })
        );
    }

    #[test]
    fn query_sent_at_is_milliseconds_past_2020() {
        let at = QueryParams::parse("_=1700000000123&ver=1").sent_at.unwrap();
        assert_eq!(at.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(QueryParams::parse("_=1700000000").sent_at, None, "seconds are ignored");
        assert_eq!(QueryParams::parse("_=soon").sent_at, None);
    }
}
