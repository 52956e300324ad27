//! Checks of a spec's `source:` section: which targets to scrape or which Prometheus to query,
//! how often, and the HTTP options (headers, bearer token, body limit, TLS) for either.
//!
//! Secrets (`headers_env`, `bearer_token_env`, `bearer_token_file`) are resolved at load by the
//! helpers in `super::secret`.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderName};
use serde_saphyr::{Location, Spanned};

use super::check::{Checker, join};
use super::raw::{RawEndpoint, RawMap, RawPrometheus, RawScrape, RawSource, RawTls};
use super::secret::SecretUse;
use super::{HttpOptions, PrometheusSource, ScrapeSource, Secret, Source};
use crate::clock::format_span;

/// Scrape every 15 s unless told otherwise: the interval of Prometheus' example configuration,
/// so a target already scraped by Prometheus sees the load it is used to, and a 5m short alert
/// window still holds 20 scrapes, enough that one lost scrape barely moves a burn rate.
const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(15);

/// Query Prometheus every 30 s unless told otherwise: each round is a query per selector against
/// a server shared with dashboards and rules, and samples there are usually 15-60 s apart anyway.
const DEFAULT_PROMETHEUS_INTERVAL: Duration = Duration::from_secs(30);

/// The default timeout is this or the interval, whichever is shorter. A target that takes more
/// than 10 s to answer is down for alerting purposes; a timeout longer than the interval would
/// let requests to one slow target pile up.
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Shortest interval accepted. Counters rarely change meaningfully within a second, and a
/// sub-second loop would spend more on HTTP than it learns.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Largest exposition read by default. Tens of thousands of series are a few MiB of text; the
/// cap bounds memory per scrape when a target starts exporting a runaway label.
const DEFAULT_SCRAPE_MAX_BODY_BYTES: u64 = 16 << 20;

/// Largest query response read by default. Prometheus answers in JSON, several times larger than
/// the exposition text of the same series, and one query may cover many targets.
const DEFAULT_PROMETHEUS_MAX_BODY_BYTES: u64 = 64 << 20;

/// Units of `max_body_size`, binary as their names say, longest name first so `MiB` is not read
/// as `M` + `iB`.
const SIZE_UNITS: [(&str, u64); 4] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)];

/// The path sloguard appends to a Prometheus base URL; a URL already ending in it is a mistake.
const PROMETHEUS_API_PATH: &str = "/api/v1";

/// Where credentials go instead of into a URL, for the "must not contain credentials" error.
const SECRETS_HINT: &str = "use headers_env, bearer_token_env or bearer_token_file";

/// Why a `max_body_size` was rejected. Every variant names the text so the error reads alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ByteSizeError {
    #[error("invalid size {0:?}: missing unit after the number (units: B KiB MiB GiB)")]
    MissingUnit(String),
    #[error("invalid size {0:?}: expected a whole number followed by a unit, e.g. 16MiB")]
    ExpectedNumber(String),
    #[error("invalid size {text:?}: unknown unit {unit:?} (units: B KiB MiB GiB)")]
    UnknownUnit { text: String, unit: String },
    #[error("invalid size {0:?}: must be greater than zero")]
    Zero(String),
    #[error("invalid size {0:?}: too large")]
    Overflow(String),
}

/// Parses `<whole number><unit>` with a unit from `B KiB MiB GiB`, no space, total > 0.
pub(crate) fn parse_byte_size(text: &str) -> Result<u64, ByteSizeError> {
    let n_digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, unit) = text.split_at(n_digits);
    if digits.is_empty() {
        return Err(ByteSizeError::ExpectedNumber(text.into()));
    }
    if unit.is_empty() {
        return Err(ByteSizeError::MissingUnit(text.into()));
    }
    let Some(&(_, scale)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(ByteSizeError::UnknownUnit { text: text.into(), unit: unit.into() });
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| ByteSizeError::Overflow(text.into()))?;
    if bytes == 0 {
        return Err(ByteSizeError::Zero(text.into()));
    }
    Ok(bytes)
}

/// The per-kind defaults of the shared keys.
struct Defaults {
    interval: Duration,
    max_body_bytes: u64,
}

