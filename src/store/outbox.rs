//! The notification outbox: items waiting for delivery under `v1/outbox/<key>`, and a marker
//! `v1/sent/<key>` per delivered item (with its receipt), kept for the event retention.
//!
//! A delivery is recorded first in the *sent journal*, a plain file beside the database
//! appended with one `write` per delivery, and then in sled (batch + flush). A killed process
//! loses nothing written to a file, so the journal closes most of the gap between a
//! transport's "OK" and a durable record: a sled flush takes ~0.5 ms alone and tens of ms when
//! it queues behind the core's flushes (measured: 20 SIGKILLs aimed at deliveries resent 2-5
//! of 40 notifications without the journal, with kills up to 25 ms after the receipt). `Store::open` replays the journal into sled before
//! anything is delivered. What remains is the time between the server accepting a message
//! and the transport returning, which no sender can close: a receiver that cannot dedupe
//! (Slack, email) may then see it twice; PagerDuty and Alertmanager dedupe by key.
//!
//! Exactly-once bookkeeping lives here. An item is written in the same atomic batch as the
//! events that caused it (`Store::commit`), and only if neither `v1/outbox/<key>` nor
//! `v1/sent/<key>` exists, so re-enqueueing a key (a retried commit, the next evaluation's
//! repeats, a restart) is a no-op. Delivery removes the item and writes its sent marker in one
//! batch, flushed before the next attempt starts. The checks read the outbox key first and the
//! sent key second; since a batch is atomic to readers (sled takes its write lock), a delivery
//! finishing in between cannot make a delivered key look new.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::notify::{OutboxItem, Receipt};

use super::{Part, Store, StoreError, decode_json};

const OUTBOX_PREFIX: &str = "v1/outbox/";
const SENT_PREFIX: &str = "v1/sent/";

/// The journal's file name inside the data directory (sled ignores files it does not own).
const SENT_JOURNAL_FILE: &str = "sent.journal";

/// Past this size the journal is emptied after a delivery; by then every entry in it is in
/// flushed sled markers. Thousands of deliveries, so this happens rarely.
const SENT_JOURNAL_MAX_BYTES: u64 = 1 << 20;

/// How soon delivery looks again while the store cannot write (see `due_outbox`): the core
/// heals the store within an evaluation interval of the disk taking writes again.
const UNWRITABLE_RECHECK_MS: Millis = 1_000;

/// What `v1/sent/<key>` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRecord {
    pub at: Millis,
    pub receipt: Receipt,
}

/// One journal line.
#[derive(Serialize, Deserialize)]
struct JournalEntry {
    key: String,
    #[serde(flatten)]
    record: SentRecord,
}

/// The append-only delivery journal (see the module doc). Shared by the clones of a `Store`.
#[derive(Clone)]
pub(super) struct SentJournal {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl SentJournal {
    pub(super) fn open(dir: &Path) -> Result<SentJournal, StoreError> {
        let path = dir.join(SENT_JOURNAL_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|source| StoreError::Journal { path: path.clone(), source })?;
        Ok(SentJournal { path, file: Arc::new(Mutex::new(file)) })
    }

    fn error(&self, source: std::io::Error) -> StoreError {
        StoreError::Journal { path: self.path.clone(), source }
    }

    /// Appends one entry with a single `write` of one line.
    pub(super) fn append(&self, key: &str, record: &SentRecord) -> Result<(), StoreError> {
        let entry = JournalEntry { key: key.to_string(), record: record.clone() };
        let mut line = serde_json::to_vec(&entry).expect("journal entries serialize");
        line.push(b'\n');
        self.file.lock().expect("journal lock").write_all(&line).map_err(|e| self.error(e))
    }

    /// Every complete entry; a torn last line (a crash mid-append) is skipped.
    fn entries(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let file = File::open(&self.path).map_err(|e| self.error(e))?;
        let mut entries = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| self.error(e))?;
            if let Ok(entry) = serde_json::from_str(&line) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Empties the journal; only once every entry is in flushed sled markers.
    fn clear(&self) -> Result<(), StoreError> {
        self.file.lock().expect("journal lock").set_len(0).map_err(|e| self.error(e))
    }

