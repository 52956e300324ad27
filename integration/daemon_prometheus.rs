//! The daemon with a real Prometheus on either side: reading SLIs from its query API (with the
//! start-up backfill), and being scraped by it (`/metrics` is valid for promtool and Prometheus).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::ctl_target::Target;
use crate::support::daemon::{Daemon, budget, prometheus_spec, scrape_spec};
use crate::support::prometheus::{PrometheusServer, client};
use crate::support::{init, wait_until};

/// History Prometheus collects before sloguard starts: well under the backfill's 1-minute step,
/// which is the case a coarse-only backfill would miss.
const HISTORY: Duration = Duration::from_secs(16);

/// Bound on Prometheus scraping something for the first time (1 s interval, loaded machine).
const FIRST_SCRAPE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn prometheus_source_backfills_before_ready_and_keeps_polling() {
    init();
    let target = Target::start("api", 100_000).await;
    // 20% of requests fail: with objective 99 that is burn 20, a budget at -1900%. Counters move
    // in whole ticks of 8 + 2, so every pair of samples has exactly that ratio.
    target.set_traffic(8, 2);
    let prometheus = PrometheusServer::start(&[target.addr()]).await;
    let prom = client(prometheus.url());
    wait_until("prometheus to scrape the target", FIRST_SCRAPE, || async {
        let series = prom.query_instant(r#"http_requests_total{job="api"}"#, None).await.ok()?;
        (series.len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(HISTORY).await;

    // Polled every 5 s, so the snapshot read right after ready holds the backfill only.
    let daemon = Daemon::start(&[("api.yaml", prometheus_spec("api", "api", "99", prometheus.url(), "5s"))]).await;
    let first = daemon.service("api").await;
    let source = &first["sources"][0];
    assert_eq!(source["kind"], "prometheus", "{first}");
    assert_eq!(source["n_attempts"], 0, "not the first snapshot: {first}");
    let backfilled =
        budget(&first, "api/availability").unwrap_or_else(|| panic!("no backfill: {first}\n{}", daemon.logs()));
    assert!((backfilled - -19.0).abs() < 1e-3, "budget {backfilled} is not a 20% error ratio: {first}");
    assert!(daemon.stderr().contains("backfilled from"), "{}", daemon.logs());

    // It keeps polling: once errors stop, the budget recovers.
    target.set_traffic(10, 0);
    let later = daemon
        .wait_for("polls to move the budget", Duration::from_secs(20), "/v1/services/api", |s| {
            budget(s, "api/availability").is_some_and(|b| b > backfilled + 0.5)
        })
        .await;
    let source = &later["sources"][0];
    assert_eq!(source["up"], true, "{later}");
    assert!(source["n_attempts"].as_u64() >= Some(1) && source["last_error"].is_null(), "{later}");
}

#[tokio::test]
async fn metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    init();
    let target = Target::start("web", 100_000).await;
    target.set_traffic(10, 0);
    let daemon = Daemon::start(&[("web.yaml", scrape_spec("web", "web", "99.9", &[target.url()]))]).await;
    daemon.wait_for("a known budget", Duration::from_secs(15), "/v1/gate/web", |g| g["decision"] == "allow").await;

    let page = daemon.metrics().await;
    assert!(page.contains("sloguard_slo_budget_remaining_ratio{service=\"web\",slo=\"web/availability\"} "), "{page}");
    promtool_check_metrics(&page);

    let prometheus = PrometheusServer::start(&[daemon.addr()]).await;
    let prom = client(prometheus.url());
    wait_until("prometheus to scrape sloguard", FIRST_SCRAPE, || async {
        let up = prom.query_instant(r#"up{job="sloguard-test"}"#, None).await.ok()?;
        (up.len() == 1 && up[0].points[0].1 == 1.0).then_some(())
    })
    .await;
    let budgets = prom.query_instant("sloguard_slo_budget_remaining_ratio", None).await.expect("query budgets");
    assert_eq!(budgets.len(), 1, "{budgets:?}");
    let labels = &budgets[0].labels;
    assert!(labels.contains(&("service".into(), "web".into())), "{labels:?}");
    assert!(labels.contains(&("slo".into(), "web/availability".into())), "{labels:?}");
    assert_eq!(budgets[0].points[0].1, 1.0, "no errors, whole budget: {budgets:?}");
    // Every family is valid for Prometheus' own parser, not only the one asked for.
    let scrape_errors = prom.query_instant("scrape_samples_post_metric_relabeling", None).await.expect("query");
    assert!(scrape_errors[0].points[0].1 > 10.0, "{scrape_errors:?}");
}

/// `promtool check metrics` reads the page on stdin; any finding (lint warnings included) fails.
fn promtool_check_metrics(page: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (apt-get install prometheus, or scripts/test.sh)");
    child.stdin.take().expect("stdin").write_all(page.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let findings = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics ({}): {findings}\n{page}",
        out.status
    );
}

#[tokio::test]
async fn a_hanging_prometheus_does_not_hold_up_start_up() {
    init();
    // Accepts connections and never answers, like a server behind a dropping firewall or stuck.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    // Eight SLOs, sixteen selectors; each query would wait out the 2 s timeout.
    let mut spec = String::from("service: stuck\nslos:\n");
    for k in 0..8 {
        spec.push_str(&format!(
            "  - name: s{k}\n    objective: 99.9\n    window: 30d\n    sli:\n      \
             errors: 'http_requests_total{{job=\"stuck\",slo=\"{k}\",code=\"500\"}}'\n      \
             total: 'http_requests_total{{job=\"stuck\",slo=\"{k}\"}}'\n"
        ));
    }
    spec.push_str(&format!("source:\n  prometheus:\n    url: '{url}'\n    interval: 2s\n"));
    let daemon = Daemon::start(&[("stuck.yaml", spec)]).await;
    assert!(daemon.ready_after < Duration::from_secs(8), "ready only after {:?}", daemon.ready_after);
    assert!(daemon.stderr().contains("backfill"), "{}", daemon.logs());

    let status = daemon
        .wait_for("the source to be down", Duration::from_secs(15), "/v1/services/stuck", |s| {
            s["sources"][0]["last_error"].is_string()
        })
        .await;
    assert_eq!(status["sources"][0]["up"], false, "{status}");
    assert_eq!(daemon.gate("stuck").await["decision"], "warn");
}
