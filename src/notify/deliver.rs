//! The delivery loop: takes due items from the store's outbox, hands each to its transport,
//! and removes it only once the transport confirmed delivery; otherwise reschedules it with
//! exponential backoff and jitter, honouring Retry-After, and after `delivery.fallback_after` of
//! failure queues one copy to each `delivery.fallback` route.
//!
//! One task, one attempt at a time: simple to reason about, and with per-call timeouts a dead
//! destination costs one timeout per backoff period, because a destination that just failed is
//! skipped until its backoff ends (its other items are not tried against it meanwhile).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::clock::{Clock, MINUTE, Millis, duration_millis, rfc3339};
use crate::config::{DaemonConfig, Delivery, Notifiers};
use crate::store::{AuditAction, AuditEntry, SentRecord, Store};

use super::{DeliveryError, NotifyStats, OutboxItem, Transports, idempotency_key};

/// Most items taken per pass; the rest are picked up by the next pass right after.
const DUE_BATCH: usize = 100;

/// The longest the loop sleeps without a wake-up: a safety net under the exact wake-ups
/// (commits notify it, and it knows when the next retry falls due), cheap at one scan a second.
const TICK: Duration = Duration::from_secs(1);

/// First retry delay; doubles per failed attempt up to `delivery.max_backoff`.
const BASE_BACKOFF: Duration = Duration::from_secs(1);

/// What delivery takes from the daemon config; replaced on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub notifiers: Notifiers,
    pub delivery: Delivery,
}

impl Settings {
    pub fn from_config(config: &DaemonConfig) -> Settings {
        Settings { notifiers: config.notifiers.clone(), delivery: config.delivery.clone() }
    }
}

pub struct Deliverer {
    store: Store,
    clock: Arc<dyn Clock>,
    transports: Transports,
    delivery: Delivery,
    stats: Arc<NotifyStats>,
    /// Per destination (route text): instants of attempts within the last minute, for
    /// `delivery.per_destination_per_minute`.
    recent: HashMap<String, VecDeque<Millis>>,
    /// Per destination: no attempts before this instant (it failed; its backoff runs).
    blocked_until: HashMap<String, Millis>,
    /// Items delivered whose delivery could not be recorded (store failing), by key. They are
    /// never sent again by this process; recording is retried each pass.
    unrecorded: HashMap<String, SentRecord>,
    /// Corrupt outbox records already logged, so each is reported once, not every pass.
    reported_corrupt: HashSet<String>,
}

