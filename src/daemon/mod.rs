//! The live driver: `sloguard run`. Polls sources, feeds the engine with the real clock,
//! commits transitions to the store before publishing them, and serves the read model.
//!
//! Owns the daemon's tasks and their lifecycle (start-up order, reload, shutdown). The engine
//! stays pure: only the core task touches it, and it never waits on a scrape. The API reads
//! snapshots and never touches the engine or waits on the store for a gate decision.
//!
//! Start-up order: specs and config were validated by the caller; then the store is opened and
//! restored, Prometheus-backed SLOs are backfilled, the listener is bound, and only then is the
//! daemon ready (`/readyz`, systemd READY=1). Notification delivery and budget reports start
//! after ready; at shutdown delivery stops first (an attempt under way may finish within the
//! grace period), then the final flush.

mod governance;
mod sources;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{error, info, warn};

use crate::clock::{Clock, MINUTE, Millis, duration_millis, rfc3339};
use crate::config::DaemonConfig;
use crate::engine::{Engine, EngineOptions, Event, SeriesRecord, Serves, Transition, WindowRecord};
use crate::exposition;
use crate::notify::{self, Deliverer, NotifyStats, OutboxItem, ReportDeps, Settings, Transports};
use crate::policy::Decision;
use crate::prometheus::SeriesPoints;
use crate::spec::{ServiceSpec, SpecErrors};
use crate::status::{Snapshot, SourceHealth};
use crate::store::{self, Store, StoreError};
pub use governance::{Command, CoreGone, Governance, TokenCheck};
use sources::{Fetched, Payload, PlanKind, SourcePlan};

/// A series silent for longer than this restarts from its next sample: time sloguard (or the
/// target) was down reads as no data, not as one burst at restart. Five minutes is Prometheus'
/// staleness lookback, so series Prometheus would call stale are treated the same way.
pub const MAX_SAMPLE_GAP: Millis = 5 * MINUTE;

/// Resolution of the start-up backfill from a query API: the finest window level is one minute,
/// so a finer step would add load without adding precision.
const BACKFILL_STEP: Duration = Duration::from_secs(60);

/// Resolution of the extra backfill query over the last [`BACKFILL_STEP`], made only when a
/// series is younger than one step: the coarse grid then holds a single point of it, a baseline
/// without an increase. One second is the finest interval a source may have; a step finer than
/// the server's scrape interval only repeats values, which the engine ignores.
const BACKFILL_TAIL_STEP: Duration = Duration::from_secs(1);

/// Longest the backfill (from all servers) may take before the daemon starts without the rest of
/// it (those SLOs then start empty, which reads as no data, never as good).
const BACKFILL_TIMEOUT: Duration = Duration::from_secs(120);

/// How often old events are pruned; retention is in days, so hourly is plenty.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Fetch results queued between source tasks and the core before sources wait.
const INGEST_QUEUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened or read at start-up.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound (in use, or not permitted).
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The HTTP server failed while running.
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// Re-reads config and specs on SIGHUP; injected so tests can reload without files.
pub type Reloader = Box<dyn Fn() -> Result<(DaemonConfig, Vec<ServiceSpec>), SpecErrors> + Send>;

/// What the core shares with the API: the latest snapshot, readiness, the store (for the event
/// and audit logs), the wall clock, governance state (overrides, corrections, the token) and
/// counters for `/metrics`.
pub struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    ready: AtomicBool,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub governance: Governance,
    pub stats: Stats,
}

/// Daemon-level counters exported on `/metrics`.
#[derive(Default)]
pub struct Stats {
    pub n_evaluations: AtomicU64,
    pub last_evaluation_micros: AtomicU64,
    pub config_reload_success: AtomicBool,
    pub n_reload_failures: AtomicU64,
    pub last_reload: AtomicI64,
    pub n_store_failures: AtomicU64,
    pub n_pending_events: AtomicU64,
    /// Series the engine holds, and those it forgot after `MAX_SAMPLE_GAP` without a sample.
    pub n_series: AtomicU64,
    pub n_series_forgotten: AtomicU64,
    /// Written by the delivery task.
    pub notify: Arc<NotifyStats>,
    /// Written by the API.
    pub requests: crate::api::RequestStats,
    /// Written by the API's connection tasks.
    pub connections: Arc<crate::api::ConnectionStats>,
}

