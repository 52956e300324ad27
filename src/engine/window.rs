//! Exact-enough rolling windows in O(1) per lookup and bounded memory.
//!
//! Each SLO keeps two cumulative counters (selected events, total events) since the engine first
//! saw it. Instead of raw samples we record the cumulative value at every bucket boundary on a few
//! *levels* of different width (1m, 5m, 2h, 1d). The increase over `(t - W, t]` is then
//! `cum(t) - cum(t - W)`, where `cum(t - W)` is read from the finest level that spans `W`.
//!
//! Why this shape: a ring of per-minute buckets for a 30-day window costs 43,200 slots per SLO
//! and summing it per evaluation costs microseconds. Boundaries of cumulative values make every
//! window a two-point lookup, and the ladder keeps the ring small: with the default tiers the
//! levels are 1m×6h, 5m×3d and 2h×30d, 32,368 bytes. The 5m level also keeps *minute detail*:
//! where each interior minute boundary lay within its bucket's increase, one byte per counter,
//! exact while a bucket's increase is a whole number up to 255 and otherwise to 1/255 of it. So
//! every alert window (5m to 3d) reads to the minute, within one 60 s sample interval, as the
//! Workbook tiers need; only the budget window interpolates, within a 2h bucket of 30 days.
//! Between minute boundaries values are interpolated linearly. Revisit if sub-minute scrape
//! resolution must be exact in short windows.

use serde::{Deserialize, Serialize};

use crate::clock::{DAY, HOUR, MINUTE, Millis};

/// Candidate bucket widths, finest first. A window uses the finest width that covers it in at
/// most [`MAX_SLOTS_PER_WINDOW`] boundaries.
const LADDER: [Millis; 4] = [MINUTE, 5 * MINUTE, 2 * HOUR, DAY];

/// Boundaries a single window may span on its level. 864 lets 3d use 5m buckets and 30d use 2h
/// buckets, which together keep an SLO with the Workbook tiers under 32 KiB.
const MAX_SLOTS_PER_WINDOW: i64 = 864;

/// The level that keeps minute detail: it answers 1d and 3d, the Workbook's ticket windows,
/// which must read to the minute like the short ones. Finer levels need none, coarser ones
/// would pay a byte per minute and only hold the budget window.
const DETAIL_WIDTH: Millis = 5 * MINUTE;

/// Minute boundaries strictly inside a detail bucket.
pub const INTERIOR: usize = 4;
const MINUTES_PER_BUCKET: i64 = INTERIOR as i64 + 1;
const _: () = assert!(DETAIL_WIDTH == MINUTES_PER_BUCKET * DETAIL_STEP);

/// Detail step: one sample interval at the 60 s scrapes the windows are sized for.
const DETAIL_STEP: Millis = MINUTE;

/// One bucket's minute detail: per counter, where each interior minute boundary lay between
/// the bucket's two boundaries (see [`quantise`]).
pub type Detail = [[u8; INTERIOR]; 2];

/// Slots per persisted page: a flush writes only pages whose slots changed (about 1 KiB per SLO
/// per minute with the default ladder) instead of whole rings.
pub const PAGE_SLOTS: usize = 64;

/// Counter slots: the selected events (errors, or good events) and all events.
pub const SELECTED: usize = 0;
pub const TOTAL: usize = 1;

/// Increases of the two counters over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Increase {
    pub selected: f64,
    pub total: f64,
}

/// Cumulative boundary values at one bucket width.
#[derive(Debug, Clone)]
struct Level {
    width: Millis,
    ring: Ring,
    /// Highest boundary index whose slot holds its final value.
    filled_through: i64,
    /// Bit `p` set: page `p` changed since the last export. At most 866 slots = 14 pages.
    dirty: u64,
}

/// A level's slots. On the detail level each boundary sits beside the detail of the bucket it
/// starts, so reading a minute costs one cache miss, not two: at 10,000 SLOs an evaluation is
/// bound by ring reads, and two parallel arrays made it 20% slower.
#[derive(Debug, Clone)]
enum Ring {
    Plain(Box<[[f64; 2]]>),
    Detailed(Box<[DetailedSlot]>),
}

#[derive(Debug, Clone, Copy, Default)]
struct DetailedSlot {
    cum: [f64; 2],
    detail: Detail,
}

impl Level {
    fn new(width: Millis, n_slots: usize) -> Level {
        debug_assert!(n_slots.div_ceil(PAGE_SLOTS) <= 64, "dirty bitmap holds 64 pages");
        let ring = if width == DETAIL_WIDTH {
            Ring::Detailed(vec![DetailedSlot::default(); n_slots].into_boxed_slice())
        } else {
            Ring::Plain(vec![[0.0; 2]; n_slots].into_boxed_slice())
        };
        Level { width, ring, filled_through: i64::MIN, dirty: 0 }
    }

