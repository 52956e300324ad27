//! Governance endpoints: overrides and budget corrections (mutations need the API's bearer
//! token) and the audit log.
//!
//! Every mutation is written to the store with its audit entry and flushed before it is
//! answered or takes effect. The token is compared in constant time (see
//! `daemon::Governance::check_token`) and never logged; the audit log records the
//! informational `X-Sloguard-Actor` header and the client's address instead, since a shared
//! token carries no identity.
//!
//! Correction rules (each a 400 with the reason):
//! - `end` after `start`, both RFC 3339;
//! - `end` at most [`MAX_CORRECTION_LEAD`] past now: corrections describe events that happened
//!   or are starting, not a standing exclusion of the future;
//! - at most [`MAX_CORRECTION_SPAN`] long;
//! - overlapping the SLO window (the longest of the SLOs it covers): an older one changes nothing;
//! - `slo`, if given, names an SLO of the service;
//! - at most [`MAX_CORRECTIONS_PER_SERVICE`] per service.
//!
//! A service holds at most [`MAX_OVERRIDES_PER_SERVICE`] active overrides (409 beyond). Both caps
//! are checked before the store write, so requests racing each other can pass together: they
//! stop a runaway script or a leaked token, not a burst of simultaneous requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use super::{LogQuery, LogSafe, Refusal, log_query, or_respond, ready_snapshot};
use crate::clock::{DAY, HOUR, Millis, duration_millis, format_span, parse_rfc3339, rfc3339};
use crate::daemon::{Shared, TokenCheck};
use crate::duration::parse_duration;
use crate::policy::{Decision, Override};
use crate::status::{ServiceStatus, Snapshot};
use crate::store::{AuditAction, AuditEntry, Correction, StoreError};

/// Longest an override may last. An override bridges an incident or a release, not a policy
/// change: a week covers a long weekend plus a release train, and anything longer belongs in
/// the spec, where it is reviewed.
pub const MAX_OVERRIDE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Active overrides held per service; a POST beyond it is a 409. Every gate answer copies and
/// weighs all of a service's overrides, so their number is paid on the sub-millisecond gate
/// path, and one or two bridge any real incident: a hundred is a script or a leaked token,
/// which should stop loudly rather than slow every deploy.
pub const MAX_OVERRIDES_PER_SERVICE: usize = 100;

/// Longest reason accepted: a sentence or a ticket link; the bound keeps gate answers and audit
/// entries readable.
const MAX_REASON_LEN: usize = 1_000;

/// The informational identity header and its longest accepted value (a name or an email).
const ACTOR_HEADER: &str = "x-sloguard-actor";
const MAX_ACTOR_LEN: usize = 128;

/// How far past now a correction may end: enough to cover a load test that is starting, not
/// enough to switch the SLO off for the future.
pub const MAX_CORRECTION_LEAD: Millis = HOUR;

/// Longest correction: incidents and tests last hours; excluding more than a week is changing
/// the SLO, which belongs in the spec.
pub const MAX_CORRECTION_SPAN: Millis = 7 * DAY;

/// Corrections held per service: each one costs the engine two window lookups per window per
/// evaluation, and more than a hundred means the SLI needs fixing, not correcting.
pub const MAX_CORRECTIONS_PER_SERVICE: usize = 100;

/// How long a correction request waits for the core to apply it before answering anyway
/// (`"applied": false`; it is stored and applies when the core gets to it). Two evaluation
/// rounds of a large deployment take well under a second.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Who made a request, for the audit log.
struct Caller {
    actor: Option<String>,
    remote: String,
}

impl Caller {
    fn entry(&self, at: Millis, service: &str, action: AuditAction) -> AuditEntry {
        AuditEntry {
            at,
            service: service.to_string(),
            action,
            actor: self.actor.clone(),
            remote: Some(self.remote.clone()),
        }
    }

    fn describe(&self) -> String {
        match &self.actor {
            Some(actor) => format!("{} from {}", LogSafe(actor), self.remote),
            None => format!("{} (no {ACTOR_HEADER})", self.remote),
        }
    }
}

/// Checks the bearer token and reads the caller, or answers 401 / 400.
fn authorize(shared: &Shared, headers: &HeaderMap, remote: SocketAddr) -> Result<Caller, Refusal> {
    check_bearer(shared, headers)?;
    let actor = match headers.get(ACTOR_HEADER) {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.len() <= MAX_ACTOR_LEN && !t.chars().any(char::is_control));
            match text {
                Some(text) => Some(text.to_string()),
                None => {
                    return Err(Refusal::bad_request(format!(
                        "{ACTOR_HEADER} must be 1 to {MAX_ACTOR_LEN} printable characters"
                    )));
                }
            }
        }
    };
    Ok(Caller { actor, remote: remote.to_string() })
}

