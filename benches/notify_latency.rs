//! Decision-to-delivery latency on loopback: for each of N incidents, a page event stamped
//! with the wall clock (the evaluation instant the daemon would stamp it with) is planned,
//! committed to a real store with its outbox items, and the delivery task is woken, as the
//! daemon's core does; latency is the receipt time at the receiver minus the event's `at`.
//! Receivers: the aiosmtpd sink of the integration tests and an in-process stand-in for
//! Slack's Web API. Prints p50/p90/p99/max per transport; asserts nothing about timing.
//!
//!     cargo bench --bench notify_latency            # N = 200 incidents, ~10 s
//!     cargo bench --bench notify_latency -- 1000    # more incidents
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a few incidents as a smoke
//! test, as criterion benches do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sloguard::clock::{Clock, Millis, SystemClock};
use sloguard::config::{DaemonConfig, Delivery, EmailNotifier, EmailTls, Notifiers, SlackNotifier};
use sloguard::engine::{AlertChange, ConditionReport, Event, EventKind};
use sloguard::notify::{self, Deliverer, NotifyStats, Settings, Transports};
use sloguard::spec::{NotifyRoutes, Route, Secret, parse_spec};
use sloguard::status::Snapshot;
use sloguard::store::Store;

/// Default incident count: enough for a stable p99, short enough to run in seconds.
const DEFAULT_INCIDENTS: usize = 200;
/// Incidents when run as a test: proves the path works without the bench's run time.
const SMOKE_INCIDENTS: usize = 3;
/// Bound on one incident's delivery; far above loopback latency.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    // `cargo bench` passes `--bench`; a number sets the incident count.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let default = if args.iter().any(|a| a == "--bench") { DEFAULT_INCIDENTS } else { SMOKE_INCIDENTS };
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(default);
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Delivery failures are what explain a slow or missing receipt; warnings go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLOGUARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run(n));
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let smtp_port = free_port();
    let mail_log = dir.path().join("mail.jsonl");
    let _sink = Sink(start_sink(smtp_port, &mail_log));
    let (slack_url, slack_receipts) = start_slack().await;

    let store = Store::open(&dir.path().join("state")).expect("store");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let notifiers = Notifiers {
        slack: Some(SlackNotifier { token: Secret::new("xoxb-bench".into()), api_url: slack_url }),
        email: Some(EmailNotifier {
            host: "127.0.0.1".into(),
            port: smtp_port,
            tls: EmailTls::None,
            from: "sloguard@example.com".into(),
            username: None,
            password: None,
        }),
        ..Notifiers::default()
    };
    let delivery = Delivery { per_destination_per_minute: u32::MAX, ..Delivery::default() };
    let settings = Settings { notifiers: notifiers.clone(), delivery: delivery.clone() };
    let deliverer = Deliverer::new(
        store.clone(),
        clock.clone(),
        Transports::from_config(&notifiers),
        delivery,
        Arc::new(NotifyStats::default()),
    );
    let wake = Arc::new(tokio::sync::Notify::new());
    let (_settings_tx, settings_rx) = tokio::sync::watch::channel(settings);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(notify::run(deliverer, settings_rx, wake.clone(), stop_rx));

    let spec = parse_spec(
        Path::new("bench.yaml"),
        "service: bench\nslos:\n  - name: availability\n    objective: 99.9\n    window: 30d\n    sli:\n      errors: 'req{code=\"500\"}'\n      total: 'req'\n",
    )
    .expect("bench spec");
    let bench = Bench { store, clock, wake: wake.clone(), mail_log, slack_receipts };
    println!("decision-to-delivery latency over {n} incidents per route (loopback, one route at a time):");
    let email = Route::Email { to: "oncall@example.com".into() };
    let slack = Route::Slack { channel: "#oncall".into() };
    for (name, route) in [("email (aiosmtpd)", email), ("slack (stand-in)", slack)] {
        let mut spec = spec.clone();
        spec.notify = NotifyRoutes { page: vec![route], ..NotifyRoutes::default() };
        let mut values = bench.measure(&spec, n).await;
        values.sort_unstable();
        let q = |p: f64| values[((values.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "  {name:<18} p50 {:>4} ms  p90 {:>4} ms  p99 {:>4} ms  max {:>4} ms",
            q(0.5),
            q(0.9),
            q(0.99),
            values[values.len() - 1]
        );
    }
    let _ = stop_tx.send(true);
    let _ = task.await;
}

struct Bench {
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<tokio::sync::Notify>,
    mail_log: PathBuf,
    slack_receipts: Arc<Mutex<Vec<Millis>>>,
}

impl Bench {
    /// `n` incidents paging through `spec`'s one route, one at a time; latencies in ms.
    async fn measure(&self, spec: &sloguard::spec::ServiceSpec, n: usize) -> Vec<Millis> {
        let config = config();
        let mut latencies = Vec::with_capacity(n);
        let mut previous: Millis = 0;
        for _ in 0..n {
            let before = self.receipts();
            // The event's instant is the decision: the evaluation that found the burn. Two
            // firings of one SLO at the same millisecond are one event (same idempotency key,
            // so the second is rightly never sent); loopback Slack answers within a
            // millisecond, so wait for the clock to move on.
            while self.clock.now() <= previous {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            let at = self.clock.now();
            previous = at;
            let event = Event { at, kind: EventKind::AlertFiring(alert(at)) };
            let items =
                notify::plan(std::slice::from_ref(&event), std::slice::from_ref(spec), &config, &Snapshot::default());
            self.store.commit(std::slice::from_ref(&event), &[], &items).await.expect("commit");
            self.wake.notify_one();
            let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
            loop {
                let receipts = self.receipts();
                if receipts.len() > before.len() {
                    latencies.push(receipts[before.len()] - at);
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "not delivered within {DELIVERY_TIMEOUT:?}");
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        latencies
    }

    /// Receipt times at both receivers, in order (only one receives per run).
    fn receipts(&self) -> Vec<Millis> {
        let mut all = read_mails(&self.mail_log);
        all.extend(self.slack_receipts.lock().expect("receipts").iter());
        all
    }
}

fn config() -> DaemonConfig {
    DaemonConfig {
        path: PathBuf::from("bench.yaml"),
        listen: "127.0.0.1:9464".parse().expect("address"),
        data_dir: PathBuf::from("state"),
        specs: Vec::new(),
        evaluation_interval: Duration::from_secs(10),
        flush_interval: Duration::from_secs(10),
        event_retention: Duration::from_secs(86_400),
        shutdown_grace: Duration::from_secs(10),
        public_url: "http://127.0.0.1:9464".into(),
        api: Default::default(),
        notifiers: Notifiers::default(),
        delivery: Delivery::default(),
        reports: Vec::new(),
    }
}

fn alert(at: Millis) -> AlertChange {
    AlertChange {
        slo: "bench/availability".into(),
        group: None,
        service: "bench".into(),
        severity: "page".into(),
        condition: ConditionReport {
            long: "1h".into(),
            short: "5m".into(),
            factor: 14.4,
            long_burn: Some(20.0),
            short_burn: Some(20.0),
        },
        burn_rates: Default::default(),
        budget_remaining: Some(0.9),
        time_to_exhaustion_s: Some(3600.0),
        since: at,
        postmortem: None,
        inhibited_by: None,
    }
}

/// Receipt times of the sink's messages, in order.
fn read_mails(path: &Path) -> Vec<Millis> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["received_ms"].as_i64())
        .collect()
}

struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(port: u16, log: &Path) -> Child {
    use std::io::BufRead;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/support/smtp_sink.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with aiosmtpd (scripts/test.sh installs it)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("sink ready");
    assert_eq!(line.trim(), "ready");
    child
}

/// A stand-in for Slack's `chat.postMessage` that records receipt times.
async fn start_slack() -> (String, Arc<Mutex<Vec<Millis>>>) {
    let receipts: Arc<Mutex<Vec<Millis>>> = Arc::default();
    let recorded = receipts.clone();
    let app = axum::Router::new().route(
        "/api/chat.postMessage",
        axum::routing::post(move || {
            let recorded = recorded.clone();
            async move {
                let now = SystemClock.now();
                let n = {
                    let mut r = recorded.lock().expect("receipts");
                    r.push(now);
                    r.len()
                };
                let ts = format!("1700000000.{n:06}");
                axum::Json(
                    serde_json::json!({"ok": true, "channel": "C1", "ts": ts, "message": {"ts": ts, "text": ""}}),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receipts)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
