//! The daemon's own config file (`sloguard.yaml`): where to listen, where state lives, which
//! specs to load, timing knobs, and how notifications are delivered. Loaded with the spec
//! loader's machinery (`spec::check`), so both files report errors the same way
//! (`file:line:column: field: message`), all at once.
//!
//! ```yaml
//! listen: 127.0.0.1:9464           # required: IP address and port (quote IPv6: '[::]:9464')
//! data_dir: /var/lib/sloguard      # required
//! specs: /etc/sloguard/slo-specs   # required: a path or a list of paths (files or directories)
//! evaluation_interval: 10s         # optional, as is everything below; defaults below
//! flush_interval: 10s
//! event_retention: 90d
//! shutdown_grace: 10s
//! public_url: https://sloguard.internal.example   # default http://<listen>, or http://<hostname>:<port>
//!                                                 # when listening on 0.0.0.0 or [::]
//! api:                             # every key optional
//!   token_env: SLOGUARD_API_TOKEN  # or token_file; without one, mutations answer 401
//!   header_timeout: 10s            # the API's connection bounds (see `api::server`)
//!   body_timeout: 10s
//!   idle_timeout: 90s
//!   max_connections: 512
//!   max_body_size: 64KiB
//! notifiers:                       # the transports that routes (`slack:#x`, ...) go through
//!   slack: { token_env: SLACK_BOT_TOKEN }
//!   email: { url: "smtp://mail.example.com:587", from: sloguard@example.com }
//!   webhooks: { deploybot: { url: https://deploybot.example/hooks/sloguard } }   # or url_env / url_file
//!   alertmanager: { url: http://alertmanager:9093 }
//!   pagerduty: { routing_key_env: PD_ROUTING_KEY }
//! delivery: { repeat_interval: 4h, fallback_after: 15m, fallback: ["email:sre@example.com"] }
//! reports:
//!   - { schedule: "0 0 9 * * Mon", to: ["email:payments@example.com"], services: [checkout] }
//! ```
//!
//! `examples/sloguard.full.yaml` shows and explains every key. Relative paths (`data_dir`,
//! `specs`, `*_file`) are relative to the config file's directory. Every route, in the config
//! and in the specs, must name a configured notifier; report services must be loaded specs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::spec::check::{Checker, EnvLookup, parse_document, process_env, read_text};
use crate::spec::secret::SecretUse;
use crate::spec::{Route, Secret, ServiceSpec, SpecError, SpecErrors, SpecUse, load_specs};
use notify::{Configured, SECRETS_HINT, ServiceRef};
use raw::{RawApi, RawConfig, RawPaths};

mod notify;
mod raw;

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
/// Slack's Web API.
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";
/// PagerDuty's Events API v2 host.
pub const DEFAULT_PAGERDUTY_API_URL: &str = "https://events.pagerduty.com";

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

/// `api:` — who may change things through the API (overrides, corrections), and how long and
/// how many connections it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiConfig {
    /// Bearer token for mutating endpoints, from `token_env` or `token_file`. Without one, those
    /// endpoints answer 401 to everyone (read endpoints stay open).
    pub token: Option<Secret>,
    pub limits: ApiLimits,
}

/// What one client may hold of the API: anyone who can reach the port can open connections, so
/// each is bounded in time and size, and their number is capped (see `api::server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// From a connection's first byte of a request head (or its accept, for the first request)
    /// to the whole head.
    pub header_timeout: Duration,
    /// From a request's head to the end of its body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request under way is closed after this long.
    pub idle_timeout: Duration,
    /// Open connections; at the cap the longest-idle one is closed to admit the new one.
    pub max_connections: usize,
    /// Largest request body of any route (routes may accept less).
    pub max_body_bytes: usize,
}

