//! Policy rules on hand-built snapshots: one test per rule, asserting the decision and the
//! sentence a person would read.

use super::*;
use crate::clock::{HOUR, MINUTE};
use crate::status::{AlertStatus, ServiceStatus, SloStatus, SourceHealth};

const NOW: Millis = 1_767_225_600_000;

fn slo(name: &str, budget: Option<f64>) -> SloStatus {
    SloStatus {
        slo: format!("checkout/{name}"),
        name: name.to_string(),
        group: None,
        objective: 99.9,
        window: "30d".into(),
        window_ms: 30 * 24 * HOUR,
        budget_remaining: budget,
        burn_rates: Vec::new(),
        alerts: vec![
            AlertStatus { severity: "page", firing: false, since: None },
            AlertStatus { severity: "ticket", firing: false, since: None },
        ],
        time_to_exhaustion_s: None,
        period_start: None,
        period_end: None,
        coverage_s: 86400.0,
        freeze_held_back: false,
    }
}

fn service(slos: Vec<SloStatus>) -> ServiceStatus {
    ServiceStatus {
        service: "checkout".into(),
        owner: None,
        frozen: false,
        frozen_since: None,
        freeze_below: 0.0,
        unfreeze_above: 0.1,
        warn_below: 0.25,
        allow_during_freeze: vec!["hotfix".into(), "security".into()],
        slos,
        source_indices: Vec::new(),
    }
}

fn frozen(mut s: ServiceStatus) -> ServiceStatus {
    s.frozen = true;
    s.frozen_since = Some(NOW - HOUR);
    s
}

fn snapshot(s: &ServiceStatus) -> Snapshot {
    let mut snap = Snapshot { at: NOW, ..Snapshot::default() };
    snap.by_name.insert(s.service.clone(), 0);
    snap.services.push(s.clone());
    snap
}

fn ask(s: &ServiceStatus, change: Option<&str>, overrides: &[Override]) -> GateDecision {
    decide(&snapshot(s), s, &GateRequest { change, overrides, now: NOW })
}

fn an_override(decision: Decision, created: Millis, expires: Millis) -> Override {
    Override {
        id: "ovr-7".into(),
        service: "checkout".into(),
        decision,
        reason: "INC-42 rollback".into(),
        created_at: created,
        expires_at: expires,
        actor: Some("alice".into()),
        remote: None,
    }
}

#[test]
fn healthy_budget_allows_with_figures() {
    let d = ask(&service(vec![slo("availability", Some(0.93))]), None, &[]);
    assert_eq!(d.decision, Decision::Allow);
    assert_eq!(d.reasons, ["all SLOs within budget: checkout/availability 93.0% left"]);
    assert_eq!(d.exception, None);
}

#[test]
fn freeze_denies_and_says_since_when_and_how_to_get_an_exception() {
    let d = ask(&frozen(service(vec![slo("availability", Some(-0.2)), slo("latency", Some(0.5))])), None, &[]);
    assert_eq!(d.decision, Decision::Deny);
    assert_eq!(
        d.reasons[0],
        "checkout is frozen since 2025-12-31T23:00:00Z: checkout/availability has -20.0% of its error budget \
         left (freezes at <= 0.0%, lifts when every SLO is above 10.0%)"
    );
    assert_eq!(
        d.exception.as_deref(),
        Some("POST /v1/services/checkout/overrides with a bearer token, or deploy as one of: hotfix, security")
    );
}

