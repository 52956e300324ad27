//! API tests over real HTTP on loopback, with a hand-built snapshot, a real sled store, a clock
//! the test moves, and a stand-in core that acknowledges correction lists (the real core is
//! exercised by the integration tests). `bounds` holds the connection and body limits' tests.

mod bounds;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::governance::MAX_OVERRIDES_PER_SERVICE;
use super::{LogSafe, MAX_LOGGED_CHARS};
use crate::clock::{Clock, DAY, HOUR, MINUTE, Millis};
use crate::config::ApiLimits;
use crate::daemon::{Command, Governance, Shared};
use crate::spec::Secret;
use crate::status::{AlertStatus, ServiceStatus, SloStatus, Snapshot};
use crate::store::Store;

const NOW: Millis = 1_767_225_600_000;
const TOKEN: &str = "test-token-not-secret";

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// A correction list the stand-in core received: the service and the correction ids.
type Applied = (String, Vec<String>);

struct Api {
    base: String,
    addr: SocketAddr,
    client: reqwest::Client,
    clock: Arc<TestClock>,
    /// `(service, correction ids)` per list the stand-in core received.
    applied: Arc<Mutex<Vec<Applied>>>,
    shared: Arc<Shared>,
    /// Dropping it stops the server.
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn service(name: &str, frozen: bool, budget: f64) -> ServiceStatus {
    ServiceStatus {
        service: name.into(),
        owner: None,
        frozen,
        frozen_since: frozen.then_some(NOW - HOUR),
        freeze_below: 0.0,
        unfreeze_above: 0.1,
        warn_below: 0.25,
        allow_during_freeze: vec!["hotfix".into()],
        slos: vec![SloStatus {
            slo: format!("{name}/availability"),
            name: "availability".into(),
            group: None,
            objective: 99.9,
            window: "30d".into(),
            window_ms: 30 * DAY,
            budget_remaining: Some(budget),
            burn_rates: Vec::new(),
            alerts: vec![AlertStatus { severity: "page", firing: false, since: None }],
            time_to_exhaustion_s: None,
            period_start: None,
            period_end: None,
            coverage_s: 86400.0,
            freeze_held_back: false,
        }],
        source_indices: Vec::new(),
    }
}

fn snapshot() -> Snapshot {
    let services = vec![service("checkout", true, -0.2), service("payments", false, 0.9)];
    let by_name = services.iter().enumerate().map(|(i, s)| (s.service.clone(), i)).collect();
    Snapshot { at: NOW, services, by_name, ..Snapshot::default() }
}

async fn api(token: Option<&str>) -> Api {
    api_with(token, ApiLimits::default()).await
}

/// The API under `limits`, served as the daemon serves it.
async fn api_with(token: Option<&str>, limits: ApiLimits) -> Api {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(NOW)));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let token = token.map(|t| Secret::new(t.to_string()));
    let governance = Governance::new(token.as_ref(), Vec::new(), Vec::new(), tx);
    let shared = Arc::new(Shared::new(store, clock.clone(), governance));
    shared.publish(snapshot());
    let applied = Arc::new(Mutex::new(Vec::new()));
    let seen = applied.clone();
    tokio::spawn(async move {
        while let Some(Command::SetExclusions { service, exclusions, applied }) = rx.recv().await {
            seen.lock().unwrap().push((service, exclusions.into_iter().map(|e| e.id).collect()));
            let _ = applied.send(());
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    // The daemon's server, accept loop and bounds included.
    tokio::spawn(super::serve(listener, shared.clone(), limits, stopped));
    Api {
        base: format!("http://{addr}"),
        addr,
        client: reqwest::Client::new(),
        clock,
        applied,
        shared,
        _stop: stop,
        _dir: dir,
    }
}

impl Api {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).header("X-Sloguard-Actor", "alice");
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let res = self.send(reqwest::Method::POST, path, token, Some(body)).await;
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> StatusCode {
        self.send(reqwest::Method::DELETE, path, token, None).await.status()
    }

    fn advance(&self, by: Millis) {
        self.clock.0.fetch_add(by, Ordering::SeqCst);
    }
}

fn override_body() -> Value {
    json!({"decision": "allow", "reason": "INC-42: roll forward the fix", "expires_in": "2h"})
}

#[tokio::test]
async fn gate_answers_every_policy_no_with_200_and_bad_requests_with_400() {
    let api = api(None).await;
    let (status, body) = api.get("/v1/gate/checkout").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decision"], "deny");
    assert_eq!(
        body["exception"],
        "POST /v1/services/checkout/overrides with a bearer token, or deploy as one of: hotfix"
    );
    assert_eq!(api.get("/v1/gate/checkout?change=hotfix").await.1["decision"], "warn");
    assert_eq!(api.get("/v1/gate/checkout?change=feature").await.1["decision"], "deny");
    assert_eq!(api.get("/v1/gate/payments").await.1["decision"], "allow");

    let (status, body) = api.get("/v1/gate/checkout?change=no%20spaces").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["reason"].as_str().unwrap().starts_with("change must be 1 to 64 characters"), "{body}");
    let (status, body) = api.get("/v1/gate/checkout?chnage=hotfix").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["reason"].as_str().unwrap().ends_with("accepted: change"), "{body}");
    let (status, body) = api.get("/v1/gate/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], r#"unknown service "nope"; GET /v1/services lists them"#);
}

