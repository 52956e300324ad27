//! The HTTP client setup both source kinds share: building a `reqwest::Client` from a source's
//! `HttpOptions` (identity, credentials, TLS trust, timeouts, gzip) and reading a response body
//! under a size cap.
//!
//! Owns only that plumbing. What is requested and how answers are interpreted belongs to the
//! callers (`prometheus` for the query API, `scrape` for targets' exposition). Credentials are
//! marked sensitive here and never formatted into an error or a log line.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::spec::HttpOptions;

/// Sent as `User-Agent` so target and server operators can tell sloguard's requests apart.
pub const USER_AGENT: &str = concat!("sloguard/", env!("CARGO_PKG_VERSION"));

/// Longest wait for a TCP (and TLS) connection, whatever the request timeout. A reachable
/// endpoint connects in milliseconds; 5 s still allows Linux's SYN retransmissions at 1 s and
/// 3 s. Past that the endpoint is down or filtered, and with a long query timeout the source
/// would otherwise sit on a dead address for the whole timeout.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `HttpOptions` cannot become a client. The message never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHttpOptions(String);

/// A client for one source: `User-Agent`, the source's bearer token and headers (marked
/// sensitive, so `Debug` of the client and of requests hides them), plus `extra_headers` (the
/// caller's protocol headers, e.g. `Accept`), gzip decoding, `timeout` for the whole request
/// including the body, the connect timeout, and TLS trust from `ca_file` /
/// `insecure_skip_verify`.
///
/// Needs a process-level rustls crypto provider (`main` installs ring): reqwest built with
/// `rustls-no-provider` would otherwise panic on the first TLS connection, so this refuses first.
pub fn client(
    http: &HttpOptions,
    timeout: Duration,
    extra_headers: HeaderMap,
) -> Result<reqwest::Client, InvalidHttpOptions> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(InvalidHttpOptions(
            "no rustls crypto provider installed; call \
             rustls::crypto::ring::default_provider().install_default() first"
                .to_string(),
        ));
    }
    if timeout.is_zero() {
        return Err(InvalidHttpOptions("timeout must be greater than zero".to_string()));
    }
    let mut headers = extra_headers;
    for (name, value) in &http.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| InvalidHttpOptions(format!("invalid header name {name:?}")))?;
        // The value is not quoted in the error: it may be a credential.
        let mut header_value = HeaderValue::from_str(value.expose())
            .map_err(|_| InvalidHttpOptions(format!("invalid value for header {name:?}")))?;
        header_value.set_sensitive(true);
        headers.append(header_name, header_value);
    }
    if let Some(token) = &http.bearer_token {
        let mut header_value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| InvalidHttpOptions("bearer token is not a valid header value".to_string()))?;
        header_value.set_sensitive(true);
        headers.insert(AUTHORIZATION, header_value);
    }
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .gzip(true)
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT));
    if let Some(path) = &http.ca_file {
        let pem = std::fs::read(path)
            .map_err(|err| InvalidHttpOptions(format!("cannot read ca_file {}: {err}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|err| InvalidHttpOptions(format!("ca_file {} is not PEM: {err}", path.display())))?;
        if certs.is_empty() {
            return Err(InvalidHttpOptions(format!("ca_file {} holds no PEM certificate", path.display())));
        }
        // Added to the system's roots, not replacing them: the option is "also trust this CA".
        builder = builder.tls_certs_merge(certs);
    }
    if http.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|err| InvalidHttpOptions(format!("cannot build HTTP client: {err}")))
}

/// A body read by `read_capped`.
pub struct CappedBody {
    /// At most `limit` bytes: the whole body, or its first `limit` bytes when `complete` is false.
    pub bytes: Vec<u8>,
    /// Whether the body ended within the limit.
    pub complete: bool,
}

/// Reads at most `limit` bytes of the body with `chunk()` (reqwest has no size cap of its own)
/// and stops reading there, dropping the rest of the response.
///
/// The count is of *decoded* bytes: with gzip on, `chunk()` yields inflated data a few KiB at a
/// time, so a small compressed body that inflates to gigabytes (a gzip bomb) costs at most
/// `limit` plus one chunk of memory. A cap on transfer bytes would bound neither memory nor
/// parse time.
pub async fn read_capped(mut res: reqwest::Response, limit: u64) -> Result<CappedBody, reqwest::Error> {
    // Sized once when the length is known (uncompressed bodies), rather than doubling through
    // copies of a multi-megabyte scrape.
    let expected = res.content_length().map_or(0, |len| len.min(limit));
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = res.chunk().await? {
        let room = limit.saturating_sub(bytes.len() as u64);
        if chunk.len() as u64 > room {
            // `room < chunk.len() <= usize::MAX`, so the cast is lossless.
            bytes.extend_from_slice(&chunk[..room as usize]);
            return Ok(CappedBody { bytes, complete: false });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(CappedBody { bytes, complete: true })
}
