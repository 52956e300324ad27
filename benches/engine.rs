//! Engine benchmarks: per-SLO evaluation cost at 10,000 SLOs, memory per SLO, a 30-day replay
//! of 100 SLOs, and the daemon's per-scrape work on a 50k-series target: parse, resolve and
//! observe every sample, evaluate. Figures are quoted in the issue notes; nothing here asserts
//! a timing.
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

/// The SLI and window kinds, each benchmarked at 10,000 instances.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `errors`/`total` over a rolling 30d window.
    Counter,
    /// The same over the calendar month.
    Calendar,
    /// `latency: {histogram, threshold}`.
    Latency,
    /// `time_slice` over a `probe_success`-like gauge, 1m slices.
    TimeSlice,
    /// `group_by: [route]`: 100 services with one SLO of 100 routes each.
    Grouped,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Counter, Kind::Calendar, Kind::Latency, Kind::TimeSlice, Kind::Grouped];

    /// Services and groups per service that make `n` instances.
    fn shape(self, n: usize) -> (usize, usize) {
        match self {
            Kind::Grouped => (n / 100, 100),
            _ => (n, 1),
        }
    }

    fn sli(self, i: usize) -> String {
        match self {
            Kind::Counter | Kind::Calendar | Kind::Grouped => {
                format!("      errors: 'req{{svc=\"{i}\",code=~\"5..\"}}'\n      total: 'req{{svc=\"{i}\"}}'\n")
            }
            Kind::Latency => format!("      latency: {{ histogram: 'lat{{svc=\"{i}\"}}', threshold: 300ms }}\n"),
            Kind::TimeSlice => {
                format!("      time_slice: {{ gauge: 'probe{{svc=\"{i}\"}}', good: '>= 1', slice: 1m }}\n")
            }
        }
    }
}

/// `n` services with one availability SLO each over `svc<i>`'s own request counters.
fn specs(n: usize) -> Vec<ServiceSpec> {
    kind_specs(Kind::Counter, n)
}

/// The specs of `n` instances of `kind`.
fn kind_specs(kind: Kind, n: usize) -> Vec<ServiceSpec> {
    let (services, _) = kind.shape(n);
    (0..services)
        .map(|i| {
            let window = match kind {
                Kind::Calendar => "{ calendar: month }",
                _ => "30d",
            };
            let group_by = match kind {
                Kind::Grouped => "    group_by: [route]\n",
                _ => "",
            };
            let yaml = format!(
                "service: svc{i}\nslos:\n  - name: availability\n    objective: 99.9\n    window: {window}\n{group_by}    sli:\n{}",
                kind.sli(i)
            );
            parse_spec(Path::new("bench.yaml"), &yaml).expect("bench spec")
        })
        .collect()
}

/// Exposition for `n` services over `minutes` minutes: ok and 5xx counters, 0.1% errors.
fn series(n: usize, minutes: i64) -> String {
    kind_series(Kind::Counter, n, minutes)
}

/// Exposition for `n` instances of `kind` over `minutes` minutes, 0.1% errors (counters) or
/// every probe up.
fn kind_series(kind: Kind, n: usize, minutes: i64) -> String {
    let (services, groups) = kind.shape(n);
    let mut text = String::with_capacity(n * minutes as usize * 80);
    for m in 0..=minutes {
        let t = T0 + m * MINUTE;
        for i in 0..services {
            let ok = 1_000_000 + m * 6000 + i as i64;
            let err = 1_000 + m * 6;
            match kind {
                Kind::Counter | Kind::Calendar => writeln!(
                    text,
                    "req{{svc=\"{i}\",code=\"200\"}} {ok} {t}\nreq{{svc=\"{i}\",code=\"500\"}} {err} {t}"
                ),
                Kind::Grouped => (0..groups).try_for_each(|g| {
                    writeln!(
                        text,
                        "req{{svc=\"{i}\",route=\"/r{g}\",code=\"200\"}} {ok} {t}\nreq{{svc=\"{i}\",route=\"/r{g}\",code=\"500\"}} {err} {t}"
                    )
                }),
                Kind::Latency => writeln!(
                    text,
                    "lat_bucket{{svc=\"{i}\",le=\"0.3\"}} {ok} {t}\nlat_count{{svc=\"{i}\"}} {} {t}",
                    ok + err
                ),
                Kind::TimeSlice => writeln!(text, "probe{{svc=\"{i}\"}} 1 {t}"),
            }
            .unwrap();
        }
    }
    text
}

/// An engine with `n` SLOs that has seen `minutes` of traffic.
fn warmed_engine(n: usize, minutes: i64) -> (Engine, Millis) {
    warmed(Kind::Counter, n, minutes)
}

