//! Deploy gates end to end: the real `sloguard run` binary with a real sled store, scraping a
//! target this test controls, answered over real HTTP, and the real `sloguard gate` CLI.
//!
//! One scenario per daemon, because each start costs seconds: healthy → allow; an error burst
//! freezes → deny (a listed change class passes with a warning; Flagger gets 403); overrides need
//! the token, win while active, survive a restart, and stop on DELETE; a correction over the
//! incident restores the budget and unfreezes → allow; the audit log holds all of it. The
//! correction must end on a minute boundary the engine has recorded (its short windows keep one
//! cumulative value per minute; between boundaries it interpolates), so the test waits for the
//! first boundary after the incident: up to a minute.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{closed_addr, init, sloguard_bin, wait_until};

/// The API token the daemon reads from this variable (never a real secret).
const TOKEN_ENV: &str = "SLOGUARD_GATE_TEST_TOKEN";
const TOKEN: &str = "gate-test-token";

/// Bound on the daemon starting (store, first scrape, listener) on a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a state change showing in the API: a few 1 s scrape and evaluation rounds.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Traffic the target serves: this many good requests every [`TRAFFIC_TICK`].
const TRAFFIC_PER_TICK: u64 = 10;
const TRAFFIC_TICK: Duration = Duration::from_millis(100);
/// Errors in the incident: far more than the ~100 good requests a second, so the 1h budget of a
/// 99% SLO is gone at once.
const INCIDENT_ERRORS: u64 = 5_000;
const MINUTE_MS: i64 = 60_000;

/// A scrape target whose counters the test drives: good requests grow on their own, errors
/// when the test says.
struct Target {
    addr: SocketAddr,
    errors: Arc<AtomicU64>,
}

impl Target {
    async fn start() -> Target {
        let ok = Arc::new(AtomicU64::new(1_000));
        let errors = Arc::new(AtomicU64::new(0));
        let (ok_page, errors_page) = (ok.clone(), errors.clone());
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (ok, errors) = (ok_page.load(Ordering::SeqCst), errors_page.load(Ordering::SeqCst));
                async move {
                    format!(
                        "# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {ok}\n\
                         http_requests_total{{code=\"500\"}} {errors}\n"
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let addr = listener.local_addr().expect("target addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TRAFFIC_TICK).await;
                ok.fetch_add(TRAFFIC_PER_TICK, Ordering::SeqCst);
            }
        });
        Target { addr, errors }
    }
}

