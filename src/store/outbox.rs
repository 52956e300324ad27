//! The notification outbox: items waiting for delivery under `v1/outbox/<key>`, and a marker
//! `v1/sent/<key>` per delivered item (with its receipt), kept for the event retention.
//!
//! Exactly-once bookkeeping lives here. An item is written in the same atomic batch as the
//! events that caused it (`Store::commit`), and only if neither `v1/outbox/<key>` nor
//! `v1/sent/<key>` exists, so re-enqueueing a key (a retried commit, the next evaluation's
//! repeats, a restart) is a no-op. Delivery removes the item and writes its sent marker in one
//! batch, flushed before the next attempt starts. The checks read the outbox key first and the
//! sent key second; since a batch is atomic to readers (sled takes its write lock), a delivery
//! finishing in between cannot make a delivered key look new.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::notify::{OutboxItem, Receipt};

use super::{Store, StoreError, decode_json};

const OUTBOX_PREFIX: &str = "v1/outbox/";
const SENT_PREFIX: &str = "v1/sent/";

/// What `v1/sent/<key>` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRecord {
    pub at: Millis,
    pub receipt: Receipt,
}

/// One look at the outbox for the delivery loop.
#[derive(Debug, Default)]
pub struct OutboxScan {
    /// Due items (`next_attempt_at <= now`), most urgent kind first, then oldest first.
    pub due: Vec<OutboxItem>,
    /// The earliest `next_attempt_at` among items not yet due.
    pub next_at: Option<Millis>,
    /// All items, due or not.
    pub depth: usize,
}

fn outbox_key(key: &str) -> String {
    format!("{OUTBOX_PREFIX}{key}")
}

fn sent_key(key: &str) -> String {
    format!("{SENT_PREFIX}{key}")
}

impl Store {
    /// Adds to `batch` the items whose key is neither queued nor sent; returns how many.
    pub(super) fn stage_outbox(&self, batch: &mut sled::Batch, items: &[OutboxItem]) -> Result<usize, StoreError> {
        let mut staged = HashSet::new();
        for item in items {
            // Outbox first, then sent: see the module doc for why the order matters.
            if staged.contains(&item.key)
                || self.db.contains_key(outbox_key(&item.key))?
                || self.db.contains_key(sent_key(&item.key))?
            {
                continue;
            }
            batch.insert(outbox_key(&item.key).as_bytes(), serde_json::to_vec(item).expect("outbox items serialize"));
            staged.insert(item.key.clone());
        }
        Ok(staged.len())
    }

    /// Due items (at most `limit`), the next instant something else falls due, and the depth.
    /// A full scan: the outbox holds a handful of items when delivery works, and a few
    /// thousand in a long outage, which still scans in milliseconds.
    pub fn due_outbox(&self, now: Millis, limit: usize) -> Result<OutboxScan, StoreError> {
        let mut scan = OutboxScan::default();
        for entry in self.db.scan_prefix(OUTBOX_PREFIX) {
            let (key, value) = entry?;
            let item: OutboxItem = decode_json(&String::from_utf8_lossy(&key), &value)?;
            scan.depth += 1;
            if item.next_attempt_at <= now {
                scan.due.push(item);
            } else {
                scan.next_at = Some(scan.next_at.map_or(item.next_attempt_at, |t| t.min(item.next_attempt_at)));
            }
        }
        scan.due
            .sort_by(|a, b| (a.kind.priority(), a.created_at, &a.key).cmp(&(b.kind.priority(), b.created_at, &b.key)));
        if scan.due.len() > limit {
            // What did not fit is due now: the loop comes back for it at once.
            scan.due.truncate(limit);
            scan.next_at = Some(now);
        }
        Ok(scan)
    }

    /// Saves an item's new attempt state. Not flushed: losing it to a crash only makes the
    /// next attempt come sooner.
    pub fn reschedule(&self, item: &OutboxItem) -> Result<(), StoreError> {
        self.db.insert(outbox_key(&item.key).as_bytes(), serde_json::to_vec(item).expect("outbox items serialize"))?;
        Ok(())
    }

    /// Saves `item` (with `fallback_enqueued` set) and queues its fallback copies, atomically,
    /// so a crash cannot record the copies without the flag or the flag without the copies.
    pub fn fall_back(&self, item: &OutboxItem, copies: &[OutboxItem]) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(outbox_key(&item.key).as_bytes(), serde_json::to_vec(item).expect("outbox items serialize"));
        let n_new = self.stage_outbox(&mut batch, copies)?;
        self.db.apply_batch(batch)?;
        Ok(n_new)
    }

    /// Removes a delivered item and writes its sent marker in one batch, flushed before
    /// returning. The window between a transport's "OK" and this flush is the only place a
    /// crash can send twice (see ARCHITECTURE.md, durability).
    pub async fn remove_delivered(&self, key: &str, record: &SentRecord) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.remove(outbox_key(key).as_bytes());
        batch.insert(sent_key(key).as_bytes(), serde_json::to_vec(record).expect("sent records serialize"));
        self.db.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// The sent marker of `key`, if it was delivered within the retention.
    pub fn sent(&self, key: &str) -> Result<Option<SentRecord>, StoreError> {
        let name = sent_key(key);
        self.db.get(&name)?.map(|value| decode_json(&name, &value)).transpose()
    }

    /// Whether `key` is still waiting in the outbox.
    pub fn is_queued(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.db.contains_key(outbox_key(key))?)
    }

    pub fn outbox_depth(&self) -> usize {
        self.db.scan_prefix(OUTBOX_PREFIX).count()
    }

    /// Deletes sent markers older than `before`; returns how many. Past the retention a key
    /// could in principle be enqueued again, but nothing plans an event's notices that late:
    /// events are planned once, and a repeat's key is only planned within its period.
    pub fn prune_sent(&self, before: Millis) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut n_pruned = 0;
        for entry in self.db.scan_prefix(SENT_PREFIX) {
            let (key, value) = entry?;
            let record: SentRecord = decode_json(&String::from_utf8_lossy(&key), &value)?;
            if record.at < before {
                batch.remove(key);
                n_pruned += 1;
            }
        }
        self.db.apply_batch(batch)?;
        Ok(n_pruned)
    }
}
