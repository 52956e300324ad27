//! The JSON-over-HTTP transports, on one `reqwest` client: generic webhooks (Alertmanager's
//! webhook v4 body, optionally HMAC-signed), Alertmanager's `POST /api/v2/alerts`, and
//! PagerDuty Events API v2.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::clock::{Clock, Millis, SystemClock, duration_millis, rfc3339};
use crate::config::{AlertmanagerNotifier, PagerDutyNotifier, WebhookNotifier};
use crate::spec::{Route, Secret};

use super::transport::SendFuture;
use super::{AlertFacts, AlertStatus, DeliveryError, OutboxItem, Receipt, Transport};

/// Whole request, body included: receivers answer in milliseconds, and a stuck one must not
/// hold the delivery loop for long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection setup; a refused or unroutable receiver fails fast and is retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How far ahead a firing alert's `endsAt` is set at each post to Alertmanager: five refresh
/// periods, so a few failed refreshes do not flap it, and a dead sloguard's alerts lapse.
const ALERTMANAGER_TTL: Duration = Duration::from_secs(5 * 60);

/// The header carrying the idempotency key, on every webhook request (receivers dedupe on it).
const KEY_HEADER: &str = "X-Sloguard-Key";
const SIGNATURE_HEADER: &str = "X-Sloguard-Signature";

pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).connect_timeout(CONNECT_TIMEOUT).build()
}

/// POSTs `body` and classifies the outcome by status: 2xx delivered, 429 rate limited (with
/// `Retry-After` seconds), 408 and 5xx transient, any other status rejected.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
) -> Result<(), DeliveryError> {
    let mut request = client.post(url).header(CONTENT_TYPE, "application/json").body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    // `without_url`: webhook URLs often carry a token (Slack-style incoming webhooks).
    let res = request.send().await.map_err(|e| DeliveryError::Transient(error_chain(&e.without_url())))?;
    let status = res.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = res
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => DeliveryError::RateLimited { retry_after },
        StatusCode::REQUEST_TIMEOUT => DeliveryError::Transient(format!("HTTP {status}")),
        s if s.is_server_error() => DeliveryError::Transient(format!("HTTP {s}")),
        s => DeliveryError::Rejected(format!("HTTP {s}")),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Generic webhooks, by name (`webhook:<name>` routes).
pub struct WebhookTransport {
    client: reqwest::Client,
    hooks: Vec<(String, WebhookNotifier)>,
}

impl WebhookTransport {
    pub fn new(client: reqwest::Client, hooks: &[(String, WebhookNotifier)]) -> WebhookTransport {
        WebhookTransport { client, hooks: hooks.to_vec() }
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Receipt, DeliveryError> {
        let Route::Webhook { name } = &item.route else {
            return Err(DeliveryError::Rejected(format!("route {} is not a webhook route", item.route)));
        };
        let Some((_, hook)) = self.hooks.iter().find(|(n, _)| n == name) else {
            return Err(DeliveryError::NotConfigured("webhook"));
        };
        let body = serde_json::to_vec(&webhook_body(item, name)).expect("JSON values serialize");
        let mut headers = vec![(KEY_HEADER, item.key.clone())];
        if let Some(secret) = &hook.hmac_secret {
            headers.push((SIGNATURE_HEADER, signature(secret, &body)));
        }
        post(&self.client, hook.url.expose(), body, headers).await.map(|()| Receipt::default())
    }
}

impl Transport for WebhookTransport {
    fn send<'a>(&'a self, item: &'a OutboxItem, _replying_to: Option<&'a Receipt>) -> SendFuture<'a> {
        Box::pin(self.deliver(item))
    }
}

/// `sha256=<hex HMAC-SHA256 of the body>`, GitHub's convention.
pub(crate) fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Alertmanager's webhook v4 body, so receivers written for Alertmanager accept it. A report
/// (no alert) carries its text in `commonAnnotations` and an empty `alerts`.
pub(crate) fn webhook_body(item: &OutboxItem, receiver: &str) -> Value {
    let message = &item.message;
    let annotations = annotations(item);
    let (status, alerts, labels, group_key) = match &message.alert {
        Some(alert) => (
            alert.status.as_str(),
            vec![json!({
                "status": alert.status.as_str(),
                "labels": alert.labels,
                "annotations": annotations,
                "startsAt": rfc3339(alert.starts_at),
                "endsAt": alert.ends_at.map_or("0001-01-01T00:00:00Z".to_string(), rfc3339),
                "generatorURL": status_url(item),
                "fingerprint": &super::idempotency_key(&[&alert.identity])[..16],
            })],
            alert.labels.clone(),
            alert.identity.clone(),
        ),
        None => (
            "firing",
            Vec::new(),
            BTreeMap::from([("alertname".to_string(), "SloBudgetReport".to_string())]),
            item.key.clone(),
        ),
    };
    json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": status_url(item),
        "alerts": alerts,
        "sloguard": {"key": item.key, "kind": item.kind.as_str()},
    })
}

