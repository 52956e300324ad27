//! `sloguard::prometheus` against a real Prometheus scraping the in-process demo target.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sloguard::clock::Millis;
use sloguard::demo::{self, DemoOptions};
use sloguard::prometheus::{ApiErrorType, PromClient, PromError, SeriesPoints};

use crate::support::prometheus::{PrometheusServer, SCRAPE_INTERVAL, client};
use crate::support::{closed_addr, init, wait_until};

/// The demo's checkout request counters, one series per status code.
const CHECKOUT: &str = r#"http_requests_total{job="checkout"}"#;

/// Bound on waiting for the first scraped sample: one scrape interval after Prometheus is ready,
/// with generous slack for a loaded machine.
const FIRST_DATA_TIMEOUT: Duration = Duration::from_secs(30);

fn wall_now() -> Millis {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    Millis::try_from(since_epoch.as_millis()).expect("now fits in i64 ms")
}

fn label<'a>(series: &'a SeriesPoints, name: &str) -> Option<&'a str> {
    series.labels.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// The demo target serving in this test's runtime (stopped with it) and a Prometheus scraping it.
struct Stack {
    demo_addr: SocketAddr,
    /// Held for its `Drop`, which kills Prometheus.
    _prometheus: PrometheusServer,
    client: PromClient,
    /// Wall time at which a checkout sample was first visible through the API.
    first_data_at: Millis,
}

impl Stack {
    async fn start() -> Stack {
        init();
        let (listener, demo_addr) = demo::bind("127.0.0.1:0".parse().expect("loopback addr")).await.expect("bind demo");
        // Never resolves: the server stops when the test's runtime shuts down.
        tokio::spawn(demo::serve(listener, DemoOptions::default(), std::future::pending()));
        let prometheus = PrometheusServer::start(&[demo_addr]).await;
        let client = client(prometheus.url());
        wait_until("a scraped checkout sample", FIRST_DATA_TIMEOUT, || async {
            let series = client.query_instant(CHECKOUT, None).await.expect("instant query");
            (!series.is_empty()).then_some(())
        })
        .await;
        Stack { demo_addr, _prometheus: prometheus, client, first_data_at: wall_now() }
    }
}

#[tokio::test]
async fn instant_query_returns_checkout_series() {
    let stack = Stack::start().await;
    let series = stack.client.query_instant(CHECKOUT, None).await.expect("instant query");
    let mut codes: Vec<&str> = series.iter().filter_map(|s| label(s, "code")).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["200", "404", "500", "503"]);
    let now = wall_now();
    for one in &series {
        assert_eq!(label(one, "__name__"), Some("http_requests_total"));
        assert_eq!(label(one, "job"), Some("checkout"), "honor_labels keeps the page's job");
        assert_eq!(label(one, "instance"), Some(stack.demo_addr.to_string().as_str()));
        let [(at, value)] = one.points[..] else { panic!("one point expected: {one:?}") };
        assert!((now - at).abs() < 10_000, "evaluation time {at} far from now {now}");
        // Counters start as if up for days: 100 req/s for 3 days is ~26M requests.
        assert!(value.is_finite() && value > 0.0, "{one:?}");
        if label(one, "code") == Some("200") {
            assert!(value > 20_000_000.0, "{one:?}");
        }
    }

    // An explicit time with milliseconds comes back exactly, despite float seconds on the wire.
    // It is after the first sample, and queried once it has passed, so it has data.
    let at = stack.first_data_at + 1_234;
    wait_until("the instant to pass", Duration::from_secs(5), || async { (wall_now() > at).then_some(()) }).await;
    let series = stack.client.query_instant(CHECKOUT, Some(at)).await.expect("instant query at");
    assert_eq!(series.len(), 4, "{series:?}");
    assert!(series.iter().all(|s| s.points[0].0 == at), "{series:?}");
}

#[tokio::test]
async fn chunked_range_query_matches_one_unchunked_query() {
    let stack = Stack::start().await;
    let step = Duration::from_secs(1);
    // Starts after the first sample so every step has a value; ends off the step grid.
    let start = stack.first_data_at + 1_000;
    let end = start + 9_500;
    let n_points = 10;
    wait_until("the range to be scraped", Duration::from_secs(30), || async {
        (wall_now() > end + 2 * SCRAPE_INTERVAL.as_millis() as Millis).then_some(())
    })
    .await;

    let whole = stack.client.query_range(CHECKOUT, start, end, step).await.expect("range query");
    // 3 points per request: four chunks (3+3+3+1), so three chunk boundaries.
    let chunked = stack.client.query_range_chunked(CHECKOUT, start, end, step, 3).await.expect("chunked range query");
    assert_eq!(chunked, whole);

    assert_eq!(whole.len(), 4, "{whole:?}");
    let expected_times: Vec<Millis> = (0..n_points).map(|k| start + k * 1_000).collect();
    for series in &whole {
        let times: Vec<Millis> = series.points.iter().map(|(at, _)| *at).collect();
        assert_eq!(times, expected_times, "{:?}", series.labels);
        assert!(series.points.windows(2).all(|pair| pair[0].1 <= pair[1].1), "counter went down: {series:?}");
    }
    // The demo advances 100 req/s, so the 200s counter must have moved within 9 s.
    let ok = whole.iter().find(|s| label(s, "code") == Some("200")).expect("code 200 series");
    assert!(ok.points[n_points as usize - 1].1 > ok.points[0].1, "{ok:?}");
}

#[tokio::test]
async fn bad_selector_is_a_permanent_api_error_and_no_match_is_empty() {
    init();
    let prometheus = PrometheusServer::start(&[]).await;
    let client = client(prometheus.url());

    let err = client.query_instant("http_requests_total{", None).await.unwrap_err();
    assert!(matches!(&err, PromError::Api { error_type: ApiErrorType::BadData, .. }), "{err:?}");
    assert!(!err.is_retryable());
    let now = wall_now();
    let err = client.query_range("rate(", now - 60_000, now, Duration::from_secs(15)).await.unwrap_err();
    assert!(matches!(&err, PromError::Api { error_type: ApiErrorType::BadData, .. }), "{err:?}");

    // No data is an empty answer, never an error and never a zero.
    let series = client.query_instant("metric_nobody_exports", None).await.expect("valid query");
    assert_eq!(series, []);
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_error() {
    init();
    let client = client(&format!("http://{}", closed_addr()));
    let err = client.query_instant(CHECKOUT, None).await.unwrap_err();
    assert!(matches!(err, PromError::Http(_)), "{err:?}");
    assert!(err.is_retryable());
    let now = wall_now();
    let err = client.query_range(CHECKOUT, now - 60_000, now, Duration::from_secs(15)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
