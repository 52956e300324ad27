//! Exposition parsing throughput: sloguard's parser against prometheus-parse on one realistic
//! scrape page, generated in memory so the bench needs no network and no fixture files.
//!
//! Run: `cargo bench --bench exposition -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use sloguard::exposition::parse_lenient;

/// Families of a big exporter page; each gets its own HELP and TYPE lines.
const N_FAMILIES: usize = 1_000;
/// Series per family, so the page has 50k series: a large but real node/app exporter.
const N_SERIES_PER_FAMILY: usize = 50;

/// A ~7.5 MB page of `N_FAMILIES * N_SERIES_PER_FAMILY` series with five labels each and
/// decimal values, from a fixed-seed xorshift so every run parses the same bytes.
fn page() -> String {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut rand = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let subsystems = ["http_server", "grpc_client", "db_pool", "cache", "queue"];
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let codes = ["200", "201", "204", "302", "400", "404", "429", "500", "503"];
    let mut page = String::with_capacity(8 << 20);
    for family in 0..N_FAMILIES {
        let name = format!("{}_requests_{family}_total", subsystems[family % subsystems.len()]);
        writeln!(page, "# HELP {name} Requests handled, by route and outcome.").unwrap();
        writeln!(page, "# TYPE {name} counter").unwrap();
        for _ in 0..N_SERIES_PER_FAMILY {
            writeln!(
                page,
                "{name}{{service=\"checkout-api\",instance=\"10.0.{}.{}:9100\",method=\"{}\",\
                 code=\"{}\",route=\"/api/v1/orders/:id/items\"}} {}.{:03}",
                rand(256),
                rand(256),
                methods[rand(4) as usize],
                codes[rand(9) as usize],
                rand(10_000_000),
                rand(1000),
            )
            .unwrap();
        }
    }
    page
}

/// prometheus-parse's entry point takes owned lines, so splitting and copying them is part of
/// what using it costs.
fn parse_with_prometheus_parse(page: &str) -> prometheus_parse::Scrape {
    let lines = page.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("reading lines from a str cannot fail")
}

fn bench_exposition(c: &mut Criterion) {
    let page = page();
    eprintln!("page: {} bytes", page.len());
    let res = parse_lenient(page.as_bytes());
    assert!(res.errors.is_empty(), "{:?}", res.errors.first());
    assert_eq!(res.samples.len(), N_FAMILIES * N_SERIES_PER_FAMILY);
    // The page avoids what prometheus-parse gets wrong, so both parsers do the same work.
    let theirs = parse_with_prometheus_parse(&page);
    assert_eq!(theirs.samples.len(), N_FAMILIES * N_SERIES_PER_FAMILY);

    let mut group = c.benchmark_group("exposition_50k_series");
    group.throughput(Throughput::Bytes(page.len() as u64));
    // prometheus-parse takes ~170 ms per page; flat sampling with 20 samples keeps its run near
    // the measurement time instead of criterion's default linear ramp of 5050 iterations.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.bench_function("sloguard_parse_lenient", |b| b.iter(|| parse_lenient(black_box(page.as_bytes()))));
    group.bench_function("prometheus_parse", |b| b.iter(|| parse_with_prometheus_parse(black_box(&page))));
    group.finish();
}

criterion_group!(benches, bench_exposition);
criterion_main!(benches);
