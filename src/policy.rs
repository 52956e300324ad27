//! The error-budget policy applied to deploys: turns a service's status, the change class asked
//! about and any active override into a gate decision (`allow`, `warn`, `deny`) with human
//! reasons, the figures behind them, and how to get an exception.
//!
//! Pure: reads a snapshot and the overrides it is handed, returns a decision. Owns no state and
//! performs no I/O; the freeze itself (including `freeze_on_page`) is decided by the engine with
//! hysteresis and only read here, and overrides are kept by the daemon and the store.
//!
//! Rules, strictest wins:
//! - frozen → `deny`, unless the change class is in `allow_during_freeze` (then `warn`, naming
//!   the class: deploying into a freeze is allowed but never silent);
//! - a firing page, an SLO below `warn_below`, an SLO without data or a source down → `warn`
//!   (no data is never `allow`);
//! - otherwise `allow`.
//!
//! An active override replaces the result (the newest one if several are active); the reasons
//! still say what the policy alone would answer, and when the override expires.

use serde::{Deserialize, Serialize};

use crate::clock::{Millis, format_span, rfc3339};
use crate::status::{ServiceStatus, SloStatus, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Warn,
    Deny,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Allow, Decision::Warn, Decision::Deny];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Warn => "warn",
            Decision::Deny => "deny",
        }
    }

    /// The stricter of two decisions.
    fn max_with(self, other: Decision) -> Decision {
        let rank = |d: Decision| match d {
            Decision::Allow => 0,
            Decision::Warn => 1,
            Decision::Deny => 2,
        };
        if rank(other) > rank(self) { other } else { self }
    }
}

/// A person's exception to the policy for one service, until it expires. Created through the
/// API, persisted by the store, applied by [`decide`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// `ovr-<hex>`, unique for the life of the store.
    pub id: String,
    pub service: String,
    /// What the gate answers while the override is active.
    pub decision: Decision,
    /// Why, in the requester's words; shown in every gate answer it affects.
    pub reason: String,
    #[serde(with = "crate::clock::serde_rfc3339")]
    pub created_at: Millis,
    #[serde(with = "crate::clock::serde_rfc3339")]
    pub expires_at: Millis,
    /// Informational: the `X-Sloguard-Actor` header, not an authenticated identity.
    pub actor: Option<String>,
    /// The client's address as the daemon saw it.
    pub remote: Option<String>,
}

impl Override {
    pub fn is_active(&self, now: Millis) -> bool {
        self.expires_at > now
    }
}

/// What the caller asks about, beyond the service.
#[derive(Debug, Clone, Copy)]
pub struct GateRequest<'a> {
    /// The change class (`?change=hotfix`); any value is accepted, only listed ones are exempt.
    pub change: Option<&'a str>,
    /// Overrides for this service; inactive ones are ignored.
    pub overrides: &'a [Override],
    /// Wall-clock now, for override expiry.
    pub now: Millis,
}

