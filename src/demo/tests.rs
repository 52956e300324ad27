use std::collections::BTreeMap;

use super::*;

/// The page as `series -> value`, where `series` is the name and label block as written.
fn sample_values(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            (series.to_string(), value.parse().expect("value is a number"))
        })
        .collect()
}

fn at_seconds(opts: &DemoOptions, seconds: f64) -> BTreeMap<String, f64> {
    sample_values(&render(opts, Duration::from_secs_f64(seconds)))
}

fn checkout_sum(values: &BTreeMap<String, f64>, codes: &[&str]) -> f64 {
    codes.iter().map(|code| values[&format!(r#"http_requests_total{{job="checkout",code="{code}"}}"#)]).sum()
}

/// Checkout's 5xx share of the requests made between `from` and `to` seconds after start.
fn error_ratio(opts: &DemoOptions, from: f64, to: f64) -> f64 {
    let (before, after) = (at_seconds(opts, from), at_seconds(opts, to));
    let all = ["200", "404", "500", "503"];
    let errors = checkout_sum(&after, &["500", "503"]) - checkout_sum(&before, &["500", "503"]);
    errors / (checkout_sum(&after, &all) - checkout_sum(&before, &all))
}

#[test]
fn every_series_is_monotonic_across_phase_boundaries() {
    let opts = DemoOptions::default();
    let times = [0.0, 0.01, 19.999, 20.0, 20.001, 21.5, 300.0, 619.999, 620.0, 620.001, 3600.0];
    let mut previous = at_seconds(&opts, 0.0);
    for seconds in times {
        let current = at_seconds(&opts, seconds);
        assert_eq!(current.len(), previous.len());
        for (series, value) in &current {
            assert!(*value >= previous[series], "{series} fell at {seconds}s");
        }
        previous = current;
    }
}

#[test]
fn counters_start_large_and_are_whole_numbers() {
    let values = at_seconds(&DemoOptions::default(), 0.0);
    let ok = values[r#"http_requests_total{job="checkout",code="200"}"#];
    assert!(ok > 20_000_000.0, "{ok}");
    for (series, value) in &values {
        if !series.contains("_sum") {
            assert_eq!(value.fract(), 0.0, "{series}");
        }
    }
}

#[test]
fn incident_raises_checkout_error_ratio_then_recovers() {
    let opts = DemoOptions::default();
    let before = error_ratio(&opts, 0.0, 19.0);
    let during = error_ratio(&opts, 60.0, 120.0);
    let after = error_ratio(&opts, 700.0, 1700.0);
    // Floors shift a window's count by at most 1 per series, hence the tolerances.
    assert!(before < 0.002, "{before}");
    assert!((during - DEFAULT_INCIDENT_ERROR_RATIO).abs() < 0.001, "{during}");
    assert!((after - BASELINE_ERROR_RATIO).abs() < 0.0001, "{after}");
}

#[test]
fn page_condition_holds_within_a_minute_of_the_incident() {
    // A Prometheus that started scraping with the demo sees only post-start data in both the
    // 5m and 1h windows; 14.4x burn at 99.9% is a 1.44% error ratio.
    let opts = DemoOptions::default();
    let page_threshold = 14.4 * 0.001;
    assert!(error_ratio(&opts, 0.0, 80.0) > page_threshold);
    assert!(error_ratio(&opts, 20.0, 80.0) > page_threshold);
}

#[test]
fn payments_are_unaffected_by_the_incident() {
    let opts = DemoOptions::default();
    let (before, after) = (at_seconds(&opts, 60.0), at_seconds(&opts, 360.0));
    let series = r#"http_requests_total{job="payments",instance="payments-0",code="500"}"#;
    let errors = after[series] - before[series];
    // 25 req/s * 300 s * 0.02% = 1.5 errors.
    assert!(errors <= 2.0, "{errors}");
}

#[test]
fn histogram_buckets_are_cumulative_and_match_count() {
    let opts = DemoOptions::default();
    for seconds in [0.0, 30.0, 900.0] {
        let values = at_seconds(&opts, seconds);
        let bucket = |le: &str| values[&format!(r#"http_request_duration_seconds_bucket{{job="checkout",le="{le}"}}"#)];
        let buckets = [bucket("0.1"), bucket("0.3"), bucket("1"), bucket("+Inf")];
        assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]), "{buckets:?}");
        assert_eq!(buckets[3], values[r#"http_request_duration_seconds_count{job="checkout"}"#]);
    }
}

#[test]
fn bad_options_are_tamed_not_propagated() {
    let opts = DemoOptions { rate: f64::NAN, incident_error_ratio: f64::NAN, ..DemoOptions::default() };
    assert!(at_seconds(&opts, 60.0).values().all(|value| *value == 0.0));
    let opts = DemoOptions { incident_error_ratio: 5.0, ..DemoOptions::default() };
    let values = at_seconds(&opts, 60.0);
    assert!(values.values().all(|value| value.is_finite() && *value >= 0.0));
    let no_incident = DemoOptions { incident_for: Duration::ZERO, ..DemoOptions::default() };
    assert!(error_ratio(&no_incident, 0.0, 600.0) < 0.001);
}

#[test]
fn every_family_has_help_and_type() {
    let page = render(&DemoOptions::default(), Duration::from_secs(1));
    for (family, kind) in [("http_requests_total", "counter"), ("http_request_duration_seconds", "histogram")] {
        assert!(page.contains(&format!("# HELP {family} ")), "{family}");
        assert!(page.contains(&format!("# TYPE {family} {kind}\n")), "{family}");
    }
}

#[tokio::test]
async fn serves_metrics_over_http_until_shutdown() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, DemoOptions::default(), async {
        let _ = stopped.await;
    }));
    let res = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CONTENT_TYPE], EXPOSITION_CONTENT_TYPE);
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"http_requests_total{job="checkout",code="503"}"#), "{page}");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
}
