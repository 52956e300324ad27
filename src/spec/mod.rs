//! Service specs: the validated, trusted form of `slo-specs/*.yaml`.
//!
//! Owns the spec file format (the raw serde mirror in `raw`), its validation (`load`), and the
//! validated types below, which are all the rest of sloguard ever sees. Nothing here does I/O
//! except `load`, which reads the files it is pointed at; nothing here knows about the engine.
//!
//! Two stages, as in ripgrep's config: `raw` deserializes YAML with `deny_unknown_fields` and
//! keeps source positions; `load` resolves defaults, parses selectors and durations, and reports
//! *every* problem with file, line, column and field path before anything runs.

pub(crate) mod check;
mod load;
mod raw;
mod route;
pub(crate) mod secret;
mod source;
pub(crate) use source::parse_byte_size;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use crate::calendar::CalendarWindow;
use crate::selector::Selector;

pub use check::{SpecError, SpecErrors};
pub(crate) use load::{SpecUse, load_specs};
pub use load::{load_path, load_paths, parse_spec};
pub(crate) use raw::RawMap;
pub use route::RouteError;
pub(crate) use route::is_webhook_name;

/// One service's spec file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// Service name; unique across all loaded specs.
    pub service: String,
    /// Owning team, shown in reports and pages.
    pub owner: Option<String>,
    /// The file this spec came from, for error messages and reloads.
    pub path: PathBuf,
    /// At least one SLO; names unique within the service.
    pub slos: Vec<SloSpec>,
    pub policy: Policy,
    /// Where samples come from. Optional for `replay`; the daemon requires it.
    pub source: Option<Source>,
    /// Notification routing; empty routes notify nobody (the API and metrics still show all).
    pub notify: NotifyRoutes,
}

/// Where a service's samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Sidecar / direct mode: scrape the targets' `/metrics` ourselves.
    Scrape(ScrapeSource),
    /// Central mode: query a Prometheus-compatible API (Prometheus, Thanos, Mimir, VM).
    Prometheus(PrometheusSource),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeSource {
    /// Absolute `http://` or `https://` URLs; series from several targets are summed.
    pub targets: Vec<String>,
    pub interval: Duration,
    /// Per scrape; at most `interval`.
    pub timeout: Duration,
    pub http: HttpOptions,
    /// A scrape with more samples than this is refused as a whole ("no data" with the reason);
    /// `None` for no limit.
    pub sample_limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusSource {
    /// Base URL of the query API, e.g. `http://prometheus:9090` (no `/api/v1` suffix).
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub http: HttpOptions,
}

/// HTTP client options shared by both source kinds.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// Extra request headers; values may be secrets (e.g. an API key).
    pub headers: Vec<(String, Secret)>,
    /// Sent as `Authorization: Bearer ...`, resolved from env or file at load.
    pub bearer_token: Option<Secret>,
    /// Responses larger than this are refused (a scrape is then "no data").
    pub max_body_bytes: u64,
    /// Extra CA certificate (PEM) to trust, for private PKI.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS verification; for lab use only, logged as a warning at start.
    pub insecure_skip_verify: bool,
}

/// A secret value: resolved at load from `*_env` / `*_file`, redacted in `Debug`, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    /// The value itself, for the one place that must send it (a header, a token comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One service-level objective.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSpec {
    /// Name, unique within its service. The SLO's id is `service/name`.
    pub name: String,
    /// Target fraction of good events, strictly between 0 and 1 (`99.9` in YAML is `0.999` here).
    pub objective: f64,
    /// Rolling window the error budget is computed over; for a calendar budget, the longest
    /// period it can span (what its counters must keep).
    pub window: Duration,
    /// The budget counts the current calendar period only (`window: {calendar: month}`).
    pub calendar: Option<CalendarWindow>,
    pub sli: Sli,
    /// Labels whose value tuples split the SLO into instances; empty for one instance.
    pub group_by: Vec<String>,
    /// Most instances a grouped SLO holds at once; a new group beyond it is refused.
    pub max_groups: usize,
    /// Alert tiers after defaults and overrides are resolved. A disabled tier is absent.
    pub tiers: Vec<Tier>,
    pub alerting: Alerting,
    /// Optional runbook link, carried into pages.
    pub runbook: Option<String>,
}