/// An engine with `n` instances of `kind` that has seen `minutes` of traffic.
fn warmed(kind: Kind, n: usize, minutes: i64) -> (Engine, Millis) {
    let mut engine = Engine::new(&kind_specs(kind, n), EngineOptions::default());
    let text = kind_series(kind, n, minutes);
    let samples = exposition::parse_strict(text.as_bytes()).expect("bench series");
    let source = engine.source("bench", sloguard::engine::Serves::Every);
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

/// Evaluation of 10,000 instances of each SLI and window kind (the counter kind is
/// `evaluate/10k_slos`). As there, time moves a minute per iteration without new samples: for
/// time slices every slice then closes empty, so this measures the windows, not the reduction.
fn evaluation_by_kind(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut group = c.benchmark_group("evaluate_kind");
    group.throughput(Throughput::Elements(N as u64));
    for kind in Kind::ALL.into_iter().skip(1) {
        let (mut engine, mut at) = warmed(kind, N, 30);
        assert_eq!(engine.slo_views().count(), N, "{kind:?}: every instance exists");
        eprintln!("{kind:?}: window memory {} bytes per instance", engine.window_heap_bytes() / N);
        group.bench_function(format!("{kind:?}_10k").to_lowercase(), |b| {
            b.iter(|| {
                at += MINUTE;
                engine.evaluate(at)
            })
        });
    }
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

/// A scrape page of `n_series` series (no timestamps) of which the first `2 * n_slos` feed the
/// SLOs of [`specs`]; the rest are other services' requests on the same metric name and an
/// unrelated histogram, as on a shared target. `tick` moves the counters on.
fn scrape_page(n_slos: usize, n_series: usize, tick: i64) -> String {
    let mut text = String::with_capacity(n_series * 60);
    text.push_str("# TYPE req counter\n");
    for i in 0..n_slos {
        let ok = 1_000_000 + tick * 6000 + i as i64;
        let err = 1_000 + tick * 6;
        writeln!(text, "req{{svc=\"{i}\",code=\"200\"}} {ok}\nreq{{svc=\"{i}\",code=\"500\"}} {err}").unwrap();
    }
    let others = n_series - 2 * n_slos;
    for j in 0..others / 2 {
        writeln!(text, "req{{svc=\"other-{j}\",code=\"200\"}} {}", 5_000 + tick * 100).unwrap();
    }
    text.push_str("# TYPE rpc_duration_seconds histogram\n");
    for j in 0..others - others / 2 {
        writeln!(
            text,
            "rpc_duration_seconds_bucket{{method=\"m{}\",le=\"{}\"}} {}",
            j / 10,
            j % 10,
            tick * 7 + j as i64
        )
        .unwrap();
    }
    text
}

/// What the daemon's core does with one scrape body: parse it leniently, resolve and observe
/// every sample, then evaluate every SLO (the evaluation tick, here once per scrape).
fn scrape_cycle(engine: &mut Engine, source: u32, body: &[u8], at: Millis) -> usize {
    let parsed = exposition::parse_lenient(body);
    for s in &parsed.samples {
        let id = engine.series(source, s.series, s.name, &s.labels);
        engine.observe(id, at, s.value);
    }
    engine.evaluate(at).len()
}

fn scrape_50k_series(c: &mut Criterion) {
    const N_SERIES: usize = 50_000;
    let mut group = c.benchmark_group("scrape_cycle_50k_series");
    group.throughput(Throughput::Elements(N_SERIES as u64));
    for n_slos in [1_000, 10_000] {
        let specs = specs(n_slos);
        let pages: Vec<String> = (0..4).map(|tick| scrape_page(n_slos, N_SERIES, tick)).collect();
        // Steady state: every series already resolved, counters moving, one evaluation.
        let mut engine = Engine::new(&specs, EngineOptions::default());
        let source = engine.source("bench", sloguard::engine::Serves::Every);
        let mut at = T0;
        let mut tick = 0;
        group.bench_function(format!("steady_{n_slos}_slos"), |b| {
            b.iter(|| {
                at += 15_000;
                tick += 1;
                scrape_cycle(&mut engine, source, pages[tick % pages.len()].as_bytes(), at)
            })
        });
        // The first scrape after a start: every series is new and matched against the
        // selectors, all of which select the same metric name.
        group.bench_function(format!("first_{n_slos}_slos_one_metric"), |b| {
            b.iter_batched(
                || Engine::new(&specs, EngineOptions::default()),
                |mut engine| {
                    let source = engine.source("bench", sloguard::engine::Serves::Every);
                    scrape_cycle(&mut engine, source, pages[0].as_bytes(), T0)
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, evaluation, evaluation_by_kind, replay_30_days, scrape_50k_series);
criterion_main!(benches);
