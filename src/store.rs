//! Durable state: in sled, alert/freeze transitions, the append-only event log, the
//! notification outbox (`outbox`) and governance records (overrides, corrections, the audit
//! log; see `governance`); beside it, window counters and series last values in the window log
//! (`windowlog`), which are rewritten every flush and which sled stored at ten times their size.
//!
//! Owns every byte sloguard writes to disk and is the only module that touches sled. It knows
//! the engine's persistence records and notify's outbox items (plain data) and nothing of
//! scraping, HTTP or how notifications are delivered.
//!
//! Layout: one sled tree, versioned keys (`v1/...`), and `meta/schema` holding the schema version.
//! A store written by a newer schema, or one that is not ours, is refused with a clear message;
//! sloguard never wipes state to make progress.
//!
//! Identity: 16 random bytes made at creation, in sled (`meta/store_id`) and in the window log's
//! header. Opening checks that the two halves belong together and that neither is missing
//! while the other holds state (`meta/window_log` records that the log exists); any damage a
//! crash mid-write cannot explain refuses the start with [`StoreError::Damaged`], naming the
//! file and the remedy (`sloguard store check`, `sloguard run --reset-state`). Durability: sled's `flush` uses
//! `sync_file_range`, so a killed process loses nothing flushed, while a power loss may (see
//! `../shared/crates.md`); events and the transitions they record are flushed before anyone is
//! told about them, window pages every flush interval (the window log is fsynced).

mod governance;
mod health;
pub use health::{HealthReport, Part};

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::clock::Millis;
use crate::engine::{CountersHeader, Event, Restored, SeriesRecord, Transition, WindowRecord};
use crate::notify::OutboxItem;
pub use governance::{AuditAction, AuditEntry, Correction};

mod outbox;
pub use outbox::{OutboxScan, SentRecord};
mod page;
mod windowlog;

use std::sync::{Arc, Mutex, RwLock};

pub use windowlog::StoreId;
use windowlog::{Head, WindowLog};

/// Whether the store is opened to run on (it may create, migrate and adopt) or to be checked
/// (it writes nothing of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    Check,
}

/// What `sloguard store check` found in a healthy store.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub id: Option<String>,
    pub n_windows: usize,
    pub n_series: usize,
    pub n_transitions: usize,
    pub n_events: usize,
    pub n_overrides: usize,
    pub n_corrections: usize,
    pub n_outbox: usize,
    /// Things that are not damage but worth saying (a torn last save, a store from before
    /// identity): a start handles them.
    pub notes: Vec<String>,
}

/// The schema this build reads and writes. Bump it with a migration when a key or value changes.
/// 2: window records move from `v1/slo/` to `v2/slo/`, with pages packed and carrying minute
/// detail (see `page`); opening a schema-1 store migrates it.
/// 3: window records and series last values move out of sled into the window log. Until the
/// first full save writes the log, a store keeps reading them from sled.
pub const SCHEMA_VERSION: u32 = 3;

const SCHEMA_KEY: &[u8] = b"meta/schema";
/// The store's id (see [`StoreId`]), the same bytes as the window log's header.
const STORE_ID_KEY: &[u8] = b"meta/store_id";
/// Present once the window log exists: from then on a missing log is lost state.
const WINDOW_LOG_KEY: &[u8] = b"meta/window_log";
/// Reopening sled after a write failure: attempts and the pause between them (5 s in all),
/// while its previous handles drain.
const REOPEN_ATTEMPTS: usize = 100;
const REOPEN_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
/// Written and flushed by a reopen to show sled takes writes again.
const PROBE_KEY: &[u8] = b"meta/probe";
/// sled's main file in the data directory: absent means there is no database (sled would
/// create an empty one).
const SLED_FILE: &str = "db";

/// Appended to every error that refuses a store: what the operator can do.
const REMEDY: &str = "sloguard will not start on it. Inspect it with `sloguard store check <data_dir>`, \
restore the directory from a backup, or move it aside and start afresh with `sloguard run --reset-state`";
const WINDOW_PREFIX: &str = "v2/slo/";
const SCHEMA_1_WINDOW_PREFIX: &str = "v1/slo/";

