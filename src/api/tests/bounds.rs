//! The API's bounds over real loopback sockets: raw TCP clients that withhold bytes, as the
//! slow clients of issue 14 did, against the daemon's own server (`api::serve`).
//!
//! No test asserts a speed. Timeouts are configured short (hundreds of ms) and each assertion
//! has a generous upper bound ([`PATIENCE`]): a server without the bound never answers or never
//! closes within it, so each test fails on the old server.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Api, TOKEN, api_with, override_body};
use crate::config::ApiLimits;

/// Longest a test waits for an answer or a close that a bounded server gives within a
/// configured timeout of at most a second.
const PATIENCE: Duration = Duration::from_secs(10);

/// A timeout no test reaches: the bound under test is another one.
const NEVER: Duration = Duration::from_secs(600);

fn limits() -> ApiLimits {
    ApiLimits {
        header_timeout: NEVER,
        body_timeout: NEVER,
        idle_timeout: NEVER,
        max_connections: 64,
        max_body_bytes: 64 << 10,
    }
}

async fn connect(api: &Api) -> TcpStream {
    TcpStream::connect(api.addr).await.unwrap()
}

/// Reads until the server closes (or resets) the connection; the bytes read. Panics after
/// [`PATIENCE`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "connection still open after {PATIENCE:?}; read so far: {:?}",
        String::from_utf8_lossy(&seen)
    );
    seen
}

/// Reads one response (head and a `Content-Length` body); panics after [`PATIENCE`].
async fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut seen = Vec::new();
    let response = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if seen.len() >= end + 4 + length {
                    let status = head[9..12].parse().unwrap();
                    return (status, serde_json::from_slice(&seen[end + 4..end + 4 + length]).unwrap_or(Value::Null));
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    response.unwrap_or_else(|_| panic!("no response within {PATIENCE:?}"))
}

fn closed_total(api: &Api, reason: &str) -> u64 {
    api.shared.stats.connections.closed().find(|(r, _)| *r == reason).map_or(0, |(_, n)| n)
}

/// Waits (bounded) until `done` holds, polling; panics with `what` otherwise.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = tokio::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_unauthenticated_withheld_body_gets_401_without_the_body_being_read() {
    let api = api_with(Some(TOKEN), limits()).await;
    for authorization in ["", "Authorization: Bearer wrong\r\n"] {
        let mut stream = connect(&api).await;
        // 1.9 MB announced, 64 KiB sent, the rest withheld: a server reading the body first
        // waits forever (body_timeout is NEVER here).
        let head = format!(
            "POST /v1/services/checkout/overrides HTTP/1.1\r\nHost: sloguard\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: 1900000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[b' '; 64 << 10]).await.unwrap();
        let (status, body) = read_response(&mut stream).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "unauthorized");
        // The unread rest cannot be drained, so the connection closes rather than waiting for it.
        read_until_closed(&mut stream).await;
    }
    eventually("two body_rejected closes", || closed_total(&api, "body_rejected") == 2).await;
}

#[tokio::test]
async fn partial_headers_are_closed_after_header_timeout() {
    let api = api_with(None, ApiLimits { header_timeout: Duration::from_millis(300), ..limits() }).await;
    let mut partial = connect(&api).await;
    partial.write_all(b"GET /v1/gate/checkout HTTP/1.1\r\nHost: sloguard\r\nX-Slow: ").await.unwrap();
    let mut silent = connect(&api).await;
    assert_eq!(read_until_closed(&mut partial).await, b"");
    assert_eq!(read_until_closed(&mut silent).await, b"");
    eventually("two header_timeout closes", || closed_total(&api, "header_timeout") == 2).await;
    assert_eq!(api.shared.stats.connections.open(), 0);
}

#[tokio::test]
async fn a_kept_alive_connection_outlives_header_timeout_and_closes_after_idle_timeout() {
    let limits =
        ApiLimits { header_timeout: Duration::from_millis(200), idle_timeout: Duration::from_secs(1), ..limits() };
    let api = api_with(None, limits).await;
    let mut stream = connect(&api).await;
    let request = b"GET /v1/gate/payments HTTP/1.1\r\nHost: sloguard\r\n\r\n";
    stream.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    // Idle for longer than header_timeout (but within idle_timeout): still open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    assert_eq!(read_until_closed(&mut stream).await, b"");
    eventually("an idle close", || closed_total(&api, "idle") == 1).await;
    assert_eq!(closed_total(&api, "header_timeout"), 0);
}

