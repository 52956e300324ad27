//! `sloguard run` end to end: the real binary scraping a target the test controls, answering
//! over real HTTP, persisting to real sled files, and surviving signals.
//!
//! Budgets are asserted exactly where the test sets the counters itself: with objective 99 the
//! budget fraction is 1%, so an error ratio `r` over the window leaves `1 - 100 r` of it.

use std::time::Duration;

use serde_json::Value;

use crate::support::closed_addr;
use crate::support::ctl_target::{Mode, Target};
use crate::support::daemon::{Daemon, INTERVAL, SHUTDOWN_GRACE, alert, budget, count_events, run_to_exit, scrape_spec};

/// Bound on a change at the target showing in the API: a scrape and an evaluation (1 s each),
/// with slack for a loaded 2-core machine.
const SEE: Duration = Duration::from_secs(15);

/// Tolerance on budgets computed from counters the test set exactly.
const EXACT: f64 = 1e-6;

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < EXACT)
}

fn slo(service: &str) -> String {
    format!("{service}/availability")
}

fn spec_file(service: &str) -> String {
    format!("{service}.yaml")
}

/// Starts a daemon with one objective-99 service on its own target, waits until the target's
/// first scrape (the baseline) is in, then makes the budget known: 1000 good requests, 100% left.
async fn known_budget(service: &str) -> (Target, Daemon) {
    crate::support::init();
    let target = Target::start(service, 1_000).await;
    let daemon = Daemon::start(&[(&spec_file(service), scrape_spec(service, service, "99", &[target.url()]))]).await;
    daemon
        .wait_for("the baseline scrape", SEE, &format!("/v1/services/{service}"), |s| {
            s["sources"][0]["last_success"].is_string()
        })
        .await;
    target.add(1_000, 0);
    daemon
        .wait_for("budget 100%", SEE, &format!("/v1/services/{service}"), |s| close(budget(s, &slo(service)), 1.0))
        .await;
    (target, daemon)
}

/// Spends the budget: 500 good and 500 failed requests on top of 1000 good, a 25% error ratio
/// (burn 25: the page fires, the ticket's conditions hold but it waits for the page to resolve,
/// and the service freezes at -2400%). Returns the
/// service body once all of that shows.
async fn overspend(target: &Target, daemon: &Daemon, service: &str) -> Value {
    target.add(500, 500);
    daemon
        .wait_for("page firing and frozen", SEE, &format!("/v1/services/{service}"), |s| {
            s["frozen"] == true && alert(s, &slo(service), "page").0 && close(budget(s, &slo(service)), -24.0)
        })
        .await
}

/// A flush interval has certainly passed, with one more for the write itself. Flushes are not
/// observable from outside, so this is the one fixed wait.
async fn wait_for_flush() {
    tokio::time::sleep(INTERVAL * 2 + Duration::from_millis(500)).await;
}

fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn live_scrape_turns_errors_into_a_page_and_a_denied_gate() {
    crate::support::init();
    let target = Target::start("shop", 100_000).await;
    target.set_traffic(10, 0);
    let daemon = Daemon::start(&[("shop.yaml", scrape_spec("shop", "shop", "99.9", &[target.url()]))]).await;

    let gate = daemon.wait_for("gate allow", SEE, "/v1/gate/shop", |g| g["decision"] == "allow").await;
    assert_eq!(gate["frozen"], false, "{gate}");
    assert!(gate["reasons"][0].as_str().unwrap().contains("within budget"), "{gate}");

    // Every request fails from now on.
    target.set_traffic(0, 10);
    let service = daemon
        .wait_for("page firing and frozen", SEE, "/v1/services/shop", |s| {
            alert(s, "shop/availability", "page").0 && s["frozen"] == true
        })
        .await;
    assert!(budget(&service, "shop/availability").unwrap() <= 0.0, "{service}");
    let gate = daemon.gate("shop").await;
    assert_eq!(gate["decision"], "deny", "{gate}");
    assert_eq!(gate["frozen"], true, "{gate}");
    let reasons: Vec<&str> = gate["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(reasons[0].starts_with("shop is frozen since") && reasons[0].contains("shop/availability"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("shop/availability page alert firing")), "{reasons:?}");

    let events = daemon.events("shop").await;
    let page = events.iter().find(|e| e["event"] == "alert_firing" && e["severity"] == "page").expect("page event");
    assert_eq!(page["slo"], "shop/availability");
    assert_eq!(count_events(&events, "freeze", None), 1, "{events:?}");
    let freeze = events.iter().find(|e| e["event"] == "freeze").unwrap();
    assert_eq!(freeze["since"], gate["frozen_since"], "{freeze}");

    // The event query's filters and errors.
    let recent = daemon.get_json("/v1/events?service=shop&since=1h&limit=1").await;
    assert_eq!(recent["events"].as_array().unwrap().len(), 1, "{recent}");
    let (status, body) = daemon.get("/v1/events?since=yesterday").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("since"), "{body}");
    let (status, body) = daemon.get("/v1/gate/nope").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("nope"), "{body}");
}

#[tokio::test]
async fn unreachable_or_malformed_target_is_no_data_never_allow() {
    crate::support::init();
    let ghost_url = format!("http://{}/metrics", closed_addr());
    let half = Target::start("half", 100_000).await;
    half.set_traffic(10, 0);
    let daemon = Daemon::start(&[
        ("ghost.yaml", scrape_spec("ghost", "ghost", "99.9", std::slice::from_ref(&ghost_url))),
        ("half.yaml", scrape_spec("half", "half", "99.9", &[half.url()])),
    ])
    .await;

    // An unreachable target: no budget, source down, gate warns.
    let ghost = daemon
        .wait_for("ghost source down", SEE, "/v1/services/ghost", |s| s["sources"][0]["n_attempts"].as_u64() >= Some(2))
        .await;
    let source = &ghost["sources"][0];
    assert_eq!(source["up"], false, "{ghost}");
    assert_eq!(source["source"], ghost_url.as_str());
    assert!(source["last_error"].as_str().is_some_and(|e| e.contains("cannot reach")), "{ghost}");
    assert!(source["last_success"].is_null(), "{ghost}");
    assert_eq!(budget(&ghost, "ghost/availability"), None, "{ghost}");
    let gate = daemon.gate("ghost").await;
    assert_eq!(gate["decision"], "warn", "{gate}");
    let reasons = gate["reasons"].to_string();
    assert!(reasons.contains("no data") && reasons.contains("is down"), "{gate}");
    let metrics = daemon.metrics().await;
    let up = format!("sloguard_source_up{{source=\"{ghost_url}\",kind=\"scrape\"}}");
    assert_eq!(metric_value(&metrics, &up), Some(0.0), "{metrics}");
    assert!(!metrics.contains("sloguard_slo_budget_remaining_ratio{service=\"ghost\""), "{metrics}");

    // A half-broken page while errors happen: the good lines still parse, but the scrape is no
    // data (source down, gate warns), never "no errors".
    daemon.wait_for("half allowed", SEE, "/v1/gate/half", |g| g["decision"] == "allow").await;
    half.set_mode(Mode::Malformed);
    half.set_traffic(5, 5);
    let half_status =
        daemon.wait_for("half source down", SEE, "/v1/services/half", |s| s["sources"][0]["up"] == false).await;
    let error = half_status["sources"][0]["last_error"].as_str().unwrap();
    assert!(error.contains("malformed line") && error.contains("scrape ignored"), "{half_status}");
    for _ in 0..3 {
        let gate = daemon.gate("half").await;
        assert_eq!(gate["decision"], "warn", "{gate}");
        assert!(gate["reasons"].to_string().contains("is down"), "{gate}");
        let ghost = daemon.gate("ghost").await;
        assert_eq!(ghost["decision"], "warn", "{ghost}");
        tokio::time::sleep(INTERVAL).await;
    }
    let metrics = daemon.metrics().await;
    let parse_errors = format!("sloguard_source_parse_errors_total{{source=\"{}\"}}", half.url());
    assert!(metric_value(&metrics, &parse_errors).is_some_and(|n| n >= 1.0), "{metrics}");

    // Unavailable (HTTP 503) is down too; fixed, the errors that happened meanwhile are counted.
    half.set_mode(Mode::Unavailable);
    daemon
        .wait_for("half answering 503", SEE, "/v1/services/half", |s| {
            s["sources"][0]["last_error"].as_str().is_some_and(|e| e.contains("503"))
        })
        .await;
    half.set_mode(Mode::Healthy);
    daemon.wait_for("the hidden errors to page", SEE, "/v1/gate/half", |g| g["decision"] == "deny").await;
}