impl Deliverer {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        transports: Transports,
        delivery: Delivery,
        stats: Arc<NotifyStats>,
    ) -> Deliverer {
        Deliverer {
            store,
            clock,
            transports,
            delivery,
            stats,
            recent: HashMap::new(),
            blocked_until: HashMap::new(),
            unrecorded: HashMap::new(),
            reported_corrupt: HashSet::new(),
        }
    }

    /// Delivers what is due now, stopping early once `stop` is set (an attempt under way
    /// finishes). Returns when the next item falls due.
    pub async fn pass(&mut self, stop: &watch::Receiver<bool>) -> Millis {
        let now = self.clock.now();
        let scan = match self.store.due_outbox(now, DUE_BATCH) {
            Ok(scan) => scan,
            Err(e) => {
                error!("reading the outbox failed, retrying: {e}");
                return now + duration_millis(TICK);
            }
        };
        for key in scan.corrupt {
            if self.reported_corrupt.insert(key.clone()) {
                error!(key = %key, "an outbox record is corrupt and is skipped; inspect it with the store offline");
            }
        }
        let mut next = scan.next_at.unwrap_or(Millis::MAX);
        let mut depth = scan.depth;
        for item in scan.due {
            if *stop.borrow() {
                break;
            }
            let now = self.clock.now();
            if let Some(record) = self.unrecorded.get(&item.key) {
                match self.store.remove_delivered(&item.key, record).await {
                    Ok(()) => {
                        self.unrecorded.remove(&item.key);
                        depth -= 1;
                    }
                    Err(e) => {
                        error!(key = %item.key, "recording a delivery still fails (not sent again): {e}");
                        next = next.min(now + duration_millis(TICK));
                    }
                }
                continue;
            }
            let destination = item.route.to_string();
            if let Some(&until) = self.blocked_until.get(&destination).filter(|&&until| until > now) {
                next = next.min(until);
                continue;
            }
            if let Some(free_at) = self.rate_limited(&destination, now) {
                next = next.min(free_at);
                continue;
            }
            // A resolve waits for its page (or an unfreeze for its freeze) to go out first; the
            // page's own retry schedule wakes the loop.
            match item.reply_to.as_deref().map(|k| self.store.is_queued(k)).transpose() {
                Ok(Some(true)) => continue,
                Ok(_) => {}
                Err(e) => {
                    error!(key = %item.key, "reading the outbox failed: {e}");
                    continue;
                }
            }
            self.recent.entry(destination.clone()).or_default().push_back(now);
            if self.attempt(item, &destination).await {
                depth -= 1;
            } else {
                next = next.min(self.blocked_until.get(&destination).copied().unwrap_or(Millis::MAX));
            }
        }
        self.stats.outbox_depth.store(depth as u64, std::sync::atomic::Ordering::Relaxed);
        next
    }

    /// One attempt; true if delivered (and removed from the outbox).
    async fn attempt(&mut self, item: OutboxItem, destination: &str) -> bool {
        let replying_to = match item.reply_to.as_deref().map(|k| self.store.sent(k)).transpose() {
            Ok(record) => record.flatten().map(|r| r.receipt),
            Err(e) => {
                warn!(key = %item.key, "reading the page's receipt failed, sending unthreaded: {e}");
                None
            }
        };
        let started = self.clock.now();
        let res = match self.transports.for_route(&item.route) {
            Ok(transport) => transport.send(&item, replying_to.as_ref()).await,
            Err(e) => Err(e),
        };
        let now = self.clock.now();
        match res {
            Ok(receipt) => {
                let record = SentRecord { at: now, receipt };
                if let Err(e) = self.store.remove_delivered(&item.key, &record).await {
                    // Sending again now would double it; only a restart before the store
                    // recovers does (at-least-once).
                    error!(key = %item.key, route = %destination, "delivered, but recording it failed; retrying the record: {e}");
                    self.unrecorded.insert(item.key.clone(), record);
                    return false;
                }
                let latency = now - item.created_at;
                self.stats.delivered(item.route_kind(), latency);
                self.audit(&item, destination, item.attempts + 1, now, None);
                info!(
                    key = %item.key,
                    route = %destination,
                    kind = item.kind.as_str(),
                    attempt = item.attempts + 1,
                    took_ms = now - started,
                    latency_ms = latency,
                    "notification delivered"
                );
                true
            }
            Err(e) => {
                self.failed(item, destination, e, now);
                false
            }
        }
    }

    fn failed(&mut self, mut item: OutboxItem, destination: &str, e: DeliveryError, now: Millis) {
        self.stats.failed(item.route_kind());
        item.attempts += 1;
        self.audit(&item, destination, item.attempts, now, Some(e.to_string()));
        let first_failure = *item.first_failure_at.get_or_insert(now);
        item.last_error = Some(e.to_string());
        let max_backoff = duration_millis(self.delivery.max_backoff);
        let delay = match &e {
            // The destination said when; earlier would only be refused again.
            DeliveryError::RateLimited { retry_after: Some(after) } => duration_millis(*after),
            DeliveryError::RateLimited { retry_after: None } | DeliveryError::Transient(_) => {
                backoff(item.attempts, &item.key, max_backoff)
            }
            DeliveryError::Rejected(_) | DeliveryError::NotConfigured(_) => max_backoff,
        };
        item.next_attempt_at = now + delay;
        if e.is_retryable() {
            // Down or throttling: spare it the rest of its queue until the backoff ends. A
            // rejection concerns this message only, so the others still go.
            self.blocked_until.insert(destination.to_string(), item.next_attempt_at);
        }
        warn!(
            key = %item.key,
            route = %destination,
            kind = item.kind.as_str(),
            attempt = item.attempts,
            next_attempt = %rfc3339(item.next_attempt_at),
            "notification failed: {e}"
        );
        let fall_back = item.fallback_of.is_none()
            && !item.fallback_enqueued
            && !self.delivery.fallback.is_empty()
            && (!e.is_retryable() || now - first_failure >= duration_millis(self.delivery.fallback_after));
        let res = if fall_back {
            item.fallback_enqueued = true;
            let copies = self.fallback_copies(&item, first_failure);
            let routes: Vec<String> = copies.iter().map(|c| c.route.to_string()).collect();
            warn!(key = %item.key, route = %destination, "falling back to {}", routes.join(", "));
            self.store.fall_back(&item, &copies).map(|_| ())
        } else {
            self.store.reschedule(&item)
        };
        if let Err(e) = res {
            error!(key = %item.key, "saving the retry schedule failed (the next attempt comes sooner): {e}");
        }
    }

    fn fallback_copies(&self, item: &OutboxItem, first_failure: Millis) -> Vec<OutboxItem> {
        let note = format!(
            "Sent via fallback: {} has failed since {} ({}).",
            item.route,
            rfc3339(first_failure),
            item.last_error.as_deref().unwrap_or("unknown error")
        );
        self.delivery
            .fallback
            .iter()
            .filter(|route| **route != item.route)
            .map(|route| {
                let key = idempotency_key(&["fallback", &item.key, &route.to_string()]);
                let mut message = item.message.clone();
                message.text = format!("{note}\n\n{}", message.text);
                message.html = format!("<p><em>{}</em></p>\n{}", super::message::escape_html(&note), message.html);
                message.fields.push(("Fallback".to_string(), note.clone()));
                let mut copy =
                    OutboxItem::new(key, item.service.clone(), route.clone(), item.kind, message, item.created_at);
                copy.next_attempt_at = self.clock.now();
                copy.fallback_of = Some(item.key.clone());
                copy
            })
            .collect()
    }

    /// Records one attempt in the audit log. Not flushed: the audit trail may lose its last
    /// lines to a crash, the outbox may not.
    fn audit(&self, item: &OutboxItem, destination: &str, attempt: u32, at: Millis, error: Option<String>) {
        let entry = AuditEntry {
            at,
            service: item.service.clone(),
            action: AuditAction::Notification {
                route: destination.to_string(),
                key: item.key.clone(),
                attempt,
                delivered: error.is_none(),
                error,
            },
            actor: None,
            remote: None,
        };
        if let Err(e) = self.store.audit(entry) {
            warn!(key = %item.key, "writing the audit log failed: {e}");
        }
    }

    /// `Some(instant a slot frees)` when `destination` used its per-minute budget.
    fn rate_limited(&mut self, destination: &str, now: Millis) -> Option<Millis> {
        let recent = self.recent.entry(destination.to_string()).or_default();
        while recent.front().is_some_and(|&at| at <= now - MINUTE) {
            recent.pop_front();
        }
        let budget = self.delivery.per_destination_per_minute.max(1) as usize;
        (recent.len() >= budget).then(|| recent.front().map_or(now, |&oldest| oldest + MINUTE))
    }
}

