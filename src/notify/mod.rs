//! Notifications: turns engine events into messages and delivers them from the persisted outbox.
//!
//! Owns the message content (what an on-call engineer needs at 3 a.m.), routing from a spec's
//! `notify:` section, the outbox item format with its idempotency keys, and the delivery loop
//! with retries, rate limits and fallback. It is the only module that talks to Slack, SMTP,
//! webhooks, Alertmanager and PagerDuty, and it only ever sends what the store holds: the core
//! commits items in the same batch as the events that caused them (`Store::commit`), and the
//! delivery task removes an item only after its transport confirmed delivery.
//!
//! It never touches the engine or sled; it reads specs, config and snapshots.

mod deliver;
mod email;
pub(crate) mod http;
pub(crate) mod message;
mod plan;
mod report;
mod slack;
mod stats;
#[cfg(test)]
mod tests;
mod transport;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::spec::Route;

pub use deliver::{Deliverer, Settings, run};
pub use message::{AlertFacts, AlertStatus, Message};
pub use plan::{plan, repeat};
pub use report::{ReportDeps, ReportError, digest, schedule_reports};
pub use stats::NotifyStats;
pub use transport::{DeliveryError, Receipt, Transport, Transports};

/// What a notification is about; decides routing, wording and ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A page-severity alert started firing.
    Page,
    /// A ticket-severity alert started firing.
    Ticket,
    /// A still-firing page, sent again every `delivery.repeat_interval`.
    Repeat,
    /// An alert stopped firing; goes to the same routes as its firing.
    Resolve,
    Freeze,
    Unfreeze,
    /// A scheduled budget digest.
    Report,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Page => "page",
            NoticeKind::Ticket => "ticket",
            NoticeKind::Repeat => "repeat",
            NoticeKind::Resolve => "resolve",
            NoticeKind::Freeze => "freeze",
            NoticeKind::Unfreeze => "unfreeze",
            NoticeKind::Report => "report",
        }
    }

    /// Delivery order among due items in a backlog: what wakes people first, reminders and
    /// digests last. A resolve never ranks above its firing notice (nor an unfreeze above its
    /// freeze), so with the oldest-first tie-break the start of a story goes before its end.
    pub(crate) fn priority(self) -> u8 {
        match self {
            NoticeKind::Page | NoticeKind::Freeze => 0,
            NoticeKind::Ticket | NoticeKind::Resolve | NoticeKind::Unfreeze => 1,
            NoticeKind::Repeat => 2,
            NoticeKind::Report => 3,
        }
    }
}

/// One notification to one route, as persisted under `v1/outbox/<key>`.
///
/// The idempotency key is also the item's id: the same logical notification (same event, route
/// and repeat number) always gets the same key, so re-enqueueing it after a crash, a retried
/// commit or the next evaluation's `repeat` is a no-op. A separate id would only add a second
/// name that could disagree with the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// 32 hex digits of SHA-256 over the notification's identity (see [`idempotency_key`]).
    pub key: String,
    /// The service it concerns, for the audit log; a report's services joined by `,` (`*`
    /// for all).
    pub service: String,
    #[serde(with = "route_format")]
    pub route: Route,
    pub kind: NoticeKind,
    pub message: Message,
    /// The decision instant: the event's `at`, or the evaluation that planned a repeat/report.
    pub created_at: Millis,
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub first_failure_at: Option<Millis>,
    /// The last failure, for logs and the API; never holds a secret (transports redact URLs).
    pub last_error: Option<String>,
    /// A copy already went to `delivery.fallback`; set once so it is not copied again.
    pub fallback_enqueued: bool,
    /// For a fallback copy: the key of the item it copies. Copies never fall back themselves.
    pub fallback_of: Option<String>,
    /// For a resolve: the key of its firing notice on the same route. Delivery waits while that
    /// is still queued (a resolve must not overtake its page), and Slack uses the firing
    /// message's `ts` from its receipt to update it and reply in its thread.
    pub reply_to: Option<String>,
}

impl OutboxItem {
    /// A fresh item, due immediately.
    pub fn new(
        key: String,
        service: String,
        route: Route,
        kind: NoticeKind,
        message: Message,
        created_at: Millis,
    ) -> OutboxItem {
        OutboxItem {
            key,
            service,
            route,
            kind,
            message,
            created_at,
            attempts: 0,
            next_attempt_at: created_at,
            first_failure_at: None,
            last_error: None,
            fallback_enqueued: false,
            fallback_of: None,
            reply_to: None,
        }
    }

    /// The metric label for the route's transport.
    pub fn route_kind(&self) -> &'static str {
        route_kind(&self.route)
    }
}

/// `slack`, `email`, `webhook`, `alertmanager` or `pagerduty`.
pub fn route_kind(route: &Route) -> &'static str {
    match route {
        Route::Slack { .. } => "slack",
        Route::Email { .. } => "email",
        Route::Webhook { .. } => "webhook",
        Route::Alertmanager => "alertmanager",
        Route::PagerDuty => "pagerduty",
    }
}

/// Hex digits kept of the SHA-256: 128 bits, so collisions among a daemon's notifications are
/// out of the question, while keys stay short enough for logs and headers.
const KEY_HEX_DIGITS: usize = 32;

/// The idempotency key of a notification: SHA-256 over its identity parts, separated by NUL (no
/// part contains one, so `("ab","c")` and `("a","bc")` differ).
pub fn idempotency_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(KEY_HEX_DIGITS);
    for byte in digest.iter().take(KEY_HEX_DIGITS / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Routes persist as their spec spelling (`slack:#oncall`, `email:a@b`, `webhook:name`,
/// `alertmanager`, `pagerduty`), so a stored outbox stays readable by people and by a later
/// build whatever the in-memory enum looks like.
mod route_format {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::spec::Route;

    pub fn serialize<S: Serializer>(route: &Route, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(route)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Route, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| D::Error::custom(format!("unknown route `{text}`")))
    }

    pub fn parse(text: &str) -> Option<Route> {
        match text.split_once(':') {
            Some(("slack", channel)) => Some(Route::Slack { channel: channel.to_string() }),
            Some(("email", to)) => Some(Route::Email { to: to.to_string() }),
            Some(("webhook", name)) => Some(Route::Webhook { name: name.to_string() }),
            None if text == "alertmanager" => Some(Route::Alertmanager),
            None if text == "pagerduty" => Some(Route::PagerDuty),
            _ => None,
        }
    }
}