    fn len(&self) -> usize {
        match &self.ring {
            Ring::Plain(slots) => slots.len(),
            Ring::Detailed(slots) => slots.len(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match &self.ring {
            Ring::Plain(slots) => size_of_val::<[[f64; 2]]>(slots),
            Ring::Detailed(slots) => size_of_val::<[DetailedSlot]>(slots),
        }
    }

    fn cum(&self, i: usize) -> [f64; 2] {
        match &self.ring {
            Ring::Plain(slots) => slots[i],
            Ring::Detailed(slots) => slots[i].cum,
        }
    }

    /// Address of slot `i`, for [`prefetch`].
    fn slot_address(&self, i: usize) -> *const u8 {
        match &self.ring {
            Ring::Plain(slots) => slots[i..].as_ptr().cast(),
            Ring::Detailed(slots) => slots[i..].as_ptr().cast(),
        }
    }

    fn set_cum(&mut self, i: usize, cum: [f64; 2]) {
        match &mut self.ring {
            Ring::Plain(slots) => slots[i] = cum,
            Ring::Detailed(slots) => slots[i].cum = cum,
        }
    }

    /// Detail of the bucket starting at slot `i`; the detail level only.
    fn detail(&self, i: usize) -> Detail {
        match &self.ring {
            Ring::Plain(_) => unreachable!("detail is read on the detail level only"),
            Ring::Detailed(slots) => slots[i].detail,
        }
    }

    fn set_detail(&mut self, i: usize, detail: Detail) {
        if let Ring::Detailed(slots) = &mut self.ring {
            slots[i].detail = detail;
        }
    }

    /// A level for windows up to `span`, with two spare slots: one for the boundary at or before
    /// `t - W`, one for the partial bucket.
    fn for_span(width: Millis, span: Millis) -> Level {
        Level::new(width, (span / width + 2) as usize)
    }

    fn has_detail(&self) -> bool {
        matches!(self.ring, Ring::Detailed(_))
    }

    /// Distance between the points this level can read exactly.
    fn step(&self) -> Millis {
        if self.has_detail() { DETAIL_STEP } else { self.width }
    }

    fn slot(&self, k: i64) -> usize {
        k.rem_euclid(self.len() as i64) as usize
    }

    fn mark_dirty(&mut self, i: usize) {
        self.dirty |= 1 << (i / PAGE_SLOTS);
    }

    /// Oldest boundary index the ring still holds.
    fn oldest(&self) -> i64 {
        self.filled_through - self.len() as i64 + 1
    }
}

/// Which level answers a window of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRef {
    pub span: Millis,
    level: usize,
}

/// The per-SLO counters: levels plus the running cumulative values.
#[derive(Debug, Clone)]
pub struct Counters {
    levels: Vec<Level>,
    cum: [f64; 2],
    /// First instant this SLO saw (cumulative values are 0 before it).
    origin: Option<Millis>,
    /// Latest instant seen; samples are attributed no earlier than this.
    now: Millis,
    /// Exact interior minute values of the detail level's open bucket (the one after its
    /// `filled_through`), which become detail when it closes. Here rather than in `Level`: a
    /// level small enough to share a cache line with the next keeps evaluation ~25% cheaper.
    open: [[f64; 2]; INTERIOR],
    /// Restored from a different level plan: the next export must replace every stored page.
    replanned: bool,
    /// The first and latest sample of any of the SLO's series, counted or a baseline: how much
    /// of the window holds data (coverage) and how long the SLI has been silent (no data).
    samples: Option<SampleSpan>,
}

/// When an SLO's samples began and when the latest arrived.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleSpan {
    pub first: Millis,
    pub last: Millis,
}

impl Counters {
    /// Plans levels for `spans` (every window the SLO will ask about) and returns the counters
    /// with one [`WindowRef`] per span, in the same order.
    pub fn plan(spans: &[Millis]) -> (Counters, Vec<WindowRef>) {
        let width_for = |span: Millis| {
            LADDER
                .iter()
                .copied()
                .find(|w| span / w <= MAX_SLOTS_PER_WINDOW)
                .unwrap_or_else(|| span / MAX_SLOTS_PER_WINDOW + 1)
        };
        let mut spans_by_width: Vec<(Millis, Millis)> = Vec::new();
        for &span in spans {
            let width = width_for(span);
            match spans_by_width.iter_mut().find(|(w, _)| *w == width) {
                Some((_, longest)) => *longest = (*longest).max(span),
                None => spans_by_width.push((width, span)),
            }
        }
        spans_by_width.sort_unstable();
        let levels: Vec<Level> =
            spans_by_width.iter().map(|&(width, longest)| Level::for_span(width, longest)).collect();
        let refs = spans
            .iter()
            .map(|&span| {
                let width = width_for(span);
                let level = levels.iter().position(|l| l.width == width).expect("planned above");
                WindowRef { span, level }
            })
            .collect();
        (Counters::with_levels(levels), refs)
    }

