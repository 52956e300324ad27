//! sloguard's own `/metrics` in Prometheus text format: per-SLO budget, burn rates, alert and
//! freeze state (so tools that only speak Prometheus can gate on them), source health, and the
//! daemon's own health. Renders a snapshot; owns no state.
//!
//! An undefined value (a window without traffic) is left out rather than written as NaN: an
//! absent series is how Prometheus says "no data", and comparisons on it stay false.

mod histogram;

use std::fmt::Write;
use std::sync::atomic::Ordering;

pub use histogram::{Histogram, Reading};

use crate::daemon::Stats;
use crate::exposition::escape_label_value;
use crate::policy::Decision;
use crate::status::Snapshot;

/// Renders every family with HELP and TYPE, families in a fixed order. `decisions` holds each
/// service's current gate answer, parallel to `snapshot.services`.
pub fn render(snapshot: &Snapshot, stats: &Stats, decisions: &[Decision]) -> String {
    let mut out = Families::default();
    out.family("sloguard_build_info", "gauge", "Always 1; the version label says which build runs.");
    out.sample("sloguard_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);

    out.family("sloguard_slo_objective_ratio", "gauge", "SLO objective as a ratio of good events (0.999).");
    for service in &snapshot.services {
        for slo in &service.slos {
            out.sample(
                "sloguard_slo_objective_ratio",
                &[("service", &service.service), ("slo", &slo.slo)],
                slo.objective / 100.0,
            );
        }
    }
    out.family(
        "sloguard_slo_budget_remaining_ratio",
        "gauge",
        "Fraction of the error budget left over the SLO window; negative when overspent, absent without data.",
    );
    for service in &snapshot.services {
        for slo in &service.slos {
            if let Some(b) = slo.budget_remaining {
                out.sample(
                    "sloguard_slo_budget_remaining_ratio",
                    &[("service", &service.service), ("slo", &slo.slo)],
                    b,
                );
            }
        }
    }
    out.family(
        "sloguard_slo_burn_rate",
        "gauge",
        "Error-budget burn rate per window; absent when the window holds no traffic.",
    );
    for service in &snapshot.services {
        for slo in &service.slos {
            for rate in &slo.burn_rates {
                if let Some(burn) = rate.burn {
                    let labels = [("service", service.service.as_str()), ("slo", &slo.slo), ("window", &rate.window)];
                    out.sample("sloguard_slo_burn_rate", &labels, burn);
                }
            }
        }
    }
    out.family(
        "sloguard_slo_time_to_exhaustion_seconds",
        "gauge",
        "Seconds until the budget is gone at the current burn.",
    );
    for service in &snapshot.services {
        for slo in &service.slos {
            if let Some(tte) = slo.time_to_exhaustion_s {
                let labels = [("service", service.service.as_str()), ("slo", &slo.slo)];
                out.sample("sloguard_slo_time_to_exhaustion_seconds", &labels, tte);
            }
        }
    }
    out.family("sloguard_slo_alert_firing", "gauge", "1 while the SLO's alert tier of this severity fires, else 0.");
    for service in &snapshot.services {
        for slo in &service.slos {
            for alert in &slo.alerts {
                let labels = [("service", service.service.as_str()), ("slo", &slo.slo), ("severity", alert.severity)];
                out.sample("sloguard_slo_alert_firing", &labels, f64::from(u8::from(alert.firing)));
            }
        }
    }
    out.family(
        "sloguard_service_frozen",
        "gauge",
        "1 while the service's deploys are frozen by its error-budget policy.",
    );
    for service in &snapshot.services {
        out.sample("sloguard_service_frozen", &[("service", &service.service)], f64::from(u8::from(service.frozen)));
    }
    out.family(
        "sloguard_gate_decision",
        "gauge",
        "1 for the deploy gate's current answer (no change class, overrides applied), 0 for the other two.",
    );
    for (service, &decision) in snapshot.services.iter().zip(decisions) {
        for d in Decision::ALL {
            let labels = [("service", service.service.as_str()), ("decision", d.as_str())];
            out.sample("sloguard_gate_decision", &labels, f64::from(u8::from(d == decision)));
        }
    }

    out.family("sloguard_source_up", "gauge", "1 if the last fetch from the source succeeded and parsed cleanly.");
    for s in &snapshot.sources {
        out.sample("sloguard_source_up", &[("source", &s.source), ("kind", s.kind)], f64::from(u8::from(s.up)));
    }
    out.family(
        "sloguard_source_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the source's last successful fetch.",
    );
    for s in &snapshot.sources {
        if let Some(t) = s.last_success {
            out.sample("sloguard_source_last_success_timestamp_seconds", &[("source", &s.source)], t as f64 / 1000.0);
        }
    }
    out.family("sloguard_source_fetch_duration_seconds", "gauge", "Duration of the source's last fetch.");
    for s in &snapshot.sources {
        if let Some(d) = s.last_duration_s {
            out.sample("sloguard_source_fetch_duration_seconds", &[("source", &s.source)], d);
        }
    }
    out.family("sloguard_source_samples", "gauge", "Samples in the source's last successful fetch.");
    for s in &snapshot.sources {
        out.sample("sloguard_source_samples", &[("source", &s.source)], s.n_samples as f64);
    }
    for (name, help, value) in [
        (
            "sloguard_source_fetches_total",
            "Fetch attempts per source.",
            (|s: &crate::status::SourceHealth| s.n_attempts) as fn(&_) -> u64,
        ),
        ("sloguard_source_failures_total", "Failed fetches per source (down, refused, malformed).", |s| s.n_failures),
        ("sloguard_source_parse_errors_total", "Malformed exposition lines per source.", |s| s.n_parse_errors),
    ] {
        out.family(name, "counter", help);
        for s in &snapshot.sources {
            out.sample(name, &[("source", &s.source)], value(s) as f64);
        }
    }

    out.family(
        "sloguard_source_samples_rejected_total",
        "counter",
        "Counter samples left out per source because they were NaN, +Inf, -Inf or negative.",
    );
    for s in &snapshot.sources {
        for (reason, n) in &s.n_samples_rejected {
            out.sample(
                "sloguard_source_samples_rejected_total",
                &[("source", &s.source), ("reason", reason)],
                *n as f64,
            );
        }
    }

    out.family(
        "sloguard_slo_groups_refused_total",
        "counter",
        "New groups of a grouped SLO refused because it had max_groups instances.",
    );
    for (service, slo, n) in &snapshot.groups_refused {
        out.sample("sloguard_slo_groups_refused_total", &[("service", service), ("slo", slo)], *n as f64);
    }

    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    out.family("sloguard_evaluations_total", "counter", "Evaluation rounds completed.");
    out.sample("sloguard_evaluations_total", &[], load(&stats.n_evaluations));
    out.family(
        "sloguard_evaluation_duration_seconds",
        "gauge",
        "Wall time of the last evaluation round (all SLOs, commit, snapshot).",
    );
    out.sample("sloguard_evaluation_duration_seconds", &[], load(&stats.last_evaluation_micros) / 1e6);
    out.family("sloguard_evaluation_timestamp_seconds", "gauge", "Instant of the evaluation this page reflects.");
    out.sample("sloguard_evaluation_timestamp_seconds", &[], snapshot.at as f64 / 1000.0);
    out.family(
        "sloguard_config_reload_success",
        "gauge",
        "1 if the last reload applied (or none was tried), 0 if it was rejected.",
    );
    out.sample(
        "sloguard_config_reload_success",
        &[],
        f64::from(u8::from(stats.config_reload_success.load(Ordering::Relaxed))),
    );
    out.family("sloguard_config_reload_failures_total", "counter", "Reloads rejected for invalid config or specs.");
    out.sample("sloguard_config_reload_failures_total", &[], load(&stats.n_reload_failures));
    out.family("sloguard_store_failures_total", "counter", "Failed store commits or saves (retried).");
    out.sample("sloguard_store_failures_total", &[], load(&stats.n_store_failures));
    out.family("sloguard_uncommitted_events", "gauge", "Events evaluated but not yet durable (store failing).");
    out.sample("sloguard_uncommitted_events", &[], load(&stats.n_pending_events));
    out.family("sloguard_series", "gauge", "Series held in memory, across sources.");
    out.sample("sloguard_series", &[], load(&stats.n_series));
    out.family(
        "sloguard_series_forgotten_total",
        "counter",
        "Series forgotten after five minutes without a sample (a churning label's old values).",
    );
    out.sample("sloguard_series_forgotten_total", &[], load(&stats.n_series_forgotten));
    render_notify(&mut out, &stats.notify);
    let name = "sloguard_http_request_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time from a request reaching its route to its response being ready, per route (the path template).",
    );
    for (route, histogram) in stats.requests.per_route() {
        out.histogram(name, &[("route", route)], &histogram);
    }
    out.family("sloguard_http_connections", "gauge", "Open API connections (capped by api.max_connections).");
    out.sample("sloguard_http_connections", &[], stats.connections.open() as f64);
    let name = "sloguard_http_connections_closed_total";
    out.family(
        name,
        "counter",
        "API connections closed, per reason (client, header_timeout, body_timeout, idle, evicted, ...).",
    );
    for (reason, n_closed) in stats.connections.closed() {
        out.sample(name, &[("reason", reason)], n_closed as f64);
    }
    out.text
}

