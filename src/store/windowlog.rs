//! The window log: window headers, pages and series last values in one append-only file beside
//! sled, `windows.log`.
//!
//! Why not sled: these records are rewritten every flush, and sled kept superseded versions
//! until its segment cleaner caught up. A month of 10,000 SLOs was 1.9 GB on disk for ~130 MB
//! live, read at random on start: 1.9 s warm, 4.6 to 10 s cold. Here a start reads one file front
//! to back, and a compaction rewrites it from the engine's full state once superseded records
//! outweigh live ones.
//!
//! Layout (version 2): the magic `SLGWLOG2` and the store's 16-byte id (the same as sled's
//! `meta/store_id`, so a log from another store is recognised), then records: payload length
//! (u32 LE), CRC-32 of the payload (u32 LE), CRC-32 of those eight bytes (u32 LE), payload. One
//! save is one record, so it is atomic: a torn last record (a crash mid-append) is cut off when
//! the log is next read. Anything else is damage and the read fails naming the offset: a record
//! whose checksum fails with bytes after it, and a record head whose own checksum fails (a
//! damaged length would otherwise point past the end and pass for a torn append). A compaction
//! writes the whole state as one record into `windows.log.new`, syncs it and renames it over
//! the log.
//!
//! Version 1 (`SLGWLOG1`, no id, no head checksum) is still read: the store adopts such a log
//! at open by rewriting it as version 2 with its id. A version-1 length that runs past the end
//! is taken for a torn append only if no whole record can be found after it.
//!
//! Payload: a varint count of windows, each the SLO id, its fingerprint (u64 LE), a
//! replaces-all byte, its header as JSON and a varint count of pages, each level, index and the
//! packed page (see `page`); then a varint count of series, each source, series, instant (i64
//! LE) and value (f64 LE). Strings and byte runs are a varint length and the bytes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::StoreError;
use super::page::{self, Input, PageError, put_varint};
use crate::engine::{SeriesRecord, WindowRecord};

pub(super) const FILE_NAME: &str = "windows.log";
const MAGIC_V1: &[u8; 8] = b"SLGWLOG1";
const MAGIC: &[u8; 8] = b"SLGWLOG2";
/// The version-2 file header: the magic and the store id.
const FILE_HEAD: usize = MAGIC.len() + 16;
const RECORD_HEAD_V1: usize = 8;
const RECORD_HEAD: usize = 12;

/// A store's identity: random at creation, kept in sled and in the window log's header.
pub type StoreId = [u8; 16];

/// What the first bytes of a log say, read before the store decides whether to open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Head {
    /// `SLGWLOG1`: a log from before store identity, adopted at open.
    V1,
    V2(StoreId),
}

/// Reads the header of the log at `path`: `None` if there is no log.
pub(super) fn peek(path: &Path) -> Result<Option<Head>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::WindowLog { path: path.to_path_buf(), source }),
    };
    let mut head = [0u8; FILE_HEAD];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(source) => return Err(StoreError::WindowLog { path: path.to_path_buf(), source }),
        }
    }
    let damaged = |detail: &str| StoreError::Damaged { file: path.to_path_buf(), detail: detail.to_string() };
    if head[..n].starts_with(MAGIC_V1) {
        Ok(Some(Head::V1))
    } else if n == FILE_HEAD && head.starts_with(MAGIC) {
        Ok(Some(Head::V2(head[MAGIC.len()..].try_into().expect("16 bytes"))))
    } else {
        Err(damaged("not a sloguard window log (bad or missing header)"))
    }
}

/// Superseded bytes tolerated beyond the live ones before a compaction is due: half the live
/// size, plus a floor so small stores do not rewrite themselves every few flushes. A start
/// reads the whole log, so this bounds a restart; at 2x a cold start of 10,000 SLOs took 2.0 s
/// just before a compaction, 1.4 s just after. The price is a rewrite of the live state
/// (~130 MB at 10,000 SLOs) each time the log grows by half of it.
const COMPACTION_SLACK: u64 = 8 << 20;

/// The open log. Appends go through one handle behind the store's lock.
pub(super) struct WindowLog {
    path: PathBuf,
    /// Written into the header of every log this handle creates or rewrites.
    id: StoreId,
    file: Option<File>,
    /// Bytes of whole records (what a read would keep).
    len: u64,
    /// Bytes the latest version of every record would take: what a compaction would write.
    live_len: u64,
    /// An append failed part-way and could not be cut back: only a rewrite makes the log whole.
    damaged: bool,
}

/// What a read of the log found.
pub(super) struct LogContents {
    pub windows: Vec<WindowRecord>,
    pub series: Vec<SeriesRecord>,
    /// Bytes after the last whole record (a torn append), cut off by the read.
    pub dropped: u64,
}