impl Shared {
    /// Not ready, with an empty snapshot until the core publishes one.
    pub fn new(store: Store, clock: Arc<dyn Clock>, governance: Governance) -> Shared {
        Shared {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            ready: AtomicBool::new(false),
            store,
            clock,
            governance,
            stats: Stats { config_reload_success: AtomicBool::new(true), ..Stats::default() },
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("snapshot lock").clone()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Swaps in a new snapshot. The core publishes after every evaluation; tests and benches
    /// publish hand-built ones.
    pub fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().expect("snapshot lock") = Arc::new(snapshot);
    }
}

/// Runs the daemon until `shutdown` resolves; SIGHUP-style reloads arrive on `reloads`.
pub async fn run(
    config: DaemonConfig,
    specs: Vec<ServiceSpec>,
    clock: Arc<dyn Clock>,
    reloader: Reloader,
    mut reloads: mpsc::Receiver<()>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slo_ids = specs.iter().flat_map(|s| s.slos.iter().map(move |slo| format!("{}/{}", s.service, slo.name)));
    let splits = store::split_points(slo_ids, cores);
    // The store loads while the engine is built: both take hundreds of milliseconds at 10,000
    // SLOs, and a restart is ready only after both.
    let (mut engine, loading) = std::thread::scope(|scope| {
        let loading = scope.spawn(|| -> Result<_, DaemonError> {
            let store = Store::open(&config.data_dir)?;
            let opened = started.elapsed();
            let restored = store.load_split(&splits)?;
            Ok((store, opened, restored))
        });
        (Engine::new(&specs, engine_options()), loading.join().expect("the store load panicked"))
    });
    let (store, opened, restored) = loading?;
    let loaded = started.elapsed();
    let report = engine.restore(restored);
    info!(
        windows = report.n_windows,
        transitions = report.n_transitions,
        series = report.n_series,
        discarded = ?report.discarded,
        open_ms = opened.as_millis() as u64,
        load_ms = (loaded - opened).as_millis() as u64,
        restore_ms = (started.elapsed() - loaded).as_millis() as u64,
        "state restored from {}",
        config.data_dir.display()
    );
    let n_queued = store.outbox_depth();
    if n_queued > 0 {
        info!("{n_queued} notification(s) queued before the restart will be delivered once ready");
    }
    let overrides = store.overrides()?;
    let corrections = store.corrections()?;
    governance::apply_corrections(&mut engine, &corrections);
    let last_decisions = store.gate_decisions()?;
    let plans = sources::plan(&specs);
    backfill(&mut engine, &specs, &plans, clock.now()).await;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Bind { addr: config.listen, source })?;
    let local = listener.local_addr().map_err(|source| DaemonError::Bind { addr: config.listen, source })?;
    let (commands_tx, mut commands) = mpsc::unbounded_channel();
    let governance = Governance::new(config.api.token.as_ref(), overrides, corrections, commands_tx);
    let shared = Arc::new(Shared::new(store.clone(), clock.clone(), governance));
    let (stop_api, api_stopped) = watch::channel(false);
    let api = spawn_api(listener, shared.clone(), config.api.limits, api_stopped);
    info!("listening on http://{local}");