/// The delivery task's counters; `route_kind` is the transport (`slack`, `email`, ...).
/// The store's write health (see `store::health`), appended to [`render`]'s page.
pub fn render_store(health: &crate::store::HealthReport) -> String {
    let mut out = Families::default();
    out.family("sloguard_store_writable", "gauge", "1 if the store can make state durable, 0 while writes fail.");
    out.sample("sloguard_store_writable", &[], f64::from(u8::from(health.writable)));
    let name = "sloguard_store_write_failure";
    out.family(name, "counter", "Failed store writes and recovery probes, by part and reason, since the start.");
    for (part, reason, n) in &health.failures {
        out.sample(name, &[("part", part), ("reason", reason)], *n as f64);
    }
    out.text
}

fn render_notify(out: &mut Families, stats: &crate::notify::NotifyStats) {
    out.family("sloguard_outbox_depth", "gauge", "Notifications waiting in the outbox (queued or being retried).");
    out.sample("sloguard_outbox_depth", &[], stats.outbox_depth.load(Ordering::Relaxed) as f64);
    let counts: Vec<(&str, u64, u64)> = stats.per_route_kind().collect();
    out.family("sloguard_notifications_delivered_total", "counter", "Notifications delivered, per transport.");
    for (kind, delivered, _) in &counts {
        out.sample("sloguard_notifications_delivered_total", &[("route_kind", kind)], *delivered as f64);
    }
    out.family(
        "sloguard_notification_failures_total",
        "counter",
        "Failed delivery attempts, per transport (each is retried from the outbox).",
    );
    for (kind, _, failures) in &counts {
        out.sample("sloguard_notification_failures_total", &[("route_kind", kind)], *failures as f64);
    }
    let name = "sloguard_notification_delivery_seconds";
    out.family(name, "histogram", "Time from the decision (event or planned reminder) to confirmed delivery.");
    out.histogram(name, &[], &stats.latency());
}

