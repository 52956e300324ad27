//! Restart cost with a full window of persisted state: a fleet's worth of SLOs (default 1,000
//! services x 10 SLOs, the shapes of `benches/fleet.py`; with `--groups G`, every SLO grouped by
//! `route` with G routes, so G instances each) is driven through 30 days of traffic
//! by the real engine and saved to a real sled store the way the daemon saves (pages, series,
//! transitions, events); then the start-up path is timed: open the store, load it, build the
//! engine from the specs, restore, evaluate once. Prints the median of five starts and each
//! step; asserts that the restored engine reads the same budgets and states as the one saved.
//!
//!     cargo bench --bench restore                                   # 10,000 SLOs, 30 days
//!     cargo bench --bench restore -- --services 100 --days 7
//!     cargo bench --bench restore -- --services 100 --slos 2 --groups 100  # 20,000 instances
//!     cargo bench --bench restore -- --keep DIR --target URL        # leave DIR/specs and
//!         # DIR/data for a real daemon start (benches/restart.sh with FULL_WINDOW=1)
//!
//! Without `--bench` (as under `cargo test --all-targets`) it runs 20 SLOs over two days as a
//! test of the same path.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sloguard::clock::{Clock, DAY, HOUR, MINUTE, Millis, SystemClock};
use sloguard::engine::{Engine, EngineOptions};
use sloguard::spec::{ServiceSpec, load_path};
use sloguard::store::{Store, split_points};

/// Requests per second per SLO, and the counters' starting value, as in `fleet.py`.
const RATE: f64 = 10.0;
const BASE: f64 = 1_000_000.0;

struct Args {
    services: usize,
    slos: usize,
    /// Routes per SLO; 0 for ungrouped SLOs.
    groups: usize,
    days: i64,
    keep: Option<PathBuf>,
    target: String,
}

fn args() -> Args {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| raw.iter().position(|a| a == flag).and_then(|i| raw.get(i + 1)).cloned();
    let number = |flag: &str, default: usize| value(flag).map_or(default, |v| v.parse().expect("a number"));
    let benching = raw.iter().any(|a| a == "--bench");
    Args {
        services: number("--services", if benching { 1_000 } else { 2 }),
        slos: number("--slos", 10),
        groups: number("--groups", 0),
        days: number("--days", if benching { 30 } else { 2 }) as i64,
        keep: value("--keep").map(PathBuf::from),
        target: value("--target").unwrap_or_else(|| "http://127.0.0.1:9/metrics".into()),
    }
}