#[tokio::test]
async fn mutations_are_401_without_a_configured_token() {
    let api = api(None).await;
    let res =
        api.send(reqwest::Method::POST, "/v1/services/checkout/overrides", Some(TOKEN), Some(override_body())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="sloguard""#);
    let body: Value = res.json().await.unwrap();
    assert!(body["reason"].as_str().unwrap().starts_with("mutations are disabled"), "{body}");
}

#[tokio::test]
async fn override_needs_the_right_token_then_wins_until_deleted() {
    let api = api(Some(TOKEN)).await;
    let path = "/v1/services/checkout/overrides";
    let res = api.send(reqwest::Method::POST, path, None, Some(override_body())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="sloguard""#);
    let res = api.send(reqwest::Method::POST, path, Some("wrong"), Some(override_body())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="sloguard", error="invalid_token""#);

    let res = api.send(reqwest::Method::POST, path, Some(TOKEN), Some(override_body())).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ovr-"));
    assert_eq!(body["override"]["expires_at"], "2026-01-01T02:00:00Z");
    assert_eq!(body["override"]["actor"], "alice");

    let (_, gate) = api.get("/v1/gate/checkout").await;
    assert_eq!(gate["decision"], "allow");
    assert_eq!(gate["policy_decision"], "deny");
    assert!(gate["reasons"][0].as_str().unwrap().starts_with(&format!("override {id} (")), "{gate}");
    assert_eq!(api.get(path).await.1["overrides"].as_array().unwrap().len(), 1);
    assert_eq!(api.get("/v1/gate/payments").await.1["override"], Value::Null);

    assert_eq!(api.delete(&format!("{path}/{id}"), Some("wrong")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(api.delete(&format!("{path}/{id}"), Some(TOKEN)).await, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(&format!("{path}/{id}"), Some(TOKEN)).await, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/v1/gate/checkout").await.1["decision"], "deny");

    let (_, audit) = api.get("/v1/audit?service=checkout").await;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["override_created", "override_deleted"]);
    assert_eq!(audit["entries"][1]["actor"], "alice");
    assert!(audit["entries"][1]["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[tokio::test]
async fn override_stops_applying_when_it_expires() {
    let api = api(Some(TOKEN)).await;
    let body = json!({"decision": "allow", "reason": "short", "expires_in": "5m"});
    assert_eq!(api.post("/v1/services/checkout/overrides", Some(TOKEN), body).await.0, StatusCode::CREATED);
    assert_eq!(api.get("/v1/gate/checkout").await.1["decision"], "allow");
    api.advance(5 * MINUTE);
    assert_eq!(api.get("/v1/gate/checkout").await.1["decision"], "deny");
    assert_eq!(api.get("/v1/services/checkout/overrides").await.1["overrides"], json!([]));
}

#[tokio::test]
async fn override_bodies_are_validated() {
    let api = api(Some(TOKEN)).await;
    let path = "/v1/services/checkout/overrides";
    for (body, reason_starts) in [
        (json!({"decision": "maybe", "reason": "r", "expires_in": "1h"}), "Failed to deserialize the JSON body"),
        (json!({"decision": "allow", "reason": "  ", "expires_in": "1h"}), "reason must be 1 to 1000 characters"),
        (json!({"decision": "allow", "reason": "r", "expires_in": "8d"}), "expires_in must be at most 7d"),
        (json!({"decision": "allow", "reason": "r", "expires_in": "1.5h"}), "expires_in: invalid duration"),
        (json!({"decision": "allow", "reason": "r", "expires_in": "1h", "by": "me"}), "Failed to deserialize"),
        (json!({"decision": "allow", "reason": "r"}), "Failed to deserialize"),
    ] {
        let (status, res) = api.post(path, Some(TOKEN), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(res["reason"].as_str().unwrap().starts_with(reason_starts), "{body}: {res}");
    }
    assert_eq!(api.post("/v1/services/nope/overrides", Some(TOKEN), override_body()).await.0, StatusCode::NOT_FOUND);
    let res = api
        .client
        .post(format!("{}{path}", api.base))
        .bearer_auth(TOKEN)
        .header("X-Sloguard-Actor", "x".repeat(129))
        .json(&override_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn corrections_are_validated_applied_listed_and_deleted() {
    let api = api(Some(TOKEN)).await;
    let path = "/v1/services/checkout/corrections";
    let correction = |start: &str, end: &str| json!({"start": start, "end": end, "reason": "load test"});
    for (body, reason_starts) in [
        (correction("2025-12-31T23:00:00Z", "2025-12-31T22:00:00Z"), "end (2025-12-31T22:00:00Z) must be after start"),
        (correction("2025-12-31T23:00:00Z", "2026-01-01T02:00:00Z"), "end (2026-01-01T02:00:00Z) is more than 1h"),
        (correction("2025-11-01T00:00:00Z", "2025-11-01T01:00:00Z"), "the correction ends before the 30d SLO window"),
        (correction("2025-12-01T00:00:00Z", "2025-12-31T00:00:00Z"), "a correction spans at most 7d"),
        (correction("yesterday", "2025-12-31T00:00:00Z"), "start must be an RFC 3339 instant"),
        (
            json!({"start": "2025-12-31T23:00:00Z", "end": "2026-01-01T00:00:00Z", "reason": "r", "slo": "latency"}),
            r#"checkout has no SLO "latency"; its SLOs: availability"#,
        ),
    ] {
        let (status, res) = api.post(path, Some(TOKEN), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(res["reason"].as_str().unwrap().starts_with(reason_starts), "{body}: {res}");
    }
    assert_eq!(
        api.post(path, None, correction("2025-12-31T23:00:00Z", "2026-01-01T00:00:00Z")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let body = json!({"start": "2025-12-31T23:00:00Z", "end": "2026-01-01T00:00:00Z", "reason": "load test", "slo": "availability"});
    let (status, created) = api.post(path, Some(TOKEN), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["applied"], true);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["correction"]["start"], "2025-12-31T23:00:00Z");
    assert_eq!(api.get(path).await.1["corrections"][0]["id"], id.as_str());

    assert_eq!(api.delete(&format!("{path}/{id}"), Some(TOKEN)).await, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(&format!("{path}/{id}"), Some(TOKEN)).await, StatusCode::NOT_FOUND);
    assert_eq!(api.get(path).await.1["corrections"], json!([]));
    assert_eq!(
        *api.applied.lock().unwrap(),
        [("checkout".to_string(), vec![id.clone()]), ("checkout".to_string(), Vec::new())]
    );
    let (_, audit) = api.get("/v1/audit?since=1h&limit=10").await;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["correction_created", "correction_deleted"]);
    assert_eq!(api.get("/v1/audit?limit=0").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(api.get("/v1/audit?service=nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn flagger_gets_200_to_advance_and_403_with_reasons_to_halt() {
    let api = api(None).await;
    let url = format!("{}/v1/flagger/gate", api.base);
    let payload = |name: &str, metadata: Value| json!({"name": name, "namespace": "prod", "phase": "Progressing", "checksum": "abc", "metadata": metadata});
    let res = api.client.post(&url).json(&payload("checkout", json!({}))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let text = res.text().await.unwrap();
    assert!(
        text.starts_with("sloguard denies deploying checkout: checkout is frozen since 2025-12-31T23:00:00Z"),
        "{text}"
    );
    assert!(text.ends_with("or deploy as one of: hotfix"), "{text}");

    let hotfix = payload("checkout-canary", json!({"service": "checkout", "change": "hotfix"}));
    let res = api.client.post(&url).json(&hotfix).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["decision"], "warn");
    let res = api.client.post(&url).json(&payload("payments", json!({}))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let res = api.client.post(&url).json(&payload("unknown", json!({}))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = api.client.post(&url).json(&json!({"namespace": "prod"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn log_safe_escapes_control_characters_and_caps_length() {
    assert_eq!(LogSafe("checkout-canary").to_string(), "checkout-canary");
    assert_eq!(
        LogSafe("a\nINFO forged\r\x1b[31m\\ \"q\" it's\u{202e}").to_string(),
        r#"a\nINFO forged\r\u{1b}[31m\\ \"q\" it's\u{202e}"#
    );
    assert_eq!(format!("{:?}", LogSafe("say \"hi\"\n")), r#""say \"hi\"\n""#);
    let exactly = "é".repeat(MAX_LOGGED_CHARS);
    assert_eq!(LogSafe(&exactly).to_string(), exactly, "at the cap nothing is cut");
    let long = format!("{exactly}x");
    assert_eq!(LogSafe(&long).to_string(), format!("{exactly}…(401 bytes)"));
}

/// A log writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn flagger_fields_reach_the_log_escaped_and_cut_short() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).with_target(false).finish();
    // The test runtime is single-threaded, so the handler's task logs to this thread's default.
    let _guard = tracing::subscriber::set_default(subscriber);
    let api = api(None).await;
    let forged = "canary\n2026-01-01T00:00:00.000000Z  INFO sloguard: flagger gate: allow\x1b[2K";
    let payload = json!({
        "name": forged,
        // Within Flagger's 16 KiB body limit, far past what a log line shows.
        "namespace": "n".repeat(10_000),
        "phase": "Progressing",
        "metadata": {"service": "payments"},
    });
    let res = api.client.post(format!("{}/v1/flagger/gate", api.base)).json(&payload).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(!log.contains('\x1b'), "{log}");
    assert!(log.contains(r"canary=canary\n2026-01-01T00:00:00.000000Z  INFO sloguard: flagger gate: allow\u{1b}[2K "));
    assert!(log.contains(&format!("namespace={}…(10000 bytes) ", "n".repeat(MAX_LOGGED_CHARS))), "{log}");
    assert!(log.len() < 1_000, "{} bytes logged", log.len());
}

#[tokio::test]
async fn overrides_per_service_are_capped_while_active() {
    let api = api(Some(TOKEN)).await;
    let path = "/v1/services/checkout/overrides";
    let body = json!({"decision": "allow", "reason": "INC-42", "expires_in": "1h"});
    for n in 0..MAX_OVERRIDES_PER_SERVICE {
        assert_eq!(api.post(path, Some(TOKEN), body.clone()).await.0, StatusCode::CREATED, "override {n}");
    }
    let (status, res) = api.post(path, Some(TOKEN), body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(res["error"], "conflict");
    assert!(res["reason"].as_str().unwrap().starts_with("checkout already has 100 active overrides; "), "{res}");
    assert_eq!(api.post("/v1/services/payments/overrides", Some(TOKEN), body.clone()).await.0, StatusCode::CREATED);

    api.advance(HOUR);
    assert_eq!(api.post(path, Some(TOKEN), body).await.0, StatusCode::CREATED, "expired overrides do not count");
}

#[tokio::test]
async fn metrics_expose_the_gate_decision_for_prometheus_only_tools() {
    let api = api(Some(TOKEN)).await;
    let metrics =
        || async { api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap() };
    let page = metrics().await;
    for line in [
        r#"sloguard_gate_decision{service="checkout",decision="allow"} 0"#,
        r#"sloguard_gate_decision{service="checkout",decision="deny"} 1"#,
        r#"sloguard_gate_decision{service="payments",decision="allow"} 1"#,
    ] {
        assert!(page.lines().any(|l| l == line), "{line} missing from\n{page}");
    }
    api.post("/v1/services/checkout/overrides", Some(TOKEN), override_body()).await;
    assert!(metrics().await.lines().any(|l| l == r#"sloguard_gate_decision{service="checkout",decision="allow"} 1"#));
}

#[tokio::test]
async fn metrics_time_each_request_under_its_route_template() {
    let api = api(None).await;
    for path in ["/v1/gate/checkout", "/v1/gate/payments?change=hotfix", "/v1/gate/nope", "/healthz", "/no/such/path"] {
        api.get(path).await;
    }
    let page = api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    let samples = crate::exposition::parse_strict(page.as_bytes()).expect("valid exposition");
    let value = |series: &str| samples.iter().find(|s| s.series == series).map(|s| s.value);
    let count = |route: &str| value(&format!(r#"sloguard_http_request_duration_seconds_count{{route="{route}"}}"#));
    assert_eq!(count("/v1/gate/{service}"), Some(3.0), "a 404 for an unknown service is still the gate route");
    assert_eq!(count("/healthz"), Some(1.0));
    assert_eq!(count("/v1/events"), Some(0.0));
    let all: f64 =
        samples.iter().filter(|s| s.name == "sloguard_http_request_duration_seconds_count").map(|s| s.value).sum();
    assert_eq!(all, 4.0, "an unmatched path is no route's; /metrics itself is timed after it renders");
    let within_a_second = value(r#"sloguard_http_request_duration_seconds_bucket{route="/v1/gate/{service}",le="1"}"#);
    assert_eq!(within_a_second, Some(3.0));
}