#[test]
fn listed_change_class_passes_a_freeze_with_a_warning_naming_it() {
    let s = frozen(service(vec![slo("availability", Some(0.05))]));
    let d = ask(&s, Some("hotfix"), &[]);
    assert_eq!(d.decision, Decision::Warn);
    assert!(d.reasons[0].ends_with(r#"change class "hotfix" is allowed during a freeze (policy.allow_during_freeze)"#));
    assert_eq!(d.change.as_deref(), Some("hotfix"));
}

#[test]
fn unknown_change_class_is_not_exempt() {
    let d = ask(&frozen(service(vec![slo("availability", Some(0.05))])), Some("feature"), &[]);
    assert_eq!(d.decision, Decision::Deny);
}

#[test]
fn budget_below_warn_below_warns() {
    let mut s = slo("availability", Some(0.2));
    s.time_to_exhaustion_s = Some(7200.0);
    let d = ask(&service(vec![s]), None, &[]);
    assert_eq!(d.decision, Decision::Warn);
    assert_eq!(
        d.reasons,
        ["checkout/availability has 20.0% of its error budget left, below the 25.0% warning threshold, \
          exhausted in 2h at the current burn"]
    );
}

#[test]
fn firing_page_warns_and_ticket_only_informs() {
    let mut paged = slo("availability", Some(0.9));
    paged.alerts[0] = AlertStatus { severity: "page", firing: true, since: Some(NOW - 5 * MINUTE) };
    let d = ask(&service(vec![paged]), None, &[]);
    assert_eq!(d.decision, Decision::Warn);
    assert_eq!(
        d.reasons,
        ["checkout/availability page alert firing since 2025-12-31T23:55:00Z: the service is burning budget fast"]
    );

    let mut ticketed = slo("availability", Some(0.9));
    ticketed.alerts[1] = AlertStatus { severity: "ticket", firing: true, since: Some(NOW) };
    assert_eq!(ask(&service(vec![ticketed]), None, &[]).decision, Decision::Allow);
}

#[test]
fn no_data_warns_never_allows() {
    let d = ask(&service(vec![slo("availability", None)]), None, &[]);
    assert_eq!(d.decision, Decision::Warn);
    assert_eq!(d.reasons, ["checkout/availability has no data in its 30d window: its budget is unknown"]);
}

#[test]
fn source_down_warns() {
    let mut s = service(vec![slo("availability", Some(0.9))]);
    s.source_indices = vec![0];
    let mut snap = snapshot(&s);
    snap.services[0] = s.clone();
    snap.sources.push(SourceHealth {
        source: "http://10.0.0.1/metrics".into(),
        up: false,
        n_attempts: 3,
        last_error: Some("connection refused".into()),
        ..SourceHealth::default()
    });
    let d = decide(&snap, &s, &GateRequest { change: None, overrides: &[], now: NOW });
    assert_eq!(d.decision, Decision::Warn);
    assert_eq!(d.reasons, ["source http://10.0.0.1/metrics is down (never): connection refused"]);
}

#[test]
fn active_override_wins_and_shows_expiry_and_the_policy_answer() {
    let s = frozen(service(vec![slo("availability", Some(-0.1))]));
    let d = ask(&s, None, &[an_override(Decision::Allow, NOW - MINUTE, NOW + 2 * HOUR)]);
    assert_eq!(d.decision, Decision::Allow);
    assert_eq!(d.policy_decision, Decision::Deny);
    assert_eq!(
        d.reasons[0],
        r#"override ovr-7 (2025-12-31T23:59:00Z by alice) says allow until 2026-01-01T02:00:00Z (in 2h): "INC-42 rollback"; without it the policy says deny"#
    );
    assert_eq!(d.active_override.as_ref().map(|o| o.id.as_str()), Some("ovr-7"));
    assert_eq!(d.exception, None);
}

#[test]
fn expired_override_is_ignored_and_newest_active_wins() {
    let s = frozen(service(vec![slo("availability", Some(-0.1))]));
    let expired = an_override(Decision::Allow, NOW - 3 * HOUR, NOW);
    assert_eq!(ask(&s, None, std::slice::from_ref(&expired)).decision, Decision::Deny);

    let older = an_override(Decision::Allow, NOW - 2 * HOUR, NOW + HOUR);
    let newer = an_override(Decision::Warn, NOW - HOUR, NOW + HOUR);
    let d = ask(&s, None, &[newer.clone(), expired, older]);
    assert_eq!(d.decision, Decision::Warn);
    assert_eq!(d.active_override, Some(newer));
}

#[test]
fn deny_override_tells_how_to_lift_it() {
    let d = ask(&service(vec![slo("availability", Some(0.9))]), None, &[an_override(Decision::Deny, NOW, NOW + HOUR)]);
    assert_eq!(d.decision, Decision::Deny);
    assert_eq!(
        d.exception.as_deref(),
        Some(
            "override ovr-7 sets deny: DELETE /v1/services/checkout/overrides/ovr-7 with a \
             bearer token to lift it"
        )
    );
}

#[test]
fn overrides_of_other_services_do_not_apply() {
    let mut other = an_override(Decision::Allow, NOW, NOW + HOUR);
    other.service = "payments".into();
    let d = ask(&frozen(service(vec![slo("availability", Some(-0.1))])), None, &[other]);
    assert_eq!(d.decision, Decision::Deny);
}

/// Groups of one grouped SLO, `n` of them, budgets 0.5, 0.49, ... (the last the worst).
fn routes(n: usize, first_budget: f64) -> Vec<SloStatus> {
    (0..n)
        .map(|i| {
            let mut s = slo("availability", Some(first_budget - 0.01 * i as f64));
            s.slo = format!("checkout/availability{{route=\"/r{i}\"}}");
            s
        })
        .collect()
}

#[test]
fn with_many_groups_the_reasons_name_the_worst_ten_and_count_the_rest() {
    let d = ask(&service(routes(25, 0.2)), None, &[]);
    assert_eq!(d.decision, Decision::Warn, "{:?}", d.reasons);
    assert_eq!(d.reasons.len(), 11, "{:?}", d.reasons);
    assert!(
        d.reasons[0].starts_with("checkout/availability{route=\"/r24\"} has -4.0% of its error budget left"),
        "{}",
        d.reasons[0]
    );
    assert!(d.reasons[9].starts_with("checkout/availability{route=\"/r15\"}"), "{}", d.reasons[9]);
    assert!(d.reasons[10].starts_with("and 15 more reason(s)"), "{}", d.reasons[10]);
    assert_eq!(d.budgets.len(), 25, "the budgets list every instance");

    let d = ask(&service(routes(25, 0.9)), None, &[]);
    assert_eq!(d.decision, Decision::Allow);
    let [all] = d.reasons.as_slice() else { panic!("{:?}", d.reasons) };
    assert!(all.starts_with(r#"all SLOs within budget: checkout/availability{route="/r24"} 66.0% left, "#), "{all}");
    assert!(all.ends_with(", and 15 more"), "{all}");

    let d = ask(&frozen(service(routes(25, 0.05))), None, &[]);
    assert_eq!(d.decision, Decision::Deny);
    assert!(
        d.reasons[0].contains("/r24\"} has -19.0% of its error budget left") && d.reasons[0].contains("; and 15 more"),
        "{}",
        d.reasons[0]
    );
}