    let (tx, rx) = mpsc::channel(INGEST_QUEUE);
    let wake = Arc::new(Notify::new());
    let (notify_settings, settings_rx) = watch::channel(Settings::from_config(&config));
    let report_deps = ReportDeps {
        store: store.clone(),
        clock: clock.clone(),
        snapshot: {
            let shared = shared.clone();
            Arc::new(move || shared.snapshot())
        },
        public_url: config.public_url.clone(),
        wake: wake.clone(),
    };
    let mut core = Core {
        health: health_for(&plans, &[]),
        tasks: sources::spawn_all(&plans, 0, clock.clone(), tx.clone()),
        plans,
        generation: 0,
        engine,
        specs,
        config,
        store,
        shared: shared.clone(),
        clock,
        tx,
        pending_events: Vec::new(),
        pending_items: Vec::new(),
        pending_transitions: Vec::new(),
        pending_windows: Vec::new(),
        pending_series: Vec::new(),
        groups_refused: BTreeMap::new(),
        last_decisions,
        wake: wake.clone(),
        notify_settings,
        reports: None,
        report_deps,
    };
    core.evaluate().await;
    shared.ready.store(true, Ordering::Release);
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    info!("ready: {} service(s), {} source(s)", core.specs.len(), core.plans.len());
    let (stop_delivery, delivery_stopped) = watch::channel(false);
    let deliverer = Deliverer::new(
        core.store.clone(),
        core.clock.clone(),
        Transports::from_config(&core.config.notifiers),
        core.config.delivery.clone(),
        shared.stats.notify.clone(),
    );
    let delivery = tokio::spawn(notify::run(deliverer, settings_rx, wake, delivery_stopped));
    core.schedule_reports().await;

    core.run(rx, &mut commands, &mut reloads, reloader, shutdown).await;

    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    shared.ready.store(false, Ordering::Release);
    let grace = core.config.shutdown_grace;
    core.stop_reports().await;
    let _ = stop_delivery.send(true);
    if tokio::time::timeout(grace, delivery).await.is_err() {
        warn!(
            "a notification attempt was still under way after {grace:?}; it stays queued and is retried at the next start"
        );
    }
    for task in core.tasks.drain(..) {
        task.abort();
    }
    if tokio::time::timeout(grace, core.flush_all()).await.is_err() {
        error!("final flush did not finish within {grace:?}; at most one flush interval of samples is lost");
    }
    let _ = stop_api.send(true);
    match tokio::time::timeout(grace, api).await {
        Ok(Ok(Err(e))) => return Err(DaemonError::Serve(e)),
        Err(_) => warn!("HTTP connections still open after {grace:?}; closing"),
        _ => {}
    }
    info!("stopped");
    Ok(())
}

fn engine_options() -> EngineOptions {
    EngineOptions { max_sample_gap: Some(MAX_SAMPLE_GAP) }
}

fn spawn_api(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    limits: crate::config::ApiLimits,
    stop: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(crate::api::serve(listener, shared, limits, stop))
}

/// Fills the SLO windows of Prometheus-backed services from `query_range`, so a fresh start (or
/// a restart after downtime) does not begin blind. Bounded by [`BACKFILL_TIMEOUT`] in all, and a
/// server that fails as if down (unreachable, timing out, 5xx) is not asked again: the
/// remaining selectors would each wait out the same timeout before the daemon is ready.
///
/// One range per server, from the earliest instant any of its services lacks, with every
/// selector of every service on it: all points are then fed in time order, so a series that
/// several SLOs share feeds each of them once and at its own instant. [`Engine::backfill`] skips,
/// per SLO, whatever lies at or before what that SLO already held, so nothing counts twice.
async fn backfill(engine: &mut Engine, specs: &[ServiceSpec], plans: &[SourcePlan], now: Millis) {
    let deadline = Instant::now() + BACKFILL_TIMEOUT;
    for plan in plans {
        let PlanKind::Prometheus { selectors } = &plan.kind else { continue };
        let client = match sources::prom_client(plan) {
            Ok(client) => client,
            Err(e) => {
                warn!(source = %plan.url, "no backfill: {e}");
                continue;
            }
        };
        let start = specs
            .iter()
            .filter(|s| crate::status::source_urls(s).any(|u| u == plan.url))
            .filter_map(|s| engine.backfill_start(&s.service, now))
            .min();
        let Some(start) = start else { continue };
        let source = engine.source(&plan.url, Serves::Services(&plan.services));
        let started = Instant::now();
        let mut points: Vec<(Millis, crate::engine::SeriesId, f64)> = Vec::new();
        for selector in selectors {
            let range = |from, step| backfill_range(&client, plan, selector, from, now, step, deadline);
            let mut series = match range(start, BACKFILL_STEP).await {
                Ok(series) => series,
                Err(RangeFailure::Selector) => continue,
                Err(RangeFailure::Server) => break,
            };
            if series.iter().any(|s| s.points.len() < 2) {
                // Points both queries hold are equal, and the engine ignores the repeat.
                let tail_start = start.max(now - duration_millis(BACKFILL_STEP));
                match range(tail_start, BACKFILL_TAIL_STEP).await {
                    Ok(tail) => series.extend(tail),
                    Err(RangeFailure::Selector) => {}
                    Err(RangeFailure::Server) => break,
                }
            }
            for s in series {
                let (key, name) = series_key(&s);
                let id = engine.series(source, &key, &name, &s.labels[..]);
                points.extend(s.points.iter().map(|&(at, v)| (at, id, v)));
            }
        }
        // Stable: equal instants keep query order; a repeated (series, instant) is ignored.
        points.sort_by_key(|&(at, _, _)| at);
        engine.backfill(&points);
        info!(
            from = %rfc3339(start),
            n_points = points.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "backfilled from {}",
            plan.url
        );
    }
}