/// Records moved per batch by the schema-1 migration: bounded memory, and each batch is atomic,
/// so an interrupted migration resumes where it stopped.
const MIGRATION_BATCH: usize = 10_000;
const TRANSITION_PREFIX: &str = "v1/tr/";
const SERIES_PREFIX: &str = "v1/series/";
const EVENT_PREFIX: &[u8] = b"v1/ev/";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the directory (permissions, a lock held by another process, or
    /// on-disk corruption sled detected).
    #[error("cannot open store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    /// The store was written by a newer sloguard.
    #[error(
        "store at {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade sloguard or point data_dir elsewhere"
    )]
    Newer { path: PathBuf, found: u32 },
    /// The directory holds data without a schema marker, or with an unreadable one.
    #[error("store at {path} is not a sloguard store or is corrupt ({detail}); {REMEDY}")]
    Foreign { path: PathBuf, detail: String },
    /// A file of the store is damaged, missing while the rest holds state, or belongs to
    /// another store: anything a crash mid-write cannot explain. Never repaired silently.
    #[error("{file}: {detail}; {REMEDY}")]
    Damaged { file: PathBuf, detail: String },
    /// A read or write failed after opening.
    #[error("store I/O: {0}")]
    Io(#[from] sled::Error),
    /// A record could not be decoded; the key names it.
    #[error("store record {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
    /// The delivery journal beside the database could not be opened, read or appended to.
    #[error("delivery journal {path}: {source}")]
    Journal { path: PathBuf, source: std::io::Error },
    /// The window log could not be read, appended to or rewritten.
    #[error("window log {path}: {source}")]
    WindowLog { path: PathBuf, source: std::io::Error },
    /// sled was closed after a write failure and has not reopened yet (see `health`).
    #[error("the database is closed after a write failure and reopens once the disk takes writes")]
    Reopening,
    /// Windows still live in sled (a schema-2 store): only a full save may start the log.
    #[error("windows are still in sled; the first save after an upgrade must be a full one")]
    FullSaveRequired,
}

/// Handle to the open store; cheap to clone (sled's `Db` is reference counted).
#[derive(Clone)]
pub struct Store {
    /// Replaced by `health` when sled must be reopened after a write failure; `None` only
    /// between closing the failed database and opening it again.
    db: Arc<RwLock<Option<sled::Db>>>,
    dir: PathBuf,
    health: Arc<health::Health>,
    /// Append-only record of deliveries not yet known to be flushed in sled (see `outbox`).
    sent_journal: outbox::SentJournal,
    windows: Arc<Mutex<WindowLog>>,
    id: StoreId,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WindowHeaderRecord {
    fingerprint: u64,
    header: CountersHeader,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_as(path, Mode::Run)
    }

