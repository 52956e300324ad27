//! The HTTP API (axum on hyper): services, SLO detail, deploy gates (`gate`: the gate and the
//! Flagger webhook), governance (`governance`: overrides, corrections, the audit log), the event
//! log, `/metrics`, health and readiness.
//!
//! Reads snapshots and the store's logs; never touches the engine (corrections reach it through
//! the core's command channel). A gate answer comes from the in-memory snapshot and overrides
//! only, so it never waits on a scrape or the store. Every error is JSON with a reason, and 4xx
//! means the request was wrong: a policy "no" is a 200 `deny` (403 only on the Flagger webhook,
//! whose protocol is the status code).
//!
//! A string from a client (a path segment, a header, a body field) reaches a log line only
//! through [`LogSafe`]: escaped and cut short, since anyone who can reach the port can send one.

mod bounds;
mod gate;
mod governance;
mod server;
#[cfg(test)]
mod tests;
mod timing;

use std::fmt::{self, Write};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router, middleware};
use serde::Deserialize;
use serde_json::json;

use crate::clock::{Millis, duration_millis, parse_rfc3339};
use crate::config::ApiLimits;
use crate::daemon::Shared;
use crate::duration::parse_duration;
use crate::policy::{self, GateRequest};
use crate::status::Snapshot;
pub use server::{CloseReason, ConnectionStats};
pub use timing::RequestStats;

/// Events returned when the caller gives no `limit`.
const DEFAULT_EVENT_LIMIT: usize = 1_000;
/// Upper bound on `limit`, so one request cannot make the daemon serialize its whole log.
const MAX_EVENT_LIMIT: usize = 10_000;

/// Characters of one client-provided value a log line shows. The API logs who asked for what,
/// and a name, a reason or a Flagger field is a sentence at most: 200 characters show it whole,
/// while an unauthenticated client could otherwise grow the log by a megabyte a request.
const MAX_LOGGED_CHARS: usize = 200;

/// Every route's path template, in the order of the handlers in [`router`]; `/metrics` labels
/// request durations with them.
const ROUTES: [&str; 13] = [
    "/v1/services",
    "/v1/services/{service}",
    "/v1/gate/{service}",
    "/v1/flagger/gate",
    "/v1/services/{service}/overrides",
    "/v1/services/{service}/overrides/{id}",
    "/v1/services/{service}/corrections",
    "/v1/services/{service}/corrections/{id}",
    "/v1/audit",
    "/v1/events",
    "/metrics",
    "/healthz",
    "/readyz",
];

/// Serves the API on `listener` under `limits` until `stop` turns true (see `server`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    limits: ApiLimits,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let stats = shared.stats.connections.clone();
    server::serve(listener, router(shared, &limits), limits, stats, stop).await
}

