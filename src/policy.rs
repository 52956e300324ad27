//! The error-budget policy applied to deploys: turns a service's status into a gate decision
//! (`allow`, `warn`, `deny`) with human reasons and the figures behind them.
//!
//! Pure: reads a snapshot, returns a decision. Owns no state and performs no I/O; the freeze
//! itself is decided by the engine (with hysteresis) and only read here.

use serde::Serialize;

use crate::clock::{Millis, format_span, rfc3339};
use crate::status::{ServiceStatus, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Warn,
    Deny,
}

/// The gate's answer, as served by `GET /v1/gate/{service}`.
#[derive(Debug, Clone, Serialize)]
pub struct GateDecision {
    pub service: String,
    pub decision: Decision,
    /// Sentences a person can act on: which SLO, its budget, since when.
    pub reasons: Vec<String>,
    pub frozen: bool,
    #[serde(with = "crate::status::opt_rfc3339")]
    pub frozen_since: Option<Millis>,
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

/// Decides whether `service` may deploy now.
pub fn decide(snapshot: &Snapshot, service: &ServiceStatus) -> GateDecision {
    let mut decision = Decision::Allow;
    let mut reasons = Vec::new();
    let mut raise = |to: Decision, reason: String, reasons: &mut Vec<String>| {
        decision = decision.max_with(to);
        reasons.push(reason);
    };

    if let Some(since) = service.frozen_since {
        let culprits: Vec<String> = service
            .slos
            .iter()
            .filter(|s| s.budget_remaining.is_some_and(|b| b <= service.freeze_below))
            .map(|s| format!("{} has {} of its error budget left", s.slo, percent(s.budget_remaining)))
            .collect();
        let why = if culprits.is_empty() { "budget not yet recovered".to_string() } else { culprits.join("; ") };
        raise(
            Decision::Deny,
            format!(
                "{} is frozen since {}: {why} (freezes at <= {}, lifts when every SLO is above {})",
                service.service,
                rfc3339(since),
                percent(Some(service.freeze_below)),
                percent(Some(service.unfreeze_above)),
            ),
            &mut reasons,
        );
    }
    for slo in &service.slos {
        for alert in slo.alerts.iter().filter(|a| a.firing) {
            let since = alert.since.map(|s| format!(" since {}", rfc3339(s))).unwrap_or_default();
            raise(
                Decision::Warn,
                format!("{} {} alert firing{since}: the service is burning budget fast", slo.slo, alert.severity),
                &mut reasons,
            );
        }
        if slo.budget_remaining.is_none() {
            raise(
                Decision::Warn,
                format!("{} has no data in its {} window: its budget is unknown", slo.slo, slo.window),
                &mut reasons,
            );
        }
    }
    for source in snapshot.sources_of(service).filter(|s| !s.up && s.n_attempts > 0) {
        let last = source.last_success.map_or("never".to_string(), |t| format!("last success {}", rfc3339(t)));
        let error = source.last_error.as_deref().unwrap_or("unknown error");
        raise(Decision::Warn, format!("source {} is down ({last}): {error}", source.source), &mut reasons);
    }
    if decision == Decision::Allow {
        let budgets: Vec<String> =
            service.slos.iter().map(|s| format!("{} {} left", s.slo, percent(s.budget_remaining))).collect();
        reasons.push(format!("all SLOs within budget: {}", budgets.join(", ")));
    }

    GateDecision {
        service: service.service.clone(),
        decision,
        reasons,
        frozen: service.frozen,
        frozen_since: service.frozen_since,
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

impl Decision {
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