impl WindowLog {
    pub(super) fn new(dir: &Path, id: StoreId) -> WindowLog {
        WindowLog { path: dir.join(FILE_NAME), id, file: None, len: 0, live_len: 0, damaged: false }
    }

    pub(super) fn exists(&self) -> bool {
        self.path.exists()
    }

    fn error(&self, source: std::io::Error) -> StoreError {
        StoreError::WindowLog { path: self.path.clone(), source }
    }

    fn corrupt(&self, offset: u64, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Damaged { file: self.path.clone(), detail: format!("at byte {offset}: {detail}") }
    }

    /// Whether the next save should be a compaction, written from the engine's full state.
    pub(super) fn wants_rewrite(&self) -> bool {
        self.damaged || self.len > self.live_len + self.live_len / 2 + COMPACTION_SLACK
    }

    /// Reads every whole record, keeping the latest version of each header, page and series,
    /// and cuts off a torn tail. Pages are decoded in `parts` threads.
    pub(super) fn read(&mut self, parts: usize) -> Result<LogContents, StoreError> {
        self.read_with(parts, true)
    }

    /// [`WindowLog::read`], leaving a torn tail in place when `cut` is false (an offline check).
    pub(super) fn read_with(&mut self, parts: usize, cut: bool) -> Result<LogContents, StoreError> {
        let mut options = OpenOptions::new();
        options.read(true).append(cut);
        let mut file = options.open(&self.path).map_err(|e| self.error(e))?;
        // Sized up front: growing by doubling touched twice the memory, and first touches of
        // fresh memory were the largest cost of a restart.
        let size = file.metadata().map_err(|e| self.error(e))?.len();
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(|e| self.error(e))?;
        let (format, start) = if bytes.starts_with(MAGIC_V1) {
            (Format::V1, MAGIC_V1.len())
        } else if bytes.len() >= FILE_HEAD && bytes.starts_with(MAGIC) {
            if bytes[MAGIC.len()..FILE_HEAD] != self.id {
                return Err(
                    self.corrupt(MAGIC.len() as u64, "the log belongs to another store (its id differs from sled's)")
                );
            }
            (Format::V2, FILE_HEAD)
        } else {
            return Err(self.corrupt(0, "not a sloguard window log"));
        };
        let mut folded = Folded::default();
        let mut at = start;
        loop {
            match next_record(format, &bytes[at..]) {
                Next::Whole(payload) => {
                    folded.apply(payload).map_err(|e| self.corrupt(at as u64, e))?;
                    at += format.head() + payload.len();
                }
                Next::Torn => break,
                Next::Damaged(why) => return Err(self.corrupt(at as u64, why)),
            }
        }
        let dropped = (bytes.len() - at) as u64;
        if dropped > 0 && cut {
            file.set_len(at as u64).map_err(|e| self.error(e))?;
        }
        self.len = at as u64;
        self.live_len = folded.live_len();
        self.file = if cut && format == Format::V2 { Some(file) } else { None };
        let windows = folded.windows(parts).map_err(|(slo, e)| self.corrupt(0, format!("window {slo}: {e}")))?;
        Ok(LogContents { windows, series: folded.series(), dropped })
    }

    /// Rewrites a version-1 log as version 2 with this store's id, keeping every whole record's
    /// payload as it is (a torn tail is cut, as a read would). Through a synced temporary file
    /// and a rename, like a compaction.
    pub(super) fn adopt(&mut self) -> Result<u64, StoreError> {
        let bytes = std::fs::read(&self.path).map_err(|e| self.error(e))?;
        if !bytes.starts_with(MAGIC_V1) {
            return Err(self.corrupt(0, "not a version-1 window log"));
        }
        let mut out = self.file_head();
        let mut at = MAGIC_V1.len();
        loop {
            match next_record(Format::V1, &bytes[at..]) {
                Next::Whole(payload) => {
                    // Checked now rather than carried into the new format unread.
                    Folded::default().apply(payload).map_err(|e| self.corrupt(at as u64, e))?;
                    out.extend_from_slice(&record(payload));
                    at += RECORD_HEAD_V1 + payload.len();
                }
                Next::Torn => break,
                Next::Damaged(why) => return Err(self.corrupt(at as u64, why)),
            }
        }
        self.replace_with(&out)?;
        Ok((bytes.len() - at) as u64)
    }