    fn len(&self) -> u64 {
        self.file.lock().expect("journal lock").metadata().map_or(0, |m| m.len())
    }
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
    /// Items that could not be decoded, by key. They are left in place (never deleted by
    /// sloguard) and skipped, so one bad record cannot stop every other notification.
    pub corrupt: Vec<String>,
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
                || self.db()?.contains_key(outbox_key(&item.key))?
                || self.db()?.contains_key(sent_key(&item.key))?
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
        for entry in self.db()?.scan_prefix(OUTBOX_PREFIX) {
            let (key, value) = entry?;
            scan.depth += 1;
            let key = String::from_utf8_lossy(&key).into_owned();
            let Ok(item) = decode_json::<OutboxItem>(&key, &value) else {
                scan.corrupt.push(key);
                continue;
            };
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
        if !self.health.writable() {
            // While the store cannot write, a delivery could not be recorded as sent, and an
            // item may be one whose commit sled took but never made durable: hold them all.
            scan.due.clear();
            scan.next_at = Some(now + UNWRITABLE_RECHECK_MS);
        }
        Ok(scan)
    }

    /// Saves an item's new attempt state. Not flushed: losing it to a crash only makes the
    /// next attempt come sooner.
    pub fn reschedule(&self, item: &OutboxItem) -> Result<(), StoreError> {
        self.db()?
            .insert(outbox_key(&item.key).as_bytes(), serde_json::to_vec(item).expect("outbox items serialize"))?;
        Ok(())
    }

    /// Saves `item` (with `fallback_enqueued` set) and queues its fallback copies, atomically,
    /// so a crash cannot record the copies without the flag or the flag without the copies.
    pub fn fall_back(&self, item: &OutboxItem, copies: &[OutboxItem]) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(outbox_key(&item.key).as_bytes(), serde_json::to_vec(item).expect("outbox items serialize"));
        let n_new = self.stage_outbox(&mut batch, copies)?;
        self.track(Part::Sled, self.db()?.apply_batch(batch).map_err(StoreError::from))?;
        Ok(n_new)
    }

    /// Records a delivery: first in the sent journal (durable against a killed process as soon
    /// as it returns), then by removing the item and writing its sent marker in one sled batch,
    /// flushed before returning. Called by the one delivery task, one delivery at a time, which
    /// is what makes emptying the journal here safe.
    pub async fn remove_delivered(&self, key: &str, record: &SentRecord) -> Result<(), StoreError> {
        self.sent_journal.append(key, record)?;
        let mut batch = sled::Batch::default();
        batch.remove(outbox_key(key).as_bytes());
        batch.insert(sent_key(key).as_bytes(), serde_json::to_vec(record).expect("sent records serialize"));
        self.track(Part::Sled, self.db()?.apply_batch(batch).map_err(StoreError::from))?;
        self.track(Part::Sled, self.db()?.flush_async().await.map_err(StoreError::from))?;
        if self.sent_journal.len() > SENT_JOURNAL_MAX_BYTES {
            self.sent_journal.clear()?;
        }
        Ok(())
    }

    /// At open: applies journal entries a crash kept out of sled, flushes, empties the journal.
    pub(super) fn replay_sent_journal(&self) -> Result<usize, StoreError> {
        let entries = self.sent_journal.entries()?;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        for entry in &entries {
            batch.remove(outbox_key(&entry.key).as_bytes());
            batch.insert(
                sent_key(&entry.key).as_bytes(),
                serde_json::to_vec(&entry.record).expect("sent records serialize"),
            );
        }
        self.track(Part::Sled, self.db()?.apply_batch(batch).map_err(StoreError::from))?;
        self.track(Part::Sled, self.db()?.flush().map_err(StoreError::from))?;
        self.sent_journal.clear()?;
        Ok(entries.len())
    }

    /// The sent marker of `key`, if it was delivered within the retention.
    pub fn sent(&self, key: &str) -> Result<Option<SentRecord>, StoreError> {
        let name = sent_key(key);
        self.db()?.get(&name)?.map(|value| decode_json(&name, &value)).transpose()
    }

    /// Whether `key` is still waiting in the outbox.
    pub fn is_queued(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.db()?.contains_key(outbox_key(key))?)
    }

    pub fn outbox_depth(&self) -> usize {
        self.db().map_or(0, |db| db.scan_prefix(OUTBOX_PREFIX).count())
    }

    /// Deletes sent markers older than `before`; returns how many. Past the retention a key
    /// could in principle be enqueued again, but nothing plans an event's notices that late:
    /// events are planned once, and a repeat's key is only planned within its period.
    pub fn prune_sent(&self, before: Millis) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut n_pruned = 0;
        for entry in self.db()?.scan_prefix(SENT_PREFIX) {
            let (key, value) = entry?;
            let record: SentRecord = decode_json(&String::from_utf8_lossy(&key), &value)?;
            if record.at < before {
                batch.remove(key);
                n_pruned += 1;
            }
        }
        self.track(Part::Sled, self.db()?.apply_batch(batch).map_err(StoreError::from))?;
        Ok(n_pruned)
    }
}