    fn with_levels(levels: Vec<Level>) -> Counters {
        Counters {
            levels,
            cum: [0.0; 2],
            origin: None,
            now: Millis::MIN,
            open: [[0.0; 2]; INTERIOR],
            replanned: false,
            samples: None,
        }
    }

    /// Bytes held by this SLO's rings, for the memory budget (see benches/engine.rs).
    pub fn heap_bytes(&self) -> usize {
        self.levels.iter().map(Level::heap_bytes).sum()
    }

    /// Moves time forward to `t`, recording every boundary strictly before `t`. Samples at `t`
    /// itself arrive after this call, so a boundary equal to `t` is recorded on a later advance.
    pub fn advance(&mut self, t: Millis) {
        if self.origin.is_none() {
            self.origin = Some(t);
            self.now = t;
            for level in &mut self.levels {
                level.filled_through = ceil_div(t, level.width) - 1;
            }
            return;
        }
        if t <= self.now {
            return;
        }
        let (now, cum, open) = (self.now, self.cum, &mut self.open);
        for level in &mut self.levels {
            let last = ceil_div(t, level.width) - 1;
            let open_bucket = level.filled_through;
            if level.has_detail() {
                close_minutes(level, open, open_bucket, now, t, cum);
            }
            let first = (open_bucket + 1).max(last - level.len() as i64 + 1);
            for k in first..=last {
                let i = level.slot(k);
                level.set_cum(i, cum);
                level.mark_dirty(i);
            }
            if level.has_detail() && last > open_bucket {
                // Buckets wholly inside this advance saw no samples: flat detail.
                for k in first..last {
                    let i = level.slot(k);
                    level.set_detail(i, [[0; INTERIOR]; 2]);
                }
                *open = [cum; INTERIOR];
            }
            level.filled_through = last;
        }
        self.now = t;
    }

    /// Asks the CPU to start loading every ring line that `advance(now)` and reading `windows`
    /// at `now` will touch. At 10,000 SLOs the rings (320 MB) live in RAM, and an evaluation
    /// waits on about ten independent cache misses; issuing them one SLO ahead overlaps them.
    pub fn prefetch(&self, now: Millis, windows: &[WindowRef]) {
        for level in &self.levels {
            prefetch(level.slot_address(level.slot(ceil_div(now, level.width) - 1)));
        }
        for w in windows {
            let level = &self.levels[w.level];
            prefetch(level.slot_address(level.slot((now - w.span).div_euclid(level.width))));
        }
    }

    /// Like [`Counters::prefetch`], for a read of window `w`'s level at `t` (a calendar period's
    /// start, which is not `now - W`).
    pub fn prefetch_at(&self, w: WindowRef, t: Millis) {
        let level = &self.levels[w.level];
        prefetch(level.slot_address(level.slot(t.div_euclid(level.width))));
    }

    /// Asks the CPU to start loading the level table, which [`Counters::prefetch`] reads.
    pub fn prefetch_levels(&self) {
        prefetch_all(&self.levels);
    }

    /// Adds an increase observed at `t`. A sample older than the latest instant counts at the
    /// latest instant: windows only move forward, and late data is better late than lost.
    pub fn add(&mut self, t: Millis, slot: usize, delta: f64) {
        self.advance(t);
        self.cum[slot] += delta;
    }

    /// Notes a sample of one of the SLO's series at `t`, whether it counted or was a baseline.
    pub fn note_sample(&mut self, t: Millis) {
        match &mut self.samples {
            Some(span) => span.last = span.last.max(t),
            None => self.samples = Some(SampleSpan { first: t, last: t }),
        }
    }

    pub fn samples(&self) -> Option<SampleSpan> {
        self.samples
    }

    /// The latest instant seen, or `None` before any data.
    pub fn latest(&self) -> Option<Millis> {
        self.origin.map(|_| self.now)
    }

    /// Increases over `(now - W, now]` for window `w`, where `now` is the latest instant.
    pub fn increase(&self, w: WindowRef) -> Increase {
        let past = self.cum_at(w.level, self.now - w.span);
        Increase { selected: self.cum[SELECTED] - past[SELECTED], total: self.cum[TOTAL] - past[TOTAL] }
    }

    /// Increases over `(from, to]`, read on window `w`'s level, for `now - W <= from <= to <= now`.
    pub fn increase_between(&self, w: WindowRef, from: Millis, to: Millis) -> Increase {
        let (a, b) = (self.cum_at(w.level, from), if to >= self.now { self.cum } else { self.cum_at(w.level, to) });
        Increase { selected: b[SELECTED] - a[SELECTED], total: b[TOTAL] - a[TOTAL] }
    }