/// Why a backfill query returned nothing.
enum RangeFailure {
    /// This selector failed (bad selector, response too large): try the next one.
    Selector,
    /// The server looks down, or the deadline passed: stop asking it.
    Server,
}

/// One backfill range query, bounded by the backfill's `deadline`. Failures are logged;
/// the SLOs concerned start with less history, which reads as less data, never as good.
async fn backfill_range(
    client: &crate::prometheus::PromClient,
    plan: &SourcePlan,
    selector: &str,
    start: Millis,
    end: Millis,
    step: Duration,
    deadline: Instant,
) -> Result<Vec<SeriesPoints>, RangeFailure> {
    match tokio::time::timeout_at(deadline, client.query_range(selector, start, end, step)).await {
        Ok(Ok(series)) => Ok(series),
        Ok(Err(e)) if e.is_retryable() => {
            warn!(source = %plan.url, %selector, "backfill stopped, starting without the rest of it: {e}");
            Err(RangeFailure::Server)
        }
        Ok(Err(e)) => {
            warn!(source = %plan.url, %selector, "backfill failed: {e}");
            Err(RangeFailure::Selector)
        }
        Err(_) => {
            warn!(source = %plan.url, %selector, "backfill stopped after {BACKFILL_TIMEOUT:?}, starting without the rest of it");
            Err(RangeFailure::Server)
        }
    }
}

/// The series identity for query-API results: `name{label="value",...}` with labels sorted, as
/// stable across restarts as exposition text is for scrapes.
fn series_key(series: &SeriesPoints) -> (String, String) {
    let name = series.labels.iter().find(|(k, _)| k == "__name__").map(|(_, v)| v.clone()).unwrap_or_default();
    let labels: Vec<String> = series
        .labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| format!("{k}=\"{}\"", exposition::escape_label_value(v)))
        .collect();
    (format!("{name}{{{}}}", labels.join(",")), name)
}

fn health_for(plans: &[SourcePlan], previous: &[SourceHealth]) -> Vec<SourceHealth> {
    plans
        .iter()
        .map(|plan| {
            previous.iter().find(|h| h.source == plan.url).cloned().unwrap_or_else(|| SourceHealth {
                source: plan.url.clone(),
                kind: plan.kind.name(),
                ..SourceHealth::default()
            })
        })
        .collect()
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!("sd_notify: {e}");
    }
}