pub fn router(shared: Arc<Shared>, limits: &ApiLimits) -> Router {
    use bounds::BodyRule::{Mutation, None as NoBody, Open};
    let handlers: [(MethodRouter<Arc<Shared>>, bounds::BodyRule); ROUTES.len()] = [
        (get(services), NoBody),
        (get(service), NoBody),
        (get(gate::gate), NoBody),
        (post(gate::flagger), Open(bounds::MAX_FLAGGER_BODY)),
        (get(governance::list_overrides).post(governance::create_override), Mutation(bounds::MAX_MUTATION_BODY)),
        (delete(governance::delete_override), Mutation(0)),
        (get(governance::list_corrections).post(governance::create_correction), Mutation(bounds::MAX_MUTATION_BODY)),
        (delete(governance::delete_correction), Mutation(0)),
        (get(governance::audit), NoBody),
        (get(events), NoBody),
        (get(metrics), NoBody),
        (get(|| async { Json(json!({"status": "ok"})) }), NoBody),
        (get(readyz), NoBody),
    ];
    let timed =
        |route| middleware::from_fn_with_state(timing::Timed { shared: shared.clone(), route }, timing::time_request);
    // Outside the timing: a slow client's body is its time, not the route's.
    let bounded = |rule| {
        let state = bounds::Bounded {
            shared: shared.clone(),
            rule,
            body_timeout: limits.body_timeout,
            max_body_bytes: limits.max_body_bytes,
        };
        middleware::from_fn_with_state(state, bounds::bound_request)
    };
    ROUTES
        .into_iter()
        .zip(handlers)
        .enumerate()
        .fold(Router::new(), |router, (route, (path, (handler, rule)))| {
            router.route(path, handler.layer(timed(route)).layer(bounded(rule)))
        })
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async { problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here") })
        .with_state(shared)
}

/// A JSON error: `{"error": "<status text>", "reason": "..."}`.
fn problem(status: StatusCode, reason: impl Into<String>) -> Response {
    let error = status.canonical_reason().unwrap_or("error").to_lowercase();
    (status, Json(json!({"error": error, "reason": reason.into()}))).into_response()
}

/// A client-provided string as a log line may show it: control characters (newline, ESC, ...),
/// backslashes and quotes escaped as Rust's `escape_debug` does, so no value can end the line
/// and forge the next one or drive a terminal; cut after [`MAX_LOGGED_CHARS`] characters with
/// `…(N bytes)` giving the whole value's length. `{}` shows it bare, for `field=value` pairs;
/// `{:?}` in double quotes, for text inside a message.
struct LogSafe<'a>(&'a str);

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        let mut chars = text.chars();
        for c in chars.by_ref().take(MAX_LOGGED_CHARS) {
            // `'` needs no escape where values are bare or in double quotes.
            if c == '\'' {
                f.write_char(c)?;
            } else {
                write!(f, "{}", c.escape_debug())?;
            }
        }
        if chars.next().is_some() {
            write!(f, "…({} bytes)", text.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The snapshot, or `None` before the first evaluation (state still restoring).
fn ready_snapshot(shared: &Shared) -> Option<Arc<Snapshot>> {
    let snapshot = shared.snapshot();
    (shared.is_ready() || snapshot.at > 0).then_some(snapshot)
}

fn starting() -> Response {
    Refusal::starting().into_response()
}

fn unknown_service(name: &str) -> Response {
    Refusal::unknown_service(name).into_response()
}

/// Why a request is refused, rendered as a [`problem`]. Helpers return it rather than a
/// `Response` (a fifth of the size), and handlers turn it into one with `?`-like `or_respond!`.
struct Refusal {
    status: StatusCode,
    reason: String,
    /// `WWW-Authenticate` challenge, on 401.
    challenge: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal { status, reason: reason.into(), challenge: None }
    }

    fn bad_request(reason: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, reason)
    }

    fn starting() -> Refusal {
        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "sloguard is starting: state not restored yet")
    }

    fn unknown_service(name: &str) -> Refusal {
        Refusal::new(StatusCode::NOT_FOUND, format!("unknown service {name:?}; GET /v1/services lists them"))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = problem(self.status, self.reason);
        if let Some(challenge) = self.challenge.and_then(|c| header::HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// Unwraps `Ok`, or returns the refusal as the handler's response.
macro_rules! or_respond {
    ($res:expr) => {
        match $res {
            Ok(value) => value,
            Err(refusal) => return axum::response::IntoResponse::into_response(refusal),
        }
    };
}
use or_respond;

async fn services(State(shared): State<Arc<Shared>>) -> Response {
    let Some(snapshot) = ready_snapshot(&shared) else { return starting() };
    let overrides = shared.governance.overrides_by_service();
    let now = shared.clock.now();
    let list: Vec<_> = snapshot
        .services
        .iter()
        .map(|s| {
            json!({
                "service": s.service,
                "owner": s.owner,
                "frozen": s.frozen,
                "frozen_since": s.frozen_since.map(crate::clock::rfc3339),
                "worst_slo": s.worst_slo().map(|w| json!({"slo": w.slo, "budget_remaining": w.budget_remaining})),
                "decision": policy::decide(&snapshot, s, &GateRequest {
                    change: None,
                    overrides: overrides.get(&s.service).map_or(&[], Vec::as_slice),
                    now,
                }).decision,
            })
        })
        .collect();
    Json(json!({"services": list, "evaluated_at": crate::clock::rfc3339(snapshot.at)})).into_response()
}

async fn service(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(snapshot) = ready_snapshot(&shared) else { return starting() };
    let Some(status) = snapshot.service(&name) else { return unknown_service(&name) };
    let sources: Vec<_> = snapshot.sources_of(status).collect();
    let mut body = serde_json::to_value(status).expect("status serializes");
    body["sources"] = serde_json::to_value(sources).expect("health serializes");
    body["evaluated_at"] = json!(crate::clock::rfc3339(snapshot.at));
    Json(body).into_response()
}

/// `?service=&since=&limit=`, shared by `/v1/events` and `/v1/audit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    service: Option<String>,
    /// RFC 3339 instant, or a duration meaning "that long ago" (`24h`).
    since: Option<String>,
    limit: Option<usize>,
}

/// A validated [`LogQuery`].
struct LogRange {
    service: Option<String>,
    since: Millis,
    limit: usize,
}

impl LogQuery {
    fn validate(self, shared: &Shared) -> Result<LogRange, Refusal> {
        let since = match self.since.as_deref().map(|s| parse_since(s, shared.clock.now())).transpose() {
            Ok(since) => since.unwrap_or(0),
            Err(reason) => return Err(Refusal::bad_request(reason)),
        };
        let limit = self.limit.unwrap_or(DEFAULT_EVENT_LIMIT);
        if limit == 0 || limit > MAX_EVENT_LIMIT {
            return Err(Refusal::bad_request(format!("limit must be between 1 and {MAX_EVENT_LIMIT}")));
        }
        if let Some(service) = &self.service {
            let snapshot = shared.snapshot();
            if snapshot.at > 0 && snapshot.service(service).is_none() {
                return Err(Refusal::unknown_service(service));
            }
        }
        Ok(LogRange { service: self.service, since, limit })
    }
}

fn log_query(shared: &Shared, query: Result<Query<LogQuery>, QueryRejection>) -> Result<LogRange, Refusal> {
    match query {
        Ok(Query(q)) => q.validate(shared),
        Err(e) => Err(Refusal::bad_request(format!("{e}; accepted: service, since, limit"))),
    }
}

async fn events(State(shared): State<Arc<Shared>>, query: Result<Query<LogQuery>, QueryRejection>) -> Response {
    let range = or_respond!(log_query(&shared, query));
    match shared.store.events(range.service.as_deref(), range.since, range.limit) {
        Ok(events) => Json(json!({"events": events})).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the event log: {e}")),
    }
}

fn parse_since(text: &str, now: Millis) -> Result<Millis, String> {
    if let Ok(at) = parse_rfc3339(text) {
        return Ok(at);
    }
    let ago =
        parse_duration(text).map_err(|e| format!("since must be an RFC 3339 instant or a duration like 24h: {e}"))?;
    Ok(now - duration_millis(ago))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot = shared.snapshot();
    let overrides = shared.governance.overrides_by_service();
    let now = shared.clock.now();
    let decisions: Vec<policy::Decision> = snapshot
        .services
        .iter()
        .map(|s| {
            let overrides = overrides.get(&s.service).map_or(&[][..], Vec::as_slice);
            policy::decide(&snapshot, s, &GateRequest { change: None, overrides, now }).decision
        })
        .collect();
    let mut body = crate::metrics::render(&snapshot, &shared.stats, &decisions);
    body.push_str(&crate::metrics::render_store(&shared.store.health()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let store = shared.store.health();
    if shared.is_ready() && !store.writable {
        // Up, but what it decides now cannot be made durable: it is kept in memory and
        // committed once the store recovers, which `sloguard_store_writable` shows.
        let reason = store.reason.unwrap_or_else(|| "a store write failed".into());
        problem(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: store not writable: {reason}"))
    } else if shared.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        problem(StatusCode::SERVICE_UNAVAILABLE, "not ready: loading state or shutting down")
    }
}