#[derive(Default)]
struct Families {
    text: String,
}

impl Families {
    /// One histogram's `_bucket`, `_sum` and `_count` samples.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], Reading { buckets, sum }: &Reading) {
        let bucket_name = format!("{name}_bucket");
        for (bound, cumulative) in buckets {
            let le = if bound.is_infinite() { "+Inf".to_string() } else { bound.to_string() };
            let with_le: Vec<(&str, &str)> = labels.iter().copied().chain([("le", le.as_str())]).collect();
            self.sample(&bucket_name, &with_le, *cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, *sum);
        self.sample(&format!("{name}_count"), labels, buckets.last().map_or(0, |(_, count)| *count) as f64);
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(self.text, "{sep}{k}=\"{}\"", escape_label_value(v));
            }
            self.text.push('}');
        }
        // Rust prints infinities as `inf`; the exposition format spells them `+Inf`/`-Inf`.
        let _ = match value {
            v if v == f64::INFINITY => writeln!(self.text, " +Inf"),
            v if v == f64::NEG_INFINITY => writeln!(self.text, " -Inf"),
            v => writeln!(self.text, " {v}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_families_parse_and_carry_the_counts() {
        let stats = Stats::default();
        stats.notify.delivered("slack", 120);
        stats.notify.delivered("email", 4_000);
        stats.notify.failed("email");
        stats.notify.outbox_depth.store(3, Ordering::Relaxed);
        let text = render(&Snapshot::default(), &stats, &[]);
        let samples = crate::exposition::parse_strict(text.as_bytes()).expect("valid exposition");
        let value = |series: &str| samples.iter().find(|s| s.series == series).map(|s| s.value);
        assert_eq!(value("sloguard_outbox_depth"), Some(3.0));
        assert_eq!(value(r#"sloguard_notifications_delivered_total{route_kind="slack"}"#), Some(1.0));
        assert_eq!(value(r#"sloguard_notification_failures_total{route_kind="email"}"#), Some(1.0));
        assert_eq!(value(r#"sloguard_notification_failures_total{route_kind="pagerduty"}"#), Some(0.0));
        assert_eq!(value(r#"sloguard_notification_delivery_seconds_bucket{le="0.25"}"#), Some(1.0));
        assert_eq!(value(r#"sloguard_notification_delivery_seconds_bucket{le="+Inf"}"#), Some(2.0));
        assert_eq!(value("sloguard_notification_delivery_seconds_count"), Some(2.0));
        assert_eq!(value("sloguard_notification_delivery_seconds_sum"), Some(4.12));
    }
}