/// The task that owns the engine.
struct Core {
    engine: Engine,
    specs: Vec<ServiceSpec>,
    config: DaemonConfig,
    plans: Vec<SourcePlan>,
    health: Vec<SourceHealth>,
    tasks: Vec<JoinHandle<()>>,
    generation: u64,
    store: Store,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    tx: mpsc::Sender<Fetched>,
    /// Events evaluated but not yet committed (the store failed); retried every evaluation, and
    /// published only once committed.
    pending_events: Vec<Event>,
    /// Notifications planned but not yet committed, retried with `pending_events`.
    pending_items: Vec<OutboxItem>,
    /// Alert and freeze states not yet committed, retried with `pending_events` (later ones
    /// after earlier ones, so the latest state of each wins in the batch).
    pending_transitions: Vec<Transition>,
    /// Window pages and series values whose save failed; retried at the next flush.
    pending_windows: Vec<WindowRecord>,
    pending_series: Vec<SeriesRecord>,
    /// New groups refused for `max_groups`, per (service, grouped SLO id), since start.
    groups_refused: BTreeMap<(String, String), u64>,
    /// The gate decision last written to the audit log per service (see `governance`).
    last_decisions: HashMap<String, Decision>,
    /// Wakes the delivery task after a commit queued notifications.
    wake: Arc<Notify>,
    /// Notifier and delivery config for the delivery task, replaced on reload.
    notify_settings: watch::Sender<Settings>,
    /// The budget-report scheduler, when `reports:` lists any.
    reports: Option<tokio_cron_scheduler::JobScheduler>,
    report_deps: ReportDeps,
}