fn main() {
    let args = args();
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = args.keep.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let specs_dir = dir.join("specs");
    let data_dir = dir.join("data");
    write_specs(&args, &specs_dir);
    let specs = load_path(&specs_dir).expect("the fleet's specs load");
    let n_slos: usize = specs.iter().map(|s| s.slos.len()).sum::<usize>() * args.groups.max(1);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let started = Instant::now();
    let (saved, window_bytes) = runtime.block_on(seed(&specs, &args, &data_dir));
    let firing = saved.slos.iter().filter(|(_, _, alerts)| alerts.iter().any(Option::is_some)).count();
    let frozen = saved.frozen.iter().filter(|(_, since)| since.is_some()).count();
    println!(
        "seeded {n_slos} SLOs with {} days of state in {:.1} s ({firing} alerting, {frozen} services frozen); store {} MiB; \
         window counters {} bytes per SLO",
        args.days,
        started.elapsed().as_secs_f64(),
        dir_bytes(&data_dir) >> 20,
        window_bytes / n_slos.max(1),
    );
    assert!(firing > 0 && frozen > 0, "the seeded state should hold alerts and freezes to restore");

    let mut runs: Vec<[Duration; 5]> = (0..5).map(|_| start(&specs_dir, &data_dir, &saved)).collect();
    let steps = ["open store", "parse specs + build engine", "load (parallel decode)", "restore", "first evaluation"];
    runs.sort_by_key(|r| r.iter().sum::<Duration>());
    let median = runs[runs.len() / 2];
    println!("start-up with state, median of {} (ms): {:.0} total", runs.len(), ms(median.iter().sum()));
    for (step, took) in steps.iter().zip(median) {
        println!("  {step:<28} {:>7.1}", ms(took));
    }
    if args.keep.is_some() {
        println!("kept {}", dir.display());
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The fleet's spec files, written by `fleet.py` itself so a daemon started on them later
/// reads exactly these SLOs.
fn write_specs(args: &Args, dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fleet.py");
    let status = Command::new("python3")
        .arg(script)
        .args(["specs", &dir.display().to_string(), "--target", &args.target])
        .args(["--services", &args.services.to_string(), "--slos", &args.slos.to_string()])
        .args(["--groups", &args.groups.to_string()])
        .status()
        .expect("python3");
    assert!(status.success(), "fleet.py specs failed");
}

/// What the seeded engine read when it was saved: every SLO's budget and alert state and every
/// service's freeze, for comparison with a restored engine. SLOs are sorted by id: a grouped
/// SLO's instances come in the order their first samples came in, and back in the store's.
#[derive(Debug, PartialEq)]
struct Readings {
    at: Millis,
    slos: Vec<(String, Option<f64>, Vec<Option<Millis>>)>,
    frozen: Vec<(String, Option<Millis>)>,
}

fn readings(engine: &Engine, at: Millis) -> Readings {
    let mut slos: Vec<_> = engine
        .slo_views()
        .map(|v| (v.id().to_string(), v.budget_remaining(), v.alerts().map(|(_, since)| since).collect()))
        .collect();
    slos.sort_by(|a, b| a.0.cmp(&b.0));
    Readings { at, slos, frozen: engine.service_views().map(|v| (v.name().to_string(), v.frozen_since())).collect() }
}

/// Drives `days` of the fleet's traffic through the engine ending now, saving as the daemon
/// does: events and transitions at each evaluation that changed something, pages and series
/// once per simulated day and every hour of the last six (the daemon saves every flush
/// interval; saving more often here would only rewrite the same keys). Also returns the heap
/// bytes the engine's window counters hold.
async fn seed(specs: &[ServiceSpec], args: &Args, data_dir: &Path) -> (Readings, usize) {
    let store = Store::open(data_dir).expect("store");
    let mut engine = Engine::new(specs, EngineOptions { max_sample_gap: Some(2 * HOUR) });
    let source = engine.source(&args.target, sloguard::engine::Serves::Every);
    let series = fleet_series(specs, args.groups, &mut engine, source);
    let now = SystemClock.now() / MINUTE * MINUTE;
    let start = now - args.days * DAY;
    for at in sample_instants(start, now) {
        let total = BASE + RATE * ((at - start) / 1000) as f64;
        for &(ok, err, share) in &series {
            // Whole counts, as request counters are (fleet.py serves floats to keep its ratios
            // exact; here that would make every stored step a fraction, which no real SLI has).
            let errors = (total * share).floor();
            engine.observe(ok, at, total - errors);
            engine.observe(err, at, errors);
        }
        let events = engine.evaluate(at);
        if !events.is_empty() {
            let transitions = engine.transitions_for(&events);
            store.commit(&events, &transitions, &[]).await.expect("commit");
        }
        if (at - start) % DAY == 0 || (now - at <= 6 * HOUR && at % HOUR == 0) || at == now {
            // As the daemon does: a full save whenever the window log has outgrown its records.
            if store.wants_full_save() {
                engine.mark_all_dirty();
                store.save_full(&engine.export_windows(), &engine.export_series()).await.expect("save");
            } else {
                store.save(&engine.export_windows(), &engine.export_series()).await.expect("save");
            }
        }
    }
    (readings(&engine, now), engine.window_heap_bytes())
}

/// Coarse where the engine keeps coarse buckets: hourly beyond three days, every five minutes
/// beyond six hours, every minute in the last six hours.
fn sample_instants(start: Millis, now: Millis) -> impl Iterator<Item = Millis> {
    let mut at = start;
    std::iter::from_fn(move || {
        if at > now {
            return None;
        }
        let current = at;
        let age = now - at;
        at += if age > 3 * DAY {
            HOUR
        } else if age > 6 * HOUR {
            5 * MINUTE
        } else {
            MINUTE
        };
        Some(current.min(now))
    })
}

/// Each SLO's ok and error series, as `fleet.py serve` exposes them, with its error share:
/// every 50th SLO fails 5% (it pages and freezes its service), the rest 0.05%. With `groups`,
/// a pair per route `r0` .. `r{groups-1}`, each with the SLO's share: one instance each.
fn fleet_series(
    specs: &[ServiceSpec],
    groups: usize,
    engine: &mut Engine,
    source: u32,
) -> Vec<(sloguard::engine::SeriesId, sloguard::engine::SeriesId, f64)> {
    let routes: Vec<Option<String>> =
        if groups == 0 { vec![None] } else { (0..groups).map(|g| Some(format!("r{g}"))).collect() };
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        for (k, slo) in spec.slos.iter().enumerate() {
            let share = if (i * spec.slos.len() + k) % 50 == 0 { 0.05 } else { 0.0005 };
            for route in &routes {
                let mut id = |code: &str| {
                    let mut labels = vec![("svc", spec.service.as_str()), ("slo", slo.name.as_str())];
                    labels.extend(route.as_deref().map(|r| ("route", r)));
                    labels.push(("code", code));
                    let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                    let key = format!("gen_requests_total{{{}}}", text.join(","));
                    let labels: Vec<(String, String)> =
                        labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                    engine.series(source, &key, "gen_requests_total", &labels[..])
                };
                out.push((id("200"), id("500"), share));
            }
        }
    }
    out
}

/// One start: the daemon's path from an existing data directory to its first evaluation.
fn start(specs_dir: &Path, data_dir: &Path, saved: &Readings) -> [Duration; 5] {
    let t = Instant::now();
    let store = Store::open(data_dir).expect("store");
    let opened = t.elapsed();
    let specs = load_path(specs_dir).expect("specs");
    let mut engine = Engine::new(&specs, EngineOptions { max_sample_gap: Some(2 * HOUR) });
    let built = t.elapsed();
    // As the daemon reads it: one range of SLOs per core, cut at the specs' SLO ids (a grouped
    // SLO has no instances before its state is restored).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slo_ids = specs.iter().flat_map(|s| s.slos.iter().map(move |slo| format!("{}/{}", s.service, slo.name)));
    let restored = store.load_split(&split_points(slo_ids, cores)).expect("load");
    let loaded = t.elapsed();
    let report = engine.restore(restored);
    let restored_at = t.elapsed();
    let now = SystemClock.now();
    engine.evaluate(now);
    let evaluated = t.elapsed();
    assert!(report.discarded.is_empty(), "discarded: {:?}", report.discarded);
    assert_eq!(report.n_windows, saved.slos.len());
    drop(store);
    // Evaluated at the instant the seeded engine last was, a restored engine reads the same.
    let mut check = Engine::new(&specs, EngineOptions::default());
    check.restore(Store::open(data_dir).expect("store").load().expect("load"));
    let events = check.evaluate(saved.at);
    assert!(events.is_empty(), "restored state re-announced: {events:?}");
    assert_eq!(&readings(&check, saved.at), saved, "the restored engine reads what was saved");
    [opened, built - opened, loaded - built, restored_at - loaded, evaluated - restored_at]
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
