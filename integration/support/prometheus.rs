//! A real Prometheus server for tests, on loopback, with its config and TSDB in a temp dir.
//!
//! Tests run against the real thing rather than a mock of the query API because the quirks are
//! the point: label sorting, lookback, error documents, float-second timestamps. If the binary
//! is missing the test fails with install instructions; it never skips.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sloguard::prometheus::{PromClient, PromConfig};
use sloguard::spec::HttpOptions;
use tempfile::TempDir;
use tokio::time::Instant;

use super::{POLL_INTERVAL, free_port};

/// Where Debian's `prometheus` package puts the binary; checked when it is not on `PATH`.
const DEBIAN_BINARY: &str = "/usr/bin/prometheus";

/// Scrape interval: short, so tests see several samples within seconds.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// Bound on start-up. Prometheus is ready in about a second; a loaded 2-core CI machine can take
/// several, and anything near this bound means it is stuck.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-request timeout for test clients; local queries take milliseconds.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Response cap for test clients: far above what the tests' short ranges return.
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Start attempts, each on a fresh port: the free port can be taken by another test between
/// probing it and Prometheus binding it.
const START_ATTEMPTS: u32 = 3;

/// How much of Prometheus' log a failure message quotes.
const LOG_TAIL_BYTES: usize = 4_000;

/// A running Prometheus, killed when dropped.
pub struct PrometheusServer {
    child: Child,
    url: String,
    /// Holds config, TSDB and log; dropped (deleted) after `drop` has killed the child.
    _dir: TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` every `SCRAPE_INTERVAL` and waits until it is ready.
    /// `honor_labels` is on because the demo target exposes its own `job`/`instance` labels.
    pub async fn start(targets: &[SocketAddr]) -> PrometheusServer {
        let binary = find_binary();
        let mut attempt = 1;
        loop {
            match try_start(&binary, targets).await {
                Ok(server) => return server,
                Err(StartFailure::PortTaken(log)) if attempt < START_ATTEMPTS => {
                    eprintln!("prometheus lost its port (attempt {attempt}), retrying:\n{log}");
                    attempt += 1;
                }
                Err(StartFailure::PortTaken(log) | StartFailure::Other(log)) => {
                    panic!("prometheus did not start; its log ends with:\n{log}")
                }
            }
        }
    }

    /// Base URL of the query API, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        // Errors mean the process already exited; there is nothing left to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A query client for `url` (a Prometheus base URL) with plain HTTP options.
pub fn client(url: &str) -> PromClient {
    PromClient::new(PromConfig {
        url: url.to_string(),
        timeout: QUERY_TIMEOUT,
        http: HttpOptions {
            headers: Vec::new(),
            bearer_token: None,
            max_body_bytes: MAX_BODY_BYTES,
            ca_file: None,
            insecure_skip_verify: false,
        },
    })
    .expect("valid client config")
}

enum StartFailure {
    /// Another process bound the port first; worth retrying on a new one.
    PortTaken(String),
    /// Anything else; carries the log tail.
    Other(String),
}

async fn try_start(binary: &Path, targets: &[SocketAddr]) -> Result<PrometheusServer, StartFailure> {
    let dir = tempfile::tempdir().expect("create temp dir for prometheus");
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, scrape_config(targets)).expect("write prometheus config");
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).expect("create prometheus log");
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-lifecycle")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
    // From here on the guard owns the child, so every early return kills it.
    let mut server = PrometheusServer { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("build readiness client");
    let ready_url = format!("{}/-/ready", server.url);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(res) = http.get(&ready_url).send().await
            && res.status().is_success()
        {
            return Ok(server);
        }
        let exited = server.child.try_wait().expect("poll prometheus process").is_some();
        if exited || Instant::now() >= deadline {
            let tail = log_tail(&log_path);
            return Err(if exited && tail.contains("address already in use") {
                StartFailure::PortTaken(tail)
            } else if exited {
                StartFailure::Other(tail)
            } else {
                StartFailure::Other(format!("not ready after {READY_TIMEOUT:?}\n{tail}"))
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A config scraping `targets` as one job. `scrape_timeout` must not exceed the interval, and
/// the default (10 s) would, so it is set explicitly.
fn scrape_config(targets: &[SocketAddr]) -> String {
    let interval = SCRAPE_INTERVAL.as_secs();
    let targets: Vec<String> = targets.iter().map(|target| format!("\"{target}\"")).collect();
    format!(
        "global:\n  scrape_interval: {interval}s\n  scrape_timeout: {interval}s\n\
         scrape_configs:\n  - job_name: sloguard-test\n    honor_labels: true\n    \
         static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

/// The `prometheus` binary on `PATH`, else Debian's location; fails the test with install
/// instructions when neither exists.
fn find_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join("prometheus")).find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from(DEBIAN_BINARY)).filter(|path| path.is_file())).unwrap_or_else(|| {
        panic!(
            "the `prometheus` binary is not on PATH or at {DEBIAN_BINARY}; these tests need a \
                 real Prometheus. Install it with `sudo apt-get install -y prometheus` (Debian/Ubuntu) \
                 or run scripts/test.sh, which installs it."
        )
    })
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read(path).unwrap_or_default();
    let start = log.len().saturating_sub(LOG_TAIL_BYTES);
    String::from_utf8_lossy(&log[start..]).into_owned()
}
