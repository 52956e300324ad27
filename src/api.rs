//! The HTTP API (axum on hyper): services, SLO detail, deploy gates, the event log, `/metrics`,
//! health and readiness.
//!
//! Reads snapshots and the store's event log; never touches the engine. A gate answer comes from
//! the in-memory snapshot only, so it never waits on a scrape or the store. Every error is JSON
//! with a reason, and 4xx means the request was wrong: a policy "no" is a 200 `deny`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::{Millis, duration_millis};
use crate::daemon::Shared;
use crate::duration::parse_duration;
use crate::policy;
use crate::status::Snapshot;

/// Events returned when the caller gives no `limit`.
const DEFAULT_EVENT_LIMIT: usize = 1_000;
/// Upper bound on `limit`, so one request cannot make the daemon serialize its whole log.
const MAX_EVENT_LIMIT: usize = 10_000;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/services", get(services))
        .route("/v1/services/{service}", get(service))
        .route("/v1/gate/{service}", get(gate))
        .route("/v1/events", get(events))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async { problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here") })
        .with_state(shared)
}

/// A JSON error: `{"error": "<status text>", "reason": "..."}`.
fn problem(status: StatusCode, reason: impl Into<String>) -> Response {
    let error = status.canonical_reason().unwrap_or("error").to_lowercase();
    (status, Json(json!({"error": error, "reason": reason.into()}))).into_response()
}

/// The snapshot, or `None` before the first evaluation (state still restoring).
fn ready_snapshot(shared: &Shared) -> Option<Arc<Snapshot>> {
    let snapshot = shared.snapshot();
    (shared.is_ready() || snapshot.at > 0).then_some(snapshot)
}

fn starting() -> Response {
    problem(StatusCode::SERVICE_UNAVAILABLE, "sloguard is starting: state not restored yet")
}

fn unknown_service(name: &str) -> Response {
    problem(StatusCode::NOT_FOUND, format!("unknown service {name:?}; GET /v1/services lists them"))
}

async fn services(State(shared): State<Arc<Shared>>) -> Response {
    let Some(snapshot) = ready_snapshot(&shared) else { return starting() };
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
                "decision": policy::decide(&snapshot, s).decision,
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

async fn gate(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(snapshot) = ready_snapshot(&shared) else { return starting() };
    let Some(status) = snapshot.service(&name) else { return unknown_service(&name) };
    Json(policy::decide(&snapshot, status)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    service: Option<String>,
    /// RFC 3339 instant, or a duration meaning "that long ago" (`24h`).
    since: Option<String>,
    limit: Option<usize>,
}

async fn events(State(shared): State<Arc<Shared>>, query: Result<Query<EventQuery>, QueryRejection>) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("{e}; accepted: service, since, limit")),
    };
    let since = match query.since.as_deref().map(parse_since).transpose() {
        Ok(since) => since.unwrap_or(0),
        Err(reason) => return problem(StatusCode::BAD_REQUEST, reason),
    };
    let limit = query.limit.unwrap_or(DEFAULT_EVENT_LIMIT);
    if limit == 0 || limit > MAX_EVENT_LIMIT {
        return problem(StatusCode::BAD_REQUEST, format!("limit must be between 1 and {MAX_EVENT_LIMIT}"));
    }
    if let Some(service) = &query.service {
        let snapshot = shared.snapshot();
        if snapshot.at > 0 && snapshot.service(service).is_none() {
            return unknown_service(service);
        }
    }
    match shared.store.events(query.service.as_deref(), since, limit) {
        Ok(events) => Json(json!({"events": events})).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the event log: {e}")),
    }
}

fn parse_since(text: &str) -> Result<Millis, String> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as Millis);
    }
    let ago =
        parse_duration(text).map_err(|e| format!("since must be an RFC 3339 instant or a duration like 24h: {e}"))?;
    let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis;
    Ok(now - duration_millis(ago))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = crate::metrics::render(&shared.snapshot(), &shared.stats);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        problem(StatusCode::SERVICE_UNAVAILABLE, "not ready: loading state or shutting down")
    }
}