#[tokio::test]
async fn over_limit_bodies_get_413_and_slow_ones_408() {
    let limits = ApiLimits { body_timeout: Duration::from_millis(300), max_body_bytes: 4 << 10, ..limits() };
    let api = api_with(Some(TOKEN), limits).await;
    let token = format!("Authorization: Bearer {TOKEN}\r\n");
    // Declared too large: refused from the head, per route (Flagger takes 16 KiB, capped at 4 here).
    let mut stream = connect(&api).await;
    let head =
        "POST /v1/flagger/gate HTTP/1.1\r\nHost: s\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("payload too large")), "{body}");
    // Chunked, with no length to refuse up front: refused once it passes the limit.
    let mut stream = connect(&api).await;
    let head = format!(
        "POST /v1/services/checkout/overrides HTTP/1.1\r\nHost: s\r\n{token}Content-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        stream.write_all(format!("800\r\n{}\r\n", " ".repeat(0x800)).as_bytes()).await.unwrap();
    }
    assert_eq!(read_response(&mut stream).await.0, 413);
    // A body on a route that takes none.
    let mut stream = connect(&api).await;
    stream.write_all(b"GET /v1/gate/checkout HTTP/1.1\r\nHost: s\r\nContent-Length: 10\r\n\r\n").await.unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(status, 413);
    assert!(body["reason"].as_str().unwrap().contains("takes no request body"), "{body}");
    // Authorized, but the body stops short: 408 after body_timeout.
    let mut stream = connect(&api).await;
    let head = format!(
        "POST /v1/services/checkout/overrides HTTP/1.1\r\nHost: s\r\n{token}Content-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"decision\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert_eq!((status, body["error"].as_str()), (408, Some("request timeout")), "{body}");
    read_until_closed(&mut stream).await;
    eventually("a body_timeout close", || closed_total(&api, "body_timeout") == 1).await;
    // Within the limits, a mutation still works.
    let (status, body) = api.post("/v1/services/checkout/overrides", Some(TOKEN), override_body()).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn at_max_connections_held_by_silent_clients_the_gate_still_answers() {
    let api = api_with(None, ApiLimits { max_connections: 8, ..limits() }).await;
    // Eight silent clients and eight that sent a Flagger head and withhold its body.
    let mut held = Vec::new();
    for i in 0..16 {
        let mut stream = connect(&api).await;
        if i % 2 == 1 {
            let head = "POST /v1/flagger/gate HTTP/1.1\r\nHost: s\r\nContent-Length: 1000\r\n\r\n{";
            stream.write_all(head.as_bytes()).await.unwrap();
        }
        held.push(stream);
    }
    eventually("16 connections accepted", || api.shared.stats.connections.open() + closed_total(&api, "evicted") >= 16)
        .await;
    assert!(api.shared.stats.connections.open() <= 8);
    for _ in 0..3 {
        let (status, body) = api.get("/v1/gate/checkout").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["decision"], "deny");
        assert_eq!(api.get("/healthz").await.0, 200);
    }
    assert_eq!(api.get("/healthz").await.1, json!({"status": "ok"}));
    assert!(api.shared.stats.connections.open() <= 8);
    assert!(closed_total(&api, "evicted") >= 8);
    // Evicted clients see their connection closed.
    assert_eq!(read_until_closed(&mut held[0]).await, b"");
}

#[tokio::test]
async fn metrics_count_connections_and_closes_by_reason() {
    let api = api_with(None, ApiLimits { header_timeout: Duration::from_millis(100), ..limits() }).await;
    let mut silent = connect(&api).await;
    read_until_closed(&mut silent).await;
    eventually("a header_timeout close", || closed_total(&api, "header_timeout") == 1).await;
    let text = api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    let samples = crate::exposition::parse_strict(text.as_bytes()).expect("valid exposition");
    let value = |series: &str| samples.iter().find(|s| s.series == series).map(|s| s.value);
    // The scrape's own connection is open.
    assert_eq!(value("sloguard_http_connections"), Some(1.0));
    assert_eq!(value(r#"sloguard_http_connections_closed_total{reason="header_timeout"}"#), Some(1.0));
    assert_eq!(value(r#"sloguard_http_connections_closed_total{reason="evicted"}"#), Some(0.0));
}
