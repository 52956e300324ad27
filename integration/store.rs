//! An honest store with the real binary: a damaged store refuses to start and says what to do;
//! `--reset-state` moves it aside and starts; `sloguard store check` tells healthy from damaged;
//! a store that cannot write recovers by itself once it can.

use std::process::Command;
use std::time::Duration;

use crate::support::ctl_target::Target;
use tokio::time::Instant;

use crate::support::daemon::{Daemon, INTERVAL, alert, budget, count_events, run_to_exit, scrape_spec};
use crate::support::{sloguard_bin, wait_until};

/// Bound on a change showing in the API: a scrape and an evaluation (1 s each), with slack for
/// a loaded 2-core machine.
const SEE: Duration = Duration::from_secs(15);

/// A flush interval and the write itself.
const FLUSHED: Duration = Duration::from_millis(2_500);

fn store_check(dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(sloguard_bin()).args(["store", "check"]).arg(dir).output().expect("run store check");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_damaged_store_refuses_to_start_until_reset_state_moves_it_aside() {
    crate::support::init();
    let target = Target::start("inv", 1_000).await;
    let mut daemon = Daemon::start(&[("inv.yaml", scrape_spec("inv", "inv", "99", &[target.url()]))]).await;
    tokio::time::sleep(FLUSHED.max(INTERVAL * 2)).await;
    let (status, _) = daemon.sigterm().await;
    assert!(status.success(), "{}", daemon.logs());
    let data = daemon.data_dir();
    let (code, report) = store_check(&data);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("healthy") && report.contains("store id"), "{report}");

    // The reproduced failure: a deleted windows.log started with empty budgets.
    std::fs::remove_file(data.join("windows.log")).unwrap();
    let out = run_to_exit(&daemon.config_path()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("windows.log") && stderr.contains("missing"), "{stderr}");
    assert!(stderr.contains("sloguard store check") && stderr.contains("--reset-state"), "{stderr}");
    assert!(!data.join("windows.log").exists(), "the refused start made nothing");
    let (code, report) = store_check(&data);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("DAMAGED") && report.contains("windows.log"), "{report}");
    let (code, report) = store_check(&data.join("nope"));
    assert_eq!(code, 64, "{report}");

    daemon.run_args = vec!["--reset-state".into()];
    daemon.restart().await;
    assert!(daemon.stderr().contains("--reset-state: moved"), "{}", daemon.stderr());
    let discarded: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("discarded-"))
        .collect();
    assert_eq!(discarded.len(), 1, "{discarded:?}");
    assert!(discarded[0].join("db").exists() && discarded[0].join("sent.journal").exists());
    // The SIGTERM handler is installed when the core's loop first runs, just after ready: a
    // signal in between takes the default action (seen once on a loaded machine).
    tokio::time::sleep(INTERVAL).await;
    let (status, _) = daemon.sigterm().await;
    assert!(status.success(), "{}", daemon.logs());
    assert_eq!(store_check(&data).0, 0, "the fresh store is healthy");
}

/// Sets the daemon's file size limit (`prlimit --fsize`, soft:hard); the hard limit stays
/// unlimited so the test can lift the soft one again.
fn limit_file_size(daemon: &Daemon, soft: &str) {
    let status = Command::new("prlimit")
        .args(["--pid", &daemon.pid(), &format!("--fsize={soft}:unlimited")])
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --fsize={soft} failed: {status}");
}

/// A disk that refuses writes, made real on the running daemon with a file size limit of 0:
/// every write to a regular file (sled's, the window log, the probe) fails with EFBIG, where a
/// full disk fails with ENOSPC; the daemon survives SIGXFSZ. An unprivileged test cannot fill
/// a real disk (no tmpfs mount), so this is the nearest real failure, not an injected one.
#[tokio::test]
async fn failing_writes_make_it_unready_and_it_recovers_committing_the_page_and_freeze_once() {
    crate::support::init();
    let target = Target::start("pay", 1_000).await;
    let mut daemon = Daemon::start(&[("pay.yaml", scrape_spec("pay", "pay", "99", &[target.url()]))]).await;
    daemon
        .wait_for("the baseline scrape", SEE, "/v1/services/pay", |s| s["sources"][0]["last_success"].is_string())
        .await;
    target.add(1_000, 0);
    daemon.wait_for("budget known", SEE, "/v1/services/pay", |s| budget(s, "pay/availability") == Some(1.0)).await;

    limit_file_size(&daemon, "0");
    // Burn 25: the page fires and the service freezes, while nothing can be made durable.
    target.add(500, 500);
    daemon
        .wait_for("page firing and frozen", SEE, "/v1/services/pay", |s| {
            s["frozen"] == true && alert(s, "pay/availability", "page").0
        })
        .await;
    wait_until("/readyz to answer 503", SEE, || async {
        match daemon.try_get("/readyz").await {
            Some((503, body)) => {
                body["reason"].as_str().filter(|r| r.contains("store not writable")).map(str::to_string)
            }
            _ => None,
        }
    })
    .await;
    let metrics = daemon.metrics().await;
    assert!(metrics.contains("\nsloguard_store_writable 0\n"), "{metrics}");
    assert!(
        metrics.contains("sloguard_store_write_failure{part=\"window_log\",reason=\"file_too_large\"}"),
        "{metrics}"
    );
    tokio::time::sleep(INTERVAL * 3).await;
    let events = daemon.events("pay").await;
    assert_eq!(events.len(), 0, "nothing is published before it is durable: {events:?}");

    limit_file_size(&daemon, "unlimited");
    let lifted = Instant::now();
    wait_until("/readyz to answer 200", SEE, || async {
        matches!(daemon.try_get("/readyz").await, Some((200, _))).then_some(())
    })
    .await;
    let recovered = lifted.elapsed();
    eprintln!("store recovered {recovered:?} after the file size limit was lifted");
    let events = daemon
        .wait_for("the page and freeze committed", SEE, "/v1/events?service=pay", |e| {
            e["events"].as_array().is_some_and(|a| a.len() >= 2)
        })
        .await;
    let metrics = daemon.metrics().await;
    assert!(metrics.contains("\nsloguard_store_writable 1\n"), "{metrics}");
    tokio::time::sleep(INTERVAL * 3).await;
    let events_now = daemon.events("pay").await;
    assert_eq!(count_events(&events_now, "alert_firing", Some("page")), 1, "{events_now:#?}\n{events}");
    assert_eq!(count_events(&events_now, "freeze", None), 1, "{events_now:#?}");

    // Durable, not just in sled's memory: a SIGKILL and a restart keep exactly those.
    daemon.kill9().await;
    daemon.restart().await;
    let events = daemon.events("pay").await;
    assert_eq!(count_events(&events, "alert_firing", Some("page")), 1, "{events:#?}");
    assert_eq!(count_events(&events, "freeze", None), 1, "{events:#?}");
    let service = daemon.service("pay").await;
    assert!(service["frozen"] == true && alert(&service, "pay/availability", "page").0, "{service}");
}