/// Checks the bearer token, or answers 401. `api::bounds` calls it before reading a mutation's
/// body; the handler calls it again through [`authorize`].
pub(super) fn check_bearer(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    if !shared.governance.token_configured() {
        return Err(unauthorized(
            "mutations are disabled: no API token is configured (set api.token_env or api.token_file in sloguard.yaml)",
            None,
        ));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(presented) = presented else {
        return Err(unauthorized("missing bearer token: send Authorization: Bearer <token>", None));
    };
    match shared.governance.check_token(presented) {
        TokenCheck::Valid => {}
        TokenCheck::Invalid => return Err(unauthorized("invalid bearer token", Some("invalid_token"))),
        TokenCheck::Disabled => return Err(unauthorized("mutations are disabled: no API token is configured", None)),
    }
    Ok(())
}

fn unauthorized(reason: &str, error: Option<&str>) -> Refusal {
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"sloguard\", error=\"{error}\""),
        None => "Bearer realm=\"sloguard\"".to_string(),
    };
    Refusal { challenge: Some(challenge), ..Refusal::new(StatusCode::UNAUTHORIZED, reason) }
}

/// The snapshot, if ready and `service` is in it.
fn known(shared: &Shared, service: &str) -> Result<Arc<Snapshot>, Refusal> {
    let snapshot = ready_snapshot(shared).ok_or_else(Refusal::starting)?;
    if snapshot.service(service).is_none() {
        return Err(Refusal::unknown_service(service));
    }
    Ok(snapshot)
}

fn store_failed(what: &str, e: StoreError) -> Refusal {
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}"))
}

fn check_reason(reason: &str) -> Result<String, String> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON_LEN {
        return Err(format!("reason must be 1 to {MAX_REASON_LEN} characters, saying why (a ticket link is fine)"));
    }
    Ok(reason.to_string())
}

/// The override body, for 400 answers.
const OVERRIDE_SHAPE: &str = r#"{"decision": "allow|warn|deny", "reason": "...", "expires_in": "2h"}"#;

/// `POST /v1/services/{service}/overrides` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOverride {
    decision: Decision,
    reason: String,
    /// A duration such as `2h`, at most [`MAX_OVERRIDE_TTL`].
    expires_in: String,
}

impl NewOverride {
    fn validate(&self) -> Result<(String, Millis), String> {
        let reason = check_reason(&self.reason)?;
        let ttl = parse_duration(&self.expires_in).map_err(|e| format!("expires_in: {e}"))?;
        if ttl > MAX_OVERRIDE_TTL {
            return Err(format!(
                "expires_in must be at most {}: an override bridges an incident or a release; change the spec's \
                 policy for anything longer",
                format_span(duration_millis(MAX_OVERRIDE_TTL))
            ));
        }
        Ok((reason, duration_millis(ttl)))
    }
}

pub(super) async fn create_override(
    State(shared): State<Arc<Shared>>,
    Path(service): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<NewOverride>, JsonRejection>,
) -> Response {
    let caller = or_respond!(authorize(&shared, &headers, remote));
    or_respond!(known(&shared, &service));
    let Json(body) = or_respond!(body.map_err(|e| Refusal::bad_request(format!("{e}; expected {OVERRIDE_SHAPE}"))));
    let (reason, ttl) = or_respond!(body.validate().map_err(Refusal::bad_request));
    let now = shared.clock.now();
    // Expired overrides wait for the core to reap them and never count: they no longer apply.
    let n_active = shared.governance.overrides_of(&service).iter().filter(|o| o.is_active(now)).count();
    if n_active >= MAX_OVERRIDES_PER_SERVICE {
        return Refusal::new(
            StatusCode::CONFLICT,
            format!(
                "{service} already has {MAX_OVERRIDES_PER_SERVICE} active overrides; delete one \
                 (DELETE /v1/services/{service}/overrides/{{id}}) or wait for one to expire"
            ),
        )
        .into_response();
    }
    let id = or_respond!(shared.store.new_id("ovr").map_err(|e| store_failed("allocating an id", e)));
    let created = Override {
        id: id.clone(),
        service: service.clone(),
        decision: body.decision,
        reason,
        created_at: now,
        expires_at: now + ttl,
        actor: caller.actor.clone(),
        remote: Some(caller.remote.clone()),
    };
    let entry = caller.entry(now, &service, AuditAction::OverrideCreated { created: created.clone() });
    or_respond!(shared.store.put_override(&created, &entry).await.map_err(|e| store_failed("storing the override", e)));
    shared.governance.add_override(created.clone());
    info!(
        service = %LogSafe(&service),
        "override {id} created by {}: {} until {}: {:?}",
        caller.describe(),
        created.decision.as_str(),
        rfc3339(created.expires_at),
        LogSafe(&created.reason)
    );
    let location = format!("/v1/services/{service}/overrides/{id}");
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(json!({"id": id, "override": created}))).into_response()
}

