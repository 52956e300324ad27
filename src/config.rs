//! The daemon's own config file (`sloguard.yaml`): where to listen, where state lives, which
//! specs to load, and timing knobs. Loaded with the spec loader's machinery (`spec::check`), so
//! both files report errors the same way (`file:line:column: field: message`), all at once.
//!
//! ```yaml
//! listen: 127.0.0.1:9464           # required: IP address and port (quote IPv6: '[::]:9464')
//! data_dir: /var/lib/sloguard      # required
//! specs: /etc/sloguard/slo-specs   # required: a path or a list of paths (files or directories)
//! evaluation_interval: 10s         # optional, as are the three below; defaults below
//! flush_interval: 10s
//! event_retention: 90d
//! shutdown_grace: 10s
//! ```
//!
//! Relative `data_dir` and `specs` paths are relative to the config file's directory.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spec::{Route, Secret};

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::spec::check::{Checker, parse_document, process_env, read_text};
use crate::spec::{ServiceSpec, SourceRule, SpecErrors, load_specs};

#[cfg(test)]
mod tests;

/// How often the engine evaluates when no interval is configured: fine enough that a page fires
/// within seconds of the 5m window crossing, cheap enough for 10,000 SLOs (~5 ms per round).
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(10);
/// How often window pages are flushed: the most samples a crash can lose.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// How long events stay in the log: a quarter, enough for postmortems and quarterly reviews.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long SIGTERM waits for tasks to drain: under systemd's default TimeoutStopSec of 90 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Alertmanager's default `repeat_interval`: often enough that a still-firing page is not
/// forgotten, rarely enough not to be noise.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// Fifteen minutes of failed delivery is long enough to ride out a blip and short enough that
/// a page still reaches someone within the Workbook's 1h/5m detection budget.
pub const DEFAULT_FALLBACK_AFTER: Duration = Duration::from_secs(15 * 60);
/// Backoff ceiling: a recovered channel gets its backlog within five minutes.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// Slack's documented limit is about one message per second per channel.
pub const DEFAULT_PER_DESTINATION_PER_MINUTE: u32 = 60;