#[tokio::test]
async fn sigkill_and_restart_keep_alerts_freeze_and_budget() {
    let (target, mut daemon) = known_budget("pay").await;
    let before = overspend(&target, &daemon, "pay").await;
    let frozen_since = before["frozen_since"].as_str().expect("frozen_since").to_string();
    let (_, page_since) = alert(&before, "pay/availability", "page");
    assert_eq!(alert(&before, "pay/availability", "ticket"), (false, None), "inhibited by the page: {before}");
    wait_for_flush().await;

    // More good traffic, seen by the daemon and then killed before (or just after) a flush:
    // 500 errors in 3000 requests, burn 16.7 (the page still fires).
    target.add(1_000, 0);
    let after_b = 1.0 - 500.0 / 3_000.0 * 100.0;
    daemon
        .wait_for("the last scrape", SEE, "/v1/services/pay", |s| close(budget(s, "pay/availability"), after_b))
        .await;
    daemon.kill9().await;
    daemon.restart().await;

    // The first snapshot, before any scrape: restored state only.
    let restored = daemon.service("pay").await;
    assert_eq!(restored["frozen_since"], frozen_since.as_str(), "{restored}");
    assert_eq!(alert(&restored, "pay/availability", "page"), (true, page_since.clone()));
    assert_eq!(alert(&restored, "pay/availability", "ticket"), (false, None));
    let first = budget(&restored, "pay/availability");
    assert!(close(first, -24.0) || close(first, after_b), "lost more than one flush interval: {first:?}");
    eprintln!("restart after SIGKILL: ready in {:?}, budget {first:?}", daemon.ready_after);

    // The next scrape counts what the kill lost, from the restored last values: nothing twice.
    let settled = daemon
        .wait_for("the budget to catch up", SEE, "/v1/services/pay", |s| close(budget(s, "pay/availability"), after_b))
        .await;
    assert_eq!(settled["frozen_since"], frozen_since.as_str());
    tokio::time::sleep(INTERVAL * 2).await;
    let events = daemon.events("pay").await;
    assert_eq!(count_events(&events, "alert_firing", Some("page")), 1, "{events:#?}");
    assert_eq!(count_events(&events, "alert_firing", Some("ticket")), 0, "{events:#?}");
    assert_eq!(count_events(&events, "freeze", None), 1, "{events:#?}");
    assert_eq!(events.len(), 2, "no resolve or unfreeze either: {events:#?}");
    let page = events.iter().find(|e| e["severity"] == "page").unwrap();
    assert_eq!(page["since"].as_str(), page_since.as_deref());
}

