//! Talks to a Prometheus-compatible HTTP query API: Prometheus, Thanos, Mimir, VictoriaMetrics.
//!
//! Owns request encoding, the response-size cap, JSON decoding, splitting long range queries into
//! chunks the server accepts, and deciding whether a failure is worth retrying. It knows nothing
//! of SLOs, objectives or the engine: callers pass a selector and instants and get series back.
//! It must not interpret values (a counter reset is the engine's business, not this module's).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::clock::{Millis, duration_millis};
use crate::http;
use crate::spec::HttpOptions;

/// Most points per series one range request asks for. Prometheus refuses a range query with more
/// than 11,000 steps ("exceeded maximum resolution of 11,000 points per timeseries") and Thanos
/// and Mimir inherit that limit, so a 30-day window at a 1-minute step (43,201 points) becomes
/// four requests instead of one rejected one.
pub const MAX_POINTS_PER_QUERY: u32 = 11_000;

/// How much of a non-2xx body is read: enough to find Prometheus' JSON error document or a
/// proxy's error page, without downloading a large page we will only quote.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// How much of an unexpected body `PromError::Status` keeps: enough to recognise a proxy's HTML
/// error page, short enough for one log line.
const BODY_EXCERPT_BYTES: usize = 512;

/// How to reach one query API. Secrets (the token, header values) never appear in `Debug`.
#[derive(Debug, Clone)]
pub struct PromConfig {
    /// Base URL without `/api/v1`, e.g. `http://prometheus:9090`, `http://mimir:8080/prometheus`.
    /// Credentials in the URL are rejected: URLs end up in logs, so use `bearer_token`/`headers`.
    pub url: String,
    /// Whole-request timeout (connect, query, body). Also sent as the query's `timeout`
    /// parameter, so the server stops evaluating a query the client has given up on.
    pub timeout: Duration,
    /// Credentials (`bearer_token`, `headers` such as `X-Scope-OrgID` for a Mimir tenant), TLS
    /// trust, and `max_body_bytes`, the largest answer read: counted after gzip decoding, it is
    /// what a selector matching far more series than an SLI should would exceed. A 30-day range
    /// over a few hundred series is a few MiB of JSON.
    pub http: HttpOptions,
}

/// One series returned by the API: its labels (including `__name__`, sorted by name) and its
/// points sorted by time, each timestamp at most once.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub labels: Vec<(String, String)>,
    pub points: Vec<(Millis, f64)>,
}

/// The `errorType` of a Prometheus `{"status":"error"}` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiErrorType {
    /// The query is malformed (bad selector, bad parameter). Retrying cannot help.
    BadData,
    /// The query is valid but failed while running (e.g. too many samples).
    Execution,
    /// The server's query timeout expired.
    Timeout,
    /// The query was cancelled, e.g. because the server is shutting down.
    Canceled,
    /// A server bug or an unexpected condition.
    Internal,
    /// The server (or a component behind it) cannot serve queries right now.
    Unavailable,
    /// The endpoint does not exist on this server.
    NotFound,
    /// A type this client does not know; kept verbatim.
    Other(String),
}