impl SloSpec {
    /// The error budget as a fraction of events: `1 - objective`, rounded to 12 decimals.
    ///
    /// Objectives are decimal numbers in the spec, but `1.0 - 0.99` is `0.010000000000000009` in
    /// binary floating point, which would make a budget spent exactly read as 9e-16 left and
    /// never freeze at `freeze_below: 0%`. No real objective has more than 12 decimals.
    pub fn budget_fraction(&self) -> f64 {
        ((1.0 - self.objective) * 1e12).round() / 1e12
    }
}

/// How good and bad events are counted. Both variants sum increases of counter selectors.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// `errors / total` is the error ratio.
    ErrorsTotal { errors: Selector, total: Selector },
    /// `1 - good / total` is the error ratio.
    GoodTotal { good: Selector, total: Selector },
    /// A histogram against a threshold: good = the `<name>_bucket` whose `le` equals
    /// `threshold`, total = `<name>_count` (both derived from `histogram` at load).
    Latency { histogram: Selector, threshold: Duration, good: Selector, total: Selector },
    /// A gauge (a probe's success, a duration) cut into epoch-aligned slices: each slice's
    /// samples reduce to one value, good when it satisfies `good`; the error ratio is bad slices
    /// over slices with a sample.
    TimeSlice { gauge: Selector, good: SliceTest, slice: Duration, reduce: Reduce },
}

/// A time slice's good condition: `>= 1`, `< 0.5`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceTest {
    pub op: CompareOp,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl SliceTest {
    pub fn holds(&self, x: f64) -> bool {
        match self.op {
            CompareOp::Ge => x >= self.value,
            CompareOp::Gt => x > self.value,
            CompareOp::Le => x <= self.value,
            CompareOp::Lt => x < self.value,
            CompareOp::Eq => x == self.value,
            CompareOp::Ne => x != self.value,
        }
    }

    /// `>= 1` from its text; `None` unless an operator, optional spaces and a finite number.
    pub fn parse(text: &str) -> Option<SliceTest> {
        let text = text.trim();
        let (op, rest) = [
            (">=", CompareOp::Ge),
            ("<=", CompareOp::Le),
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            (">", CompareOp::Gt),
            ("<", CompareOp::Lt),
        ]
        .into_iter()
        .find_map(|(symbol, op)| text.strip_prefix(symbol).map(|rest| (op, rest)))?;
        let value: f64 = rest.trim().parse().ok()?;
        value.is_finite().then_some(SliceTest { op, value })
    }
}

/// How a slice's samples become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Min,
    Max,
    Avg,
}

impl Reduce {
    pub const NAMES: [&str; 3] = ["min", "max", "avg"];

    pub fn parse(text: &str) -> Option<Reduce> {
        match text {
            "min" => Some(Reduce::Min),
            "max" => Some(Reduce::Max),
            "avg" => Some(Reduce::Avg),
            _ => None,
        }
    }
}

impl Sli {
    /// Every selector the SLI reads its series with.
    pub fn selectors(&self) -> Vec<&Selector> {
        match self.counters() {
            Some((selected, total, _)) => vec![selected, total],
            None => self.gauge().into_iter().collect(),
        }
    }

    /// For a counter SLI: `(selector counting the ratio's numerator, selector of all events)`,
    /// and whether the numerator counts good events (else bad ones).
    pub fn counters(&self) -> Option<(&Selector, &Selector, bool)> {
        match self {
            Sli::ErrorsTotal { errors, total } => Some((errors, total, false)),
            Sli::GoodTotal { good, total } | Sli::Latency { good, total, .. } => Some((good, total, true)),
            Sli::TimeSlice { .. } => None,
        }
    }

    /// A time-slice SLI's gauge selector.
    pub fn gauge(&self) -> Option<&Selector> {
        match self {
            Sli::TimeSlice { gauge, .. } => Some(gauge),
            _ => None,
        }
    }
}

/// How an SLO's alerts behave besides their tiers' conditions (`alerting:` in the spec).
#[derive(Debug, Clone, PartialEq)]
pub struct Alerting {
    /// A condition holds only if its long window counted at least this many events (slices for
    /// a time-slice SLI): a 100% error ratio over three requests is not an incident.
    pub min_events: f64,
    /// ... and at least this many bad ones.
    pub min_bad_events: f64,
    /// The ticket tier stays silent while the page tier fires: one incident, one notification.
    pub inhibit: bool,
    /// An SLO whose series all went silent this long raises `no_data`; `None` turns that off.
    pub no_data: Option<Duration>,
}