    /// The cumulative values at `t`: exact on the level's points, linear between them.
    fn cum_at(&self, level: usize, t: Millis) -> [f64; 2] {
        let origin = match self.origin {
            Some(o) if t >= o => o,
            _ => return [0.0; 2],
        };
        let level = &self.levels[level];
        let step = level.step();
        let j = t.div_euclid(step);
        let (lo_t, lo) = if j * step < origin { (origin, [0.0; 2]) } else { (j * step, self.point(level, j)) };
        if lo_t == t {
            return lo;
        }
        let (hi_t, hi) =
            if (j + 1) * step < self.now { ((j + 1) * step, self.point(level, j + 1)) } else { (self.now, self.cum) };
        if hi_t <= lo_t {
            return lo;
        }
        let frac = (t - lo_t) as f64 / (hi_t - lo_t) as f64;
        [lo[0] + (hi[0] - lo[0]) * frac, lo[1] + (hi[1] - lo[1]) * frac]
    }

    /// The cumulative values at point `j` (in steps) of `level`. Every window reads one or two
    /// of these per evaluation, so the ring position is computed once: it is a division.
    fn point(&self, level: &Level, j: i64) -> [f64; 2] {
        if j * level.step() >= self.now {
            return self.cum;
        }
        if !level.has_detail() {
            return level.cum(level.slot(j));
        }
        let k = j.div_euclid(MINUTES_PER_BUCKET);
        let minute = (j - k * MINUTES_PER_BUCKET) as usize;
        let i = level.slot(k);
        if minute == 0 {
            return level.cum(i);
        }
        if k >= level.filled_through {
            return self.open[minute - 1];
        }
        let next = if i + 1 == level.len() { 0 } else { i + 1 };
        dequantise(&level.detail(i), minute, level.cum(i), level.cum(next))
    }

    /// The cumulative values at `t` from the finest level still holding it, for moving state to
    /// another plan. Before every ring, the oldest boundary kept: older history is gone.
    fn cum_at_finest(&self, t: Millis) -> [f64; 2] {
        let holding = self.levels.iter().position(|l| t.div_euclid(l.width) >= l.oldest());
        match holding {
            Some(level) => self.cum_at(level, t),
            None => self.levels.last().map_or(self.cum, |l| self.cum_at(self.levels.len() - 1, l.oldest() * l.width)),
        }
    }
}

/// Records the interior minutes of the open bucket `k` that lie in `[from, to)`, and when the
/// bucket closes before `to`, turns them into its detail (its end boundary takes `cum` too).
fn close_minutes(level: &mut Level, open: &mut [[f64; 2]; INTERIOR], k: i64, from: Millis, to: Millis, cum: [f64; 2]) {
    for (m, value) in open.iter_mut().enumerate() {
        let at = k * level.width + (m as i64 + 1) * DETAIL_STEP;
        if (from..to).contains(&at) {
            *value = cum;
        }
    }
    if (k + 1) * level.width < to {
        let i = level.slot(k);
        level.set_detail(i, quantise(open, level.cum(i), cum));
        level.mark_dirty(i);
    }
}

/// Where each interior value lies between `lo` and `hi`: the exact offset while the bucket's
/// increase is a whole number up to 255 (most buckets of most services), otherwise its share of
/// the increase in 255ths, so the error is at most 1/510 of one bucket's increase.
///
/// What is kept is the total and the *smaller part* of it (see [`Parts`]): a burn rate divides
/// the bad events by the total, and for a good/total SLI the bad events are the small difference
/// of two large counts, which independent rounding of both would swamp.
fn quantise(interior: &[[f64; 2]; INTERIOR], lo: [f64; 2], hi: [f64; 2]) -> Detail {
    let parts = Parts::of(lo, hi);
    let (lo, hi) = (parts.split(lo), parts.split(hi));
    [0, 1].map(|c| {
        let delta = hi[c] - lo[c];
        interior.map(|v| {
            let offset = parts.split(v)[c] - lo[c];
            let q = if counts_exactly(delta) {
                offset
            } else if delta > 0.0 {
                offset / delta * 255.0
            } else {
                0.0
            };
            q.round().clamp(0.0, 255.0) as u8
        })
    })
}

/// The interior value at `minute` (1-based) of a bucket from `lo` to `hi` with `detail`.
fn dequantise(detail: &Detail, minute: usize, lo: [f64; 2], hi: [f64; 2]) -> [f64; 2] {
    let parts = Parts::of(lo, hi);
    let (lo, hi) = (parts.split(lo), parts.split(hi));
    let value = [0, 1].map(|c| {
        let (q, delta) = (f64::from(detail[c][minute - 1]), hi[c] - lo[c]);
        lo[c] + if counts_exactly(delta) { q } else { delta * q / 255.0 }
    });
    parts.join(value)
}

/// Which part of the total a bucket's detail keeps beside it: the selected events, or the
/// rest, whichever grew less over the bucket. Chosen from the bucket's boundaries, so reading
/// needs no flag: errors for an errors/total SLI, the bad events for a good/total one.
#[derive(Clone, Copy)]
struct Parts {
    rest: bool,
}

impl Parts {
    fn of(lo: [f64; 2], hi: [f64; 2]) -> Parts {
        let selected = hi[SELECTED] - lo[SELECTED];
        Parts { rest: (hi[TOTAL] - lo[TOTAL]) - selected < selected }
    }

