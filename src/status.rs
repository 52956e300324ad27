//! The read model: an immutable snapshot of every service, SLO and source, built after each
//! evaluation and shared by the API and `/metrics`.
//!
//! Readers clone an `Arc` and never wait on the engine, a scrape or the store: this is what lets
//! the gate answer in microseconds. Owns no behaviour beyond building the snapshot.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::clock::{Millis, format_span};
use crate::engine::{Engine, Group};
use crate::spec::{Policy, ServiceSpec, Sli};

/// Everything the API and `/metrics` show, as of one evaluation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Instant of the evaluation this reflects.
    pub at: Millis,
    pub services: Vec<ServiceStatus>,
    /// Service name to index in `services`.
    pub by_name: HashMap<String, usize>,
    pub sources: Vec<SourceHealth>,
    /// New groups refused for `max_groups` since start, per grouped SLO (`service`, `service/name`).
    pub groups_refused: Vec<(String, String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub service: String,
    pub owner: Option<String>,
    pub frozen: bool,
    #[serde(with = "opt_rfc3339")]
    pub frozen_since: Option<Millis>,
    pub freeze_below: f64,
    pub unfreeze_above: f64,
    /// The gate warns while any SLO's budget is below this.
    pub warn_below: f64,
    /// Change classes that still pass a freeze.
    pub allow_during_freeze: Vec<String>,
    pub slos: Vec<SloStatus>,
    /// Indices into `Snapshot::sources` feeding this service.
    #[serde(skip)]
    pub source_indices: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SloStatus {
    /// `service/name`, or for one group of a grouped SLO `service/name{route="/pay"}`.
    pub slo: String,
    /// The SLO's name within its service, shared by all groups of a grouped SLO.
    pub name: String,
    /// A grouped SLO instance's label values (`group_by` order); absent for an ungrouped SLO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// Percent, as written in the spec (99.9).
    pub objective: f64,
    pub window: String,
    /// The SLO window in milliseconds, for arithmetic (corrections must overlap it).
    #[serde(skip)]
    pub window_ms: Millis,
    pub budget_remaining: Option<f64>,
    pub burn_rates: Vec<BurnRate>,
    pub alerts: Vec<AlertStatus>,
    pub time_to_exhaustion_s: Option<f64>,
    /// The current calendar period of a calendar budget, `[period_start, period_end)`; `null`
    /// for a rolling window.
    #[serde(with = "opt_rfc3339")]
    pub period_start: Option<Millis>,
    #[serde(with = "opt_rfc3339")]
    pub period_end: Option<Millis>,
    /// Seconds of data the budget window holds: from the later of its start and the first
    /// sample (`policy.min_coverage`).
    pub coverage_s: f64,
    /// The budget is spent to the freeze line, but the window is too young to freeze on it.
    pub freeze_held_back: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BurnRate {
    pub window: String,
    pub burn: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertStatus {
    pub severity: &'static str,
    pub firing: bool,
    #[serde(with = "opt_rfc3339")]
    pub since: Option<Millis>,
}

/// Health of one source (a scrape target or a Prometheus server), maintained by the daemon.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceHealth {
    /// The target URL or Prometheus base URL.
    pub source: String,
    pub kind: &'static str,
    /// The last attempt succeeded and parsed.
    pub up: bool,
    #[serde(with = "opt_rfc3339")]
    pub last_attempt: Option<Millis>,
    #[serde(with = "opt_rfc3339")]
    pub last_success: Option<Millis>,
    pub last_error: Option<String>,
    pub last_duration_s: Option<f64>,
    pub n_samples: usize,
    pub n_attempts: u64,
    pub n_failures: u64,
    /// Lines a lenient parse skipped, across all scrapes.
    pub n_parse_errors: u64,
    /// Counter samples left out as NaN, `+Inf`, `-Inf` or `negative`, by that reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub n_samples_rejected: BTreeMap<&'static str, u64>,
    /// What the source's series asked for and did not get (a group beyond `max_groups`, a
    /// counter sample that is not a counter value), the
    /// latest [`SourceHealth::MAX_WARNINGS`], oldest first.
    pub warnings: Vec<String>,
    /// What an SLI of a service reading this source needs and no series provides, as of the
    /// last evaluation: `no bucket le=0.3 for http_request_duration_seconds`.
    pub missing: Vec<String>,
}

impl SourceHealth {
    pub const MAX_WARNINGS: usize = 10;

    /// Adds a warning, dropping the oldest beyond [`SourceHealth::MAX_WARNINGS`].
    pub fn warn(&mut self, warning: String) {
        if self.warnings.len() == Self::MAX_WARNINGS {
            self.warnings.remove(0);
        }
        self.warnings.push(warning);
    }
}

impl SloStatus {
    /// The SLO's name within its service (`availability` for `checkout/availability` and for
    /// each of its groups).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl ServiceStatus {
    /// The SLO with the least budget left (an SLO without data ranks last).
    pub fn worst_slo(&self) -> Option<&SloStatus> {
        self.slos.iter().min_by(|a, b| {
            let key = |s: &SloStatus| s.budget_remaining.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        })
    }
}

impl Snapshot {
    /// Builds the snapshot from the engine's views, the specs (for owners) and source health.
    pub fn build(
        at: Millis,
        engine: &Engine,
        specs: &[ServiceSpec],
        sources: Vec<SourceHealth>,
        groups_refused: Vec<(String, String, u64)>,
    ) -> Snapshot {
        let mut services: Vec<ServiceStatus> = engine
            .service_views()
            .map(|view| {
                let policy: &Policy = view.policy();
                ServiceStatus {
                    service: view.name().to_string(),
                    owner: specs.iter().find(|s| s.service == view.name()).and_then(|s| s.owner.clone()),
                    frozen: view.frozen_since().is_some(),
                    frozen_since: view.frozen_since(),
                    freeze_below: policy.freeze_below,
                    unfreeze_above: policy.unfreeze_above,
                    warn_below: policy.warn_below,
                    allow_during_freeze: policy.allow_during_freeze.clone(),
                    slos: Vec::new(),
                    source_indices: Vec::new(),
                }
            })
            .collect();
        let mut by_name: HashMap<String, usize> =
            services.iter().enumerate().map(|(i, s)| (s.service.clone(), i)).collect();
        for view in engine.slo_views() {
            let Some(&i) = by_name.get(view.service()) else { continue };
            services[i].slos.push(SloStatus {
                slo: view.id().to_string(),
                name: view.name().to_string(),
                group: view.group(),
                objective: (view.objective() * 1e6).round() / 1e4,
                window: view.window_text(),
                window_ms: view.window(),
                budget_remaining: view.budget_remaining(),
                burn_rates: view.burn_rates().map(|(w, burn)| BurnRate { window: format_span(w), burn }).collect(),
                alerts: view
                    .alerts()
                    .map(|(severity, since)| AlertStatus {
                        severity: severity.as_str(),
                        firing: since.is_some(),
                        since,
                    })
                    .collect(),
                time_to_exhaustion_s: view.time_to_exhaustion_s(),
                period_start: view.period().map(|(start, _)| start),
                period_end: view.period().map(|(_, end)| end),
                coverage_s: view.coverage(at) as f64 / 1000.0,
                freeze_held_back: view.freeze_held_back(at),
            });
        }
        let mut sources = sources;
        for view in engine.slo_views().filter(|v| v.missing_good_series()) {
            let Some(spec) = specs.iter().find(|s| s.service == view.service()) else { continue };
            let Some(Sli::Latency { histogram, threshold, .. }) =
                spec.slos.iter().find(|s| s.name == view.name()).map(|s| &s.sli)
            else {
                continue;
            };
            let name = histogram.metric_name().unwrap_or(histogram.as_str());
            let message = format!("no bucket le={} for {name}", threshold.as_secs_f64());
            for source in sources.iter_mut().filter(|h| source_urls(spec).any(|u| u == h.source)) {
                if !source.missing.contains(&message) {
                    source.missing.push(message.clone());
                }
            }
        }
        for (i, source) in sources.iter().enumerate() {
            for spec in specs.iter().filter(|s| source_urls(s).any(|u| u == source.source)) {
                if let Some(&si) = by_name.get(&spec.service) {
                    services[si].source_indices.push(i);
                }
            }
        }
        services.sort_by(|a, b| a.service.cmp(&b.service));
        by_name = services.iter().enumerate().map(|(i, s)| (s.service.clone(), i)).collect();
        Snapshot { at, services, by_name, sources, groups_refused }
    }

    pub fn service(&self, name: &str) -> Option<&ServiceStatus> {
        self.by_name.get(name).map(|&i| &self.services[i])
    }

    pub fn sources_of<'a>(&'a self, service: &'a ServiceStatus) -> impl Iterator<Item = &'a SourceHealth> + 'a {
        service.source_indices.iter().map(|&i| &self.sources[i])
    }
}

/// The source URLs a spec reads from (target URLs or the Prometheus base URL).
pub fn source_urls(spec: &ServiceSpec) -> impl Iterator<Item = &str> {
    use crate::spec::Source;
    let urls: Vec<&str> = match &spec.source {
        Some(Source::Scrape(s)) => s.targets.iter().map(String::as_str).collect(),
        Some(Source::Prometheus(p)) => vec![p.url.as_str()],
        None => Vec::new(),
    };
    urls.into_iter()
}

/// Optional instants as RFC 3339 strings or `null`.
pub(crate) mod opt_rfc3339 {
    use serde::Serializer;

    use crate::clock::{Millis, rfc3339};

    pub fn serialize<S: Serializer>(at: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&rfc3339(*at)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineOptions, Serves};

    /// A latency SLI whose threshold has no bucket of its own reads as no data; the health of
    /// the service's source says which bucket is missing.
    #[test]
    fn a_latency_threshold_without_a_bucket_is_named_in_the_source_health() {
        let spec = crate::spec::parse_spec(
            std::path::Path::new("t.yaml"),
            "service: web\nslos:\n  - name: latency\n    objective: 99\n    window: 30d\n    sli:\n      \
             latency: { histogram: 'http_request_duration_seconds', threshold: 300ms }\n\
             source:\n  scrape:\n    targets: ['http://127.0.0.1:9/metrics']\n",
        )
        .expect("spec");
        let mut engine = Engine::new(std::slice::from_ref(&spec), EngineOptions::default());
        let source = engine.source("http://127.0.0.1:9/metrics", Serves::Every);
        let series = [
            ("http_request_duration_seconds_bucket", vec![("le".to_string(), "0.25".to_string())]),
            ("http_request_duration_seconds_count", vec![]),
        ];
        for (at, value) in [(60_000, 10.0), (120_000, 20.0)] {
            for (name, labels) in &series {
                let key = format!("{name}{labels:?}");
                let id = engine.series(source, &key, name, &labels[..]);
                engine.observe(id, at, value);
            }
            engine.evaluate(at);
        }
        let health = SourceHealth { source: "http://127.0.0.1:9/metrics".to_string(), ..SourceHealth::default() };
        let snapshot = Snapshot::build(120_000, &engine, &[spec], vec![health], Vec::new());
        assert_eq!(snapshot.sources[0].missing, ["no bucket le=0.3 for http_request_duration_seconds"]);
        assert_eq!(snapshot.services[0].slos[0].budget_remaining, None);
    }
}