/// The gate's answer, as served by `GET /v1/gate/{service}`.
#[derive(Debug, Clone, Serialize)]
pub struct GateDecision {
    pub service: String,
    pub decision: Decision,
    /// What the policy alone says; differs from `decision` only while an override is active.
    pub policy_decision: Decision,
    /// The change class asked about, if any.
    pub change: Option<String>,
    /// Sentences a person can act on: which SLO, its budget, since when, which override applies.
    pub reasons: Vec<String>,
    /// How to get past a `deny` or `warn`; `null` on `allow`.
    pub exception: Option<String>,
    /// The override in force, if any.
    #[serde(rename = "override")]
    pub active_override: Option<Override>,
    pub frozen: bool,
    #[serde(with = "crate::status::opt_rfc3339")]
    pub frozen_since: Option<Millis>,
    pub warn_below: f64,
    pub allow_during_freeze: Vec<String>,
    pub budgets: Vec<GateBudget>,
    #[serde(with = "crate::status::opt_rfc3339")]
    pub evaluated_at: Option<Millis>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateBudget {
    pub slo: String,
    pub objective: f64,
    pub window: String,
    pub budget_remaining: Option<f64>,
    pub firing: Vec<&'static str>,
}

/// The policy's answer before overrides: the strictest rule that applies, and why.
struct Verdict {
    decision: Decision,
    reasons: Vec<String>,
}

impl Verdict {
    fn raise(&mut self, to: Decision, reason: String) {
        self.decision = self.decision.max_with(to);
        self.reasons.push(reason);
    }
}

/// Decides whether `service` may deploy now.
pub fn decide(snapshot: &Snapshot, service: &ServiceStatus, request: &GateRequest<'_>) -> GateDecision {
    let verdict = policy_verdict(snapshot, service, request.change);
    let active = request
        .overrides
        .iter()
        .filter(|o| o.service == service.service && o.is_active(request.now))
        .max_by_key(|o| o.created_at);
    let mut reasons = verdict.reasons;
    let decision = match active {
        Some(o) => {
            let by = o.actor.as_deref().map(|a| format!(" by {a}")).unwrap_or_default();
            reasons.insert(
                0,
                format!(
                    "override {} ({}{by}) says {} until {} (in {}): {:?}; without it the policy says {}",
                    o.id,
                    rfc3339(o.created_at),
                    o.decision.as_str(),
                    rfc3339(o.expires_at),
                    format_span(o.expires_at - request.now),
                    o.reason,
                    verdict.decision.as_str(),
                ),
            );
            o.decision
        }
        None => verdict.decision,
    };
    GateDecision {
        service: service.service.clone(),
        decision,
        policy_decision: verdict.decision,
        change: request.change.map(str::to_string),
        reasons,
        exception: exception(service, decision, active),
        active_override: active.cloned(),
        frozen: service.frozen,
        frozen_since: service.frozen_since,
        warn_below: service.warn_below,
        allow_during_freeze: service.allow_during_freeze.clone(),
        budgets: service
            .slos
            .iter()
            .map(|s| GateBudget {
                slo: s.slo.clone(),
                objective: s.objective,
                window: s.window.clone(),
                budget_remaining: s.budget_remaining,
                firing: s.alerts.iter().filter(|a| a.firing).map(|a| a.severity).collect(),
            })
            .collect(),
        evaluated_at: (snapshot.at > 0).then_some(snapshot.at),
    }
}

fn policy_verdict(snapshot: &Snapshot, service: &ServiceStatus, change: Option<&str>) -> Verdict {
    let mut verdict = Verdict { decision: Decision::Allow, reasons: Vec::new() };
    if let Some(since) = service.frozen_since {
        let culprits: Vec<String> = by_budget(service)
            .filter(|s| s.budget_remaining.is_none_or(|b| b <= service.unfreeze_above))
            .map(|s| format!("{} has {} of its error budget left", s.slo, percent(s.budget_remaining)))
            .collect();
        let why = if culprits.is_empty() { "budget not yet recovered".to_string() } else { listed(culprits, "; ") };
        let frozen = format!(
            "{} is frozen since {}: {why} (freezes at <= {}, lifts when every SLO is above {})",
            service.service,
            rfc3339(since),
            percent(Some(service.freeze_below)),
            percent(Some(service.unfreeze_above)),
        );
        match change.filter(|c| service.allow_during_freeze.iter().any(|a| a == c)) {
            Some(class) => verdict.raise(
                Decision::Warn,
                format!("{frozen}; change class {class:?} is allowed during a freeze (policy.allow_during_freeze)"),
            ),
            None => verdict.raise(Decision::Deny, frozen),
        }
    }
    // Worst first, so that with many groups the reasons kept are the ones that matter.
    let mut n_slo_reasons = 0;
    let mut n_omitted = 0;
    for slo in by_budget(service) {
        // Past the first few, a reason still raises the answer but is only counted.
        let mut verdict = Listing { verdict: &mut verdict, n_listed: &mut n_slo_reasons, n_omitted: &mut n_omitted };
        for alert in slo.alerts.iter().filter(|a| a.firing) {
            let since = alert.since.map(|s| format!(" since {}", rfc3339(s))).unwrap_or_default();
            let sentence = format!("{} {} alert firing{since}", slo.slo, alert.severity);
            // A page means the budget is burning fast right now; a ticket is a slow burn that
            // `warn_below` catches once it matters, so it informs without raising.
            if alert.severity == "page" {
                verdict.raise(Decision::Warn, format!("{sentence}: the service is burning budget fast"));
            } else {
                verdict.note(sentence);
            }
        }
        match slo.budget_remaining {
            None => verdict.raise(
                Decision::Warn,
                format!("{} has no data in its {} window: its budget is unknown", slo.slo, slo.window),
            ),
            Some(b) if b < service.warn_below => {
                let exhaustion = slo
                    .time_to_exhaustion_s
                    .map(|s| format!(", exhausted in {} at the current burn", seconds_span(s)))
                    .unwrap_or_default();
                verdict.raise(
                    Decision::Warn,
                    format!(
                        "{} has {} of its error budget left, below the {} warning threshold{exhaustion}",
                        slo.slo,
                        percent(Some(b)),
                        percent(Some(service.warn_below)),
                    ),
                );
            }
            Some(_) => {}
        }
        if slo.freeze_held_back {
            verdict.raise(
                Decision::Warn,
                format!(
                    "{} has spent its budget, but its window holds only {} of data, less than policy.min_coverage: \
                     no freeze yet",
                    slo.slo,
                    seconds_span(slo.coverage_s)
                ),
            );
        }
    }
    if n_omitted > 0 {
        verdict.reasons.push(format!(
            "and {n_omitted} more reason(s) of the same kinds for other SLOs or groups (GET /v1/services/{} lists \
             every SLO)",
            service.service
        ));
    }
    for source in snapshot.sources_of(service).filter(|s| !s.up && s.n_attempts > 0) {
        let last = source.last_success.map_or("never".to_string(), |t| format!("last success {}", rfc3339(t)));
        let error = source.last_error.as_deref().unwrap_or("unknown error");
        verdict.raise(Decision::Warn, format!("source {} is down ({last}): {error}", source.source));
    }
    if verdict.decision == Decision::Allow {
        let budgets: Vec<String> =
            by_budget(service).map(|s| format!("{} {} left", s.slo, percent(s.budget_remaining))).collect();
        verdict.reasons.push(format!("all SLOs within budget: {}", listed(budgets, ", ")));
    }
    verdict
}

/// How many SLOs (or groups) the gate's reasons name one by one; the rest are counted.
const LISTED: usize = 10;

/// The service's SLO instances, least budget left first (no data first of all: unknown is the
/// worst case).
fn by_budget(service: &ServiceStatus) -> impl Iterator<Item = &SloStatus> {
    let mut slos: Vec<&SloStatus> = service.slos.iter().collect();
    slos.sort_by(|a, b| {
        let key = |s: &SloStatus| s.budget_remaining.unwrap_or(f64::NEG_INFINITY);
        key(a).total_cmp(&key(b))
    });
    slos.into_iter()
}

/// The first [`LISTED`] items joined, and a count of the rest.
fn listed(items: Vec<String>, separator: &str) -> String {
    let n = items.len();
    let mut text = items.into_iter().take(LISTED).collect::<Vec<_>>().join(separator);
    if n > LISTED {
        text.push_str(&format!("{separator}and {} more", n - LISTED));
    }
    text
}

/// A [`Verdict`] that names the first [`LISTED`] per-SLO reasons and counts the rest.
struct Listing<'a> {
    verdict: &'a mut Verdict,
    n_listed: &'a mut usize,
    n_omitted: &'a mut usize,
}