    /// `[part, total]` from `[selected, total]`.
    fn split(self, v: [f64; 2]) -> [f64; 2] {
        if self.rest { [v[TOTAL] - v[SELECTED], v[TOTAL]] } else { v }
    }

    fn join(self, v: [f64; 2]) -> [f64; 2] {
        if self.rest { [v[TOTAL] - v[0], v[TOTAL]] } else { v }
    }
}

fn counts_exactly(delta: f64) -> bool {
    (0.0..=255.0).contains(&delta) && delta.fract() == 0.0
}

/// The persistable header of [`Counters`]; ring contents travel separately as [`Page`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountersHeader {
    pub cum: [f64; 2],
    pub origin: Option<Millis>,
    pub now: Millis,
    /// `(width, slot count, filled_through)` per level.
    pub levels: Vec<(Millis, usize, i64)>,
    /// The detail level's open bucket (absent in stores written before minute detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<[[f64; 2]; INTERIOR]>,
    /// Absent in stores written before sample spans were kept: their first sample is taken to
    /// be `origin` (the first instant the SLO was evaluated or fed) on restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<SampleSpan>,
}

impl CountersHeader {
    /// The level plan these counters were saved with, `(width, slots)` per level.
    pub fn plan_signature(&self) -> Vec<(Millis, usize)> {
        self.levels.iter().map(|&(w, n, _)| (w, n)).collect()
    }
}

/// A run of up to [`PAGE_SLOTS`] ring slots of one level, with their minute detail when the
/// level keeps it (empty for other levels, and in pages written before minute detail).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub level: usize,
    pub index: usize,
    pub slots: Vec<[f64; 2]>,
    pub detail: Vec<Detail>,
}

/// Why persisted counters could not be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreError {
    /// A page points outside its ring, or its detail does not match its slots.
    #[error("persisted page {index} of level {level} does not fit its ring")]
    PageOutOfRange { level: usize, index: usize },
}

impl Counters {
    pub fn header(&self) -> CountersHeader {
        CountersHeader {
            cum: self.cum,
            origin: self.origin,
            now: self.now,
            levels: self.levels.iter().map(|l| (l.width, l.len(), l.filled_through)).collect(),
            open: self.levels.iter().any(Level::has_detail).then_some(self.open),
            samples: self.samples,
        }
    }

    /// The level plan, `(width, slots)` per level: equal plans can share persisted rings.
    pub fn plan_signature(&self) -> Vec<(Millis, usize)> {
        self.levels.iter().map(|l| (l.width, l.len())).collect()
    }

    /// Marks every page changed, so the next [`Counters::take_dirty_pages`] returns them all.
    pub fn mark_all_dirty(&mut self) {
        for level in &mut self.levels {
            level.dirty = u64::MAX >> (64 - level.len().div_ceil(PAGE_SLOTS));
        }
    }

    /// Pages changed since the last call (all of them after a resample or
    /// [`Counters::mark_all_dirty`]), and whether they replace every stored page (the plan
    /// changed on restore).
    pub fn take_dirty_pages(&mut self) -> (Vec<Page>, bool) {
        let mut pages = Vec::new();
        for (level_index, level) in self.levels.iter_mut().enumerate() {
            let mut dirty = std::mem::take(&mut level.dirty);
            while dirty != 0 {
                let index = dirty.trailing_zeros() as usize;
                dirty &= dirty - 1;
                let start = index * PAGE_SLOTS;
                let range = start..(start + PAGE_SLOTS).min(level.len());
                let slots = range.clone().map(|i| level.cum(i)).collect();
                let detail = if level.has_detail() { range.map(|i| level.detail(i)).collect() } else { Vec::new() };
                pages.push(Page { level: level_index, index, slots, detail });
            }
        }
        (pages, std::mem::take(&mut self.replanned))
    }

    /// Replaces this (freshly planned) state with a persisted one. Counters saved under another
    /// plan (the SLO's windows or sloguard's ladder changed) are read at every point of this
    /// plan, so history survives an upgrade at the precision it was kept with.
    pub fn restore(&mut self, header: &CountersHeader, pages: &[Page]) -> Result<(), RestoreError> {
        if header.plan_signature() == self.plan_signature() {
            return self.restore_same_plan(header, pages);
        }
        let mut saved = Counters::with_levels(header.levels.iter().map(|&(w, n, _)| Level::new(w, n)).collect());
        saved.restore_same_plan(header, pages)?;
        self.resample(&saved);
        Ok(())
    }

