//! Whether the store can make state durable, and getting back there by itself.
//!
//! A full disk (or a file size limit, a read-only remount) fails a write; sled then refuses
//! every later operation with the same error until it is reopened (its "global error"), so
//! before this a store stayed broken after space came back, until a restart. Now a failed
//! write marks the store unwritable, with the part and the reason; the daemon asks
//! [`Store::heal`] before writing, which probes with a small synced file and, once that
//! succeeds, reopens sled if sled failed. Readiness and `/metrics` report the state.
//!
//! Why probe with a file and not retry the real write: the real writes are the daemon's
//! commits, and sled would fail them from its poisoned state even with space free; a probe
//! tells "the disk takes writes again" apart from "sled needs reopening".

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Store, StoreError};

/// The probe file, beside sled's (sled ignores files it does not own); removed after each probe.
const PROBE_FILE: &str = ".write-probe";

/// Bytes the probe writes: a page, so a disk with a few bytes left still reads as full.
const PROBE_BYTES: usize = 4096;

/// Which part of the store failed, the `part` label of `sloguard_store_write_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Sled,
    WindowLog,
    Journal,
    Probe,
}

impl Part {
    pub fn label(self) -> &'static str {
        match self {
            Part::Sled => "sled",
            Part::WindowLog => "window_log",
            Part::Journal => "journal",
            Part::Probe => "probe",
        }
    }
}

/// Shared by the clones of a `Store`.
#[derive(Default)]
pub(super) struct Health {
    /// False from a failed write until a probe (and a sled reopen, if sled failed) succeeds.
    unwritable: AtomicBool,
    /// sled failed since it was opened: it must be reopened before it takes writes again.
    sled_failed: AtomicBool,
    state: Mutex<HealthState>,
    /// Test seam: every write and probe fails as on a full disk.
    #[cfg(test)]
    pub(super) inject_full_disk: AtomicBool,
}

#[derive(Default)]
struct HealthState {
    /// Why the store is unwritable, for `/readyz`.
    reason: Option<String>,
    /// Failures by `(part, reason label)`, since the start.
    counts: BTreeMap<(Part, &'static str), u64>,
}

/// What `/readyz` and `/metrics` show.
#[derive(Debug, Clone, Default)]
pub struct HealthReport {
    pub writable: bool,
    pub reason: Option<String>,
    /// `(part, reason, count)`.
    pub failures: Vec<(&'static str, &'static str, u64)>,
}

impl Health {
    pub(super) fn failed(&self, part: Part, err: &StoreError) {
        let label = reason_label(err);
        let mut state = self.state.lock().expect("health lock");
        *state.counts.entry((part, label)).or_default() += 1;
        state.reason = Some(format!("{} write failed: {err}", part.label()));
        if part == Part::Sled {
            self.sled_failed.store(true, Ordering::Release);
        }
        if !self.unwritable.swap(true, Ordering::AcqRel) {
            tracing::error!("store unwritable ({}): {err}; retrying until it takes writes again", part.label());
        }
    }

    pub(super) fn writable(&self) -> bool {
        !self.unwritable.load(Ordering::Acquire)
    }

    pub(super) fn report(&self) -> HealthReport {
        let state = self.state.lock().expect("health lock");
        HealthReport {
            writable: self.writable(),
            reason: state.reason.clone().filter(|_| !self.writable()),
            failures: state.counts.iter().map(|((part, reason), n)| (part.label(), *reason, *n)).collect(),
        }
    }

    #[cfg(test)]
    fn injected(&self) -> bool {
        self.inject_full_disk.load(Ordering::Relaxed)
    }

    #[cfg(not(test))]
    fn injected(&self) -> bool {
        false
    }

    /// The injected failure, when the test seam is on.
    pub(super) fn inject(&self) -> Result<(), StoreError> {
        if self.injected() {
            return Err(StoreError::Io(sled::Error::Io(std::io::Error::from(std::io::ErrorKind::StorageFull))));
        }
        Ok(())
    }
}

/// The `reason` label: the I/O error kind under `err`, in a few stable words.
fn reason_label(err: &StoreError) -> &'static str {
    let io = match err {
        StoreError::Io(sled::Error::Io(e)) | StoreError::Open { source: sled::Error::Io(e), .. } => Some(e),
        StoreError::WindowLog { source, .. } | StoreError::Journal { source, .. } => Some(source),
        _ => None,
    };
    use std::io::ErrorKind::*;
    match io.map(std::io::Error::kind) {
        Some(StorageFull) => "no_space",
        Some(FileTooLarge) => "file_too_large",
        Some(QuotaExceeded) => "quota",
        Some(ReadOnlyFilesystem) => "read_only",
        Some(PermissionDenied) => "permission",
        Some(_) => "io",
        None => "other",
    }
}

impl Store {
    /// Whether state can be made durable now. When a write failed earlier, probes the disk
    /// and, if sled failed, reopens it; on success the store is writable again and the caller
    /// retries what it kept pending. Cheap when nothing failed.
    pub async fn heal(&self) -> bool {
        if self.health.writable() {
            return true;
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.heal_now()).await.unwrap_or(false)
    }

    fn heal_now(&self) -> bool {
        let started = std::time::Instant::now();
        if let Err(e) = self.probe() {
            self.health.failed(Part::Probe, &e);
            return false;
        }
        if self.health.sled_failed.load(Ordering::Acquire) {
            if let Err(e) = self.reopen_sled() {
                tracing::warn!("store: the disk takes writes again but sled does not reopen yet: {e}");
                self.health.failed(Part::Sled, &e);
                return false;
            }
            self.health.sled_failed.store(false, Ordering::Release);
        }
        self.health.unwritable.store(false, Ordering::Release);
        tracing::info!("store writable again (probe and reopen took {:?})", started.elapsed());
        true
    }

    /// Writes, syncs and removes a small file beside sled.
    fn probe(&self) -> Result<(), StoreError> {
        self.health.inject()?;
        let path = self.dir.join(PROBE_FILE);
        let wrote = std::fs::File::create(&path)
            .and_then(|mut file| file.write_all(&[0u8; PROBE_BYTES]).and_then(|()| file.sync_all()));
        let _ = std::fs::remove_file(&path);
        wrote.map_err(|source| StoreError::WindowLog { path, source })
    }

    /// What `/readyz` and `/metrics` show.
    pub fn health(&self) -> HealthReport {
        self.health.report()
    }

    /// Records `res`'s I/O failure against `part`; passes `res` on.
    pub(super) fn track<T>(&self, part: Part, res: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &res
            && is_write_failure(e)
        {
            self.health.failed(part, e);
        }
        res
    }

    /// Test seam: every write and probe fails as on a full disk until turned off.
    #[cfg(test)]
    pub(crate) fn inject_full_disk(&self, on: bool) {
        self.health.inject_full_disk.store(on, Ordering::Relaxed);
    }
}

/// Errors that say the disk refused a write, as opposed to a record that does not decode.
fn is_write_failure(err: &StoreError) -> bool {
    matches!(err, StoreError::Io(_) | StoreError::WindowLog { .. } | StoreError::Journal { .. })
}
