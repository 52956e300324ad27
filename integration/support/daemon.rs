//! The real `sloguard run` as a child process: config and specs in a temp dir, a free loopback
//! port, stdout/stderr captured per start (printed when a test fails), signals sent with
//! `kill(1)` (the crate forbids `unsafe`, so no `libc::kill`), and a kill on drop.
//!
//! Intervals are 1 s so tests see scrapes, evaluations and flushes within seconds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::time::Instant;

use super::{POLL_INTERVAL, free_port, sloguard_bin, wait_until};

/// Scrape, evaluation and flush interval of every test daemon (and spec): the fastest allowed.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// `shutdown_grace` of test daemons: SIGTERM must exit well within it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Bound on start-up (restore, backfill, bind). Restoring a test store takes milliseconds; a
/// backfill from a local Prometheus well under a second.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on the process exiting after SIGKILL, or after SIGTERM beyond the grace period.
const EXIT_SLACK: Duration = Duration::from_secs(5);

/// Start attempts, each on a fresh port (another test may take the probed port first).
const START_ATTEMPTS: u32 = 3;

/// How much of each start's stderr a failing test prints.
const LOG_TAIL_BYTES: usize = 8_000;

/// The policy of the helpers' specs: the default freeze rule, but a budget may freeze a second
/// after the first sample rather than after the default day of data, since these tests live
/// for seconds (`young_window_warns_instead_of_freezing` keeps the default).
const POLICY: &str = "policy:\n  min_coverage: 1s\n";

/// A spec scraping `targets` for `http_requests_total{job=<job>}`: one availability SLO over
/// 30 days with the Workbook alert tiers and the default freeze policy (see [`POLICY`]).
pub fn scrape_spec(service: &str, job: &str, objective: &str, targets: &[String]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "service: {service}\nslos:\n  - name: availability\n    objective: {objective}\n    window: 30d\n    \
         sli:\n      errors: 'http_requests_total{{job=\"{job}\",code=~\"5..\"}}'\n      \
         total: 'http_requests_total{{job=\"{job}\"}}'\n{POLICY}\
         source:\n  scrape:\n    targets: [{}]\n    interval: 1s\n    timeout: 1s\n",
        targets.join(", ")
    )
}

/// The same SLO read from a Prometheus query API polled every `interval`.
pub fn prometheus_spec(service: &str, job: &str, objective: &str, url: &str, interval: &str) -> String {
    format!(
        "service: {service}\nslos:\n  - name: availability\n    objective: {objective}\n    window: 30d\n    \
         sli:\n      errors: 'http_requests_total{{job=\"{job}\",code=~\"5..\"}}'\n      \
         total: 'http_requests_total{{job=\"{job}\"}}'\n{POLICY}\
         source:\n  prometheus:\n    url: '{url}'\n    interval: {interval}\n"
    )
}

/// A running daemon, killed (SIGKILL) when dropped. Restartable on the same data dir.
pub struct Daemon {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    /// Starts so far; start `n` logs to `stderr.<n>.log` and `stdout.<n>.log`.
    n_starts: u32,
    http: reqwest::Client,
    /// Wall time from the last spawn to `/readyz` answering 200.
    pub ready_after: Duration,
    /// Arguments after `run --config <file>` for the next start (e.g. `--reset-state`).
    pub run_args: Vec<String>,
}

impl Daemon {
    /// Writes `specs` (`(file name, yaml)`) and a config, starts the daemon and waits until ready.
    pub async fn start(specs: &[(&str, String)]) -> Daemon {
        let dir = tempfile::tempdir().expect("create daemon temp dir");
        std::fs::create_dir(dir.path().join("specs")).expect("create specs dir");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("build daemon test client");
        let mut daemon =
            Daemon { dir, port: 0, child: None, n_starts: 0, http, ready_after: Duration::ZERO, run_args: Vec::new() };
        for (name, text) in specs {
            daemon.write_spec(name, text);
        }
        for attempt in 1..=START_ATTEMPTS {
            daemon.port = free_port();
            daemon.write_config();
            if daemon.spawn_and_wait_ready().await {
                return daemon;
            }
            eprintln!("sloguard lost its port (attempt {attempt}), retrying");
        }
        panic!("sloguard could not bind a port in {START_ATTEMPTS} attempts:\n{}", daemon.logs());
    }