pub(super) async fn list_overrides(State(shared): State<Arc<Shared>>, Path(service): Path<String>) -> Response {
    or_respond!(known(&shared, &service));
    let now = shared.clock.now();
    let mut active: Vec<Override> =
        shared.governance.overrides_of(&service).into_iter().filter(|o| o.is_active(now)).collect();
    active.sort_by_key(|o| o.created_at);
    Json(json!({"overrides": active})).into_response()
}

pub(super) async fn delete_override(
    State(shared): State<Arc<Shared>>,
    Path((service, id)): Path<(String, String)>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let caller = or_respond!(authorize(&shared, &headers, remote));
    or_respond!(known(&shared, &service));
    let no_such = || Refusal::new(StatusCode::NOT_FOUND, format!("no override {id:?} for {service}"));
    let Some(existing) = shared.governance.overrides_of(&service).into_iter().find(|o| o.id == id) else {
        return no_such().into_response();
    };
    let action =
        AuditAction::OverrideDeleted { id: id.clone(), decision: existing.decision, reason: existing.reason.clone() };
    let entry = caller.entry(shared.clock.now(), &service, action);
    let existed = or_respond!(
        shared.store.remove_override(&id, &entry).await.map_err(|e| store_failed("deleting the override", e))
    );
    shared.governance.forget_override(&id);
    if !existed {
        // The core reaped it (expired) between our lookup and the delete.
        return no_such().into_response();
    }
    info!(service = %LogSafe(&service), "override {} deleted by {}", LogSafe(&id), caller.describe());
    StatusCode::NO_CONTENT.into_response()
}

/// The correction body, for 400 answers.
const CORRECTION_SHAPE: &str =
    r#"{"start": "RFC 3339", "end": "RFC 3339", "reason": "...", "slo": "SLO name (optional)"}"#;

/// `POST /v1/services/{service}/corrections` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCorrection {
    start: String,
    end: String,
    reason: String,
    /// SLO name within the service; absent covers every SLO.
    slo: Option<String>,
}

/// A validated [`NewCorrection`].
struct CorrectionSpan {
    start: Millis,
    end: Millis,
    reason: String,
    slo: Option<String>,
}

impl NewCorrection {
    fn validate(&self, status: &ServiceStatus, now: Millis) -> Result<CorrectionSpan, String> {
        let instant = |field: &str, text: &str| {
            parse_rfc3339(text)
                .map_err(|e| format!("{field} must be an RFC 3339 instant such as 2026-01-04T14:00:00Z: {e}"))
        };
        let start = instant("start", &self.start)?;
        let end = instant("end", &self.end)?;
        let reason = check_reason(&self.reason)?;
        if end <= start {
            return Err(format!("end ({}) must be after start ({})", rfc3339(end), rfc3339(start)));
        }
        if end > now + MAX_CORRECTION_LEAD {
            return Err(format!(
                "end ({}) is more than {} in the future: corrections describe events that happened",
                rfc3339(end),
                format_span(MAX_CORRECTION_LEAD)
            ));
        }
        if end - start > MAX_CORRECTION_SPAN {
            return Err(format!(
                "a correction spans at most {}; excluding longer periods is a change of SLO",
                format_span(MAX_CORRECTION_SPAN)
            ));
        }
        let covered: Vec<_> = match &self.slo {
            None => status.slos.iter().collect(),
            Some(name) => {
                let Some(slo) = status.slos.iter().find(|s| s.name() == name) else {
                    let names: Vec<&str> = status.slos.iter().map(|s| s.name()).collect();
                    return Err(format!("{} has no SLO {name:?}; its SLOs: {}", status.service, names.join(", ")));
                };
                vec![slo]
            }
        };
        let longest = covered.iter().map(|s| s.window_ms).max().unwrap_or(0);
        if end <= now - longest {
            return Err(format!(
                "the correction ends before the {} SLO window began: it would not change any budget",
                format_span(longest)
            ));
        }
        Ok(CorrectionSpan { start, end, reason, slo: self.slo.clone() })
    }
}

