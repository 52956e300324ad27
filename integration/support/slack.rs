//! A stand-in for Slack's Web API on loopback: Slack itself cannot be reached from tests, so
//! this server speaks the shapes sloguard uses — `POST /api/chat.postMessage` and
//! `/api/chat.update` with a JSON body, answering `{"ok":true,"channel":...,"ts":...}` — and
//! can answer 429 with `Retry-After` on demand, as Slack does when a channel is over its rate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The channel id the stand-in gives every channel name, as Slack answers with ids.
pub const CHANNEL_ID: &str = "C0SLOGUARD";

/// One request as received.
#[derive(Debug, Clone)]
pub struct SlackCall {
    /// `chat.postMessage` or `chat.update`.
    pub method: String,
    pub body: Value,
    /// Wall time of receipt, Unix milliseconds.
    pub received_ms: i64,
    /// Whether it was answered 429.
    pub throttled: bool,
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<SlackCall>>,
    /// How many upcoming `chat.postMessage` calls get 429 + `Retry-After: 1`.
    throttle_next: AtomicU32,
}

/// The running stand-in; it stops with the test's runtime.
#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new().route("/api/{method}", axum::routing::post(method)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake Slack");
        let addr = listener.local_addr().expect("fake Slack address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeSlack { inner, addr }
    }

    /// The Web API base for `notifiers.slack.api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Answers the next `n` `chat.postMessage` calls with 429 and `Retry-After: 1`.
    pub fn throttle_next(&self, n: u32) {
        self.inner.throttle_next.store(n, Ordering::SeqCst);
    }

    pub fn calls(&self) -> Vec<SlackCall> {
        self.inner.calls.lock().expect("calls lock").clone()
    }
}

async fn method(State(inner): State<Arc<Inner>>, Path(name): Path<String>, body: axum::body::Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let throttled = name == "chat.postMessage"
        && inner.throttle_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let n = {
        let mut calls = inner.calls.lock().expect("calls lock");
        calls.push(SlackCall { method: name.clone(), body: body.clone(), received_ms: wall_ms(), throttled });
        calls.len()
    };
    if throttled {
        let res = (StatusCode::TOO_MANY_REQUESTS, Json(json!({"ok": false, "error": "ratelimited"})));
        return ([("retry-after", "1")], res).into_response();
    }
    let ts = match name.as_str() {
        "chat.update" => body["ts"].as_str().unwrap_or_default().to_string(),
        _ => format!("1700000000.{n:06}"),
    };
    Json(json!({"ok": true, "channel": CHANNEL_ID, "ts": ts, "message": {"type": "message", "ts": ts, "text": body["text"]}}))
        .into_response()
}

pub fn wall_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    since_epoch.as_millis() as i64
}