impl Checker<'_> {
    pub(super) fn source(&mut self, raw: &Spanned<RawSource>) -> Option<Source> {
        let RawSource { scrape, prometheus } = &raw.value;
        match (scrape, prometheus) {
            (Some(scrape), None) => self.scrape(scrape, "source.scrape").map(Source::Scrape),
            (None, Some(prometheus)) => self.prometheus(prometheus, "source.prometheus").map(Source::Prometheus),
            (Some(_), Some(_)) => {
                self.error(&raw.referenced, "source", "give either `scrape` or `prometheus`, not both")
            }
            (None, None) => self.error(&raw.referenced, "source", "missing `scrape` or `prometheus` (one of them)"),
        }
    }

    fn scrape(&mut self, raw: &Spanned<RawScrape>, path: &str) -> Option<ScrapeSource> {
        let field = join(path, "targets");
        let targets = self.require(&raw.value.targets, &raw.referenced, &field).and_then(|t| self.targets(t, &field));
        let defaults = Defaults { interval: DEFAULT_SCRAPE_INTERVAL, max_body_bytes: DEFAULT_SCRAPE_MAX_BODY_BYTES };
        let endpoint = self.endpoint(raw.value.endpoint(), path, &defaults);
        let sample_limit = match &raw.value.sample_limit {
            None => Some(None),
            Some(limit) if limit.value >= 0.0 && limit.value.fract() == 0.0 && limit.value <= u32::MAX as f64 => {
                Some((limit.value > 0.0).then_some(limit.value as usize))
            }
            Some(limit) => self.error(
                &limit.referenced,
                &join(path, "sample_limit"),
                format!("must be a whole number, 0 (no limit) or more; got {}", limit.value),
            ),
        };
        let (interval, timeout, http) = endpoint?;
        Some(ScrapeSource { targets: targets?, interval, timeout, http, sample_limit: sample_limit? })
    }

    fn prometheus(&mut self, raw: &Spanned<RawPrometheus>, path: &str) -> Option<PrometheusSource> {
        let field = join(path, "url");
        let url = self.require(&raw.value.url, &raw.referenced, &field).and_then(|u| self.prometheus_url(u, &field));
        let defaults =
            Defaults { interval: DEFAULT_PROMETHEUS_INTERVAL, max_body_bytes: DEFAULT_PROMETHEUS_MAX_BODY_BYTES };
        let endpoint = self.endpoint(raw.value.endpoint(), path, &defaults);
        let (interval, timeout, http) = endpoint?;
        Some(PrometheusSource { url: url?, interval, timeout, http })
    }

    /// At least one target, each a valid URL, none listed twice (compared after URL
    /// normalization, so `HTTP://Host:80/m` repeats `http://host/m`). Kept as written.
    fn targets(&mut self, targets: &Spanned<Vec<Spanned<String>>>, path: &str) -> Option<Vec<String>> {
        if targets.value.is_empty() {
            return self.error(&targets.referenced, path, "must list at least one target URL");
        }
        let mut first_seen: HashMap<Url, Location> = HashMap::new();
        let mut checked = Vec::new();
        for (index, target) in targets.value.iter().enumerate() {
            let field = format!("{path}[{index}]");
            let Some(url) = self.http_url(target, &field, SECRETS_HINT) else {
                checked.push(None);
                continue;
            };
            if let Some(first) = first_seen.get(&url) {
                let message = format!("duplicate target `{}`: already listed at line {}", target.value, first.line());
                checked.push(self.error(&target.referenced, &field, message));
            } else {
                first_seen.insert(url, target.referenced);
                checked.push(Some(target.value.clone()));
            }
        }
        checked.into_iter().collect()
    }

    /// The base URL of a Prometheus-compatible API. A path prefix (Mimir's `/prometheus`) is
    /// fine; the API path itself is not, since sloguard appends `/api/v1/...`.
    fn prometheus_url(&mut self, text: &Spanned<String>, field: &str) -> Option<String> {
        self.base_url(text, field, SECRETS_HINT, Some((PROMETHEUS_API_PATH, "http://prometheus:9090")))
    }

    /// Interval, timeout and HTTP options, shared by both kinds.
    fn endpoint(
        &mut self,
        raw: RawEndpoint<'_>,
        path: &str,
        defaults: &Defaults,
    ) -> Option<(Duration, Duration, HttpOptions)> {
        let field = |key| join(path, key);
        let interval = match raw.interval {
            Some(text) => self.interval(text, &field("interval")),
            None => Some(defaults.interval),
        };
        let timeout = match raw.timeout {
            Some(text) => self.duration(text, &field("timeout")),
            None => interval.map(|interval| interval.min(MAX_DEFAULT_TIMEOUT)),
        };
        let http = self.http(&raw, path, defaults.max_body_bytes);
        let (interval, timeout) = (interval?, timeout?);
        if timeout > interval {
            // The default timeout never exceeds the interval, so this one was written.
            let text = raw.timeout.as_ref()?;
            let shown_interval = raw.interval.as_ref().map_or_else(|| span(interval), |i| i.value.clone());
            let message = format!("timeout ({}) must not exceed the interval ({shown_interval})", text.value);
            return self.error(&text.referenced, &field("timeout"), message);
        }
        Some((interval, timeout, http?))
    }

    fn interval(&mut self, text: &Spanned<String>, field: &str) -> Option<Duration> {
        let interval = self.duration(text, field)?;
        if interval < MIN_INTERVAL {
            return self.error(&text.referenced, field, format!("must be at least 1s; got {}", text.value));
        }
        Some(interval)
    }

    fn http(&mut self, raw: &RawEndpoint<'_>, path: &str, default_max_body_bytes: u64) -> Option<HttpOptions> {
        let field = |key| join(path, key);
        let headers = self.headers(raw, path);
        let bearer_token =
            self.optional_secret(raw.bearer_token_env, raw.bearer_token_file, path, "bearer_token", SecretUse::Bearer);
        let max_body_bytes = match raw.max_body_size {
            None => Some(default_max_body_bytes),
            Some(text) => match parse_byte_size(&text.value) {
                Ok(bytes) => Some(bytes),
                Err(e) => self.error(&text.referenced, &field("max_body_size"), e.to_string()),
            },
        };
        let tls = match raw.tls {
            None => Some((None, false)),
            Some(tls) => self.tls(tls, &field("tls")),
        };
        let (ca_file, insecure_skip_verify) = tls?;
        Some(HttpOptions {
            headers: headers?,
            bearer_token: bearer_token?,
            max_body_bytes: max_body_bytes?,
            ca_file,
            insecure_skip_verify,
        })
    }

    /// `headers` then `headers_env`, each name at most once across both (HTTP header names are
    /// case-insensitive), and no `Authorization` header beside a bearer token.
    fn headers(&mut self, raw: &RawEndpoint<'_>, path: &str) -> Option<Vec<(String, Secret)>> {
        let has_bearer = raw.bearer_token_env.is_some() || raw.bearer_token_file.is_some();
        let mut first_seen: HashMap<HeaderName, Location> = HashMap::new();
        let mut checked = Vec::new();
        let lists = [(raw.headers, "headers", false), (raw.headers_env, "headers_env", true)];
        for (pairs, key, from_env) in lists {
            let Some(Spanned { value: RawMap(pairs), .. }) = pairs else { continue };
            for (name, value) in pairs {
                let field = format!("{}.{}", join(path, key), name.value);
                let header = self.header_name(name, &field, has_bearer);
                if let Some(header) = &header {
                    if let Some(first) = first_seen.get(header) {
                        let message = format!("header `{}` is already set at line {}", name.value, first.line());
                        self.error::<()>(&name.referenced, &field, message);
                    } else {
                        first_seen.insert(header.clone(), name.referenced);
                    }
                }
                let value = if from_env {
                    let origin = format!("environment variable {}", value.value);
                    self.env_secret(value, &field)
                        .and_then(|v| self.header_value(v, &origin, &value.referenced, &field))
                } else {
                    self.header_value(Secret::new(value.value.clone()), "the value", &value.referenced, &field)
                };
                checked.push(Some((name.value.clone(), value?)));
            }
        }
        checked.into_iter().collect()
    }

    fn header_name(&mut self, name: &Spanned<String>, field: &str, has_bearer: bool) -> Option<HeaderName> {
        let Ok(header) = HeaderName::from_bytes(name.value.as_bytes()) else {
            let message = format!("invalid HTTP header name `{}`", name.value);
            return self.error(&name.referenced, field, message);
        };
        if has_bearer && header == AUTHORIZATION {
            let message = "conflicts with the bearer token, which is sent as the Authorization header";
            return self.error(&name.referenced, field, message);
        }
        Some(header)
    }

    /// `(ca_file, insecure_skip_verify)`. The CA file must exist now; its PEM is read when the
    /// HTTP client is built.
    fn tls(&mut self, raw: &Spanned<RawTls>, path: &str) -> Option<(Option<PathBuf>, bool)> {
        let RawTls { ca_file, insecure_skip_verify } = &raw.value;
        let insecure_skip_verify = insecure_skip_verify.as_ref().is_some_and(|b| b.value);
        let Some(text) = ca_file else { return Some((None, insecure_skip_verify)) };
        let field = join(path, "ca_file");
        let ca_file = self.path(text, &field)?;
        match fs::metadata(&ca_file) {
            Ok(metadata) if metadata.is_file() => Some((Some(ca_file), insecure_skip_verify)),
            Ok(_) => self.error(&text.referenced, &field, format!("CA file {} is not a file", ca_file.display())),
            Err(e) => self.error(&text.referenced, &field, format!("cannot read CA file {}: {e}", ca_file.display())),
        }
    }
}

/// A duration in the spec's own syntax, for messages about defaults.
fn span(duration: Duration) -> String {
    format_span(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}
