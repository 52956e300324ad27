//! An honest store with the real binary: a damaged store refuses to start and says what to do;
//! `--reset-state` moves it aside and starts; `sloguard store check` tells healthy from damaged;
//! a store that cannot write recovers by itself once it can (see `store_write_failure.rs`).

use std::process::Command;
use std::time::Duration;

use crate::support::ctl_target::Target;
use crate::support::daemon::{Daemon, INTERVAL, run_to_exit, scrape_spec};
use crate::support::sloguard_bin;

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
    let (status, _) = daemon.sigterm().await;
    assert!(status.success(), "{}", daemon.logs());
    assert_eq!(store_check(&data).0, 0, "the fresh store is healthy");
}
