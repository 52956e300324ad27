//! Scraping targets: fetching a target's metrics exposition over HTTP, as Prometheus does.
//!
//! Owns the scrape request (headers Prometheus sends, credentials, TLS trust, timeouts, gzip)
//! and the body-size cap, and classifies failures. It does not parse or interpret the body: the
//! daemon hands the bytes to `exposition::parse_lenient`. It does not schedule scrapes either;
//! the caller decides when and how often to call `Scraper::scrape`.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};

use crate::http;
use crate::spec::HttpOptions;

/// Prometheus' own preference when it cannot use protobuf: the classic text format, anything
/// else as a last resort. We parse only the text format, so we ask for neither protobuf nor
/// OpenMetrics; a target that can only serve OpenMetrics still answers (`*/*`), and its text is
/// close enough for `parse_lenient` to take most samples.
pub const ACCEPT_HEADER: &str = "text/plain;version=0.0.4;q=0.9,*/*;q=0.1";

/// Tells the target how long we wait, as Prometheus does, so an exporter that does slow work per
/// scrape (e.g. blackbox, SNMP) can bound it.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// Why a scrape returned no body. Every variant means "no data from this target this time".
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// `Scraper::new` got unusable options (invalid header name or value, zero timeout,
    /// unreadable or empty `ca_file`, no rustls crypto provider installed), or `scrape` got a URL
    /// that is not an absolute `http(s)` URL or that carries credentials. Retrying cannot help.
    #[error("invalid scrape config: {0}")]
    Config(String),
    /// No HTTP response: connection refused, DNS failure, TLS handshake or certificate failure,
    /// or the connection closed before the response headers arrived.
    #[error("cannot reach target")]
    Connect(#[source] reqwest::Error),
    /// The scrape (connect, response headers and body together) took longer than the timeout,
    /// including a connect that hangs (a firewall dropping packets).
    #[error("scrape timed out")]
    Timeout,
    /// The target answered with a non-2xx status (after following redirects).
    #[error("target answered HTTP {code}")]
    Status { code: u16 },
    /// The body, counted after gzip decoding, exceeded `max_body_bytes`. Reading stops at the
    /// limit, so a gzip bomb costs at most the limit in memory.
    #[error("scrape body exceeds {limit} bytes (max_body_bytes)")]
    TooLarge { limit: u64 },
    /// The response started but its body could not be read: the connection broke mid-body, or
    /// the body is not valid gzip although the target said it is.
    #[error("cannot read scrape body")]
    Body(#[source] reqwest::Error),
}

/// Scrapes the targets of one source. Build one per source config (the connection pool is
/// shared by all calls, and by clones). Credentials never appear in `Debug`.
#[derive(Clone)]
pub struct Scraper {
    client: reqwest::Client,
    timeout: Duration,
    max_body_bytes: u64,
    /// For `Debug` only: which headers are sent, not their values.
    header_names: Vec<String>,
    has_bearer_token: bool,
}

impl fmt::Debug for Scraper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scraper")
            .field("timeout", &self.timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_names", &self.header_names)
            .field("bearer_token", &self.has_bearer_token.then_some("<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Scraper {
    /// Builds the HTTP client for one source: `timeout` bounds each whole scrape. Needs a
    /// process-level rustls crypto provider (`main` installs ring).
    pub fn new(http: &HttpOptions, timeout: Duration) -> Result<Scraper, ScrapeError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
        let timeout_value = HeaderValue::from_str(&format_seconds(timeout))
            .map_err(|_| ScrapeError::Config(format!("unusable timeout {timeout:?}")))?;
        headers.insert(HeaderName::from_static(SCRAPE_TIMEOUT_HEADER), timeout_value);
        let client = http::client(http, timeout, headers).map_err(|err| ScrapeError::Config(err.to_string()))?;
        Ok(Scraper {
            client,
            timeout,
            max_body_bytes: http.max_body_bytes,
            header_names: http.headers.iter().map(|(name, _)| name.clone()).collect(),
            has_bearer_token: http.bearer_token.is_some(),
        })
    }

    /// GETs `url` and returns its body, gzip-decoded, of at most `max_body_bytes`.
    pub async fn scrape(&self, url: &str) -> Result<Vec<u8>, ScrapeError> {
        let url = check_url(url)?;
        let res = self.client.get(url).send().await.map_err(request_error)?;
        let status = res.status();
        if !status.is_success() {
            return Err(ScrapeError::Status { code: status.as_u16() });
        }
        // Present only for an uncompressed body: refuse before downloading it.
        if res.content_length().is_some_and(|len| len > self.max_body_bytes) {
            return Err(ScrapeError::TooLarge { limit: self.max_body_bytes });
        }
        let body = http::read_capped(res, self.max_body_bytes).await.map_err(body_error)?;
        if !body.complete {
            return Err(ScrapeError::TooLarge { limit: self.max_body_bytes });
        }
        Ok(body.bytes)
    }
}

/// Parses `url`, accepting only absolute `http(s)` URLs without credentials (URLs are logged;
/// credentials belong in `bearer_token` or `headers`). The loader checks this too; checking
/// again keeps a credential out of reqwest's error messages whoever builds the URL.
fn check_url(text: &str) -> Result<reqwest::Url, ScrapeError> {
    let url = reqwest::Url::parse(text).map_err(|err| ScrapeError::Config(format!("invalid URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ScrapeError::Config(format!("URL {text:?} must use http or https")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ScrapeError::Config("credentials in a target URL are not allowed".to_string()));
    }
    Ok(url)
}

/// Classifies a failure before the response headers arrived.
fn request_error(err: reqwest::Error) -> ScrapeError {
    if err.is_timeout() {
        ScrapeError::Timeout
    } else if err.is_builder() {
        ScrapeError::Config(err.to_string())
    } else {
        ScrapeError::Connect(err)
    }
}

/// Classifies a failure while reading the body.
fn body_error(err: reqwest::Error) -> ScrapeError {
    if err.is_timeout() { ScrapeError::Timeout } else { ScrapeError::Body(err) }
}

/// Seconds as Prometheus writes them in the timeout header (Go's shortest float form): `10`,
/// `0.2`, `1.5`.
fn format_seconds(timeout: Duration) -> String {
    format!("{}", timeout.as_secs_f64())
}

#[cfg(test)]
mod tests;