    /// Starts the daemon again on the same config, port and data dir; waits until ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart needs the previous process stopped");
        assert!(self.spawn_and_wait_ready().await, "sloguard did not get its port back:\n{}", self.logs());
    }

    fn write_config(&self) {
        let config = format!(
            "listen: 127.0.0.1:{}\ndata_dir: data\nspecs: specs\nevaluation_interval: {s}s\nflush_interval: {s}s\n\
             shutdown_grace: {}s\n",
            self.port,
            SHUTDOWN_GRACE.as_secs(),
            s = INTERVAL.as_secs(),
        );
        std::fs::write(self.config_path(), config).expect("write daemon config");
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("sloguard.yaml")
    }

    /// Writes (or replaces) a spec file; the daemon sees it at the next start or SIGHUP.
    pub fn write_spec(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join("specs").join(name), text).expect("write spec");
    }

    /// Spawns and waits for `/readyz`. `false` if the daemon exited because its port was taken;
    /// panics with the logs on any other failure.
    async fn spawn_and_wait_ready(&mut self) -> bool {
        self.n_starts += 1;
        let log = |kind: &str| {
            std::fs::File::create(self.dir.path().join(format!("{kind}.{}.log", self.n_starts))).expect("create log")
        };
        let spawned = Instant::now();
        let child = Command::new(sloguard_bin())
            .arg("run")
            .arg("--config")
            .arg(self.config_path())
            .args(&self.run_args)
            .env("SLOGUARD_LOG", "info")
            .env_remove("SLOGUARD_CONFIG")
            .stdin(Stdio::null())
            .stdout(log("stdout"))
            .stderr(log("stderr"))
            .spawn()
            .expect("spawn sloguard");
        self.child = Some(child);
        let deadline = spawned + READY_TIMEOUT;
        loop {
            if let Some((200, _)) = self.try_get("/readyz").await {
                self.ready_after = spawned.elapsed();
                return true;
            }
            if let Some(status) = self.child.as_mut().expect("child").try_wait().expect("poll sloguard") {
                self.child = None;
                if self.stderr().contains("cannot listen on") {
                    return false;
                }
                panic!("sloguard exited during start-up ({status}):\n{}", self.logs());
            }
            assert!(Instant::now() < deadline, "sloguard not ready after {READY_TIMEOUT:?}:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Status and JSON body (`Value::Null` if not JSON), or `None` when nothing answered.
    pub async fn try_get(&self, path: &str) -> Option<(u16, Value)> {
        let res = self.http.get(self.url(path)).send().await.ok()?;
        let status = res.status().as_u16();
        let text = res.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Status and JSON body; panics if the daemon does not answer.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        match self.try_get(path).await {
            Some(answer) => answer,
            None => panic!("GET {path}: no answer from sloguard\n{}", self.logs()),
        }
    }

    /// The JSON body of a request that must answer 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn service(&self, name: &str) -> Value {
        self.get_json(&format!("/v1/services/{name}")).await
    }

    pub async fn gate(&self, name: &str) -> Value {
        self.get_json(&format!("/v1/gate/{name}")).await
    }

    /// The event log of one service, oldest first.
    pub async fn events(&self, service: &str) -> Vec<Value> {
        let body = self.get_json(&format!("/v1/events?service={service}")).await;
        body["events"].as_array().expect("events array").clone()
    }

    pub async fn metrics(&self) -> String {
        let res = self.http.get(self.url("/metrics")).send().await.expect("GET /metrics");
        assert_eq!(res.status(), 200);
        res.text().await.expect("metrics body")
    }

    /// The daemon's `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pid(&self) -> String {
        self.child.as_ref().expect("daemon running").id().to_string()
    }

    /// Sends `signal` (a name `kill -s` accepts: `HUP`, `TERM`, `KILL`) to the daemon.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.pid()]).status().expect("run kill(1)");
        assert!(status.success(), "kill -s {signal} failed: {status}");
    }

    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// SIGKILL: no flush, no goodbye. Waits until the process is gone.
    pub async fn kill9(&mut self) {
        self.signal("KILL");
        self.wait_exit(EXIT_SLACK).await;
    }

    /// SIGTERM and wait: the exit status and how long the daemon took to exit.
    pub async fn sigterm(&mut self) -> (ExitStatus, Duration) {
        let sent = Instant::now();
        self.signal("TERM");
        let status = self.wait_exit(SHUTDOWN_GRACE + EXIT_SLACK).await;
        (status, sent.elapsed())
    }

    /// Waits (bounded) for the process to exit and reaps it.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("daemon running");
            if let Some(status) = child.try_wait().expect("poll sloguard") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "sloguard still running {timeout:?} after the signal:\n{}", self.logs());
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// stderr of the current (or last) start.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("stderr.{}.log", self.n_starts))).unwrap_or_default()
    }

    /// The tail of every start's stderr, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.n_starts {
            for kind in ["stdout", "stderr"] {
                let text = std::fs::read(self.dir.path().join(format!("{kind}.{n}.log"))).unwrap_or_default();
                if text.is_empty() {
                    continue;
                }
                let start = text.len().saturating_sub(LOG_TAIL_BYTES);
                out.push_str(&format!(
                    "--- sloguard start {n} {kind} ---\n{}\n",
                    String::from_utf8_lossy(&text[start..])
                ));
            }
        }
        out
    }

    /// Polls `GET path` until `check` accepts the JSON body; returns that body.
    pub async fn wait_for(&self, what: &str, timeout: Duration, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        loop {
            if let Some((200, body)) = self.try_get(path).await {
                if check(&body) {
                    return body;
                }
                last = body;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what}; last {path}: {last}\n{}", self.logs());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if let Some(mut child) = self.child.take() {
            // Errors mean the process already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `sloguard run` on a config that must be rejected; returns its output (bounded).
pub async fn run_to_exit(config: &Path) -> Output {
    let mut child = Command::new(sloguard_bin())
        .arg("run")
        .arg("--config")
        .arg(config)
        .env_remove("SLOGUARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sloguard");
    wait_until("sloguard to exit", Duration::from_secs(10), || {
        let exited = child.try_wait().expect("poll sloguard").is_some();
        async move { exited.then_some(()) }
    })
    .await;
    child.wait_with_output().expect("collect sloguard output")
}

/// The budget left of `slo` in a `/v1/services/{s}` body.
pub fn budget(service: &Value, slo: &str) -> Option<f64> {
    slo_of(service, slo)["budget_remaining"].as_f64()
}

/// `(firing, since)` of one alert tier of `slo` in a `/v1/services/{s}` body.
pub fn alert(service: &Value, slo: &str, severity: &str) -> (bool, Option<String>) {
    let alerts = slo_of(service, slo)["alerts"].as_array().expect("alerts array");
    let tier = alerts.iter().find(|a| a["severity"] == severity).unwrap_or_else(|| panic!("no {severity} tier"));
    (tier["firing"] == true, tier["since"].as_str().map(str::to_string))
}

fn slo_of<'a>(service: &'a Value, slo: &str) -> &'a Value {
    let slos = service["slos"].as_array().unwrap_or_else(|| panic!("no slos in {service}"));
    slos.iter().find(|s| s["slo"] == slo).unwrap_or_else(|| panic!("no SLO {slo} in {service}"))
}

/// Events of one kind (`alert_firing`, `freeze`, ...), optionally of one severity.
pub fn count_events(events: &[Value], kind: &str, severity: Option<&str>) -> usize {
    events.iter().filter(|e| e["event"] == kind && severity.is_none_or(|s| e["severity"] == s)).count()
}