    fn open_as(path: &Path, mode: Mode) -> Result<Store, StoreError> {
        let sled_file = path.join(SLED_FILE);
        let had_sled = sled_file.exists();
        let log_path = path.join(windowlog::FILE_NAME);
        let head = windowlog::peek(&log_path)?;
        if !had_sled && (head.is_some() || mode == Mode::Check) {
            let detail = if head.is_some() {
                "the sled database is missing while windows.log beside it holds state: overrides, the audit \
                 log, alert and freeze state and the notification outbox would start empty"
            } else {
                "no sled database here"
            };
            return Err(StoreError::Damaged { file: sled_file, detail: detail.into() });
        }
        let db = sled::open(path).map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        let is_new = db.is_empty();
        match db.get(SCHEMA_KEY)? {
            Some(raw) => {
                let found = std::str::from_utf8(&raw).ok().and_then(|s| s.parse::<u32>().ok()).ok_or_else(|| {
                    StoreError::Foreign { path: path.to_path_buf(), detail: "unreadable schema marker".into() }
                })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::Newer { path: path.to_path_buf(), found });
                }
                if found < SCHEMA_VERSION && mode == Mode::Run {
                    migrate_windows_from_schema_1(&db)?;
                    db.insert(SCHEMA_KEY, SCHEMA_VERSION.to_string().as_bytes())?;
                    db.flush()?;
                }
            }
            None if is_new && mode == Mode::Run => {
                db.insert(SCHEMA_KEY, SCHEMA_VERSION.to_string().as_bytes())?;
                db.flush()?;
            }
            None => {
                return Err(StoreError::Foreign {
                    path: path.to_path_buf(),
                    detail: if is_new { "an empty database".into() } else { "data without a schema marker".into() },
                });
            }
        }
        let stored_id = match db.get(STORE_ID_KEY)? {
            Some(raw) => Some(StoreId::try_from(raw.as_ref()).map_err(|_| StoreError::Damaged {
                file: sled_file.clone(),
                detail: "unreadable store id (meta/store_id)".into(),
            })?),
            None => None,
        };
        let id = match (stored_id, head) {
            (Some(id), Some(Head::V2(log_id))) if log_id != id => {
                return Err(StoreError::Damaged {
                    file: log_path,
                    detail: format!(
                        "belongs to another store: its store id {} differs from the sled database's {}",
                        hex(&log_id),
                        hex(&id)
                    ),
                });
            }
            (None, Some(Head::V2(log_id))) => {
                return Err(StoreError::Damaged {
                    file: sled_file,
                    detail: format!(
                        "the sled database has no store id while windows.log has {}: the database was replaced",
                        hex(&log_id)
                    ),
                });
            }
            (Some(id), _) => id,
            // A store from before identity (or a new one): checked as it is, given an id to run.
            (None, _) if mode == Mode::Check => StoreId::default(),
            (None, _) => {
                let id = new_store_id();
                db.insert(STORE_ID_KEY, &id[..])?;
                db.flush()?;
                if !is_new {
                    tracing::info!("store at {} has no identity yet; it is now {}", path.display(), hex(&id));
                }
                id
            }
        };
        let windows_in_sled = db.scan_prefix(WINDOW_PREFIX).next().is_some();
        if head.is_none() && !windows_in_sled {
            // Transitions and events are committed only after the windows they were decided on
            // were saved, so either one means a log was written.
            let log_existed = db.contains_key(WINDOW_LOG_KEY)?
                || db.scan_prefix(TRANSITION_PREFIX).next().is_some()
                || db.scan_prefix(EVENT_PREFIX).next().is_some();
            if log_existed {
                return Err(StoreError::Damaged {
                    file: log_path,
                    detail: "missing, while the sled database beside it holds state saved with it: every \
                             error budget would restart empty"
                        .into(),
                });
            }
        }
        let mut log = WindowLog::new(path, id);
        if mode == Mode::Run {
            match head {
                Some(Head::V1) => {
                    let dropped = log.adopt()?;
                    tracing::info!(
                        "window log {} rewritten in format 2 with the store id (a torn last save of {dropped} bytes cut)",
                        log_path.display()
                    );
                }
                None if !windows_in_sled => log.create_empty()?,
                _ => {}
            }
            if log.exists() && !db.contains_key(WINDOW_LOG_KEY)? {
                db.insert(WINDOW_LOG_KEY, b"1".as_slice())?;
                db.flush()?;
            }
        }
        let sent_journal = outbox::SentJournal::open(path)?;
        let windows = Arc::new(Mutex::new(log));
        let store = Store {
            db: Arc::new(RwLock::new(Some(db))),
            dir: path.to_path_buf(),
            health: Arc::default(),
            sent_journal,
            windows,
            id,
        };
        if mode == Mode::Run {
            store.replay_sent_journal()?;
        }
        Ok(store)
    }

    /// The open database (a cheap handle).
    fn db(&self) -> Result<sled::Db, StoreError> {
        self.db.read().expect("db lock").clone().ok_or(StoreError::Reopening)
    }

    /// Closes sled and opens it again: after a failed write sled fails everything with the
    /// same error until reopened. What it held unflushed is gone, which is why the daemon
    /// keeps uncommitted events and notifications in memory and commits them again. sled
    /// releases its file lock once the last handle is gone, from a background thread, so the
    /// open is retried for a while.
    fn reopen_sled(&self) -> Result<(), StoreError> {
        {
            let mut slot = self.db.write().expect("db lock");
            drop(slot.take());
            let mut last = None;
            for _ in 0..REOPEN_ATTEMPTS {
                match sled::open(&self.dir) {
                    Ok(db) => {
                        self.health.inject()?;
                        db.insert(PROBE_KEY, b"1".as_slice())?;
                        db.flush()?;
                        *slot = Some(db);
                        last = None;
                        break;
                    }
                    Err(e) => {
                        last = Some(e);
                        std::thread::sleep(REOPEN_PAUSE);
                    }
                }
            }
            if let Some(source) = last {
                return Err(StoreError::Open { path: self.dir.clone(), source });
            }
        }
        // Deliveries recorded while sled could not flush are in the journal.
        self.replay_sent_journal()?;
        Ok(())
    }

    /// This store's identity, as hex.
    pub fn id(&self) -> String {
        hex(&self.id)
    }

    /// Verifies the store at `path` without running on it: the identity of both halves, every
    /// window log record, and every sled record sloguard reads at start-up. Writes nothing of
    /// its own (sled may recover its own log on open, as any open does).
    pub fn check(path: &Path) -> Result<CheckReport, StoreError> {
        let store = Store::open_as(path, Mode::Check)?;
        let mut report = CheckReport::default();
        if store.id == StoreId::default() {
            report.notes.push("the store has no identity yet; the next `sloguard run` gives it one".into());
        } else {
            report.id = Some(store.id());
        }
        let restored = if store.log().exists() {
            let contents = store.log().read_with(1, false)?;
            if contents.dropped > 0 {
                report.notes.push(format!(
                    "windows.log ends in a torn save of {} bytes (a crash mid-write); the next start cuts it off",
                    contents.dropped
                ));
            }
            Restored { windows: contents.windows, series: contents.series, transitions: Vec::new() }
        } else {
            report.notes.push("window counters are still in sled (schema 2); the first save moves them".into());
            store.load_sled(&[])?
        };
        report.n_windows = restored.windows.len();
        report.n_series = restored.series.len();
        for item in store.db()?.scan_prefix(TRANSITION_PREFIX) {
            let (key, value) = item?;
            let _: Transition = decode_json(&String::from_utf8_lossy(&key), &value)?;
            report.n_transitions += 1;
        }
        for item in store.db()?.scan_prefix(EVENT_PREFIX) {
            let (key, value) = item?;
            let _: Event = decode_json(&format!("event {}", String::from_utf8_lossy(&key).escape_debug()), &value)?;
            report.n_events += 1;
        }
        report.n_overrides = store.overrides()?.len();
        report.n_corrections = store.corrections()?.len();
        store.gate_decisions()?;
        store.audit_log(None, Millis::MIN, usize::MAX)?;
        report.n_outbox = store.outbox_depth();
        Ok(report)
    }

    /// Everything needed to resume: window counters, transitions and series last values.
    pub fn load(&self) -> Result<Restored, StoreError> {
        self.load_split(&[])
    }

    /// [`Store::load`], decoding window pages in `splits.len() + 1` threads: a month of pages
    /// for 10,000 SLOs is ~260k records, and reading them is most of a restart. `splits` are SLO
    /// ids, sorted, where a store still keeping windows in sled cuts its parallel key ranges.
    pub fn load_split(&self, splits: &[String]) -> Result<Restored, StoreError> {
        let mut restored = if self.log().exists() { self.load_log(splits.len() + 1)? } else { self.load_sled(splits)? };
        for item in self.db()?.scan_prefix(TRANSITION_PREFIX) {
            let (key, value) = item?;
            restored.transitions.push(decode_json(&String::from_utf8_lossy(&key), &value)?);
        }
        Ok(restored)
    }

    fn log(&self) -> std::sync::MutexGuard<'_, WindowLog> {
        self.windows.lock().expect("window log lock")
    }

    fn load_log(&self, parts: usize) -> Result<Restored, StoreError> {
        let contents = self.log().read(parts)?;
        if contents.dropped > 0 {
            tracing::warn!("window log: cut off a torn last save of {} bytes (a crash mid-write)", contents.dropped);
        }
        Ok(Restored { windows: contents.windows, series: contents.series, transitions: Vec::new() })
    }

    /// Windows and series as a schema-2 store kept them, in parallel key ranges.
    fn load_sled(&self, splits: &[String]) -> Result<Restored, StoreError> {
        let mut bounds: Vec<Vec<u8>> = vec![WINDOW_PREFIX.as_bytes().to_vec()];
        bounds.extend(splits.iter().map(|slo| format!("{WINDOW_PREFIX}{slo}/").into_bytes()));
        bounds.push(prefix_end(WINDOW_PREFIX.as_bytes()));
        let parts = std::thread::scope(|scope| {
            let scans: Vec<_> =
                bounds.windows(2).map(|range| scope.spawn(|| self.load_windows(&range[0]..&range[1]))).collect();
            scans.into_iter().map(|scan| scan.join().expect("a window scan panicked")).collect::<Vec<_>>()
        });
        let mut restored = Restored::default();
        for part in parts {
            restored.windows.extend(part?);
        }
        for item in self.db()?.scan_prefix(SERIES_PREFIX) {
            let (_, value) = item?;
            restored.series.push(decode_json("series", &value)?);
        }
        Ok(restored)
    }

    /// Window headers and pages with keys in `range`, which must start at an SLO's header.
    fn load_windows(&self, range: std::ops::Range<&Vec<u8>>) -> Result<Vec<WindowRecord>, StoreError> {
        let mut windows: Vec<WindowRecord> = Vec::new();
        for item in self.db()?.range(range.start.as_slice()..range.end.as_slice()) {
            let (key, value) = item?;
            let key_text = String::from_utf8_lossy(&key);
            let rest = &key_text[WINDOW_PREFIX.len()..];
            if let Some(slo) = rest.strip_suffix("/hdr") {
                let record: WindowHeaderRecord = decode_json(&key_text, &value)?;
                windows.push(WindowRecord {
                    slo: slo.to_string(),
                    fingerprint: record.fingerprint,
                    header: record.header,
                    pages: Vec::new(),
                    replaces_all: false,
                });
            } else if let Some((slo, page)) = rest.rsplit_once("/page/") {
                let (level, index) = page_position(&key_text, page)?;
                let page = page::decode(level, index, &value).map_err(|e| corrupt(&key_text, e))?;
                // Keys sort `<slo>/hdr` before `<slo>/page/...`, so the header is already there.
                match windows.last_mut().filter(|w| w.slo == slo) {
                    Some(window) => window.pages.push(page),
                    None => return Err(corrupt(&key_text, "page without a header")),
                }
            }
        }
        Ok(windows)
    }

    /// Appends events, records the transitions they caused and queues the notifications they
    /// cause, atomically, and flushes before returning: only then may anyone (API, delivery) be
    /// told. Items whose key is already queued or sent are skipped; returns how many were new.
    pub async fn commit(
        &self,
        events: &[Event],
        transitions: &[Transition],
        items: &[OutboxItem],
    ) -> Result<usize, StoreError> {
        let res = self.commit_untracked(events, transitions, items).await;
        self.track(Part::Sled, res)
    }

    async fn commit_untracked(
        &self,
        events: &[Event],
        transitions: &[Transition],
        items: &[OutboxItem],
    ) -> Result<usize, StoreError> {
        self.health.inject()?;
        let db = self.db()?;
        let mut batch = sled::Batch::default();
        let n_new = self.stage_outbox(&mut batch, items)?;
        for event in events {
            batch.insert(event_key(event), serde_json::to_vec(event).expect("events serialize"));
        }
        for transition in transitions {
            let key = match transition {
                Transition::Slo { id, .. } => format!("{TRANSITION_PREFIX}slo/{id}"),
                Transition::Service { name, .. } => format!("{TRANSITION_PREFIX}svc/{name}"),
            };
            batch.insert(key.as_bytes(), serde_json::to_vec(transition).expect("transitions serialize"));
        }
        if events.is_empty() && transitions.is_empty() && n_new == 0 {
            return Ok(0);
        }
        db.apply_batch(batch)?;
        db.flush_async().await?;
        Ok(n_new)
    }

    /// Drops the alert state of grouped SLO instances the engine evicted. Their window pages
    /// leave the log at its next rewrite; until then a restart restores and evicts them again.
    pub fn forget_instances(&self, ids: &[String]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(format!("{TRANSITION_PREFIX}slo/{id}").as_bytes());
        }
        self.db()?.apply_batch(batch)?;
        Ok(())
    }

    /// Whether the next save must be [`Store::save_full`]: the window log has outgrown its live
    /// records, or windows still live in sled (an upgraded store).
    pub fn wants_full_save(&self) -> bool {
        self.log().wants_rewrite() || self.sled_holds_windows()
    }

    fn sled_holds_windows(&self) -> bool {
        self.db().is_ok_and(|db| db.scan_prefix(WINDOW_PREFIX).next().is_some())
    }

    /// Saves changed window pages and series last values as one synced append to the window
    /// log: atomic, like the sled batch it replaced.
    pub async fn save(&self, windows: &[WindowRecord], series: &[SeriesRecord]) -> Result<(), StoreError> {
        if !self.log().exists() && self.sled_holds_windows() {
            return Err(StoreError::FullSaveRequired);
        }
        self.health.inject()?;
        let payload = windowlog::encode(windows, series);
        let log = self.windows.clone();
        let res = blocking(move || log.lock().expect("window log lock").append(&payload)).await;
        self.track(Part::WindowLog, res)
    }

    /// Replaces the window log with `windows` and `series`, which must be every SLO's every page
    /// and every series (see `Engine::mark_all_dirty`); then drops what sled kept of them.
    pub async fn save_full(&self, windows: &[WindowRecord], series: &[SeriesRecord]) -> Result<(), StoreError> {
        self.health.inject()?;
        let payload = windowlog::encode(windows, series);
        let log = self.windows.clone();
        let res = blocking(move || log.lock().expect("window log lock").rewrite(&payload)).await;
        self.track(Part::WindowLog, res)?;
        let res = async {
            let db = self.db()?;
            if !db.contains_key(WINDOW_LOG_KEY)? {
                // The first log of an upgraded store (`drop_sled_windows` flushes this).
                db.insert(WINDOW_LOG_KEY, b"1".as_slice())?;
            }
            self.drop_sled_windows().await
        }
        .await;
        self.track(Part::Sled, res)
    }

    /// Removes schema-2 window and series records, in bounded batches, once the log has them.
    async fn drop_sled_windows(&self) -> Result<(), StoreError> {
        for prefix in [WINDOW_PREFIX, SERIES_PREFIX] {
            loop {
                let mut batch = sled::Batch::default();
                let mut n = 0;
                for item in self.db()?.scan_prefix(prefix).keys().take(MIGRATION_BATCH) {
                    batch.remove(item?);
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                self.db()?.apply_batch(batch)?;
            }
        }
        self.db()?.flush_async().await?;
        Ok(())
    }

    /// Events at or after `since`, oldest first, optionally for one service, at most `limit`.
    pub fn events(&self, service: Option<&str>, since: Millis, limit: usize) -> Result<Vec<Event>, StoreError> {
        let mut start = EVENT_PREFIX.to_vec();
        start.extend_from_slice(&(since.max(0) as u64).to_be_bytes());
        let mut out = Vec::new();
        for item in self.db()?.range(start..) {
            let (key, value) = item?;
            if !key.starts_with(EVENT_PREFIX) || out.len() >= limit {
                break;
            }
            let event: Event = decode_json("event", &value)?;
            if service.is_none_or(|s| event.service() == s) {
                out.push(event);
            }
        }
        Ok(out)
    }

    /// Deletes events older than `before` (retention); returns how many.
    pub fn prune_events(&self, before: Millis) -> Result<usize, StoreError> {
        let mut end = EVENT_PREFIX.to_vec();
        end.extend_from_slice(&(before.max(0) as u64).to_be_bytes());
        let mut batch = sled::Batch::default();
        let mut n_pruned = 0;
        for item in self.db()?.range(EVENT_PREFIX.to_vec()..end) {
            batch.remove(item?.0);
            n_pruned += 1;
        }
        self.db()?.apply_batch(batch)?;
        Ok(n_pruned)
    }
}