impl ApiErrorType {
    fn from_wire(text: &str) -> ApiErrorType {
        match text {
            "bad_data" => ApiErrorType::BadData,
            "execution" => ApiErrorType::Execution,
            "timeout" => ApiErrorType::Timeout,
            "canceled" => ApiErrorType::Canceled,
            "internal" => ApiErrorType::Internal,
            "unavailable" => ApiErrorType::Unavailable,
            "not_found" => ApiErrorType::NotFound,
            other => ApiErrorType::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ApiErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiErrorType::BadData => "bad_data",
            ApiErrorType::Execution => "execution",
            ApiErrorType::Timeout => "timeout",
            ApiErrorType::Canceled => "canceled",
            ApiErrorType::Internal => "internal",
            ApiErrorType::Unavailable => "unavailable",
            ApiErrorType::NotFound => "not_found",
            ApiErrorType::Other(other) => other,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// `PromClient::new` was given an unusable config: bad URL, credentials in the URL, invalid
    /// header, zero timeout, unreadable `ca_file`, or no rustls crypto provider installed.
    #[error("invalid Prometheus source config: {0}")]
    Config(String),
    /// The caller asked for something no server can answer: a zero step, `end` before `start`,
    /// or a chunk size of zero. A bug in the caller.
    #[error("invalid query arguments: {0}")]
    InvalidArgument(String),
    /// No complete HTTP response: connection refused, DNS failure, timeout, or the connection
    /// broke while the body was being read.
    #[error("query request failed")]
    Http(#[source] reqwest::Error),
    /// The server answered with a non-2xx status and a body that is not a Prometheus error
    /// document, typically a proxy or load balancer in front of it.
    #[error("query API answered HTTP {code}: {body_excerpt}")]
    Status { code: u16, body_excerpt: String },
    /// The server answered `{"status":"error"}`: a bad selector, a query timeout, and so on.
    #[error("query API rejected the query ({error_type}): {error}")]
    Api { error_type: ApiErrorType, error: String },
    /// The body exceeded `http.max_body_bytes`: the selector matches too many series.
    #[error("query response exceeds {limit_bytes} bytes; narrow the selector")]
    TooLarge { limit_bytes: u64 },
    /// A 2xx body that is not the JSON shape the query API documents.
    #[error("cannot decode query response: {0}")]
    Decode(String),
}

impl PromError {
    /// Whether the same request may succeed later. Decided by variant and typed fields only:
    /// transport failures, overload/gateway statuses and server-side timeouts are transient;
    /// a bad query, a too-large answer or an undecodable body will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            PromError::Http(_) => true,
            PromError::Status { code, .. } => matches!(code, 408 | 429 | 500 | 502 | 503 | 504),
            PromError::Api { error_type, .. } => {
                matches!(error_type, ApiErrorType::Timeout | ApiErrorType::Canceled | ApiErrorType::Unavailable)
            }
            PromError::Config(_)
            | PromError::InvalidArgument(_)
            | PromError::TooLarge { .. }
            | PromError::Decode(_) => false,
        }
    }
}

/// A client for one query API. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct PromClient {
    http: reqwest::Client,
    /// Base URL ending in `/`, so joining `api/v1/...` keeps a path prefix such as Mimir's.
    base: reqwest::Url,
    timeout: Duration,
    max_body_bytes: u64,
}

impl fmt::Debug for PromClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromClient")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl PromClient {
    /// Validates `cfg` and builds the HTTP client. Needs a process-level rustls crypto provider
    /// (`main` installs ring); without one this returns `Config` instead of panicking later.
    pub fn new(cfg: PromConfig) -> Result<Self, PromError> {
        let base = parse_base_url(&cfg.url)?;
        let http =
            http::client(&cfg.http, cfg.timeout, HeaderMap::new()).map_err(|err| PromError::Config(err.to_string()))?;
        Ok(PromClient { http, base, timeout: cfg.timeout, max_body_bytes: cfg.http.max_body_bytes })
    }

    /// Raw values of `selector` at every `step` in `[start, end]` (`POST /api/v1/query_range`),
    /// split into requests of at most `MAX_POINTS_PER_QUERY` points per series so a 30-day
    /// window at a 1-minute step does not overload or get refused by the server. Chunks are
    /// merged per series (by label set), sorted by time, each timestamp kept once.
    pub async fn query_range(
        &self,
        selector: &str,
        start: Millis,
        end: Millis,
        step: Duration,
    ) -> Result<Vec<SeriesPoints>, PromError> {
        self.query_range_chunked(selector, start, end, step, MAX_POINTS_PER_QUERY).await
    }

    /// `query_range` with an explicit chunk size, for servers configured below Prometheus'
    /// default limit (and for tests that need several chunks from a short range).
    pub async fn query_range_chunked(
        &self,
        selector: &str,
        start: Millis,
        end: Millis,
        step: Duration,
        max_points_per_query: u32,
    ) -> Result<Vec<SeriesPoints>, PromError> {
        let step_ms = duration_millis(step);
        let chunks = plan_chunks(start, end, step_ms, max_points_per_query)?;
        tracing::debug!(selector, n_chunks = chunks.len(), "range query");
        let mut merged = SeriesMerger::default();
        // Sequential on purpose: the point of chunking is to keep the server's load bounded.
        for (chunk_start, chunk_end) in chunks {
            let params = [
                ("query", selector.to_string()),
                ("start", format_seconds(chunk_start)),
                ("end", format_seconds(chunk_end)),
                ("step", format_seconds(step_ms)),
            ];
            match self.call("api/v1/query_range", &params).await? {
                ResultData::Matrix(series) => merged.add(series)?,
                other => return Err(unexpected_result("matrix", &other)),
            }
        }
        Ok(merged.finish())
    }

    /// Values of `selector` at `at` (the server's now when `None`) via `POST /api/v1/query`:
    /// each series with one point. That point's timestamp is the one in the API response, which
    /// for an instant selector is the evaluation time, not the time the sample was scraped.
    pub async fn query_instant(&self, selector: &str, at: Option<Millis>) -> Result<Vec<SeriesPoints>, PromError> {
        let mut params = vec![("query", selector.to_string())];
        if let Some(at) = at {
            params.push(("time", format_seconds(at)));
        }
        instant_series(self.call("api/v1/query", &params).await?)
    }

    /// POSTs `params` as a form (so long selectors do not hit URL length limits in proxies) and
    /// returns the decoded `data` of a successful answer.
    async fn call(&self, endpoint: &str, params: &[(&str, String)]) -> Result<ResultData, PromError> {
        let url =
            self.base.join(endpoint).map_err(|err| PromError::Config(format!("cannot build {endpoint} URL: {err}")))?;
        let mut form: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let timeout = format_seconds(duration_millis(self.timeout));
        form.push(("timeout", &timeout));
        // Thanos otherwise answers with data from the stores it could reach plus a warning;
        // missing series would read as "no errors", so a partial answer must be an error.
        // Other servers ignore the parameter.
        form.push(("partial_response", "false"));
        let res = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_encode(&form))
            .send()
            .await
            .map_err(PromError::Http)?;
        let status = res.status();
        if status.is_success() {
            let body = http::read_capped(res, self.max_body_bytes).await.map_err(PromError::Http)?;
            if !body.complete {
                return Err(PromError::TooLarge { limit_bytes: self.max_body_bytes });
            }
            interpret(status.as_u16(), &body.bytes)
        } else {
            let body = http::read_capped(res, MAX_ERROR_BODY_BYTES).await.map_err(PromError::Http)?;
            interpret(status.as_u16(), &body.bytes)
        }
    }
}