impl Core {
    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Fetched>,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        reloads: &mut mpsc::Receiver<()>,
        reloader: Reloader,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut evaluate = ticker(self.config.evaluation_interval);
        let mut flush = ticker(self.config.flush_interval);
        let mut prune = ticker(PRUNE_EVERY);
        let watchdog = sd_notify::watchdog_enabled();
        if let Some(period) = watchdog.filter(|p| *p < self.config.evaluation_interval * 2) {
            warn!("systemd watchdog {period:?} is shorter than twice the evaluation interval; expect restarts");
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    info!("shutting down");
                    return;
                }
                Some(()) = reloads.recv() => self.reload(&reloader).await,
                Some(command) = commands.recv() => self.command(command).await,
                _ = evaluate.tick() => {
                    self.evaluate().await;
                    if watchdog.is_some() {
                        notify_systemd(&[sd_notify::NotifyState::Watchdog]);
                    }
                }
                _ = flush.tick() => self.flush_all().await,
                _ = prune.tick() => self.prune(),
                Some(fetched) = rx.recv() => self.ingest(fetched),
            }
        }
    }

    fn ingest(&mut self, fetched: Fetched) {
        if fetched.generation != self.generation {
            return;
        }
        let plan = &self.plans[fetched.source];
        let health = &mut self.health[fetched.source];
        health.n_attempts += 1;
        health.last_attempt = Some(fetched.at);
        health.last_duration_s = Some(fetched.took.as_secs_f64());
        let source = self.engine.source(&plan.url, Serves::Services(&plan.services));
        let outcome = match fetched.result {
            Err(e) => Err(e),
            Ok(Payload::Exposition(body)) => {
                let parsed = exposition::parse_lenient(&body);
                health.n_parse_errors += parsed.errors.len() as u64;
                if let Some(first) = parsed.errors.first() {
                    // A half-broken page is no data: the lines lost might be exactly the error
                    // series, and counting the rest would read as "no errors".
                    Err(format!("{} malformed line(s), first: {first}; scrape ignored", parsed.errors.len()))
                } else if let Some(limit) = plan.sample_limit.filter(|&limit| parsed.samples.len() > limit) {
                    // As Prometheus does: a target over its limit is down, not half-counted.
                    Err(format!("{} samples, over the sample_limit of {limit}; scrape ignored", parsed.samples.len()))
                } else {
                    for s in &parsed.samples {
                        let id = self.engine.series(source, s.series, s.name, &s.labels);
                        self.engine.observe(id, fetched.at, s.value);
                    }
                    Ok(parsed.samples.len())
                }
            }
            Ok(Payload::Series(series)) => {
                let mut n_samples = 0;
                for s in &series {
                    let (key, name) = series_key(s);
                    let id = self.engine.series(source, &key, &name, &s.labels[..]);
                    for &(at, value) in &s.points {
                        self.engine.observe(id, at, value);
                        n_samples += 1;
                    }
                }
                Ok(n_samples)
            }
        };
        match outcome {
            Ok(n_samples) => {
                health.up = true;
                health.last_success = Some(fetched.at);
                health.last_error = None;
                health.n_samples = n_samples;
            }
            Err(e) => {
                if health.up || health.last_error.is_none() {
                    warn!(source = %plan.url, "source down: {e}");
                }
                health.up = false;
                health.n_failures += 1;
                health.last_error = Some(e);
            }
        }
    }

    /// Evaluates at the current instant, commits what changed with the notifications it causes,
    /// wakes delivery, then publishes.
    async fn evaluate(&mut self) {
        let started = Instant::now();
        let now = self.clock.now();
        let events = self.engine.evaluate(now);
        for event in &events {
            info!("{}", describe(event));
        }
        let transitions = self.engine.transitions_for(&events);
        self.account_groups();
        let forgotten = self.engine.forget_silent_series(now);
        self.shared.stats.n_series_forgotten.fetch_add(forgotten as u64, Ordering::Relaxed);
        self.shared.stats.n_series.store(self.engine.n_series() as u64, Ordering::Relaxed);
        let refused =
            self.groups_refused.iter().map(|((service, slo), &n)| (service.clone(), slo.clone(), n)).collect();
        let snapshot = Snapshot::build(now, &self.engine, &self.specs, self.health.clone(), refused);
        let mut items = notify::plan(&events, &self.specs, &self.config, &snapshot);
        items.extend(notify::repeat(&self.specs, &self.config, &snapshot));
        for item in items {
            // Repeats are planned every round; while the store fails, keep one of each.
            if !self.pending_items.iter().any(|pending| pending.key == item.key) {
                self.pending_items.push(item);
            }
        }
        self.pending_events.extend(events);
        if !transitions.is_empty() {
            // The windows a transition was decided on are saved before it: a restart must not
            // restore a firing alert beside counters from before its incident, which would
            // resolve it and page the same incident again under a new key.
            self.save_windows().await;
        }
        self.pending_transitions.extend(transitions);
        let stats = &self.shared.stats;
        let waiting =
            !self.pending_events.is_empty() || !self.pending_transitions.is_empty() || !self.pending_items.is_empty();
        // While the store cannot write, nothing is tried (it would fail the same way); `heal`
        // probes and, once the disk takes writes, reopens what failed.
        if waiting && self.store.heal().await {
            match self.store.commit(&self.pending_events, &self.pending_transitions, &self.pending_items).await {
                Ok(n_new) => {
                    self.pending_events.clear();
                    self.pending_transitions.clear();
                    self.pending_items.clear();
                    if n_new > 0 {
                        self.wake.notify_one();
                    }
                }
                Err(e) => {
                    // Everything waits in `pending_*` (event keys are content hashes, so a
                    // commit that half-happened is not doubled), and nothing is announced
                    // before it is durable.
                    stats.n_store_failures.fetch_add(1, Ordering::Relaxed);
                    error!("committing {} event(s) failed, will retry: {e}", self.pending_events.len());
                }
            }
        }
        stats.n_pending_events.store(self.pending_events.len() as u64, Ordering::Relaxed);
        self.shared.publish(snapshot);
        stats.n_evaluations.fetch_add(1, Ordering::Relaxed);
        stats.last_evaluation_micros.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.govern(now).await;
    }

    /// Reports the groups the engine refused and the counter samples it rejected since the last
    /// round (log, `/metrics`, the health of the source whose series asked), and drops the
    /// stored state of evicted groups.
    fn account_groups(&mut self) {
        for refusal in self.engine.take_refusals() {
            let warning = format!(
                "{}: new group refused, the SLO already has max_groups ({}) instances",
                refusal.group, refusal.max_groups
            );
            error!(source = %refusal.source, "{warning}");
            if let Some(health) = self.health.iter_mut().find(|h| h.source == refusal.source) {
                health.warn(warning);
            }
            *self.groups_refused.entry((refusal.service, refusal.slo)).or_default() += 1;
        }
        let (rejections, counts) = self.engine.take_rejections();
        for rejection in rejections {
            let warning = format!(
                "{:?}: a {} sample is not a counter value; left out until a valid one",
                rejection.series, rejection.reason
            );
            warn!(source = %rejection.source, "{warning}");
            if let Some(health) = self.health.iter_mut().find(|h| h.source == rejection.source) {
                health.warn(warning);
            }
        }
        for (source, reason, n) in counts {
            if let Some(health) = self.health.iter_mut().find(|h| h.source == source) {
                *health.n_samples_rejected.entry(reason).or_default() += n;
            }
        }
        let evicted = self.engine.take_evicted();
        if !evicted.is_empty() {
            info!("{} group(s) without a sample for a whole window removed: {}", evicted.len(), evicted.join(", "));
            if let Err(e) = self.store.forget_instances(&evicted) {
                // Harmless if left: a restart restores such a group and evicts it again.
                warn!("dropping the state of removed groups failed: {e}");
            }
        }
    }

    /// Saves state, and evaluates again if events are still waiting to be committed.
    async fn flush_all(&mut self) {
        self.save_windows().await;
        if !self.pending_events.is_empty() || !self.pending_transitions.is_empty() {
            self.evaluate().await;
        }
    }

    /// Saves changed window pages and series last values; failed saves are retried next time.
    /// When the store asks for it (its log outgrew the live state), saves everything instead.
    async fn save_windows(&mut self) {
        if !self.store.heal().await {
            // Exported pages would only wait in `pending_windows`; the engine keeps them dirty.
            return;
        }
        let full = self.store.wants_full_save();
        if full {
            self.engine.mark_all_dirty();
            self.pending_windows.clear();
            self.pending_series.clear();
        }
        let mut windows = std::mem::take(&mut self.pending_windows);
        windows.extend(self.engine.export_windows());
        let mut series = std::mem::take(&mut self.pending_series);
        series.extend(self.engine.export_series());
        let saved =
            if full { self.store.save_full(&windows, &series).await } else { self.store.save(&windows, &series).await };
        if let Err(e) = saved {
            self.shared.stats.n_store_failures.fetch_add(1, Ordering::Relaxed);
            error!("saving state failed, will retry: {e}");
            self.pending_windows = windows;
            self.pending_series = series;
        }
    }

    fn prune(&mut self) {
        let before = self.clock.now() - duration_millis(self.config.event_retention);
        match self.store.prune_events(before) {
            Ok(0) => {}
            Ok(n) => info!("pruned {n} event(s) older than {}", rfc3339(before)),
            Err(e) => warn!("pruning events failed: {e}"),
        }
        match self.store.prune_audit(before) {
            Ok(0) => {}
            Ok(n) => info!("pruned {n} audit entr(ies) older than {}", rfc3339(before)),
            Err(e) => warn!("pruning the audit log failed: {e}"),
        }
        // Sent markers live as long as events: a resolve still finds its page's receipt.
        match self.store.prune_sent(before) {
            Ok(0) => {}
            Ok(n) => info!("pruned {n} sent-notification marker(s) older than {}", rfc3339(before)),
            Err(e) => warn!("pruning sent markers failed: {e}"),
        }
    }

    /// Starts the budget-report jobs of the current config; a bad schedule is logged and the
    /// daemon runs without reports rather than not at all.
    async fn schedule_reports(&mut self) {
        self.report_deps.public_url = self.config.public_url.clone();
        match notify::schedule_reports(&self.config.reports, self.report_deps.clone()).await {
            Ok(scheduler) => self.reports = scheduler,
            Err(e) => error!("budget reports disabled: {e}"),
        }
    }

    async fn stop_reports(&mut self) {
        if let Some(mut scheduler) = self.reports.take()
            && let Err(e) = scheduler.shutdown().await
        {
            warn!("stopping the report scheduler: {e}");
        }
    }

    /// Swaps in new config and specs if they all validate; otherwise keeps the running set.
    async fn reload(&mut self, reloader: &Reloader) {
        let shared = self.shared.clone();
        let stats = &shared.stats;
        stats.last_reload.store(self.clock.now(), Ordering::Relaxed);
        let (config, specs) = match reloader() {
            Ok(loaded) => loaded,
            Err(errors) => {
                for e in &errors.0 {
                    error!("reload rejected: {e}");
                }
                stats.config_reload_success.store(false, Ordering::Relaxed);
                stats.n_reload_failures.fetch_add(1, Ordering::Relaxed);
                warn!("reload failed with {} error(s); still running the previous specs", errors.0.len());
                return;
            }
        };
        if config.listen != self.config.listen || config.data_dir != self.config.data_dir {
            warn!("listen and data_dir changes take effect after a restart");
        }
        if config.api.limits != self.config.api.limits {
            warn!("api connection limits (timeouts, max_connections, max_body_size) take effect after a restart");
        }
        // Persist first, so counters the new engine drops are at least on disk until pruned.
        self.flush_all().await;
        let old = std::mem::replace(&mut self.engine, Engine::new(&[], engine_options()));
        self.engine = old.reload(&specs, engine_options());
        governance::apply_corrections(&mut self.engine, &self.shared.governance.all_corrections());
        self.shared.governance.set_token(config.api.token.as_ref());
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.generation += 1;
        let plans = sources::plan(&specs);
        backfill(&mut self.engine, &specs, &plans, self.clock.now()).await;
        self.health = health_for(&plans, &self.health);
        self.tasks = sources::spawn_all(&plans, self.generation, self.clock.clone(), self.tx.clone());
        self.plans = plans;
        let reports_changed = config.reports != self.config.reports || config.public_url != self.config.public_url;
        let mut config = config;
        // What runs, not what the file says: these need a restart.
        config.api.limits = self.config.api.limits;
        self.config = DaemonConfig { listen: self.config.listen, data_dir: self.config.data_dir.clone(), ..config };
        self.specs = specs;
        self.notify_settings.send_if_modified(|settings| {
            let new = Settings::from_config(&self.config);
            let changed = *settings != new;
            *settings = new;
            changed
        });
        if reports_changed {
            self.stop_reports().await;
            self.schedule_reports().await;
        }
        stats.config_reload_success.store(true, Ordering::Relaxed);
        info!("reloaded: {} service(s), {} source(s)", self.specs.len(), self.plans.len());
        self.evaluate().await;
    }
}