impl Default for Delivery {
    fn default() -> Delivery {
        Delivery {
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            fallback_after: DEFAULT_FALLBACK_AFTER,
            fallback: Vec::new(),
            max_backoff: DEFAULT_MAX_BACKOFF,
            per_destination_per_minute: DEFAULT_PER_DESTINATION_PER_MINUTE,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// The file this came from, for reloads and messages.
    pub path: PathBuf,
    /// HTTP API and `/metrics`.
    pub listen: SocketAddr,
    /// sled database directory.
    pub data_dir: PathBuf,
    /// Spec files or directories, relative paths resolved against the config file's directory.
    pub specs: Vec<PathBuf>,
    pub evaluation_interval: Duration,
    pub flush_interval: Duration,
    pub event_retention: Duration,
    pub shutdown_grace: Duration,
    /// Base URL put into notifications as the link to the API (default `http://<listen>`).
    pub public_url: String,
    pub api: ApiConfig,
    pub notifiers: Notifiers,
    pub delivery: Delivery,
    pub reports: Vec<Report>,
}

/// `api:` — who may change things through the API (overrides, corrections).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiConfig {
    /// Bearer token for mutating endpoints, from `token_env` or `token_file`. Without one, those
    /// endpoints answer 401 to everyone (read endpoints stay open).
    pub token: Option<Secret>,
}

/// `notifiers:` — the transports routes refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notifiers {
    pub slack: Option<SlackNotifier>,
    pub email: Option<EmailNotifier>,
    /// By name, as `webhook:<name>` routes refer to them.
    pub webhooks: Vec<(String, WebhookNotifier)>,
    pub alertmanager: Option<AlertmanagerNotifier>,
    pub pagerduty: Option<PagerDutyNotifier>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlackNotifier {
    /// Bot token (`xoxb-...`), from `token_env` / `token_file`.
    pub token: Secret,
    /// Web API base, default `https://slack.com/api`; a loopback URL in tests.
    pub api_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailNotifier {
    pub host: String,
    pub port: u16,
    pub tls: EmailTls,
    /// RFC 5322 mailbox, validated at load.
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// How to reach the SMTP server: `smtps://` is implicit TLS (465), `smtp://...?tls=required`
/// STARTTLS (587, the default for `smtp://`), and `?tls=none` plaintext, allowed to loopback only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    Implicit,
    StartTls,
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookNotifier {
    pub url: String,
    /// When set, each body is signed: `X-Sloguard-Signature: sha256=<hex HMAC of the body>`.
    pub hmac_secret: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerNotifier {
    /// Base URL; alerts are POSTed to `<url>/api/v2/alerts`.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutyNotifier {
    pub routing_key: Secret,
    /// Events API v2 base, default `https://events.pagerduty.com`.
    pub api_url: String,
}

/// `delivery:` — how the outbox retries, repeats and falls back.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// A page still firing is sent again this often (Alertmanager's default is 4h).
    pub repeat_interval: Duration,
    /// After failing this long on its route, a notification also goes to `fallback`.
    pub fallback_after: Duration,
    pub fallback: Vec<Route>,
    /// Ceiling for exponential backoff between attempts.
    pub max_backoff: Duration,
    /// Messages per minute per destination (Slack allows about one per second per channel).
    pub per_destination_per_minute: u32,
}

/// `reports:` — scheduled budget digests.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Cron with seconds, UTC: `0 0 9 * * Mon` is Mondays 09:00 UTC.
    pub schedule: String,
    pub to: Vec<Route>,
    /// Only these services; empty means all.
    pub services: Vec<String>,
}

/// Loads and validates a daemon config file. Spec paths are resolved but not read; see
/// [`load_daemon`] for loading the specs too.
pub fn load_config(path: &Path) -> Result<DaemonConfig, SpecErrors> {
    let text = read_text(path, "config file").map_err(|e| SpecErrors(vec![e]))?;
    parse_config(path, &text)
}

/// Loads the config and then every spec it names, for running the daemon: each spec must have a
/// `source:`. Config errors stop there (the spec paths are not known); spec errors of all files
/// are reported together.
pub fn load_daemon(path: &Path) -> Result<(DaemonConfig, Vec<ServiceSpec>), SpecErrors> {
    let config = load_config(path)?;
    let specs = load_specs(&config.specs, SourceRule::Required)?;
    Ok((config, specs))
}

/// Validates config text; `path` is used in errors and as the base of relative paths.
fn parse_config(path: &Path, text: &str) -> Result<DaemonConfig, SpecErrors> {
    let raw: Spanned<RawConfig> = parse_document(path, text)?;
    let mut check = Checker::new(path, &process_env);
    let config = check_config(&mut check, &raw);
    check.finish(config)
}

/// Every field is checked before any result is combined with `?`, so all errors are recorded.
fn check_config(check: &mut Checker<'_>, raw: &Spanned<RawConfig>) -> Option<DaemonConfig> {
    let root = &raw.referenced;
    let RawConfig { listen, data_dir, specs, evaluation_interval, flush_interval, event_retention, shutdown_grace } =
        &raw.value;
    let listen = check.require(listen, root, "listen").and_then(|l| listen_address(check, l));
    let data_dir = check.require(data_dir, root, "data_dir").and_then(|d| check.path(d, "data_dir"));
    let specs = check.require(specs, root, "specs").and_then(|s| spec_paths(check, s));
    let evaluation_interval =
        check.duration_or(evaluation_interval, DEFAULT_EVALUATION_INTERVAL, "evaluation_interval");
    let flush_interval = check.duration_or(flush_interval, DEFAULT_FLUSH_INTERVAL, "flush_interval");
    let event_retention = check.duration_or(event_retention, DEFAULT_EVENT_RETENTION, "event_retention");
    let shutdown_grace = check.duration_or(shutdown_grace, DEFAULT_SHUTDOWN_GRACE, "shutdown_grace");
    let listen = listen?;
    Some(DaemonConfig {
        path: check.file.to_path_buf(),
        public_url: format!("http://{listen}"),
        api: ApiConfig::default(),
        notifiers: Notifiers::default(),
        delivery: Delivery::default(),
        reports: Vec::new(),
        listen,
        data_dir: data_dir?,
        specs: specs?,
        evaluation_interval: evaluation_interval?,
        flush_interval: flush_interval?,
        event_retention: event_retention?,
        shutdown_grace: shutdown_grace?,
    })
}

/// An IP address and port. Host names are refused rather than resolved: what `localhost` means
/// depends on the resolver at start-up, and a daemon should bind exactly what the file says.
fn listen_address(check: &mut Checker<'_>, text: &Spanned<String>) -> Option<SocketAddr> {
    match text.value.parse() {
        Ok(address) => Some(address),
        Err(_) => check.error(
            &text.referenced,
            "listen",
            format!(
                "invalid socket address `{}`: expected an IP address and port, e.g. 127.0.0.1:9464 or '[::]:9464'",
                text.value
            ),
        ),
    }
}

fn spec_paths(check: &mut Checker<'_>, raw: &Spanned<RawPaths>) -> Option<Vec<PathBuf>> {
    match &raw.value {
        RawPaths::One(text) => {
            let text = Spanned::new(text.clone(), raw.referenced, raw.defined);
            check.path(&text, "specs").map(|path| vec![path])
        }
        RawPaths::Many(list) if list.is_empty() => {
            check.error(&raw.referenced, "specs", "must list at least one spec file or directory")
        }
        RawPaths::Many(list) => {
            let paths: Vec<Option<PathBuf>> =
                list.iter().enumerate().map(|(index, text)| check.path(text, &format!("specs[{index}]"))).collect();
            paths.into_iter().collect()
        }
    }
}

/// Raw serde mirror of `sloguard.yaml`, as `spec::raw` is of a spec: positions kept, required
/// fields still optional so all missing ones are reported together, unknown keys refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    specs: Option<Spanned<RawPaths>>,
    evaluation_interval: Option<Spanned<String>>,
    flush_interval: Option<Spanned<String>>,
    event_retention: Option<Spanned<String>>,
    shutdown_grace: Option<Spanned<String>>,
}

/// `specs:` as one path or a list. Hand-deserialized rather than `#[serde(untagged)]`, which
/// would lose the list items' positions and replace type errors with "did not match any variant".
#[derive(Debug)]
enum RawPaths {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawPaths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathsVisitor;
        impl<'de> Visitor<'de> for PathsVisitor {
            type Value = RawPaths;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<RawPaths, E> {
                Ok(RawPaths::One(path.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawPaths, A::Error> {
                let mut paths = Vec::new();
                while let Some(path) = seq.next_element()? {
                    paths.push(path);
                }
                Ok(RawPaths::Many(paths))
            }
        }
        deserializer.deserialize_any(PathsVisitor)
    }
}
