//! The real `sloguard run` as a child process: started on a config file, waited on until
//! `/readyz` answers, killed with SIGKILL (no chance to flush or finish anything) or stopped
//! with SIGTERM, and started again on the same data directory. Each start logs to its own
//! file so a test can read what one run did.
//!
//! Minimal on purpose: the shared daemon helper (`daemon.rs`, another branch) had not landed
//! when these tests were written; fold this into it when it does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sloguard::exposition::parse_strict;
use tokio::time::Instant;

use super::{POLL_INTERVAL, sloguard_bin};

/// Start-up bound: a debug build opens the store and binds in well under a second; far more
/// means it is stuck or failed.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The env var the test configs name in `notifiers.slack.token_env`.
pub const SLACK_TOKEN_ENV: &str = "SLOGUARD_TEST_SLACK_TOKEN";

pub struct Daemon {
    config: PathBuf,
    port: u16,
    child: Option<Child>,
    logs: Vec<PathBuf>,
    http: reqwest::Client,
}

impl Daemon {
    /// Starts `sloguard run --config <config>`, whose `listen` is `127.0.0.1:<port>`, and waits
    /// until it is ready.
    pub async fn start(config: &Path, port: u16) -> Daemon {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("HTTP client");
        let mut daemon = Daemon { config: config.to_path_buf(), port, child: None, logs: Vec::new(), http };
        daemon.restart().await;
        daemon
    }

    /// Starts it again (after `kill` or `terminate`) and waits until it is ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = self.config.with_file_name(format!("daemon-{}.log", self.logs.len()));
        let file = std::fs::File::create(&log).expect("create daemon log");
        let child = Command::new(sloguard_bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("SLOGUARD_LOG", "info")
            .env(SLACK_TOKEN_ENV, "xoxb-test-token")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn sloguard");
        self.child = Some(child);
        self.logs.push(log);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(res) = self.http.get(format!("{}/readyz", self.url())).send().await
                && res.status().is_success()
            {
                return;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().expect("poll daemon")).is_some();
            assert!(
                !exited && Instant::now() < deadline,
                "sloguard did not become ready; its log:\n{}",
                self.log(self.logs.len() - 1)
            );
            tokio::time::sleep(POLL_INTERVAL / 5).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: nothing is flushed, no attempt finishes.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log of start number `run` (0-based).
    pub fn log(&self, run: usize) -> String {
        std::fs::read_to_string(&self.logs[run]).unwrap_or_default()
    }

    pub fn n_runs(&self) -> usize {
        self.logs.len()
    }

    /// A JSON document from the API, e.g. `/v1/events?service=x`.
    pub async fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        self.http.get(format!("{}{path}", self.url())).send().await.ok()?.json().await.ok()
    }

    /// The value of one series on `/metrics` (`name{labels}` exactly as rendered), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let res = self.http.get(format!("{}/metrics", self.url())).send().await.ok()?;
        let text = res.text().await.ok()?;
        let samples = parse_strict(text.as_bytes()).expect("sloguard serves valid exposition");
        samples.iter().find(|s| s.series == series).map(|s| s.value)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