impl Default for Alerting {
    fn default() -> Alerting {
        Alerting {
            min_events: 0.0,
            min_bad_events: 0.0,
            // Paging and ticketing the same incident makes on-call handle it twice; the ticket
            // still fires when the page resolves if the slower burn goes on.
            inhibit: true,
            // A quarter of an hour is longer than any sane scrape or rule interval times a few
            // retries, and short enough that a dashboard-less SLO is not blind for a shift.
            no_data: Some(Duration::from_secs(15 * 60)),
        }
    }
}

/// Alert severity: a page wakes someone; a ticket is handled in working hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub const ALL: [Severity; 2] = [Severity::Page, Severity::Ticket];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// A tier fires when any of its conditions holds (the Workbook's "or" between window pairs).
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub severity: Severity,
    /// Never empty: a tier with no conditions is represented by leaving the tier out.
    pub conditions: Vec<BurnCondition>,
}

/// `burn(long) > factor and burn(short) > factor`: the multi-window half of the Workbook rule.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnCondition {
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
}

/// The service's error-budget policy. Budgets are fractions of the SLO's budget: `0.1` = 10% left.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Freeze when any SLO's remaining budget is at or below this.
    pub freeze_below: f64,
    /// Unfreeze once every SLO's remaining budget is above this (hysteresis: >= `freeze_below`).
    pub unfreeze_above: f64,
    /// The gate answers `warn` while any SLO's remaining budget is below this.
    pub warn_below: f64,
    /// A firing page also freezes the service (lifted by the same budget rule as any freeze).
    pub freeze_on_page: bool,
    /// Change classes (`?change=hotfix`) that still pass a freeze.
    pub allow_during_freeze: Vec<String>,
    /// Flag a postmortem when one incident (a page, from firing to resolved) burned more than
    /// this fraction of the budget: the Workbook's example policy uses 20%.
    pub postmortem_above: f64,
    /// A freeze caused by the budget needs this much data in the SLO's window (or the whole
    /// window, if shorter): a budget computed over a few minutes is noise, not evidence.
    pub min_coverage: Duration,
}

impl Default for Policy {
    /// The Workbook-flavoured defaults every field of `policy:` falls back to.
    fn default() -> Policy {
        Policy {
            // Freeze only once the budget is fully spent: the SLO itself is the line the service
            // promised not to cross, so freezing earlier would be stricter than what was agreed.
            freeze_below: 0.0,
            // A gap above the freeze line keeps a budget hovering around zero from flapping
            // between freeze and unfreeze at every evaluation.
            unfreeze_above: 0.10,
            warn_below: 0.25,
            freeze_on_page: false,
            allow_during_freeze: Vec::new(),
            postmortem_above: 0.20,
            // A day holds a full daily traffic cycle, so the budget has seen peak and trough.
            min_coverage: Duration::from_secs(24 * 3600),
        }
    }
}

/// Where a service's notifications go, per kind (`notify:` in the spec).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyRoutes {
    pub page: Vec<Route>,
    pub ticket: Vec<Route>,
    /// Freeze and unfreeze notices.
    pub freeze: Vec<Route>,
    /// `no_data` and `data_returned`; the ticket routes unless the spec names its own.
    pub no_data: Vec<Route>,
}

/// One destination, written `slack:#channel`, `email:addr@example.com`, `webhook:name`,
/// `alertmanager` or `pagerduty` in specs; the transport itself is configured in `notifiers:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    Slack { channel: String },
    Email { to: String },
    Webhook { name: String },
    Alertmanager,
    PagerDuty,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Slack { channel } => write!(f, "slack:{channel}"),
            Route::Email { to } => write!(f, "email:{to}"),
            Route::Webhook { name } => write!(f, "webhook:{name}"),
            Route::Alertmanager => f.write_str("alertmanager"),
            Route::PagerDuty => f.write_str("pagerduty"),
        }
    }
}

/// The SRE Workbook's multi-window multi-burn-rate defaults (table 5-8 and the text around it):
/// page on 2% of a 30-day budget in 1h or 5% in 6h; ticket on 10% in 1d or 10% in 3d.
pub fn default_tiers() -> Vec<Tier> {
    let cond = |long_h: u64, short_m: u64, factor: f64| BurnCondition {
        long: Duration::from_secs(long_h * 3600),
        short: Duration::from_secs(short_m * 60),
        factor,
    };
    vec![
        Tier { severity: Severity::Page, conditions: vec![cond(1, 5, 14.4), cond(6, 30, 6.0)] },
        Tier { severity: Severity::Ticket, conditions: vec![cond(24, 120, 3.0), cond(72, 360, 1.0)] },
    ]
}