fn annotations(item: &OutboxItem) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([
        ("summary".to_string(), item.message.title.clone()),
        ("description".to_string(), item.message.text.clone()),
    ]);
    for (label, url) in &item.message.links {
        let name = if label == "Runbook" { "runbook_url".to_string() } else { format!("{}_url", label.to_lowercase()) };
        annotations.insert(name, url.clone());
    }
    annotations
}

fn status_url(item: &OutboxItem) -> String {
    item.message.links.iter().find(|(label, _)| label == "Status").map(|(_, url)| url.clone()).unwrap_or_default()
}

/// Alertmanager's API: the alert is identified by its labels, so re-posts (refreshes, retries)
/// update one alert instead of creating more; `endsAt` in the past resolves it.
pub struct AlertmanagerTransport {
    client: reqwest::Client,
    url: String,
}

impl AlertmanagerTransport {
    pub fn new(client: reqwest::Client, config: &AlertmanagerNotifier) -> AlertmanagerTransport {
        AlertmanagerTransport { client, url: format!("{}/api/v2/alerts", config.url.trim_end_matches('/')) }
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Receipt, DeliveryError> {
        let Some(alert) = &item.message.alert else {
            // A digest is not an alert; Alertmanager has nothing to route it by.
            return Err(DeliveryError::Rejected("reports cannot be sent to Alertmanager".to_string()));
        };
        // `endsAt` is computed at send time, not plan time: an item that waited in the outbox
        // must not arrive already expired.
        let body =
            serde_json::to_vec(&alertmanager_body(item, alert, SystemClock.now())).expect("JSON values serialize");
        post(&self.client, &self.url, body, vec![(KEY_HEADER, item.key.clone())]).await.map(|()| Receipt::default())
    }
}

impl Transport for AlertmanagerTransport {
    fn send<'a>(&'a self, item: &'a OutboxItem, _replying_to: Option<&'a Receipt>) -> SendFuture<'a> {
        Box::pin(self.deliver(item))
    }
}

pub(crate) fn alertmanager_body(item: &OutboxItem, alert: &AlertFacts, now: Millis) -> Value {
    let ends_at = match alert.status {
        AlertStatus::Resolved => alert.ends_at.unwrap_or(now),
        AlertStatus::Firing => now + duration_millis(ALERTMANAGER_TTL),
    };
    json!([{
        "labels": alert.labels,
        "annotations": annotations(item),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(ends_at),
        "generatorURL": status_url(item),
    }])
}

/// PagerDuty Events API v2: `trigger` and `resolve` share `dedup_key` (the alert identity), so
/// PagerDuty folds retries and repeats into one incident and closes it on resolve.
pub struct PagerDutyTransport {
    client: reqwest::Client,
    url: String,
    routing_key: Secret,
}

impl PagerDutyTransport {
    pub fn new(client: reqwest::Client, config: &PagerDutyNotifier) -> PagerDutyTransport {
        PagerDutyTransport {
            client,
            url: format!("{}/v2/enqueue", config.api_url.trim_end_matches('/')),
            routing_key: config.routing_key.clone(),
        }
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Receipt, DeliveryError> {
        let Some(alert) = &item.message.alert else {
            return Err(DeliveryError::Rejected("reports cannot be sent to PagerDuty".to_string()));
        };
        let body = serde_json::to_vec(&pagerduty_body(item, alert, &self.routing_key)).expect("JSON values serialize");
        post(&self.client, &self.url, body, Vec::new()).await.map(|()| Receipt::default())
    }
}

impl Transport for PagerDutyTransport {
    fn send<'a>(&'a self, item: &'a OutboxItem, _replying_to: Option<&'a Receipt>) -> SendFuture<'a> {
        Box::pin(self.deliver(item))
    }
}

pub(crate) fn pagerduty_body(item: &OutboxItem, alert: &AlertFacts, routing_key: &Secret) -> Value {
    let action = match alert.status {
        AlertStatus::Firing => "trigger",
        AlertStatus::Resolved => "resolve",
    };
    // A page wakes someone; tickets and freezes are worth an incident but not a wake-up.
    let severity = if alert.labels.get("severity").is_some_and(|s| s == "page") { "critical" } else { "warning" };
    let links: Vec<Value> = item.message.links.iter().map(|(text, href)| json!({"href": href, "text": text})).collect();
    let details: BTreeMap<&str, &str> = item.message.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    json!({
        "routing_key": routing_key.expose(),
        "event_action": action,
        "dedup_key": alert.identity,
        "payload": {
            "summary": item.message.title,
            "source": "sloguard",
            "severity": severity,
            "timestamp": rfc3339(alert.starts_at),
            "component": alert.labels.get("service"),
            "group": alert.labels.get("slo"),
            "class": alert.labels.get("alertname"),
            "custom_details": details,
        },
        "links": links,
    })
}