pub(super) async fn create_correction(
    State(shared): State<Arc<Shared>>,
    Path(service): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<NewCorrection>, JsonRejection>,
) -> Response {
    let caller = or_respond!(authorize(&shared, &headers, remote));
    let snapshot = or_respond!(known(&shared, &service));
    let status = snapshot.service(&service).expect("known() checked");
    let Json(body) = or_respond!(body.map_err(|e| Refusal::bad_request(format!("{e}; expected {CORRECTION_SHAPE}"))));
    let now = shared.clock.now();
    let span = or_respond!(body.validate(status, now).map_err(Refusal::bad_request));
    if shared.governance.corrections_of(&service).len() >= MAX_CORRECTIONS_PER_SERVICE {
        return Refusal::bad_request(format!(
            "{service} already has {MAX_CORRECTIONS_PER_SERVICE} corrections; delete old ones first"
        ))
        .into_response();
    }
    let id = or_respond!(shared.store.new_id("cor").map_err(|e| store_failed("allocating an id", e)));
    let correction = Correction {
        id: id.clone(),
        service: service.clone(),
        slo: span.slo,
        start: span.start,
        end: span.end,
        reason: span.reason,
        created_at: now,
        actor: caller.actor.clone(),
        remote: Some(caller.remote.clone()),
    };
    let entry = caller.entry(now, &service, AuditAction::CorrectionCreated { correction: correction.clone() });
    or_respond!(
        shared.store.put_correction(&correction, &entry).await.map_err(|e| store_failed("storing the correction", e))
    );
    info!(
        service = %LogSafe(&service),
        "correction {id} created by {}: {} .. {} ({}): {:?}",
        caller.describe(),
        rfc3339(correction.start),
        rfc3339(correction.end),
        LogSafe(correction.slo.as_deref().unwrap_or("every SLO")),
        LogSafe(&correction.reason)
    );
    let added = correction.clone();
    let applied = apply(&shared, &service, move |list| list.push(added)).await;
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/services/{service}/corrections/{id}"))],
        Json(json!({"id": id, "correction": correction, "applied": applied})),
    )
        .into_response()
}

pub(super) async fn list_corrections(State(shared): State<Arc<Shared>>, Path(service): Path<String>) -> Response {
    or_respond!(known(&shared, &service));
    Json(json!({"corrections": shared.governance.corrections_of(&service)})).into_response()
}

pub(super) async fn delete_correction(
    State(shared): State<Arc<Shared>>,
    Path((service, id)): Path<(String, String)>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let caller = or_respond!(authorize(&shared, &headers, remote));
    or_respond!(known(&shared, &service));
    let no_such = || Refusal::new(StatusCode::NOT_FOUND, format!("no correction {id:?} for {service}"));
    let Some(existing) = shared.governance.corrections_of(&service).into_iter().find(|c| c.id == id) else {
        return no_such().into_response();
    };
    let action = AuditAction::CorrectionDeleted { id: id.clone(), reason: existing.reason };
    let entry = caller.entry(shared.clock.now(), &service, action);
    let existed = or_respond!(
        shared.store.remove_correction(&id, &entry).await.map_err(|e| store_failed("deleting the correction", e))
    );
    if !existed {
        // A concurrent DELETE won.
        return no_such().into_response();
    }
    info!(service = %LogSafe(&service), "correction {} deleted by {}", LogSafe(&id), caller.describe());
    let removed = id.clone();
    apply(&shared, &service, move |list| list.retain(|c| c.id != removed)).await;
    StatusCode::NO_CONTENT.into_response()
}

/// Changes the held correction list, hands the service's list to the core and waits (bounded)
/// until it has re-evaluated. Returns whether it did in time.
async fn apply(shared: &Shared, service: &str, change: impl FnOnce(&mut Vec<Correction>)) -> bool {
    match shared.governance.change_corrections(service, change) {
        Ok(done) => matches!(tokio::time::timeout(APPLY_TIMEOUT, done).await, Ok(Ok(()))),
        Err(gone) => {
            info!("{gone}");
            false
        }
    }
}

pub(super) async fn audit(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Response {
    let range = or_respond!(log_query(&shared, query));
    match shared.store.audit_log(range.service.as_deref(), range.since, range.limit) {
        Ok(entries) => Json(json!({"entries": entries})).into_response(),
        Err(e) => store_failed("reading the audit log", e).into_response(),
    }
}