/// Prefix of the directories [`discard`] moves stores into; never moved themselves.
pub const DISCARDED_PREFIX: &str = "discarded-";

/// `sloguard run --reset-state`: moves everything in `dir` (sled's files, the window log, the
/// delivery journal) into `dir/discarded-<UTC time>/`, so the next open starts a new store.
/// Nothing is deleted: an operator can still inspect or restore what was moved. Returns that
/// directory and the names moved (none if `dir` held no store).
pub fn discard(dir: &Path, now: Millis) -> Result<(PathBuf, Vec<String>), StoreError> {
    let io = |source: std::io::Error| StoreError::WindowLog { path: dir.to_path_buf(), source };
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(io)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    names.retain(|name| !name.starts_with(DISCARDED_PREFIX));
    names.sort();
    // 20261206T021500Z: sortable, and without the colons some tools choke on.
    let stamp: String =
        crate::clock::rfc3339(now - now.rem_euclid(1000)).chars().filter(|c| *c != '-' && *c != ':').collect();
    let mut target = dir.join(format!("{DISCARDED_PREFIX}{stamp}"));
    for n in 2.. {
        if !target.exists() {
            break;
        }
        target = dir.join(format!("{DISCARDED_PREFIX}{stamp}-{n}"));
    }
    if names.is_empty() {
        return Ok((target, names));
    }
    std::fs::create_dir(&target).map_err(io)?;
    for name in &names {
        std::fs::rename(dir.join(name), target.join(name)).map_err(io)?;
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok((target, names))
}

/// Runs file I/O off the async workers: a compaction writes and syncs ~100 MB at 10,000 SLOs.
async fn blocking(work: impl FnOnce() -> Result<(), StoreError> + Send + 'static) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(work).await.expect("window log I/O panicked")
}

/// An event's key: its instant (so ranges read in time order), then the first 8 bytes of the
/// SHA-256 of its content. The same event committed again (a retried commit whose first
/// attempt reached sled but not the disk) lands on the same key instead of a second copy.
fn event_key(event: &Event) -> Vec<u8> {
    let mut key = EVENT_PREFIX.to_vec();
    key.extend_from_slice(&(event.at.max(0) as u64).to_be_bytes());
    let content = serde_json::to_vec(event).expect("events serialize");
    key.extend_from_slice(&ring::digest::digest(&ring::digest::SHA256, &content).as_ref()[..8]);
    key
}

/// 16 bytes from the system's secure random source (ring's, already in the tree for TLS).
fn new_store_id() -> StoreId {
    use ring::rand::SecureRandom;
    let mut id = StoreId::default();
    ring::rand::SystemRandom::new().fill(&mut id).expect("the system random source works");
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn corrupt(key: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt { key: key.to_string(), detail: detail.to_string() }
}

/// Where to cut the stored windows of `slo_ids` into `parts` ranges of as many SLOs each, for
/// [`Store::load_split`]: SLO ids in key order (`<id>/` sorts differently from `<id>` when one id
/// extends another, `a/b` and `a/b-c`).
pub fn split_points(slo_ids: impl Iterator<Item = String>, parts: usize) -> Vec<String> {
    let mut keys: Vec<String> = slo_ids.map(|id| id + "/").collect();
    keys.sort_unstable();
    let parts = parts.clamp(1, keys.len().max(1));
    (1..parts).map(|i| keys[i * keys.len() / parts].trim_end_matches('/').to_string()).collect()
}

/// The first key after every key starting with `prefix` (whose last byte is not 0xff).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    *end.last_mut().expect("a non-empty prefix") += 1;
    end
}

fn decode_json<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|e| corrupt(key, e))
}