/// One log line per state change, readable without the JSON.
fn describe(event: &Event) -> String {
    use crate::engine::EventKind;
    match &event.kind {
        EventKind::AlertFiring(a) | EventKind::AlertResolved(a) => format!(
            "{} {} {}: burn {} over {} / {} over {} (factor {}), budget left {}",
            a.slo,
            a.severity,
            event.name(),
            a.condition.long_burn.map_or("-".into(), |b| format!("{b:.1}x")),
            a.condition.long,
            a.condition.short_burn.map_or("-".into(), |b| format!("{b:.1}x")),
            a.condition.short,
            a.condition.factor,
            crate::policy::percent(a.budget_remaining),
        ),
        EventKind::Freeze(f) => {
            let by: Vec<&str> = f.frozen_by.iter().map(|b| b.slo.as_str()).collect();
            format!("{} freeze: budget exhausted by {}", f.service, by.join(", "))
        }
        EventKind::Unfreeze(f) => {
            format!("{} unfreeze: every SLO above {}", f.service, crate::policy::percent(Some(f.unfreeze_above)))
        }
        EventKind::NoData(n) => format!("{} no_data: no sample since {}", n.slo, crate::clock::rfc3339(n.since)),
        EventKind::DataReturned(n) => {
            format!("{} data_returned (silent since {})", n.slo, crate::clock::rfc3339(n.since))
        }
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}