    fn file_head(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FILE_HEAD);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out
    }

    /// Appends one save as one record and syncs it. A failed append is cut back, so the log
    /// never holds a half record followed by whole ones.
    pub(super) fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        if self.file.is_none() {
            if !self.exists() {
                return self.rewrite(payload);
            }
            // Not read in this process yet: the read finds the end of the last whole record.
            self.read(1)?;
            if self.file.is_none() {
                // A version-1 log (the store adopts those at open, so only a test gets here).
                self.adopt()?;
            }
        }
        let record = record(payload);
        let len = self.len;
        let file = self.file.as_mut().expect("checked above");
        let written = file.write_all(&record).and_then(|()| file.sync_data());
        if let Err(e) = written {
            if file.set_len(len).is_err() {
                self.damaged = true;
            }
            return Err(self.error(e));
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// Replaces the log with one record holding the full state, through a synced temporary
    /// file and a rename: a crash leaves the old log or the new one, never neither.
    pub(super) fn rewrite(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        let mut contents = self.file_head();
        contents.extend_from_slice(&record(payload));
        self.replace_with(&contents)?;
        self.live_len = self.len;
        Ok(())
    }

    /// Creates a log holding no records (a new store's), so that a missing log is always loss.
    pub(super) fn create_empty(&mut self) -> Result<(), StoreError> {
        let contents = self.file_head();
        self.replace_with(&contents)?;
        self.live_len = self.len;
        Ok(())
    }

    /// Makes `contents` the log, atomically, and opens it for appends.
    fn replace_with(&mut self, contents: &[u8]) -> Result<(), StoreError> {
        let fresh = self.path.with_extension("log.new");
        let mut file = File::create(&fresh).map_err(|e| self.error(e))?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&fresh, &self.path))
            .and_then(|()| sync_dir(&self.path))
            .map_err(|e| self.error(e))?;
        // Appends go through an append-mode handle: after a failed append is cut back, the
        // next one must land at the new end, not at the old write position past it.
        let appender = OpenOptions::new().append(true).open(&self.path).map_err(|e| self.error(e))?;
        self.len = contents.len() as u64;
        self.damaged = false;
        self.file = Some(appender);
        Ok(())
    }
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// A version-2 record: length, payload checksum, the checksum of those eight bytes, payload.
fn record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEAD + payload.len());
    out.extend_from_slice(&u32::try_from(payload.len()).expect("a save under 4 GiB").to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let head_sum = crc32fast::hash(&out[..8]);
    out.extend_from_slice(&head_sum.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V1,
    V2,
}

impl Format {
    fn head(self) -> usize {
        match self {
            Format::V1 => RECORD_HEAD_V1,
            Format::V2 => RECORD_HEAD,
        }
    }
}

enum Next<'a> {
    Whole(&'a [u8]),
    /// The end of the log, or a last record cut short or garbled by a crash mid-append.
    Torn,
    /// Damage that a crash mid-append cannot explain, and why.
    Damaged(&'static str),
}

/// The record at the start of `bytes`.
fn next_record(format: Format, bytes: &[u8]) -> Next<'_> {
    let head_len = format.head();
    let Some(head) = bytes.get(..head_len) else { return Next::Torn };
    if format == Format::V2 && crc32fast::hash(&head[..8]).to_le_bytes() != head[8..12] {
        // A crash can leave a zero-filled tail (the size was updated, the data not written);
        // anything else in a head that fails its own checksum is damage.
        return if bytes.iter().all(|&b| b == 0) {
            Next::Torn
        } else {
            Next::Damaged("record head checksum mismatch (damaged length or checksum field)")
        };
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let sum = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let Some(payload) = bytes.get(head_len..head_len + len) else {
        // Version 2's head is checked, so the length is the one written: the payload was cut
        // short. Version 1's is not: a damaged length looks the same, unless whole records
        // follow, which a torn last append cannot have.
        return if format == Format::V1 && holds_v1_record(&bytes[head_len..]) {
            Next::Damaged("record length runs past the end of the log, but whole records follow it")
        } else {
            Next::Torn
        };
    };
    if crc32fast::hash(payload) == sum {
        Next::Whole(payload)
    } else if bytes.len() == head_len + len {
        Next::Torn
    } else {
        Next::Damaged("checksum mismatch before the last record")
    }
}

/// Whether a whole version-1 record (length, matching checksum, non-empty payload) starts at
/// any offset of `bytes`. Only the start of a version-1 log with a length running past its end
/// pays for this, once, before it is adopted.
fn holds_v1_record(bytes: &[u8]) -> bool {
    (0..bytes.len().saturating_sub(RECORD_HEAD_V1)).any(|at| {
        let rest = &bytes[at..];
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let sum = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        len > 0 && rest.get(RECORD_HEAD_V1..RECORD_HEAD_V1 + len).is_some_and(|p| crc32fast::hash(p) == sum)
    })
}

/// Encodes one save.
pub(super) fn encode(windows: &[WindowRecord], series: &[SeriesRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, windows.len() as u64);
    for window in windows {
        put_bytes(&mut out, window.slo.as_bytes());
        out.extend_from_slice(&window.fingerprint.to_le_bytes());
        out.push(u8::from(window.replaces_all));
        let header = serde_json::to_vec(&window.header).expect("headers serialize");
        put_bytes(&mut out, &header);
        put_varint(&mut out, window.pages.len() as u64);
        for page in &window.pages {
            put_varint(&mut out, page.level as u64);
            put_varint(&mut out, page.index as u64);
            put_bytes(&mut out, &page::encode(page));
        }
    }
    put_varint(&mut out, series.len() as u64);
    for record in series {
        put_bytes(&mut out, record.source.as_bytes());
        put_bytes(&mut out, record.series.as_bytes());
        out.extend_from_slice(&record.at.to_le_bytes());
        out.extend_from_slice(&record.value.to_le_bytes());
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The latest version of everything, as slices of the file: only what survives is decoded.
#[derive(Default)]
struct Folded<'a> {
    windows: HashMap<&'a str, FoldedWindow<'a>>,
    series: HashMap<(&'a str, &'a str), (i64, f64)>,
}

#[derive(Default)]
struct FoldedWindow<'a> {
    fingerprint: u64,
    header: &'a [u8],
    /// `(level, index)` and the packed page: a few dozen, so a list beats hashing.
    pages: Vec<((usize, usize), &'a [u8])>,
}

impl<'a> Folded<'a> {
    fn apply(&mut self, payload: &'a [u8]) -> Result<(), PageError> {
        let mut input = Input(payload);
        for _ in 0..input.varint()? {
            let slo = input.str()?;
            let fingerprint = input.u64()?;
            let replaces_all = input.byte()? != 0;
            let header = input.bytes()?;
            let window = self.windows.entry(slo).or_default();
            (window.fingerprint, window.header) = (fingerprint, header);
            if replaces_all {
                window.pages.clear();
            }
            for _ in 0..input.varint()? {
                let position = (input.varint()? as usize, input.varint()? as usize);
                let page = input.bytes()?;
                match window.pages.iter_mut().find(|(p, _)| *p == position) {
                    Some(slot) => slot.1 = page,
                    None => window.pages.push((position, page)),
                }
            }
        }
        for _ in 0..input.varint()? {
            let key = (input.str()?, input.str()?);
            self.series.insert(key, (input.u64()? as i64, f64::from_bits(input.u64()?)));
        }
        match input.0.len() {
            0 => Ok(()),
            left => Err(PageError::Trailing(left)),
        }
    }

    /// Roughly what a compaction writes: the surviving records with their framing.
    fn live_len(&self) -> u64 {
        let windows: usize = self
            .windows
            .iter()
            .map(|(slo, w)| slo.len() + w.header.len() + 16 + w.pages.iter().map(|(_, p)| p.len() + 6).sum::<usize>())
            .sum();
        let series: usize = self.series.keys().map(|(source, series)| source.len() + series.len() + 20).sum();
        (FILE_HEAD + RECORD_HEAD + windows + series) as u64
    }

    /// Decoded windows in SLO id order, pages in position order.
    fn windows(&self, parts: usize) -> Result<Vec<WindowRecord>, (String, String)> {
        let mut folded: Vec<(&&str, &FoldedWindow)> = self.windows.iter().collect();
        folded.sort_unstable_by_key(|(slo, _)| **slo);
        let chunk = folded.len().div_ceil(parts.max(1)).max(1);
        std::thread::scope(|scope| {
            let decoders: Vec<_> = folded
                .chunks(chunk)
                .map(|chunk| scope.spawn(|| chunk.iter().map(|(slo, w)| decode_window(slo, w)).collect::<Vec<_>>()))
                .collect();
            decoders.into_iter().flat_map(|d| d.join().expect("a window decoder panicked")).collect()
        })
    }

    fn series(&self) -> Vec<SeriesRecord> {
        let mut out: Vec<SeriesRecord> = self
            .series
            .iter()
            .map(|(&(source, series), &(at, value))| SeriesRecord {
                source: source.to_string(),
                series: series.to_string(),
                at,
                value,
            })
            .collect();
        out.sort_unstable_by(|a, b| (&a.source, &a.series).cmp(&(&b.source, &b.series)));
        out
    }
}

fn decode_window(slo: &str, window: &FoldedWindow) -> Result<WindowRecord, (String, String)> {
    let fail = |e: &dyn std::fmt::Display| (slo.to_string(), e.to_string());
    let header = serde_json::from_slice(window.header).map_err(|e| fail(&e))?;
    let mut pages: Vec<_> = window.pages.iter().collect();
    pages.sort_unstable_by_key(|(position, _)| *position);
    let pages = pages
        .into_iter()
        .map(|&((level, index), bytes)| page::decode(level, index, bytes).map_err(|e| fail(&e)))
        .collect::<Result<_, _>>()?;
    Ok(WindowRecord { slo: slo.to_string(), fingerprint: window.fingerprint, header, pages, replaces_all: false })
}
