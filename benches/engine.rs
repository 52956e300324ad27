//! Engine benchmarks: per-SLO evaluation cost at 10,000 SLOs, memory per SLO, and a 30-day
//! replay of 100 SLOs. Figures are quoted in the issue notes; nothing here asserts a timing.
//!
//!     cargo bench --bench engine -- --warm-up-time 1 --measurement-time 5

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sloguard::clock::{DAY, MINUTE, Millis};
use sloguard::engine::{Engine, EngineOptions};
use sloguard::exposition;
use sloguard::replay::replay;
use sloguard::spec::{ServiceSpec, parse_spec};

const T0: Millis = 1_767_225_600_000;

/// `n` services with one availability SLO each over `svc<i>`'s own request counters.
fn specs(n: usize) -> Vec<ServiceSpec> {
    (0..n)
        .map(|i| {
            let yaml = format!(
                "service: svc{i}\nslos:\n  - name: availability\n    objective: 99.9\n    window: 30d\n    sli:\n      errors: 'req{{svc=\"{i}\",code=~\"5..\"}}'\n      total: 'req{{svc=\"{i}\"}}'\n"
            );
            parse_spec(Path::new("bench.yaml"), &yaml).expect("bench spec")
        })
        .collect()
}

/// Exposition for `n` services over `minutes` minutes: ok and 5xx counters, 0.1% errors.
fn series(n: usize, minutes: i64) -> String {
    let mut text = String::with_capacity(n * minutes as usize * 80);
    for m in 0..=minutes {
        let t = T0 + m * MINUTE;
        for i in 0..n {
            let ok = 1_000_000 + m * 6000 + i as i64;
            let err = 1_000 + m * 6;
            writeln!(text, "req{{svc=\"{i}\",code=\"200\"}} {ok} {t}\nreq{{svc=\"{i}\",code=\"500\"}} {err} {t}")
                .unwrap();
        }
    }
    text
}

/// An engine with `n` SLOs that has seen `minutes` of traffic.
fn warmed_engine(n: usize, minutes: i64) -> (Engine, Millis) {
    let mut engine = Engine::new(&specs(n), EngineOptions::default());
    let text = series(n, minutes);
    let samples = exposition::parse_strict(text.as_bytes()).expect("bench series");
    let source = engine.source("bench");
    let mut last = T0;
    for s in &samples {
        let id = engine.series(source, s.series, s.name, &s.labels);
        let at = s.timestamp_ms.expect("timestamped");
        if at != last {
            engine.evaluate(last);
            last = at;
        }
        engine.observe(id, at, s.value);
    }
    engine.evaluate(last);
    (engine, last)
}

fn evaluation(c: &mut Criterion) {
    const N_SLOS: usize = 10_000;
    let (mut engine, last) = warmed_engine(N_SLOS, 30);
    eprintln!("window memory: {} bytes per SLO ({} SLOs)", engine.window_heap_bytes() / N_SLOS, N_SLOS);
    let mut group = c.benchmark_group("evaluate");
    // One element = one SLO evaluated (all tiers, all windows, budget, freeze check).
    group.throughput(Throughput::Elements(N_SLOS as u64));
    let mut at = last;
    // Each iteration moves time a minute on, so every iteration also records new boundaries,
    // as the live daemon does; with 0.1% errors no alert changes state, as in steady state.
    group.bench_function("10k_slos", |b| {
        b.iter(|| {
            at += MINUTE;
            engine.evaluate(at)
        })
    });
    group.finish();
}

fn replay_30_days(c: &mut Criterion) {
    const N_SLOS: usize = 100;
    let specs = specs(N_SLOS);
    let text = series(N_SLOS, 30 * DAY / MINUTE);
    eprintln!("replay input: {} MB, {} samples", text.len() / 1_000_000, 2 * N_SLOS as i64 * (30 * DAY / MINUTE + 1));
    let mut group = c.benchmark_group("replay");
    group.sample_size(10).measurement_time(Duration::from_secs(40));
    group.bench_function("30d_60s_100_slos", |b| b.iter(|| replay(&specs, text.as_bytes(), |_| {}).expect("replay")));
    group.finish();
}

criterion_group!(benches, evaluation, replay_30_days);
criterion_main!(benches);