/// A request head is a few hundred bytes sent at once; ten seconds covers a congested link and
/// is nginx's client_header_timeout order of magnitude, while a slowloris client holding heads
/// open for minutes is closed.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body the API accepts (64 KiB) arrives within ten seconds at 6.5 KB/s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than the 60 s keep-alive most HTTP clients (Go's net/http: 90 s) keep an idle
/// connection, so a poller reuses its connection rather than racing our close.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Deploy tooling, Prometheus and a few people need tens of connections; 512 leaves room for a
/// fleet of pipelines while keeping the daemon's fds (and memory, ~100 KiB a connection at
/// most) bounded under systemd's TasksMax and LimitNOFILE.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Every JSON body the API takes (an override, a correction, Flagger's payload) is under 8 KiB;
/// 64 KiB leaves room and still bounds a connection's buffered body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 10;
/// Upper bound of every API timeout: a bound longer than an hour bounds nothing.
const MAX_API_TIMEOUT: Duration = Duration::from_secs(3600);
/// Upper bound of `api.max_connections`: beyond it the fds alone exceed the unit's LimitNOFILE.
const MAX_API_CONNECTIONS: u64 = 65_536;
/// Upper bound of `api.max_body_size`: no endpoint takes more than a few KiB.
const MAX_API_BODY_BYTES: u64 = 16 << 20;

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
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
    /// A secret: incoming-webhook URLs often carry their token in the path.
    pub url: Secret,
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
    parse_config(path, &text, &process_env).map(|(config, _)| config)
}

/// Loads the config and then every spec it names, for running the daemon: each spec must have a
/// `source:` and each of its routes a configured notifier. Config errors stop there (the spec
/// paths are not known); spec errors of all files are reported together.
pub fn load_daemon(path: &Path) -> Result<(DaemonConfig, Vec<ServiceSpec>), SpecErrors> {
    load_daemon_with_env(path, &process_env)
}

/// [`load_daemon`], resolving `*_env` secrets of the config and the specs through `env`.
fn load_daemon_with_env(path: &Path, env: EnvLookup<'_>) -> Result<(DaemonConfig, Vec<ServiceSpec>), SpecErrors> {
    let text = read_text(path, "config file").map_err(|e| SpecErrors(vec![e]))?;
    let (config, service_refs) = parse_config(path, &text, env)?;
    let configured = Configured::validated(&config.notifiers);
    let config_name = path.file_name().unwrap_or(path.as_os_str()).to_string_lossy();
    let routes = |route: &Route| {
        configured.deliverable(route).map_err(|key| format!("route {route} needs {key} in {config_name}"))
    };
    let specs = load_specs(&config.specs, env, SpecUse::Daemon { routes: &routes })?;
    let unknown: Vec<SpecError> = service_refs
        .into_iter()
        .filter(|service| !specs.iter().any(|spec| spec.service == service.name))
        .map(|ServiceRef { field, at, name }| SpecError {
            file: path.to_path_buf(),
            line: at.line(),
            column: at.column(),
            field,
            message: format!("no loaded spec defines service `{name}`"),
        })
        .collect();
    if !unknown.is_empty() {
        return Err(SpecErrors(unknown));
    }
    Ok((config, specs))
}