    fn restore_same_plan(&mut self, header: &CountersHeader, pages: &[Page]) -> Result<(), RestoreError> {
        let mut without_detail: Vec<(usize, usize)> = Vec::new();
        for page in pages {
            let out_of_range = RestoreError::PageOutOfRange { level: page.level, index: page.index };
            let level = self.levels.get_mut(page.level).ok_or(out_of_range.clone())?;
            let start = page.index * PAGE_SLOTS;
            if start + page.slots.len() > level.len() {
                return Err(out_of_range);
            }
            for (i, &cum) in (start..).zip(&page.slots) {
                level.set_cum(i, cum);
            }
            match (level.has_detail(), page.detail.len()) {
                (false, 0) => {}
                (true, 0) => without_detail.push((page.level, page.index)),
                (true, n) if n == page.slots.len() => {
                    for (i, &detail) in (start..).zip(&page.detail) {
                        level.set_detail(i, detail);
                    }
                }
                _ => return Err(out_of_range),
            }
        }
        for (level, &(_, _, filled_through)) in self.levels.iter_mut().zip(&header.levels) {
            level.filled_through = filled_through;
            level.dirty = 0;
        }
        self.cum = header.cum;
        self.origin = header.origin;
        self.now = header.now;
        self.samples =
            header.samples.or_else(|| header.origin.map(|origin| SampleSpan { first: origin, last: header.now }));
        for (level, index) in without_detail {
            self.assume_linear_detail(level, index);
        }
        if let Some(level) = self.levels.iter().find(|l| l.has_detail()) {
            self.open = header.open.unwrap_or_else(|| {
                let start = level.filled_through * level.width;
                [0, 1, 2, 3].map(|m| {
                    let at = start + (m + 1) * DETAIL_STEP;
                    linear(start, level.cum(level.slot(level.filled_through)), self.now, self.cum, at)
                })
            });
        }
        Ok(())
    }

    /// Detail for a page saved before minute detail existed: linear within each bucket, which
    /// is how those buckets were read when they were written.
    fn assume_linear_detail(&mut self, level: usize, index: usize) {
        let level = &mut self.levels[level];
        let n = level.len();
        for i in index * PAGE_SLOTS..((index + 1) * PAGE_SLOTS).min(n) {
            let (lo, hi) = (level.cum(i), level.cum((i + 1) % n));
            let interior = [1, 2, 3, 4].map(|m| linear(0, lo, MINUTES_PER_BUCKET, hi, m));
            level.set_detail(i, quantise(&interior, lo, hi));
        }
    }

    /// Fills this plan's rings from counters kept under another plan.
    pub fn resample(&mut self, saved: &Counters) {
        self.cum = saved.cum;
        self.origin = saved.origin;
        self.now = saved.now;
        self.samples = saved.samples;
        self.replanned = true;
        if saved.origin.is_none() {
            return;
        }
        let now = self.now;
        for level in &mut self.levels {
            level.filled_through = ceil_div(now, level.width) - 1;
            for k in level.oldest()..=level.filled_through {
                let i = level.slot(k);
                level.set_cum(i, saved.cum_at_finest(k * level.width));
            }
        }
        self.mark_all_dirty();
        for level in self.levels.iter_mut().filter(|l| l.has_detail()) {
            let width = level.width;
            let minute = |k: i64, m: usize| {
                let at = k * width + (m as i64 + 1) * DETAIL_STEP;
                if at < now { saved.cum_at_finest(at) } else { saved.cum }
            };
            for k in level.oldest()..level.filled_through {
                let (i, interior) = (level.slot(k), [0, 1, 2, 3].map(|m| minute(k, m)));
                level.set_detail(i, quantise(&interior, level.cum(i), level.cum(level.slot(k + 1))));
            }
            self.open = [0, 1, 2, 3].map(|m| minute(level.filled_through, m));
        }
    }
}

/// The value at `t` on the line through `(t0, v0)` and `(t1, v1)`, held at the ends.
fn linear(t0: Millis, v0: [f64; 2], t1: Millis, v1: [f64; 2], t: Millis) -> [f64; 2] {
    let frac = if t1 > t0 { ((t - t0) as f64 / (t1 - t0) as f64).clamp(0.0, 1.0) } else { 1.0 };
    [0, 1].map(|c| v0[c] + (v1[c] - v0[c]) * frac)
}

/// A hint that `address` will be read soon; it never faults and changes nothing observable.
#[allow(unsafe_code)]
#[inline(always)]
pub(crate) fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it performs no architectural access, so any address is
    // sound, and SSE (its target feature) is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// [`prefetch`] for every cache line of `items`.
pub(crate) fn prefetch_all<T>(items: &[T]) {
    const LINE: usize = 64;
    let bytes = size_of_val(items);
    let start = items.as_ptr().cast::<u8>();
    for offset in (0..bytes).step_by(LINE) {
        prefetch(start.wrapping_add(offset));
    }
}