impl Listing<'_> {
    fn raise(&mut self, to: Decision, reason: String) {
        self.verdict.decision = self.verdict.decision.max_with(to);
        self.note(reason);
    }

    fn note(&mut self, reason: String) {
        if *self.n_listed < LISTED {
            *self.n_listed += 1;
            self.verdict.reasons.push(reason);
        } else {
            *self.n_omitted += 1;
        }
    }
}

/// How to get past the answer: an override, a lifted override, or an exempt change class.
fn exception(service: &ServiceStatus, decision: Decision, active: Option<&Override>) -> Option<String> {
    if decision == Decision::Allow {
        return None;
    }
    let name = &service.service;
    if let Some(o) = active.filter(|o| o.decision != Decision::Allow) {
        return Some(format!(
            "override {} sets {}: DELETE /v1/services/{name}/overrides/{} with a bearer token to lift it",
            o.id,
            o.decision.as_str(),
            o.id
        ));
    }
    let post = format!("POST /v1/services/{name}/overrides with a bearer token");
    Some(if service.allow_during_freeze.is_empty() {
        post
    } else {
        format!("{post}, or deploy as one of: {}", service.allow_during_freeze.join(", "))
    })
}

/// A budget fraction as a percentage for sentences: `0.932` → `93.2%`, `None` → `unknown`.
pub fn percent(fraction: Option<f64>) -> String {
    match fraction {
        Some(f) => format!("{:.1}%", f * 100.0),
        None => "unknown".to_string(),
    }
}

/// A duration in seconds, as in the reasons (`2h13m`).
pub fn seconds_span(seconds: f64) -> String {
    format_span((seconds * 1000.0) as Millis)
}

#[cfg(test)]
mod tests;
