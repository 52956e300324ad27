//! The seam between the delivery loop and the outside world: one small trait per transport, a
//! typed error that decides retry versus give-up, and the receipt a delivery leaves behind.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::error;

use crate::config::Notifiers;
use crate::spec::Route;

use super::OutboxItem;

/// What a transport's `send` returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Receipt, DeliveryError>> + Send + 'a>>;

/// Delivers outbox items to one kind of destination. Implementations bound every network call
/// with a timeout, so an attempt always ends.
pub trait Transport: Send + Sync {
    /// Delivers `item` to `item.route`. `replying_to` is the receipt of the notice named by
    /// `item.reply_to`, when that was delivered (Slack threads resolves under their page).
    fn send<'a>(&'a self, item: &'a OutboxItem, replying_to: Option<&'a Receipt>) -> SendFuture<'a>;
}

/// What a delivery leaves behind in `v1/sent/<key>`, for notices that refer back to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Slack channel id and message `ts` of the posted message: `chat.update` needs both.
    pub slack_channel: Option<String>,
    pub slack_ts: Option<String>,
}

/// Why an attempt failed. The variant, chosen by each transport from the error's type (HTTP
/// status, Slack error code, SMTP reply class), decides what happens next; message text never
/// does.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// The destination asked us to slow down (HTTP 429, Slack rate limit). The next attempt is
    /// not before `retry_after` when given, else after the usual backoff.
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// A failure that may pass: connection refused, timeout, HTTP 5xx, SMTP 4xx. Retried with
    /// exponential backoff.
    #[error("{0}")]
    Transient(String),
    /// The destination refused this message for good: HTTP 4xx, Slack `channel_not_found` or
    /// `invalid_auth`, SMTP 5xx, an unparsable address. Fast retries cannot help, so the item
    /// goes to the fallback routes at once and is retried only at the backoff ceiling, in case
    /// a config reload fixes it. It is never dropped: a page nobody received stays visible in
    /// `sloguard_outbox_depth`.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The route names a transport that `notifiers:` does not configure (or that failed to
    /// build); handled like `Rejected`.
    #[error("no {0} notifier is configured")]
    NotConfigured(&'static str),
}

impl DeliveryError {
    /// Whether fast retries may succeed (`Transient`, `RateLimited`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeliveryError::Transient(_) | DeliveryError::RateLimited { .. })
    }
}

/// The configured transports, one per kind; webhooks are one transport that looks the route's
/// name up.
#[derive(Clone, Default)]
pub struct Transports {
    pub slack: Option<Arc<dyn Transport>>,
    pub email: Option<Arc<dyn Transport>>,
    pub webhook: Option<Arc<dyn Transport>>,
    pub alertmanager: Option<Arc<dyn Transport>>,
    pub pagerduty: Option<Arc<dyn Transport>>,
}

impl Transports {
    /// Builds every configured transport. One that cannot be built (no CA roots for Slack, a
    /// bad SMTP host) is logged and left out, so its routes fail as `NotConfigured` and fall
    /// back, while the others work.
    pub fn from_config(notifiers: &Notifiers) -> Transports {
        let mut transports = Transports::default();
        if let Some(slack) = &notifiers.slack {
            match super::slack::SlackTransport::new(slack) {
                Ok(t) => transports.slack = Some(Arc::new(t)),
                Err(e) => error!("Slack notifier disabled: {e}"),
            }
        }
        if let Some(email) = &notifiers.email {
            match super::email::EmailTransport::new(email) {
                Ok(t) => transports.email = Some(Arc::new(t)),
                Err(e) => error!("email notifier disabled: {e}"),
            }
        }
        let http = match super::http::client() {
            Ok(client) => client,
            Err(e) => {
                error!("webhook, Alertmanager and PagerDuty notifiers disabled: {e}");
                return transports;
            }
        };
        if !notifiers.webhooks.is_empty() {
            transports.webhook = Some(Arc::new(super::http::WebhookTransport::new(http.clone(), &notifiers.webhooks)));
        }
        if let Some(am) = &notifiers.alertmanager {
            transports.alertmanager = Some(Arc::new(super::http::AlertmanagerTransport::new(http.clone(), am)));
        }
        if let Some(pd) = &notifiers.pagerduty {
            transports.pagerduty = Some(Arc::new(super::http::PagerDutyTransport::new(http, pd)));
        }
        transports
    }

    pub fn for_route(&self, route: &Route) -> Result<&dyn Transport, DeliveryError> {
        let (transport, name) = match route {
            Route::Slack { .. } => (&self.slack, "Slack"),
            Route::Email { .. } => (&self.email, "email"),
            Route::Webhook { .. } => (&self.webhook, "webhook"),
            Route::Alertmanager => (&self.alertmanager, "Alertmanager"),
            Route::PagerDuty => (&self.pagerduty, "PagerDuty"),
        };
        transport.as_deref().ok_or(DeliveryError::NotConfigured(name))
    }
}