fn ceil_div(a: Millis, b: Millis) -> i64 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_767_225_600_000;

    /// Adds one minute's increases at the end of minute `minute` after `T0`.
    fn add_minute(c: &mut Counters, minute: Millis, (selected, total): (f64, f64)) {
        c.add(T0 + minute * MINUTE, SELECTED, selected);
        c.add(T0 + minute * MINUTE, TOTAL, total);
    }

    /// Feeds `per_minute` increases at one-minute steps and returns the counters.
    fn fed(spans: &[Millis], per_minute: &[(f64, f64)]) -> (Counters, Vec<WindowRef>) {
        let (mut c, refs) = Counters::plan(spans);
        c.advance(T0);
        for (i, &(sel, tot)) in per_minute.iter().enumerate() {
            add_minute(&mut c, i as Millis + 1, (sel, tot));
        }
        (c, refs)
    }

    const DEFAULT_SPANS: [Millis; 8] = [30 * DAY, HOUR, 5 * MINUTE, 6 * HOUR, 30 * MINUTE, DAY, 2 * HOUR, 3 * DAY];

    #[test]
    fn default_tiers_fit_the_memory_budget() {
        let (c, _) = Counters::plan(&DEFAULT_SPANS);
        assert!(c.heap_bytes() <= 32 * 1024, "{} bytes", c.heap_bytes());
        assert_eq!(c.plan_signature(), vec![(MINUTE, 362), (5 * MINUTE, 866), (2 * HOUR, 362)]);
    }

    #[test]
    fn minute_windows_are_exact() {
        // Minute i carries i errors: the last 5 minutes of 100 carry 96+97+98+99+100.
        let data: Vec<_> = (1..=100).map(|i| (i as f64, 1000.0)).collect();
        let (c, refs) = fed(&[5 * MINUTE], &data);
        assert_eq!(c.increase(refs[0]), Increase { selected: 490.0, total: 5000.0 });
    }

    #[test]
    fn short_history_uses_what_exists() {
        let (c, refs) = fed(&[HOUR], &[(1.0, 10.0), (2.0, 10.0)]);
        assert_eq!(c.increase(refs[0]), Increase { selected: 3.0, total: 20.0 });
    }

    #[test]
    fn coarse_levels_are_exact_on_their_boundaries_and_interpolate_between() {
        let data = vec![(1.0, 1.0); 40 * 24 * 60];
        let (c, refs) = fed(&[30 * DAY], &data);
        // Uniform traffic: interpolation is exact, and 30d holds 43,200 minutes.
        assert_eq!(c.increase(refs[0]).total, 43_200.0);
    }

    /// Bursty minutes: errors in runs, totals from a few to thousands, with idle minutes.
    fn bursty(n: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let total: f64 = [0.0, 3.0, 40.0, 250.0, 7_000.0][(i * 7 + i / 13) % 5];
                let errors = if (i / 17) % 3 == 0 { (total / 4.0).floor() } else { 0.0 };
                (errors, total)
            })
            .collect()
    }

    /// The exact increase over the last `span` of the first `n` minutes of `data`.
    fn exact(data: &[(f64, f64)], n: usize, span: Millis) -> Increase {
        let minutes = (span / MINUTE) as usize;
        let window = &data[n.saturating_sub(minutes)..n];
        Increase { selected: window.iter().map(|m| m.0).sum(), total: window.iter().map(|m| m.1).sum() }
    }

    /// Feeds `data` minute by minute and, after each minute, hands `check` what every window of
    /// `spans` reads, what it should read, and a label for failures.
    fn for_every_minute(spans: &[Millis], data: &[(f64, f64)], check: impl Fn(Millis, Increase, Increase, &str)) {
        let (mut c, refs) = Counters::plan(spans);
        c.advance(T0);
        for (i, &minute) in data.iter().enumerate() {
            add_minute(&mut c, i as Millis + 1, minute);
            for &w in &refs {
                check(w.span, c.increase(w), exact(data, i + 1, w.span), &format!("minute {i}, window {}", w.span));
            }
        }
    }

    #[test]
    fn ticket_windows_read_to_the_minute() {
        let alert_windows: Vec<Millis> = DEFAULT_SPANS.into_iter().filter(|&s| s <= 3 * DAY).collect();
        for_every_minute(&alert_windows, &bursty(4 * 24 * 60 + 17), |span, got, want, label| {
            // A bucket of more than 255 events keeps its minutes to 1/255 of its increase.
            let slack = |x: f64| if span >= DAY { x * 1e-9 + 5.0 * 7_000.0 / 510.0 } else { 0.0 };
            assert!((got.selected - want.selected).abs() <= slack(want.selected), "{label}: {got:?} {want:?}");
            assert!((got.total - want.total).abs() <= slack(want.total), "{label}: {got:?} {want:?}");
        });
    }

    #[test]
    fn a_good_total_sli_keeps_its_bad_events_exact() {
        // 7,000 requests a minute, a few bad: the buckets are far over 255 events, yet the bad
        // events (total - good), which the burn rate divides, read exactly at every minute.
        let data: Vec<_> = (0..4 * 24 * 60).map(|i| (7_000.0 - ((i * 7) % 4) as f64, 7_000.0)).collect();
        for_every_minute(&[DAY, 3 * DAY], &data, |_, got, want, label| {
            assert_eq!(got.total - got.selected, want.total - want.selected, "{label}");
        });
    }

    #[test]
    fn small_buckets_read_exactly_on_the_detail_level() {
        // Every 5m bucket holds at most 255 events, so 1d and 3d are exact at every minute.
        let data: Vec<_> = (0..4 * 24 * 60)
            .map(|i| {
                let total = ((i * 31) % 50) as f64;
                (total.min(((i * 13) % 5) as f64), total)
            })
            .collect();
        for_every_minute(&[DAY, 3 * DAY], &data, |_, got, want, label| assert_eq!(got, want, "{label}"));
    }

    #[test]
    fn restore_from_dirty_pages_reproduces_every_window() {
        let spans = [30 * DAY, HOUR, 5 * MINUTE, DAY, 3 * DAY];
        let data = bursty(5000);
        let (mut original, refs) = fed(&spans, &data[..3000]);
        // Two exports, as two flushes would write them; later pages overwrite earlier ones.
        let (mut pages, replaces) = original.take_dirty_pages();
        for (i, &(sel, tot)) in data[3000..].iter().enumerate() {
            add_minute(&mut original, 3001 + i as Millis, (sel, tot));
        }
        pages.extend(original.take_dirty_pages().0);
        assert!(!replaces, "same plan: pages update in place");
        let (mut restored, _) = Counters::plan(&spans);
        restored.restore(&original.header(), &pages).expect("pages fit");
        for &w in &refs {
            assert_eq!(restored.increase(w), original.increase(w), "window {}", w.span);
        }
        assert!(original.take_dirty_pages().0.is_empty(), "export clears dirty pages");
    }

    /// Counters as the last release kept them: a 1h level for 30d and no minute detail.
    fn saved_by_last_release(data: &[(f64, f64)]) -> (CountersHeader, Vec<Page>) {
        let levels = vec![Level::new(MINUTE, 362), Level::new(5 * MINUTE, 866), Level::new(HOUR, 722)];
        let mut old = Counters::with_levels(levels);
        old.advance(T0);
        for (i, &(sel, tot)) in data.iter().enumerate() {
            add_minute(&mut old, i as Millis + 1, (sel, tot));
        }
        let mut header = old.header();
        header.open = None;
        let pages = old.take_dirty_pages().0.into_iter().map(|p| Page { detail: Vec::new(), ..p }).collect();
        (header, pages)
    }

    #[test]
    fn an_upgrade_keeps_history_saved_under_the_last_plan() {
        let mut data = bursty(10 * 24 * 60);
        let (header, pages) = saved_by_last_release(&data);
        let (mut c, refs) = Counters::plan(&DEFAULT_SPANS);
        c.restore(&header, &pages).expect("resampled");
        // The minute level carries over exactly; the budget window reads the hour boundaries.
        for w in refs.iter().filter(|w| w.span <= 6 * HOUR || w.span == 30 * DAY) {
            assert_eq!(c.increase(*w), exact(&data, data.len(), w.span), "window {}", w.span);
        }
        assert!(c.take_dirty_pages().1, "the first flush after an upgrade rewrites every page");
        // New minutes are kept with detail, and 1d becomes exact once the old ones leave it.
        let more = bursty(24 * 60 + 3);
        for (i, &(sel, tot)) in more.iter().enumerate() {
            add_minute(&mut c, (data.len() + i + 1) as Millis, (sel, tot));
        }
        data.extend(more);
        let day = refs.iter().find(|w| w.span == DAY).expect("1d");
        let (got, want) = (c.increase(*day), exact(&data, data.len(), DAY));
        assert!((got.total - want.total).abs() <= 5.0 * 7_000.0 / 510.0, "{got:?} {want:?}");
    }

    #[test]
    fn pages_without_detail_read_as_before() {
        let data = bursty(2 * 24 * 60);
        let (header, pages) = saved_by_last_release(&data);
        let spans = [5 * MINUTE, DAY, 3 * DAY, 30 * DAY];
        let mut same_plan = Counters::with_levels(header.levels.iter().map(|&(w, n, _)| Level::new(w, n)).collect());
        same_plan.restore(&header, &pages).expect("same plan");
        let (mut linear, _) = Counters::plan(&spans);
        linear.levels = vec![Level::new(MINUTE, 362), Level::new(5 * MINUTE, 866), Level::new(HOUR, 722)];
        for level in &mut linear.levels {
            level.ring = Ring::Plain(vec![[0.0; 2]; level.len()].into_boxed_slice());
        }
        linear.restore_same_plan(&header, &pages).expect("same plan");
        let five_minutes = WindowRef { span: DAY, level: 1 };
        assert_eq!(same_plan.increase(five_minutes), linear.increase(five_minutes));
    }

    #[test]
    fn long_gap_keeps_old_boundaries_consistent() {
        let (mut c, refs) = fed(&[HOUR], &[(5.0, 5.0)]);
        c.add(T0 + 10 * DAY, TOTAL, 7.0);
        assert_eq!(c.increase(refs[0]), Increase { selected: 0.0, total: 7.0 });
    }
}