#[tokio::test]
async fn sighup_with_a_broken_spec_keeps_the_running_set() {
    let (alpha, daemon) = known_budget("alpha").await;
    let before = overspend(&alpha, &daemon, "alpha").await;
    let good_spec = scrape_spec("alpha", "alpha", "99", &[alpha.url()]);

    daemon.write_spec("alpha.yaml", &good_spec.replace("objective: 99", "objective: 150"));
    daemon.sighup();
    let metrics = wait_metric(&daemon, "sloguard_config_reload_success", 0.0).await;
    assert_eq!(metric_value(&metrics, "sloguard_config_reload_failures_total"), Some(1.0), "{metrics}");
    let gate = daemon.gate("alpha").await;
    assert_eq!(gate["decision"], "deny", "still serving the old spec: {gate}");
    let log = daemon.stderr();
    assert!(log.contains("reload rejected") && log.contains("alpha.yaml:4:16: slos[0].objective"), "{log}");

    let beta = Target::start("beta", 1_000).await;
    beta.set_traffic(10, 0);
    daemon.write_spec("alpha.yaml", &good_spec);
    daemon.write_spec("beta.yaml", &scrape_spec("beta", "beta", "99", &[beta.url()]));
    daemon.sighup();
    wait_metric(&daemon, "sloguard_config_reload_success", 1.0).await;
    let services = daemon.get_json("/v1/services").await;
    let names: Vec<&str> =
        services["services"].as_array().unwrap().iter().map(|s| s["service"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta"], "{services}");

    let after = daemon.service("alpha").await;
    assert_eq!(after["frozen_since"], before["frozen_since"], "{after}");
    assert_eq!(alert(&after, "alpha/availability", "page"), alert(&before, "alpha/availability", "page"));
    assert!(close(budget(&after, "alpha/availability"), -24.0), "{after}");
    assert_eq!(daemon.gate("alpha").await["decision"], "deny");
    daemon.wait_for("beta allowed", SEE, "/v1/gate/beta", |g| g["decision"] == "allow").await;
    assert_eq!(count_events(&daemon.events("alpha").await, "freeze", None), 1);
}

/// Polls `/metrics` until the unlabelled `name` has `value`; returns the page.
async fn wait_metric(daemon: &Daemon, name: &str, value: f64) -> String {
    let deadline = tokio::time::Instant::now() + SEE;
    loop {
        let metrics = daemon.metrics().await;
        if metric_value(&metrics, name) == Some(value) {
            return metrics;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} never became {value}:\n{metrics}\n{}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sigterm_flushes_and_exits_0_and_the_restart_sees_everything() {
    let (target, mut daemon) = known_budget("term").await;
    let before = overspend(&target, &daemon, "term").await;
    // Seen but certainly not flushed yet by the periodic flush: only the final flush saves it.
    target.add(1_000, 0);
    let last = 1.0 - 500.0 / 3_000.0 * 100.0;
    daemon.wait_for("the last scrape", SEE, "/v1/services/term", |s| close(budget(s, "term/availability"), last)).await;
    let (status, took) = daemon.sigterm().await;
    assert_eq!(status.code(), Some(0), "{}", daemon.logs());
    assert!(took < SHUTDOWN_GRACE, "took {took:?}");
    assert!(daemon.stderr().contains("stopped"), "{}", daemon.logs());
    eprintln!("SIGTERM to exit: {took:?}");

    daemon.restart().await;
    let restored = daemon.service("term").await;
    assert!(close(budget(&restored, "term/availability"), last), "final flush lost samples: {restored}");
    assert_eq!(restored["frozen_since"], before["frozen_since"]);
    assert_eq!(alert(&restored, "term/availability", "page"), alert(&before, "term/availability", "page"));
    assert_eq!(count_events(&daemon.events("term").await, "freeze", None), 1);
}

#[tokio::test]
async fn bad_config_or_spec_exits_64_with_file_line_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::write(specs.join("x.yaml"), scrape_spec("x", "x", "99", &["http://127.0.0.1:9/metrics".into()])).unwrap();
    let config = dir.path().join("sloguard.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:9\ndata_dir: data\nspecs: specs\nevaluation_interval: 10x\n").unwrap();

    let out = run_to_exit(&config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    let expected = format!("{}:4:22: evaluation_interval: ", config.display());
    assert!(stderr.lines().any(|l| l.starts_with(&expected)), "want {expected:?} in:\n{stderr}");
    assert!(!dir.path().join("data").exists(), "the store was opened before validation");

    // A bad spec: the daemon reports the spec's position the same way.
    std::fs::write(&config, "listen: 127.0.0.1:9\ndata_dir: data\nspecs: specs\n").unwrap();
    let broken = scrape_spec("x", "x", "150", &["http://127.0.0.1:9/metrics".into()]);
    std::fs::write(specs.join("x.yaml"), broken).unwrap();
    let out = run_to_exit(&config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    let expected = format!("{}:4:16: slos[0].objective: ", specs.join("x.yaml").display());
    assert!(stderr.lines().any(|l| l.starts_with(&expected)), "want {expected:?} in:\n{stderr}");
}

/// The wrong-page bug of the hardening issue: series were matched against every service's
/// selectors whatever target they came from, so a target of `a` exposing
/// `http_requests_total{job="ok",code="500"}` paged and froze `b`, whose SLO selects `job="ok"`
/// from its own target. Now a target feeds only the services that list it; `c` lists the failing
/// target too and so pages with `a`.
#[tokio::test]
async fn a_target_feeds_only_the_services_that_list_it() {
    crate::support::init();
    let failing = Target::start("ok", 100_000).await;
    let healthy = Target::start("ok", 100_000).await;
    failing.set_traffic(10, 0);
    healthy.set_traffic(10, 0);
    let daemon = Daemon::start(&[
        ("a.yaml", scrape_spec("a", "ok", "99.9", &[failing.url()])),
        ("b.yaml", scrape_spec("b", "ok", "99.9", &[healthy.url()])),
        ("c.yaml", scrape_spec("c", "ok", "99.9", &[failing.url()])),
    ])
    .await;
    for service in ["a", "b", "c"] {
        daemon.wait_for("within budget", SEE, &format!("/v1/gate/{service}"), |g| g["decision"] == "allow").await;
    }

    failing.set_traffic(0, 10);
    for service in ["a", "c"] {
        daemon
            .wait_for("page firing and frozen", SEE, &format!("/v1/services/{service}"), |s| {
                alert(s, &slo(service), "page").0 && s["frozen"] == true
            })
            .await;
    }
    // `a` and `c` were decided in the same evaluations as `b`, so `b` has seen the failures too,
    // had they reached it.
    let b = daemon.service("b").await;
    assert!(!alert(&b, &slo("b"), "page").0 && !alert(&b, &slo("b"), "ticket").0, "{b}");
    assert_eq!(b["frozen"], false, "{b}");
    assert!(close(budget(&b, &slo("b")), 1.0), "{b}");
    assert_eq!(daemon.gate("b").await["decision"], "allow");
    assert_eq!(daemon.events("b").await, Vec::<Value>::new());
}

/// The fresh-sidecar bug of "SLOs as teams run them": a burst in the first seconds of a 30-day
/// window "spent" the budget thousands of times over and froze the service at once. With the
/// default `policy.min_coverage` (1d) the page still fires, but the gate warns, saying why,
/// instead of denying; and the ticket, whose conditions hold as well, stays quiet while the page
/// speaks for the incident: one alert event, not two.
#[tokio::test]
async fn a_fresh_daemon_with_a_burst_warns_instead_of_freezing_and_pages_once() {
    crate::support::init();
    let target = Target::start("young", 100_000).await;
    target.set_traffic(10, 0);
    let spec = scrape_spec("young", "young", "99.9", &[target.url()]).replace("  min_coverage: 1s\n", "");
    assert!(spec.contains("policy:\nsource:"), "the helper's policy has only min_coverage: {spec}");
    let daemon = Daemon::start(&[("young.yaml", spec.replace("policy:\n", ""))]).await;
    daemon.wait_for("gate allow", SEE, "/v1/gate/young", |g| g["decision"] == "allow").await;

    target.set_traffic(0, 10);
    let service = daemon
        .wait_for("page firing, budget spent", SEE, "/v1/services/young", |s| {
            alert(s, &slo("young"), "page").0 && budget(s, &slo("young")).is_some_and(|b| b < 0.0)
        })
        .await;
    assert_eq!(service["frozen"], false, "{service}");
    let status = &service["slos"][0];
    assert_eq!(status["freeze_held_back"], true, "{status}");
    let coverage = status["coverage_s"].as_f64().expect("coverage_s");
    assert!(coverage > 0.0 && coverage < 600.0, "{status}");
    assert!(!alert(&service, &slo("young"), "ticket").0, "the page speaks for the incident: {service}");
    let gate = daemon.gate("young").await;
    assert_eq!(gate["decision"], "warn", "{gate}");
    let reasons = gate["reasons"].to_string();
    assert!(reasons.contains("min_coverage") && reasons.contains("no freeze yet"), "{gate}");
    let events = daemon.events("young").await;
    assert_eq!(count_events(&events, "alert_firing", None), 1, "{events:?}");
    assert_eq!(count_events(&events, "freeze", None), 0, "{events:?}");
}

/// A series that vanishes while its target still answers is missing data, not good news: after
/// `alerting.no_data` the SLO raises `no_data` (with the last sample's time), and
/// `data_returned` once samples come back.
#[tokio::test]
async fn a_vanished_series_raises_no_data_while_the_scrape_succeeds() {
    crate::support::init();
    let target = Target::start("gone", 100_000).await;
    target.set_traffic(10, 0);
    let spec = scrape_spec("gone", "gone", "99.9", &[target.url()])
        .replace("    sli:\n", "    alerting: { no_data: 1m }\n    sli:\n");
    let daemon = Daemon::start(&[("gone.yaml", spec)]).await;
    daemon.wait_for("gate allow", SEE, "/v1/gate/gone", |g| g["decision"] == "allow").await;

    target.set_mode(Mode::Vanished);
    let no_data = Duration::from_secs(60);
    let events = crate::support::wait_until("a no_data event", no_data + SEE, || async {
        let events = daemon.events("gone").await;
        events.iter().any(|e| e["event"] == "no_data").then_some(events)
    })
    .await;
    let event = events.iter().find(|e| e["event"] == "no_data").unwrap();
    assert_eq!(event["slo"], "gone/availability", "{event}");
    assert!(event["since"].is_string(), "{event}");
    let source = &daemon.service("gone").await["sources"][0];
    assert_eq!(source["up"], true, "the scrape itself succeeds: {source}");

    target.set_mode(Mode::Healthy);
    crate::support::wait_until("data_returned", SEE, || async {
        daemon.events("gone").await.iter().any(|e| e["event"] == "data_returned").then_some(())
    })
    .await;
}

/// A counter that reads NaN is left out and said so (health, `/metrics`), not turned into a
/// `null` budget with no reason: the budget stays what the valid samples make it, and counting
/// goes on from the last valid value when the counter is a number again.
#[tokio::test]
async fn a_nan_counter_is_rejected_with_a_reason_and_the_budget_stays() {
    crate::support::init();
    let target = Target::start("nan", 100_000).await;
    target.set_traffic(10, 0);
    let daemon = Daemon::start(&[("nan.yaml", scrape_spec("nan", "nan", "99.9", &[target.url()]))]).await;
    daemon.wait_for("gate allow", SEE, "/v1/gate/nan", |g| g["decision"] == "allow").await;

    target.set_mode(Mode::NotANumber);
    let service = daemon
        .wait_for("the rejection in the source's health", SEE, "/v1/services/nan", |s| {
            s["sources"][0]["n_samples_rejected"]["NaN"].as_u64().is_some_and(|n| n >= 2)
        })
        .await;
    let source = &service["sources"][0];
    let warnings = source["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "one warning per run of bad samples: {source}");
    assert!(warnings[0].as_str().unwrap().contains("a NaN sample is not a counter value"), "{source}");
    assert!(close(budget(&service, "nan/availability"), 1.0), "{service}");
    let metrics = daemon.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sloguard_source_samples_rejected_total{") && l.contains("reason=\"NaN\"")),
        "{metrics}"
    );

    // Back to numbers: 10 errors a tick now, counted from the last valid value (not from NaN).
    target.set_traffic(0, 10);
    target.set_mode(Mode::Healthy);
    daemon
        .wait_for("errors count again", SEE, "/v1/services/nan", |s| {
            budget(s, "nan/availability").is_some_and(|b| b < 1.0)
        })
        .await;
}

/// A target over its `sample_limit` is down with the reason, as Prometheus treats it: none of
/// its samples count (a partial page could be missing exactly the error series), and the
/// daemon's series stay at what the limit allows.
#[tokio::test]
async fn a_target_over_its_sample_limit_is_down_with_the_reason() {
    crate::support::init();
    let target = Target::start("big", 100_000).await;
    target.set_traffic(10, 0);
    let spec = scrape_spec("big", "big", "99.9", &[target.url()])
        .replace("    timeout: 1s\n", "    timeout: 1s\n    sample_limit: 1\n");
    let daemon = Daemon::start(&[("big.yaml", spec)]).await;
    let service = daemon
        .wait_for("the source down over its limit", SEE, "/v1/services/big", |s| {
            s["sources"][0]["n_failures"].as_u64().is_some_and(|n| n >= 2)
        })
        .await;
    let source = &service["sources"][0];
    assert_eq!(source["up"], false, "{source}");
    assert_eq!(source["last_error"], "2 samples, over the sample_limit of 1; scrape ignored", "{source}");
    assert!(service["slos"][0]["budget_remaining"].is_null(), "no data, not all good: {service}");
    let metrics = daemon.metrics().await;
    assert!(metrics.lines().any(|l| l == "sloguard_series 0"), "nothing of it is held: {metrics}");
}

/// `group_by: [job]` over three targets, one per job, with room for two groups: the first two
/// jobs get instances, the third is refused and says so; an outage of one route pages and
/// freezes for that route alone, while the other keeps its whole budget.
#[tokio::test]
async fn a_grouped_slo_pages_and_freezes_one_route_while_another_stays_healthy() {
    crate::support::init();
    let (pay, home) = (Target::start("pay", 100_000).await, Target::start("home", 100_000).await);
    pay.set_traffic(10, 0);
    home.set_traffic(10, 0);
    let spec = scrape_spec("shop", "shop", "99.9", &[pay.url(), home.url()])
        .replace("job=\"shop\",", "")
        .replace("{job=\"shop\"}", "")
        .replace("    window: 30d\n", "    window: 30d\n    group_by: [job]\n    max_groups: 2\n");
    assert!(spec.contains("group_by") && !spec.contains("job=\"shop\""), "{spec}");
    let daemon = Daemon::start(&[("shop.yaml", spec.clone())]).await;
    let [pay_slo, home_slo] = ["pay", "home"].map(|job| format!("shop/availability{{job=\"{job}\"}}"));
    daemon
        .wait_for("both groups with budget", SEE, "/v1/services/shop", |s| {
            // Groups appear with their first samples.
            s["slos"].as_array().is_some_and(|slos| slos.len() == 2)
                && close(budget(s, &pay_slo), 1.0)
                && close(budget(s, &home_slo), 1.0)
        })
        .await;

    pay.set_traffic(0, 10);
    let service = daemon
        .wait_for("pay pages and freezes", SEE, "/v1/services/shop", |s| {
            alert(s, &pay_slo, "page").0 && s["frozen"] == true
        })
        .await;
    assert!(!alert(&service, &home_slo, "page").0, "{service}");
    assert!(close(budget(&service, &home_slo), 1.0), "{service}");
    let status = service["slos"].as_array().unwrap().iter().find(|s| s["slo"] == home_slo.as_str()).unwrap();
    assert_eq!((status["name"].as_str(), status["group"]["job"].as_str()), (Some("availability"), Some("home")));

    let events = daemon.events("shop").await;
    let pages: Vec<&Value> = events.iter().filter(|e| e["event"] == "alert_firing").collect();
    assert_eq!(pages.len(), 1, "one page, for pay only: {events:?}");
    assert_eq!((pages[0]["slo"].as_str(), pages[0]["group"]["job"].as_str()), (Some(pay_slo.as_str()), Some("pay")));
    let gate = daemon.gate("shop").await;
    assert_eq!(gate["decision"], "deny", "{gate}");
    assert!(gate["reasons"][0].as_str().unwrap().contains(&pay_slo), "{gate}");

    // A third job on a target the spec adds: beyond max_groups, refused, the others unaffected.
    let extra = Target::start("extra", 100_000).await;
    let more = spec.replace(&format!("'{}']", home.url()), &format!("'{}', '{}']", home.url(), extra.url()));
    daemon.write_spec("shop.yaml", &more);
    daemon.sighup();
    let service = daemon
        .wait_for("the refusal in the source's health", SEE, "/v1/services/shop", |s| {
            s["sources"].as_array().unwrap().iter().any(|src| src["warnings"].as_array().is_some_and(|w| !w.is_empty()))
        })
        .await;
    assert_eq!(service["slos"].as_array().unwrap().len(), 2, "{service}");
    let metrics = daemon.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"sloguard_slo_groups_refused_total{service="shop",slo="shop/availability"}"#),
        Some(1.0),
        "{metrics}"
    );
    let firing = r#"sloguard_slo_alert_firing{service="shop",slo="shop/availability{job=\"pay\"}",severity="page"}"#;
    assert_eq!(metric_value(&metrics, firing), Some(1.0), "{metrics}");
}

/// A blackbox-style target: `probe_success` of two probe locations, the second failing.
async fn probe_target() -> String {
    let page = "# TYPE probe_success gauge\nprobe_success{job=\"blackbox\",location=\"fra\"} 1\n\
                probe_success{job=\"blackbox\",location=\"iad\"} 0\n";
    let app = axum::Router::new().route("/metrics", axum::routing::get(move || async move { page }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind probe target");
    let addr = listener.local_addr().expect("probe target address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/metrics")
}

/// A probe SLO (1m time slices of `min(probe_success) >= 1`) fed by a target whose probes
/// fail in one location: the first slice that closes is bad, which pages and, the day's budget
/// being spent, freezes. Up to a minute passes before the first slice closes.
#[tokio::test]
async fn a_probe_slo_fed_by_probe_success_pages_when_a_slice_fails() {
    crate::support::init();
    let url = probe_target().await;
    let spec = format!(
        "service: edge\nslos:\n  - name: probe\n    objective: 99.5\n    window: 1d\n    sli:\n      \
         time_slice: {{ gauge: 'probe_success{{job=\"blackbox\"}}', good: '>= 1', slice: 1m }}\n\
         policy:\n  min_coverage: 1s\nsource:\n  scrape:\n    targets: ['{url}']\n    interval: 1s\n    timeout: 1s\n"
    );
    let daemon = Daemon::start(&[("edge.yaml", spec)]).await;
    let slice_closes = Duration::from_secs(60) + SEE;
    let service = daemon
        .wait_for("a bad slice pages and freezes", slice_closes, "/v1/services/edge", |s| {
            alert(s, "edge/probe", "page").0 && s["frozen"] == true
        })
        .await;
    // One slice, bad: the whole error ratio, 200 times a 0.5% budget.
    assert!(budget(&service, "edge/probe").is_some_and(|b| b <= -198.0), "{service}");
    let events = daemon.events("edge").await;
    assert_eq!(count_events(&events, "alert_firing", None), 1, "{events:?}");
    assert_eq!(daemon.gate("edge").await["decision"], "deny");
}
