//! What a request may send before its handler runs: the token is checked before any byte of a
//! mutation's body is read, and a body is read whole, under its route's size limit and
//! `api.body_timeout`, before the handler sees it.
//!
//! Handlers then take their body from memory. The order matters: reading first would let anyone
//! who can reach the port hold a connection and its buffer per request (100 unauthenticated
//! 1.9 MB bodies with the last byte withheld held 190 MB before this existed). Refusals are the
//! API's JSON problems: 401 (token), 413 (too large), 408 (too slow), 400 (broken body).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::server::{CloseReason, ConnHandle};
use super::{Refusal, governance};
use crate::daemon::Shared;

/// Largest override or correction body: a reason is at most 1,000 characters, which JSON may
/// escape to 6 bytes each, plus the other fields.
pub(super) const MAX_MUTATION_BODY: usize = 8 << 10;

/// Largest Flagger webhook payload: name, namespace, phase and a `metadata` map of a few
/// strings; 16 KiB leaves room for checksums and labels Flagger may add.
pub(super) const MAX_FLAGGER_BODY: usize = 16 << 10;

/// What a route takes as a body, per method.
#[derive(Clone, Copy, Debug)]
pub(super) enum BodyRule {
    /// No body on any method.
    None,
    /// Anyone may send up to this many bytes (the Flagger webhook).
    Open(usize),
    /// Reads are open and take no body; other methods need the token and take up to this many
    /// bytes (0: none).
    Mutation(usize),
}

/// Middleware state: the rule of the route it wraps and the configured bounds.
#[derive(Clone)]
pub(super) struct Bounded {
    pub shared: Arc<Shared>,
    pub rule: BodyRule,
    pub body_timeout: Duration,
    pub max_body_bytes: usize,
}

pub(super) async fn bound_request(State(bounded): State<Bounded>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let conn = parts.extensions.get::<ConnHandle>().cloned();
    let hint = |reason| {
        if let Some(ConnHandle(conn)) = &conn {
            conn.hint_close(reason);
        }
    };
    let reads = matches!(parts.method, Method::GET | Method::HEAD);
    let (needs_token, route_limit) = match bounded.rule {
        BodyRule::None => (false, 0),
        BodyRule::Open(limit) => (false, limit),
        BodyRule::Mutation(_) if reads => (false, 0),
        BodyRule::Mutation(limit) => (true, limit),
    };
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let has_body = declared.is_some_and(|n| n > 0) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    if needs_token && let Err(refusal) = governance::check_bearer(&bounded.shared, &parts.headers) {
        if has_body {
            hint(CloseReason::BodyRejected);
        }
        return refusal.into_response();
    }
    let limit = route_limit.min(bounded.max_body_bytes);
    let too_large = || {
        let reason = if limit == 0 {
            format!("{} {} takes no request body", parts.method, parts.uri.path())
        } else {
            format!("request body over {limit} bytes, this endpoint's limit")
        };
        Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, reason).into_response()
    };
    if declared.is_some_and(|n| n > limit as u64) {
        hint(CloseReason::BodyTooLarge);
        return too_large();
    }
    if !has_body {
        return next.run(Request::from_parts(parts, body)).await;
    }
    if let Some(ConnHandle(conn)) = &conn {
        conn.reading_body();
    }
    let read = tokio::time::timeout(bounded.body_timeout, read_body(body, limit)).await;
    if let Some(ConnHandle(conn)) = &conn {
        conn.handling();
    }
    match read {
        Err(_) => {
            hint(CloseReason::BodyTimeout);
            let reason = format!("request body not complete within {:?} (api.body_timeout)", bounded.body_timeout);
            Refusal::new(StatusCode::REQUEST_TIMEOUT, reason).into_response()
        }
        Ok(Err(BodyError::TooLarge)) => {
            hint(CloseReason::BodyTooLarge);
            too_large()
        }
        Ok(Err(BodyError::Broken(e))) => Refusal::bad_request(format!("reading the request body: {e}")).into_response(),
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
    }
}

enum BodyError {
    TooLarge,
    /// The client broke the body off or sent a malformed chunk.
    Broken(axum::Error),
}

/// The whole body, stopping at the first chunk that takes it over `limit`.
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}