/// Validates config text; `path` is used in errors and as the base of relative paths. Also
/// returns the report services, which only [`load_daemon`] can check.
fn parse_config(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<(DaemonConfig, Vec<ServiceRef>), SpecErrors> {
    let raw: Spanned<RawConfig> = parse_document(path, text)?;
    let declared = raw.value.notifiers.as_ref().map(|n| Configured::declared(&n.value)).unwrap_or_default();
    let routes = |route: &Route| declared.deliverable(route).map_err(|key| format!("route {route} needs {key}"));
    let mut check = Checker::new(path, env, Some(&routes));
    let config = check_config(&mut check, &raw);
    check.finish(config)
}

/// Every field is checked before any result is combined with `?`, so all errors are recorded.
fn check_config(check: &mut Checker<'_>, raw: &Spanned<RawConfig>) -> Option<(DaemonConfig, Vec<ServiceRef>)> {
    let root = &raw.referenced;
    let RawConfig {
        listen,
        data_dir,
        specs,
        evaluation_interval,
        flush_interval,
        event_retention,
        shutdown_grace,
        public_url,
        api,
        notifiers,
        delivery,
        reports,
    } = &raw.value;
    let listen = check.require(listen, root, "listen").and_then(|l| listen_address(check, l));
    let data_dir = check.require(data_dir, root, "data_dir").and_then(|d| check.path(d, "data_dir"));
    let specs = check.require(specs, root, "specs").and_then(|s| spec_paths(check, s));
    let evaluation_interval =
        check.duration_or(evaluation_interval, DEFAULT_EVALUATION_INTERVAL, "evaluation_interval");
    let flush_interval = check.duration_or(flush_interval, DEFAULT_FLUSH_INTERVAL, "flush_interval");
    let event_retention = check.duration_or(event_retention, DEFAULT_EVENT_RETENTION, "event_retention");
    let shutdown_grace = check.duration_or(shutdown_grace, DEFAULT_SHUTDOWN_GRACE, "shutdown_grace");
    let public_url = match public_url {
        Some(url) => check.base_url(url, "public_url", SECRETS_HINT, None).map(Some),
        None => Some(None),
    };
    let api = match api {
        Some(api) => api_config(check, api),
        None => Some(ApiConfig::default()),
    };
    let notifiers = notify::notifiers(check, notifiers.as_ref());
    let delivery = notify::delivery(check, delivery.as_ref());
    let reports = notify::reports(check, reports.as_ref());
    let listen = listen?;
    let (reports, service_refs) = reports?;
    let config = DaemonConfig {
        path: check.file.to_path_buf(),
        listen,
        data_dir: data_dir?,
        specs: specs?,
        evaluation_interval: evaluation_interval?,
        flush_interval: flush_interval?,
        event_retention: event_retention?,
        shutdown_grace: shutdown_grace?,
        public_url: public_url?.unwrap_or_else(|| default_public_url(listen)),
        api: api?,
        notifiers: notifiers?,
        delivery: delivery?,
        reports,
    };
    Some((config, service_refs))
}

/// `api:`: the token (optional: without one the mutating endpoints answer 401) and the
/// connection limits, each with its default when absent.
fn api_config(check: &mut Checker<'_>, raw: &Spanned<RawApi>) -> Option<ApiConfig> {
    let RawApi { token_env, token_file, header_timeout, body_timeout, idle_timeout, max_connections, max_body_size } =
        &raw.value;
    // Compared with the `Authorization: Bearer` header of requests, so it must fit in one.
    let token = check.optional_secret(token_env, token_file, "api", "token", SecretUse::Bearer);
    let mut timeout = |text: &Option<Spanned<String>>, default: Duration, key: &str| {
        let field = format!("api.{key}");
        let duration = check.duration_or(text, default, &field)?;
        match text {
            Some(text) if duration.is_zero() || duration > MAX_API_TIMEOUT => check.error(
                &text.referenced,
                &field,
                format!("must be more than 0 and at most {}", humantime::format_duration(MAX_API_TIMEOUT)),
            ),
            _ => Some(duration),
        }
    };
    let header_timeout = timeout(header_timeout, DEFAULT_HEADER_TIMEOUT, "header_timeout");
    let body_timeout = timeout(body_timeout, DEFAULT_BODY_TIMEOUT, "body_timeout");
    let idle_timeout = timeout(idle_timeout, DEFAULT_IDLE_TIMEOUT, "idle_timeout");
    let max_connections = match max_connections {
        None => Some(DEFAULT_MAX_CONNECTIONS),
        Some(n) if (1..=MAX_API_CONNECTIONS).contains(&n.value) => Some(n.value as usize),
        Some(n) => {
            check.error(&n.referenced, "api.max_connections", format!("must be between 1 and {MAX_API_CONNECTIONS}"))
        }
    };
    let max_body_bytes = match max_body_size {
        None => Some(DEFAULT_MAX_BODY_BYTES),
        Some(text) => match crate::spec::parse_byte_size(&text.value) {
            Ok(bytes) if bytes <= MAX_API_BODY_BYTES => Some(bytes as usize),
            Ok(_) => check.error(&text.referenced, "api.max_body_size", "must be at most 16MiB"),
            Err(e) => check.error(&text.referenced, "api.max_body_size", e.to_string()),
        },
    };
    Some(ApiConfig {
        token: token?,
        limits: ApiLimits {
            header_timeout: header_timeout?,
            body_timeout: body_timeout?,
            idle_timeout: idle_timeout?,
            max_connections: max_connections?,
            max_body_bytes: max_body_bytes?,
        },
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

/// Links in notifications must lead somewhere an on-call engineer can open. The listen address
/// does for a local setup; a wildcard one (`0.0.0.0`, `[::]`, usual for a sidecar) does not, so
/// it is replaced by this host's name.
fn default_public_url(listen: SocketAddr) -> String {
    if !listen.ip().is_unspecified() {
        return format!("http://{listen}");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("http://{host}:{}", listen.port())
}
