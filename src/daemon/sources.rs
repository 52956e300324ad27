//! Source tasks: one per scrape target and one per Prometheus server. Each fetches on its own
//! interval and sends what it got (or why it failed) to the core; none of them touches the
//! engine, so a slow target can never stall evaluation.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::clock::{Clock, Millis};
use crate::prometheus::{PromClient, PromConfig, PromError, SeriesPoints};
use crate::scrape::Scraper;
use crate::spec::{HttpOptions, ServiceSpec, Source};

/// What one fetch produced, tagged with the generation of the source set that sent it, so
/// messages from tasks stopped by a reload are recognised and dropped.
pub(super) struct Fetched {
    pub generation: u64,
    pub source: usize,
    /// When the fetch started: the instant its samples are attributed to.
    pub at: Millis,
    pub took: Duration,
    pub result: Result<Payload, String>,
}

pub(super) enum Payload {
    Exposition(Vec<u8>),
    Series(Vec<SeriesPoints>),
}

/// One source to poll, after merging specs that share a URL.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SourcePlan {
    pub url: String,
    /// The services that list this source, in spec order: the only ones its series may feed.
    pub services: Vec<String>,
    pub kind: PlanKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub http: HttpOptions,
    /// A scrape with more samples is refused (scrape sources only).
    pub sample_limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum PlanKind {
    Scrape,
    /// The selectors to query on this server, from every SLO that reads from it.
    Prometheus {
        selectors: Vec<String>,
    },
}

impl PlanKind {
    pub fn name(&self) -> &'static str {
        match self {
            PlanKind::Scrape => "scrape",
            PlanKind::Prometheus { .. } => "prometheus",
        }
    }
}

/// Every distinct source the specs name. A URL named by several services is polled once, with
/// the first service's interval and HTTP options (specs are sorted by file name), and feeds each
/// of those services.
pub(super) fn plan(specs: &[ServiceSpec]) -> Vec<SourcePlan> {
    let mut plans: Vec<SourcePlan> = Vec::new();
    for spec in specs {
        match &spec.source {
            Some(Source::Scrape(scrape)) => {
                for url in &scrape.targets {
                    let index = match plans.iter().position(|p| &p.url == url) {
                        Some(i) => i,
                        None => {
                            plans.push(SourcePlan {
                                url: url.clone(),
                                services: Vec::new(),
                                kind: PlanKind::Scrape,
                                interval: scrape.interval,
                                timeout: scrape.timeout,
                                http: scrape.http.clone(),
                                sample_limit: scrape.sample_limit,
                            });
                            plans.len() - 1
                        }
                    };
                    serve(&mut plans[index], &spec.service);
                }
            }
            Some(Source::Prometheus(prom)) => {
                let index = match plans.iter().position(|p| p.url == prom.url) {
                    Some(i) => i,
                    None => {
                        plans.push(SourcePlan {
                            url: prom.url.clone(),
                            services: Vec::new(),
                            kind: PlanKind::Prometheus { selectors: Vec::new() },
                            interval: prom.interval,
                            timeout: prom.timeout,
                            http: prom.http.clone(),
                            sample_limit: None,
                        });
                        plans.len() - 1
                    }
                };
                serve(&mut plans[index], &spec.service);
                if let PlanKind::Prometheus { selectors } = &mut plans[index].kind {
                    for selector in spec_selectors(spec) {
                        if !selectors.contains(&selector) {
                            selectors.push(selector);
                        }
                    }
                }
            }
            None => {}
        }
    }
    plans
}

fn serve(plan: &mut SourcePlan, service: &str) {
    if !plan.services.iter().any(|s| s == service) {
        plan.services.push(service.to_string());
    }
}

/// The selector texts of every SLI in a spec.
pub(super) fn spec_selectors(spec: &ServiceSpec) -> Vec<String> {
    spec.slos.iter().flat_map(|slo| slo.sli.selectors().into_iter().map(|s| s.as_str().to_string())).collect()
}

pub(super) fn prom_client(plan: &SourcePlan) -> Result<PromClient, PromError> {
    PromClient::new(PromConfig { url: plan.url.clone(), timeout: plan.timeout, http: plan.http.clone() })
}

/// Starts one polling task per plan. A plan whose client cannot be built (bad TLS file, say)
/// reports that error on every tick, so it shows as a down source rather than vanishing.
pub(super) fn spawn_all(
    plans: &[SourcePlan],
    generation: u64,
    clock: std::sync::Arc<dyn Clock>,
    tx: mpsc::Sender<Fetched>,
) -> Vec<JoinHandle<()>> {
    plans
        .iter()
        .enumerate()
        .map(|(source, plan)| {
            let poller = Poller::new(plan);
            let (plan, clock, tx) = (plan.clone(), clock.clone(), tx.clone());
            tokio::spawn(async move {
                let mut ticker =
                    tokio::time::interval_at(Instant::now() + spread(&plan.url, plan.interval), plan.interval);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let at = clock.now();
                    let started = Instant::now();
                    let result = poller.poll(&plan).await;
                    let fetched = Fetched { generation, source, at, took: started.elapsed(), result };
                    if tx.send(fetched).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect()
}

enum Poller {
    Scrape(Scraper),
    Prometheus(PromClient),
    Broken(String),
}

impl Poller {
    fn new(plan: &SourcePlan) -> Poller {
        let built = match &plan.kind {
            PlanKind::Scrape => Scraper::new(&plan.http, plan.timeout).map(Poller::Scrape).map_err(|e| e.to_string()),
            PlanKind::Prometheus { .. } => prom_client(plan).map(Poller::Prometheus).map_err(|e| e.to_string()),
        };
        built.unwrap_or_else(Poller::Broken)
    }

    async fn poll(&self, plan: &SourcePlan) -> Result<Payload, String> {
        match (self, &plan.kind) {
            (Poller::Scrape(scraper), _) => {
                scraper.scrape(&plan.url).await.map(Payload::Exposition).map_err(|e| e.to_string())
            }
            (Poller::Prometheus(client), PlanKind::Prometheus { selectors }) => {
                let mut all = Vec::new();
                for selector in selectors {
                    all.extend(client.query_instant(selector, None).await.map_err(|e| e.to_string())?);
                }
                Ok(Payload::Series(all))
            }
            (Poller::Prometheus(_), PlanKind::Scrape) => unreachable!("poller built from its plan"),
            (Poller::Broken(why), _) => Err(why.clone()),
        }
    }
}

/// A stable offset within the interval per URL, so targets sharing an interval don't all fire
/// in the same millisecond (Prometheus spreads scrapes the same way, by hashing the target).
fn spread(url: &str, interval: Duration) -> Duration {
    let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let interval_ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(hash % interval_ms)
}