/// `(level, index)` from the `LL/II` end of a page key.
fn page_position(key: &str, name: &str) -> Result<(usize, usize), StoreError> {
    let (level, index) = name.split_once('/').ok_or_else(|| corrupt(key, "page key"))?;
    Ok((level.parse().map_err(|e| corrupt(key, e))?, index.parse().map_err(|e| corrupt(key, e))?))
}

/// Moves schema-1 window records to the schema-2 prefix, packing their pages. Each batch moves
/// records atomically (written under the new key, removed from the old), so a crash leaves
/// every record readable in exactly one place and the next open carries on.
fn migrate_windows_from_schema_1(db: &sled::Db) -> Result<(), StoreError> {
    loop {
        let mut batch = sled::Batch::default();
        let mut n_moved = 0;
        for item in db.scan_prefix(SCHEMA_1_WINDOW_PREFIX).take(MIGRATION_BATCH) {
            let (key, value) = item?;
            let key_text = String::from_utf8_lossy(&key);
            let rest = &key_text[SCHEMA_1_WINDOW_PREFIX.len()..];
            let value = match rest.rsplit_once("/page/") {
                Some((_, name)) => {
                    let (level, index) = page_position(&key_text, name)?;
                    let page = page::decode_legacy(level, index, &value).map_err(|e| corrupt(&key_text, e))?;
                    page::encode(&page)
                }
                None => value.to_vec(),
            };
            batch.insert(format!("{WINDOW_PREFIX}{rest}").as_bytes(), value);
            batch.remove(key);
            n_moved += 1;
        }
        if n_moved == 0 {
            return Ok(());
        }
        db.apply_batch(batch)?;
    }
}

/// Reopens a store the same process just dropped. sled releases its file lock from a background
/// thread shortly after the last handle goes, so an immediate reopen can find it still held;
/// only tests reopen in-process (a restarted daemon is a new process).
#[cfg(test)]
pub(crate) fn reopen_for_test(path: &Path) -> Result<Store, StoreError> {
    for _ in 0..40 {
        match Store::open(path) {
            Err(StoreError::Open { .. }) => std::thread::sleep(std::time::Duration::from_millis(50)),
            other => return other,
        }
    }
    Store::open(path)
}

#[cfg(test)]
mod tests;
