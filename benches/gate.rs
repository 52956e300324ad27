//! Deploy-gate latency: `policy::decide` in process, and `GET /v1/gate/{service}` over real
//! HTTP on loopback (axum router, keep-alive client), with 100 services of two SLOs each and an
//! active override on the service asked about. Prints p50, p99 and max; asserts nothing.
//!
//!     cargo bench --bench gate
//!
//! Not criterion: criterion reports a mean and a median with confidence intervals, while a gate
//! in a CI pipeline cares about the tail, so this samples every call and reads percentiles.
//! Without `--bench` (as under `cargo test --all-targets`) it runs a few iterations as a smoke
//! test.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sloguard::clock::{Clock, HOUR, MINUTE, Millis, SystemClock};
use sloguard::daemon::{Governance, Shared};
use sloguard::engine::{Engine, EngineOptions};
use sloguard::policy::{Decision, GateRequest, Override, decide};
use sloguard::spec::{Secret, ServiceSpec, parse_spec};
use sloguard::status::Snapshot;
use sloguard::store::Store;

/// Services in the snapshot: a large single-team deployment.
const N_SERVICES: usize = 100;
/// Calls timed per measurement under `--bench`.
const N_CALLS: usize = 20_000;
/// Calls per measurement in smoke mode.
const N_SMOKE_CALLS: usize = 50;

fn specs() -> Vec<ServiceSpec> {
    (0..N_SERVICES)
        .map(|i| {
            let yaml = format!(
                "service: svc{i}\nslos:\n  - name: availability\n    objective: 99.9\n    window: 30d\n    sli:\n      \
                 errors: 'req{{svc=\"{i}\",code=~\"5..\"}}'\n      total: 'req{{svc=\"{i}\"}}'\n  - name: latency\n    \
                 objective: 99\n    window: 28d\n    sli:\n      good: 'lat_bucket{{svc=\"{i}\",le=\"0.3\"}}'\n      \
                 total: 'lat_count{{svc=\"{i}\"}}'\n"
            );
            parse_spec(Path::new("bench.yaml"), &yaml).expect("bench spec")
        })
        .collect()
}

/// A snapshot from the real engine after an hour of minute samples (0.1% errors).
fn snapshot(now: Millis) -> Snapshot {
    let specs = specs();
    let mut engine = Engine::new(&specs, EngineOptions::default());
    let source = engine.source("bench", sloguard::engine::Serves::Every);
    for m in 0..=60 {
        let at = now - HOUR + m * MINUTE;
        for i in 0..N_SERVICES {
            let n = (m * 6000) as f64;
            for (key, name, labels, value) in [
                (format!("req{{svc=\"{i}\",code=\"200\"}}"), "req", vec![("code", "200")], n),
                (format!("req{{svc=\"{i}\",code=\"500\"}}"), "req", vec![("code", "500")], n / 1000.0),
                (format!("lat_bucket{{svc=\"{i}\",le=\"0.3\"}}"), "lat_bucket", vec![("le", "0.3")], n * 0.995),
                (format!("lat_count{{svc=\"{i}\"}}"), "lat_count", vec![], n),
            ] {
                let svc = i.to_string();
                let mut labels: Vec<(String, String)> =
                    labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                labels.push(("svc".into(), svc));
                labels.push(("__name__".into(), name.into()));
                let id = engine.series(source, &key, name, &labels[..]);
                engine.observe(id, at, value);
            }
        }
        engine.evaluate(at);
    }
    Snapshot::build(now, &engine, &specs, Vec::new(), Vec::new())
}

fn an_override(now: Millis) -> Override {
    Override {
        id: "ovr-1".into(),
        service: "svc42".into(),
        decision: Decision::Allow,
        reason: "bench".into(),
        created_at: now,
        expires_at: now + HOUR,
        actor: None,
        remote: None,
    }
}

/// p50, p99 and max of `samples`, in microseconds.
fn summary(what: &str, mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    let mut out = String::new();
    writeln!(
        out,
        "{what:<44} n={:<6} p50 {:>8.2} µs  p99 {:>8.2} µs  max {:>8.2} µs",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
    .unwrap();
    out
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let n_calls = if benching { N_CALLS } else { N_SMOKE_CALLS };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let now = SystemClock.now();
    let snapshot = snapshot(now);
    let overrides = [an_override(now)];

    let status = snapshot.service("svc42").expect("svc42");
    // The figures mean something only if the engine produced budgets to reason about.
    assert!(status.slos.len() == 2 && status.slos.iter().all(|s| s.budget_remaining.is_some()), "{status:?}");
    let request = GateRequest { change: Some("hotfix"), overrides: &overrides, now };
    let samples: Vec<Duration> = (0..n_calls)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(decide(&snapshot, status, &request));
            started.elapsed()
        })
        .collect();
    print!("{}", summary("policy::decide (2 SLOs, override)", samples));

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store");
        let (commands, _keep) = tokio::sync::mpsc::unbounded_channel();
        let token = Secret::new("bench".into());
        let governance = Governance::new(Some(&token), overrides.to_vec(), Vec::new(), commands);
        let shared = Arc::new(Shared::new(store, Arc::new(SystemClock), governance));
        shared.publish(snapshot);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v1/gate/svc42?change=hotfix", listener.local_addr().expect("addr"));
        // The daemon's own server, with its default connection bounds.
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let limits = sloguard::config::ApiLimits::default();
        tokio::spawn(sloguard::api::serve(listener, shared, limits, stopped));
        let client = reqwest::Client::new();
        let mut samples = Vec::with_capacity(n_calls);
        for _ in 0..n_calls {
            let started = Instant::now();
            let res = client.get(&url).send().await.expect("gate answers");
            let body = res.bytes().await.expect("body");
            samples.push(started.elapsed());
            std::hint::black_box(body);
        }
        print!("{}", summary("GET /v1/gate/svc42 (loopback, keep-alive)", samples));
    });
}