/// Exponential backoff with "equal jitter": half the delay fixed, half spread by a hash of the
/// key and attempt, so items that failed together do not retry in lockstep. Deterministic (no
/// random source needed) yet different per item.
pub(super) fn backoff(attempts: u32, key: &str, max: Millis) -> Millis {
    let base = duration_millis(BASE_BACKOFF);
    let exp = base.saturating_mul(1 << attempts.saturating_sub(1).min(30)).min(max);
    let seed = u64::from_str_radix(&idempotency_key(&[key, &attempts.to_string()])[..8], 16).unwrap_or(0);
    let spread = (exp / 2) as u64;
    exp / 2 + (seed % (spread + 1)) as Millis
}

/// Runs delivery until `stop` is set: a pass whenever the core commits items (`wake`), a
/// retry falls due, or [`TICK`] passes; transports are rebuilt when `settings` change.
pub async fn run(
    mut deliverer: Deliverer,
    mut settings: watch::Receiver<Settings>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = deliverer.pass(&stop).await;
        let wait = Duration::from_millis((next - deliverer.clock.now()).clamp(0, duration_millis(TICK)) as u64);
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            Ok(()) = settings.changed() => {
                let new = settings.borrow_and_update().clone();
                deliverer.transports = Transports::from_config(&new.notifiers);
                deliverer.delivery = new.delivery;
                info!("notifiers reconfigured");
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
