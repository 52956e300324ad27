//! The deploy gate: `GET /v1/gate/{service}?change=CLASS` and Flagger's webhook
//! (`POST /v1/flagger/gate`).
//!
//! Both answer from the latest snapshot and the in-memory overrides, never from the store.
//! The gate is 200 for every policy answer; the Flagger webhook maps `deny` to 403 because
//! Flagger reads only the status code: 2xx advances the canary, anything else halts it (a
//! `confirm-rollout` hook then waits and asks again, a `pre-rollout` hook counts a failed check
//! and rolls back at the canary's threshold). Flagger copies a non-2xx body into its failed-check
//! log and Kubernetes events, so the 403 body is the reasons as plain sentences.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tracing::info;

use super::{LogSafe, problem, ready_snapshot, starting, unknown_service};
use crate::daemon::Shared;
use crate::policy::{self, Decision, GateDecision, GateRequest};
use crate::status::{ServiceStatus, Snapshot};

/// Longest change class accepted: classes are short words (`hotfix`, `security`), and a bound
/// keeps reasons and logs readable.
const MAX_CHANGE_CLASS_LEN: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GateQuery {
    change: Option<String>,
}

pub(super) async fn gate(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    query: Result<Query<GateQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("{e}; accepted: change")),
    };
    if let Err(reason) = query.change.as_deref().map(check_change_class).transpose() {
        return problem(StatusCode::BAD_REQUEST, reason);
    }
    let Some(snapshot) = ready_snapshot(&shared) else { return starting() };
    let Some(status) = snapshot.service(&name) else { return unknown_service(&name) };
    Json(decide(&shared, &snapshot, status, query.change.as_deref())).into_response()
}

/// Flagger's webhook payload. Unknown fields are accepted: Flagger adds fields across versions,
/// and a gate that broke on an upgrade would halt every canary.
#[derive(Deserialize)]
pub(super) struct FlaggerPayload {
    /// The canary's name; the service unless `metadata.service` says otherwise.
    name: String,
    namespace: Option<String>,
    phase: Option<String>,
    /// Free-form strings from the webhook's `metadata:`; we read `service` and `change`.
    #[serde(default)]
    metadata: HashMap<String, String>,
}

pub(super) async fn flagger(
    State(shared): State<Arc<Shared>>,
    payload: Result<Json<FlaggerPayload>, JsonRejection>,
) -> Response {
    let Json(payload) = match payload {
        Ok(p) => p,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("{e}; expected Flagger's webhook payload {{\"name\", \"namespace\", \"phase\", \"metadata\"}}"),
            );
        }
    };
    let service = payload.metadata.get("service").unwrap_or(&payload.name);
    let change = payload.metadata.get("change").map(String::as_str);
    if let Err(reason) = change.map(check_change_class).transpose() {
        return problem(StatusCode::BAD_REQUEST, format!("metadata.change: {reason}"));
    }
    let Some(snapshot) = ready_snapshot(&shared) else { return starting() };
    let Some(status) = snapshot.service(service) else { return unknown_service(service) };
    let gate = decide(&shared, &snapshot, status, change);
    info!(
        service = %LogSafe(service),
        canary = %LogSafe(&payload.name),
        namespace = %LogSafe(payload.namespace.as_deref().unwrap_or("-")),
        phase = %LogSafe(payload.phase.as_deref().unwrap_or("-")),
        "flagger gate: {}",
        gate.decision.as_str()
    );
    if gate.decision == Decision::Deny {
        let mut body = format!("sloguard denies deploying {service}: {}", gate.reasons.join("; "));
        if let Some(exception) = &gate.exception {
            body.push_str(&format!(". Exception: {exception}"));
        }
        return (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    }
    Json(gate).into_response()
}

fn decide(shared: &Shared, snapshot: &Snapshot, status: &ServiceStatus, change: Option<&str>) -> GateDecision {
    let overrides = shared.governance.overrides_of(&status.service);
    policy::decide(snapshot, status, &GateRequest { change, overrides: &overrides, now: shared.clock.now() })
}

/// Any class is accepted (only listed ones are exempt), but it must look like a class name: it
/// is echoed into reasons, logs and CI output.
fn check_change_class(change: &str) -> Result<(), String> {
    let valid = !change.is_empty()
        && change.len() <= MAX_CHANGE_CLASS_LEN
        && change.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "change must be 1 to {MAX_CHANGE_CLASS_LEN} characters of letters, digits, '-', '_' or '.', got {change:?}"
        ))
    }
}