/// The real daemon on `127.0.0.1:0`, its config and store in a temp dir.
struct Daemon {
    dir: tempfile::TempDir,
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Daemon {
    async fn start(target: &Target) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("specs")).expect("specs dir");
        std::fs::write(
            dir.path().join("specs/checkout.yaml"),
            format!(
                "service: checkout\nslos:\n  - name: availability\n    objective: 99\n    window: 1h\n    sli:\n      \
                 errors: 'http_requests_total{{code=\"500\"}}'\n      total: 'http_requests_total'\n    alerting:\n      \
                 page: disabled\n      ticket: disabled\npolicy:\n  freeze_below: 0%\n  unfreeze_above: 10%\n  \
                 allow_during_freeze: [hotfix]\n  min_coverage: 1s\nsource:\n  scrape:\n    targets: ['http://{}/metrics']\n    \
                 interval: 1s\n    timeout: 1s\n",
                target.addr
            ),
        )
        .expect("write spec");
        std::fs::write(
            dir.path().join("sloguard.yaml"),
            format!(
                "listen: 127.0.0.1:0\ndata_dir: state\nspecs: specs\nevaluation_interval: 1s\nflush_interval: 1s\n\
                 api: {{ token_env: {TOKEN_ENV} }}\n"
            ),
        )
        .expect("write config");
        let (child, base) = spawn(dir.path()).await;
        Daemon { dir, child, base, client: reqwest::Client::new() }
    }

    /// SIGTERM, wait for a clean exit, start again on the same store.
    async fn restart(&mut self) {
        terminate(&mut self.child).await;
        let (child, base) = spawn(self.dir.path()).await;
        self.child = child;
        self.base = base;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.client.get(self.url(path)).send().await.expect("daemon answers");
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    async fn gate(&self, query: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/gate/checkout{query}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn wait_for_decision(&self, decision: &str) -> Value {
        wait_until(&format!("gate decision {decision}"), CHANGE_TIMEOUT, || async {
            let gate = self.gate("").await;
            (gate["decision"] == decision).then_some(gate)
        })
        .await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).header("X-Sloguard-Actor", "gate-test").json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.expect("daemon answers");
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str) -> u16 {
        let res = self.client.delete(self.url(path)).bearer_auth(TOKEN).send().await.expect("daemon answers");
        res.status().as_u16()
    }

    async fn flagger(&self, name: &str) -> (u16, String) {
        let payload =
            json!({"name": name, "namespace": "shop", "phase": "Progressing", "checksum": "1", "metadata": {}});
        let res = self.client.post(self.url("/v1/flagger/gate")).json(&payload).send().await.expect("daemon answers");
        (res.status().as_u16(), res.text().await.expect("body"))
    }

    /// Runs `sloguard gate checkout --server <this daemon> <args>`.
    fn cli(&self, args: &[&str]) -> (i32, String) {
        gate_cli(&[&["checkout", "--server", &self.base], args].concat())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sloguard run` in `dir` and waits until it is ready; returns it and its base URL.
async fn spawn(dir: &Path) -> (Child, String) {
    let log = dir.join(format!("daemon-{}.log", wall_ms()));
    let child = Command::new(sloguard_bin())
        .args(["run", "--config"])
        .arg(dir.join("sloguard.yaml"))
        .env(TOKEN_ENV, TOKEN)
        .env("SLOGUARD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn sloguard run");
    let base = wait_until("the daemon to listen", START_TIMEOUT, || async {
        let text = std::fs::read_to_string(&log).ok()?;
        let addr = text.split("listening on ").nth(1)?.split_whitespace().next()?.to_string();
        Some(addr)
    })
    .await;
    let client = reqwest::Client::new();
    wait_until("the daemon to be ready", START_TIMEOUT, || async {
        let res = client.get(format!("{base}/readyz")).send().await.ok()?;
        res.status().is_success().then_some(())
    })
    .await;
    (child, base)
}

async fn terminate(child: &mut Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
    assert!(status.success());
    let exit = wait_until("the daemon to exit", START_TIMEOUT, || {
        let exited = child.try_wait().expect("try_wait");
        async move { exited }
    })
    .await;
    assert!(exit.success(), "daemon exited with {exit}");
}

/// Runs the real `sloguard gate` and returns its exit code and everything it printed.
fn gate_cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(sloguard_bin()).arg("gate").args(args).output().expect("run sloguard gate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().expect("exit code"), text)
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    sloguard::clock::rfc3339(ms)
}

fn actions(audit: &Value) -> Vec<String> {
    audit["entries"].as_array().expect("entries").iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn gate_freeze_overrides_restart_correction_audit_flagger_and_cli() {
    init();
    let target = Target::start().await;
    let started = wall_ms();
    let mut daemon = Daemon::start(&target).await;

    // Healthy: allow, from the API, the CLI and Flagger.
    let healthy = daemon.wait_for_decision("allow").await;
    assert_eq!(healthy["budgets"][0]["slo"], "checkout/availability", "{healthy}");
    let (code, out) = daemon.cli(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("sloguard gate: checkout: ALLOW"), "{out}");
    assert_eq!(daemon.flagger("checkout").await.0, 200);

    // The incident: the budget is gone, the engine freezes the service, the gate denies.
    target.errors.fetch_add(INCIDENT_ERRORS, Ordering::SeqCst);
    let denied = daemon.wait_for_decision("deny").await;
    let frozen_seen = wall_ms();
    assert!(denied["reasons"][0].as_str().unwrap().starts_with("checkout is frozen since"), "{denied}");
    assert_eq!(
        denied["exception"],
        "POST /v1/services/checkout/overrides with a bearer token, or deploy as one of: hotfix"
    );
    let hotfix = daemon.gate("?change=hotfix").await;
    assert_eq!(hotfix["decision"], "warn", "{hotfix}");
    assert!(hotfix["reasons"][0].as_str().unwrap().contains(r#"change class "hotfix" is allowed during a freeze"#));
    assert_eq!(daemon.gate("?change=feature").await["decision"], "deny");
    let (status, text) = daemon.flagger("checkout").await;
    assert_eq!(status, 403);
    assert!(text.starts_with("sloguard denies deploying checkout: checkout is frozen since"), "{text}");
    assert_eq!(daemon.flagger("nope").await.0, 404);
    let (code, out) = daemon.cli(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DENY") && out.contains("exception: POST /v1/services/checkout/overrides"), "{out}");
    let (code, out) = daemon.cli(&["--change", "hotfix"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("sloguard gate: checkout: WARN"), "{out}");
    let (code, out) = daemon.cli(&["--json"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("--json prints the decision")["decision"], "deny");

    // Overrides: 401 without or with a wrong token, 201 with it; the gate then allows and names it.
    let overrides = "/v1/services/checkout/overrides";
    let body = json!({"decision": "allow", "reason": "INC-1: ship the fix", "expires_in": "1h"});
    let (status, refused) = daemon.post(overrides, None, body.clone()).await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(daemon.post(overrides, Some("wrong"), body.clone()).await.0, 401);
    let (status, created) = daemon.post(overrides, Some(TOKEN), body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let allowed = daemon.gate("").await;
    assert_eq!(allowed["decision"], "allow");
    assert!(allowed["reasons"][0].as_str().unwrap().starts_with(&format!("override {id} (")), "{allowed}");

    // It survives a restart (and so does the freeze under it).
    daemon.restart().await;
    let after_restart = daemon.gate("").await;
    assert_eq!(after_restart["decision"], "allow", "{after_restart}");
    assert_eq!(after_restart["override"]["id"], id.as_str());
    assert_eq!(after_restart["policy_decision"], "deny");
    assert_eq!(daemon.get(overrides).await.1["overrides"].as_array().unwrap().len(), 1);

    assert_eq!(daemon.delete(&format!("{overrides}/{id}")).await, 204);
    assert_eq!(daemon.delete(&format!("{overrides}/{id}")).await, 404);
    daemon.wait_for_decision("deny").await;

    // A correction from before the first sample to the first minute boundary after the
    // incident excludes every error; the good traffic after that boundary is all the window
    // holds, so the budget is whole again and the freeze lifts.
    let boundary = (frozen_seen / MINUTE_MS + 1) * MINUTE_MS;
    let settle = Duration::from_millis((boundary - wall_ms() + 3_000).max(0) as u64);
    tokio::time::sleep(settle).await;
    let correction = json!({
        "start": rfc3339((started / MINUTE_MS - 1) * MINUTE_MS),
        "end": rfc3339(boundary),
        "reason": "error burst injected by the gate test",
        "slo": "availability",
    });
    let (status, created) = daemon.post("/v1/services/checkout/corrections", Some(TOKEN), correction).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["applied"], true, "{created}");
    let restored = daemon.gate("").await;
    assert_eq!(restored["decision"], "allow", "the correction is applied before the 201: {restored}");
    assert!(restored["budgets"][0]["budget_remaining"].as_f64().unwrap() > 0.99, "{restored}");
    assert!(!restored["frozen"].as_bool().unwrap());
    assert_eq!(daemon.flagger("checkout").await.0, 200);
    assert_eq!(daemon.cli(&[]).0, 0);

    let (_, audit) = daemon.get("/v1/audit?service=checkout&since=1h").await;
    let logged = actions(&audit);
    for action in ["decision_changed", "override_created", "override_deleted", "correction_created"] {
        assert!(logged.iter().any(|a| a == action), "{action} missing from {logged:?}");
    }
    let created_entry =
        audit["entries"].as_array().unwrap().iter().find(|e| e["action"] == "override_created").unwrap();
    assert_eq!(created_entry["actor"], "gate-test");
    assert!(created_entry["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    let decisions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "decision_changed")
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert!(decisions.ends_with(&["deny", "allow", "deny", "allow"]), "{decisions:?}");
}

#[test]
fn cli_exit_codes_without_a_daemon() {
    init();
    let closed = format!("http://{}", closed_addr());
    let (code, out) = gate_cli(&["checkout", "--server", &closed, "--timeout", "2s"]);
    assert_eq!(code, 69, "{out}");
    assert!(out.contains("failing closed"), "{out}");
    let (code, out) = gate_cli(&["checkout", "--server", &closed, "--timeout", "2s", "--fail-open"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("FAILED OPEN"), "{out}");
    let (code, out) = gate_cli(&["checkout", "--server", "not a url"]);
    assert_eq!(code, 64, "{out}");
}

/// A server answering 5xx or something that is not a decision is "no decision" (69), and so
/// is one that does not answer within --timeout.
#[tokio::test(flavor = "multi_thread")]
async fn cli_treats_5xx_garbage_and_silence_as_unavailable() {
    init();
    let app = axum::Router::new()
        .route(
            "/broken/v1/gate/{service}",
            axum::routing::get(|| async { (axum::http::StatusCode::BAD_GATEWAY, "upstream") }),
        )
        .route("/garbage/v1/gate/{service}", axum::routing::get(|| async { "<html>login</html>" }))
        .route(
            "/slow/v1/gate/{service}",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    for (path, expect) in [("broken", "502 Bad Gateway"), ("garbage", "without a decision"), ("slow", "timed out")] {
        let server = format!("{base}/{path}");
        let (code, out) =
            tokio::task::spawn_blocking(move || gate_cli(&["checkout", "--server", &server, "--timeout", "1s"]))
                .await
                .expect("cli ran");
        assert_eq!(code, 69, "{path}: {out}");
        assert!(out.contains(expect), "{path}: {out}");
    }
}