/// Parses and checks the base URL, normalising it to end in `/`.
fn parse_base_url(text: &str) -> Result<reqwest::Url, PromError> {
    let mut url = reqwest::Url::parse(text).map_err(|err| PromError::Config(format!("invalid URL {text:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PromError::Config(format!("URL {text:?} must use http or https")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoing the URL: it holds the credential.
        return Err(PromError::Config(
            "credentials in the URL are not allowed (URLs are logged); use bearer_token or headers".to_string(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(PromError::Config(format!("URL {text:?} must not have a query or fragment")));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Turns an HTTP status and body into the answer's `data`, or the most specific error: a
/// Prometheus error document wins over the status code (Prometheus sends `bad_data` as 400).
fn interpret(code: u16, body: &[u8]) -> Result<ResultData, PromError> {
    let envelope = serde_json::from_slice::<Envelope>(body);
    if let Ok(envelope) = &envelope
        && envelope.status == "error"
    {
        return Err(PromError::Api {
            error_type: ApiErrorType::from_wire(envelope.error_type.as_deref().unwrap_or("")),
            error: envelope.error.clone().unwrap_or_default(),
        });
    }
    if !(200..300).contains(&code) {
        return Err(PromError::Status { code, body_excerpt: excerpt(body) });
    }
    let envelope = envelope.map_err(|err| PromError::Decode(err.to_string()))?;
    for warning in &envelope.warnings {
        tracing::warn!(warning = %warning, "query API returned a warning");
    }
    match (envelope.status.as_str(), envelope.data) {
        ("success", Some(data)) => Ok(data),
        (status, _) => Err(PromError::Decode(format!("status {status:?} without data"))),
    }
}

/// At most `BODY_EXCERPT_BYTES` of `body` as text (invalid UTF-8 replaced), cut on a character
/// boundary so multi-byte characters are not split.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cut = text
        .char_indices()
        .map(|(index, ch)| index + ch.len_utf8())
        .take_while(|end| *end <= BODY_EXCERPT_BYTES)
        .last()
        .unwrap_or(0);
    text[..cut].trim().to_string()
}

/// The series of an instant query's answer, one point each.
fn instant_series(data: ResultData) -> Result<Vec<SeriesPoints>, PromError> {
    match data {
        ResultData::Vector(samples) => samples
            .into_iter()
            // Native-histogram samples carry `histogram` instead of `value`; a counter selector
            // never yields them, and they have no single float to report.
            .filter_map(|sample| sample.value.map(|value| (sample.metric, value)))
            .map(|(metric, value)| {
                let labels = metric.into_iter().collect();
                Ok(SeriesPoints { labels, points: vec![value.decode()?] })
            })
            .collect(),
        other => Err(unexpected_result("vector", &other)),
    }
}

fn unexpected_result(expected: &str, got: &ResultData) -> PromError {
    let got = match got {
        ResultData::Matrix(_) => "matrix",
        ResultData::Vector(_) => "vector",
        ResultData::Scalar(_) => "scalar",
        ResultData::String(_) => "string",
    };
    PromError::Decode(format!("expected resultType {expected}, got {got}"))
}

/// Splits `[start, end]` at `step_ms` into ranges of at most `max_points` evaluation points.
///
/// Prometheus evaluates a range query at `start, start+step, ...` up to `end`. Every chunk starts
/// on that same grid, so the merged result equals one unchunked query. Chunks do not overlap:
/// the next one starts one step after the previous one's last point, which saves a point per
/// chunk over sharing boundaries. The merge still deduplicates timestamps, because servers that
/// align `start` to the step (VictoriaMetrics does by default) can return a shared point anyway.
fn plan_chunks(
    start: Millis,
    end: Millis,
    step_ms: Millis,
    max_points: u32,
) -> Result<Vec<(Millis, Millis)>, PromError> {
    if step_ms < 1 {
        return Err(PromError::InvalidArgument("step must be at least 1ms".to_string()));
    }
    if end < start {
        return Err(PromError::InvalidArgument(format!("end {end} is before start {start}")));
    }
    if max_points == 0 {
        return Err(PromError::InvalidArgument("max points per query must be > 0".to_string()));
    }
    let chunk_stride = step_ms.saturating_mul(i64::from(max_points));
    // Offset of a chunk's last point from its first.
    let last_point_offset = chunk_stride - step_ms;
    let mut chunks = Vec::new();
    let mut chunk_start = start;
    // Terminates: chunk_start grows by at least one step per round, and the round that
    // would overflow stops instead.
    loop {
        chunks.push((chunk_start, chunk_start.saturating_add(last_point_offset).min(end)));
        match chunk_start.checked_add(chunk_stride) {
            Some(next) if next <= end => chunk_start = next,
            _ => return Ok(chunks),
        }
    }
}

/// A series' identity: its labels, sorted by name.
type LabelPairs = Vec<(String, String)>;

/// Accumulates chunk answers per label set.
#[derive(Default)]
struct SeriesMerger {
    series: BTreeMap<LabelPairs, Vec<(Millis, f64)>>,
}

impl SeriesMerger {
    fn add(&mut self, chunk: Vec<MatrixSeries>) -> Result<(), PromError> {
        for series in chunk {
            let points = self.series.entry(series.metric.into_iter().collect()).or_default();
            for sample in series.values {
                points.push(sample.decode()?);
            }
        }
        Ok(())
    }

    /// Series ordered by label set; points sorted by time, the first of equal timestamps kept
    /// (a stable sort keeps the earlier chunk's point first).
    fn finish(self) -> Vec<SeriesPoints> {
        self.series
            .into_iter()
            .map(|(labels, mut points)| {
                points.sort_by_key(|(at, _)| *at);
                points.dedup_by_key(|(at, _)| *at);
                SeriesPoints { labels, points }
            })
            .collect()
    }
}

/// `ms` as decimal seconds, exactly (`1500` -> `1.500`): the API takes float seconds, and going
/// through `f64` could print `1.4999999`.
fn format_seconds(ms: Millis) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// `application/x-www-form-urlencoded` encoding, as browsers and Go's `url.Values` produce it.
/// Written out rather than pulling in a crate for it: reqwest's `form` feature is not enabled.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        encode_form_component(key, &mut out);
        out.push('=');
        encode_form_component(value, &mut out);
    }
    out
}

fn encode_form_component(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

/// The API's response envelope; `data` is absent on errors.
#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    data: Option<ResultData>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum ResultData {
    Matrix(Vec<MatrixSeries>),
    Vector(Vec<VectorSample>),
    Scalar(IgnoredAny),
    String(IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct MatrixSeries {
    /// A BTreeMap, so labels come out sorted whatever order the server sent them in.
    metric: BTreeMap<String, String>,
    /// Absent for a series holding only native-histogram samples.
    #[serde(default)]
    values: Vec<WireSample>,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: Option<WireSample>,
}

/// `[ <float seconds>, "<value>" ]`: the value is a string so NaN and infinities survive JSON.
#[derive(Debug, Deserialize)]
struct WireSample(f64, String);

impl WireSample {
    fn decode(&self) -> Result<(Millis, f64), PromError> {
        // Rounding, not truncating: 1435781430.781 * 1000 is 1435781430780.9998 in f64.
        let at = (self.0 * 1000.0).round() as Millis;
        Ok((at, parse_value(&self.1)?))
    }
}

/// Parses a sample value as Prometheus formats it (Go's `FormatFloat`, plus `NaN`, `+Inf`,
/// `-Inf`).
fn parse_value(text: &str) -> Result<f64, PromError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse::<f64>().map_err(|_| PromError::Decode(format!("sample value {text:?} is not a number"))),
    }
}

#[cfg(test)]
mod tests;
