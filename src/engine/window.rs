//! Exact-enough rolling windows in O(1) per lookup and bounded memory.
//!
//! Each SLO keeps two cumulative counters (selected events, total events) since the engine first
//! saw it. Instead of raw samples we record the cumulative value at every bucket boundary on a few
//! *levels* of different width (1m, 5m, 1h, 1d). The increase over `(t - W, t]` is then
//! `cum(t) - cum(t - W)`, where `cum(t - W)` is read from the finest level that spans `W`:
//! exactly when `t - W` falls on a boundary of that level, otherwise interpolated linearly
//! between the two boundaries around it.
//!
//! Why this shape: a ring of per-minute buckets for a 30-day window costs 43,200 slots per SLO
//! and summing it per evaluation costs microseconds. Boundaries of cumulative values make every
//! window a two-point lookup, and the ladder keeps the ring small: with the default tiers the
//! levels are 1m×6h, 5m×3d and 1h×30d, under 2,000 slots (~31 KiB). Windows up to 6h are exact to
//! the minute; 1d and 3d to within a 5-minute bucket (interpolated); the budget window to within
//! an hour (interpolated). Revisit if sub-minute scrape resolution must be exact in short windows.

use serde::{Deserialize, Serialize};

use crate::clock::{DAY, HOUR, MINUTE, Millis};

/// Candidate bucket widths, finest first. A window uses the finest width that covers it in at
/// most [`MAX_SLOTS_PER_WINDOW`] boundaries.
const LADDER: [Millis; 4] = [MINUTE, 5 * MINUTE, HOUR, DAY];

/// Boundaries a single window may span on its level. 864 lets 3d use 5m buckets and 30d use 1h
/// buckets, which together keep an SLO with the Workbook tiers under 32 KiB.
const MAX_SLOTS_PER_WINDOW: i64 = 864;

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
    slots: Box<[[f64; 2]]>,
    /// Highest boundary index whose slot holds its final value.
    filled_through: i64,
    /// Bit `p` set: page `p` changed since the last export. At most 866 slots = 14 pages.
    dirty: u64,
}

impl Level {
    fn new(width: Millis, span: Millis) -> Level {
        // Two spare slots: one for the boundary at or before `t - W`, one for the partial bucket.
        let n_slots = (span / width + 2) as usize;
        debug_assert!(n_slots.div_ceil(PAGE_SLOTS) <= 64, "dirty bitmap holds 64 pages");
        Level { width, slots: vec![[0.0; 2]; n_slots].into_boxed_slice(), filled_through: i64::MIN, dirty: 0 }
    }

    fn slot(&self, k: i64) -> usize {
        k.rem_euclid(self.slots.len() as i64) as usize
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
        let mut levels: Vec<Level> = Vec::new();
        let mut spans_by_width: Vec<(Millis, Millis)> = Vec::new();
        for &span in spans {
            let width = width_for(span);
            match spans_by_width.iter_mut().find(|(w, _)| *w == width) {
                Some((_, longest)) => *longest = (*longest).max(span),
                None => spans_by_width.push((width, span)),
            }
        }
        spans_by_width.sort_unstable();
        for &(width, longest) in &spans_by_width {
            levels.push(Level::new(width, longest));
        }
        let refs = spans
            .iter()
            .map(|&span| {
                let width = width_for(span);
                let level = levels.iter().position(|l| l.width == width).expect("planned above");
                WindowRef { span, level }
            })
            .collect();
        (Counters { levels, cum: [0.0; 2], origin: None, now: Millis::MIN }, refs)
    }

    /// Bytes held by this SLO's rings, for the memory budget (see benches/engine.rs).
    pub fn heap_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.slots.len() * std::mem::size_of::<[f64; 2]>()).sum()
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
        for level in &mut self.levels {
            let last = ceil_div(t, level.width) - 1;
            let n_slots = level.slots.len() as i64;
            let first = (level.filled_through + 1).max(last - n_slots + 1);
            for k in first..=last {
                let i = level.slot(k);
                level.slots[i] = self.cum;
                level.dirty |= 1 << (i / PAGE_SLOTS);
            }
            level.filled_through = last;
        }
        self.now = t;
    }

    /// Adds an increase observed at `t`. A sample older than the latest instant counts at the
    /// latest instant: windows only move forward, and late data is better late than lost.
    pub fn add(&mut self, t: Millis, slot: usize, delta: f64) {
        self.advance(t);
        self.cum[slot] += delta;
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

    fn cum_at(&self, level: usize, t: Millis) -> [f64; 2] {
        let origin = match self.origin {
            Some(o) if t >= o => o,
            _ => return [0.0; 2],
        };
        let level = &self.levels[level];
        let k = t.div_euclid(level.width);
        let (lo_t, lo) =
            if k * level.width < origin { (origin, [0.0; 2]) } else { (k * level.width, self.boundary(level, k)) };
        if lo_t == t {
            return lo;
        }
        let (hi_t, hi) = if k < level.filled_through {
            ((k + 1) * level.width, self.boundary(level, k + 1))
        } else {
            (self.now, self.cum)
        };
        if hi_t <= lo_t {
            return lo;
        }
        let frac = (t - lo_t) as f64 / (hi_t - lo_t) as f64;
        [lo[0] + (hi[0] - lo[0]) * frac, lo[1] + (hi[1] - lo[1]) * frac]
    }

    fn boundary(&self, level: &Level, k: i64) -> [f64; 2] {
        if k > level.filled_through { self.cum } else { level.slots[level.slot(k)] }
    }
}

/// The persistable header of [`Counters`]; ring contents travel separately as [`Page`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountersHeader {
    pub cum: [f64; 2],
    pub origin: Option<Millis>,
    pub now: Millis,
    /// `(width, slot count, filled_through)` per level; restoring requires the same plan.
    pub levels: Vec<(Millis, usize, i64)>,
}

/// A run of up to [`PAGE_SLOTS`] ring slots of one level.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub level: usize,
    pub index: usize,
    pub slots: Vec<[f64; 2]>,
}

/// Why persisted counters could not be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreError {
    /// The persisted level plan differs from the one the current spec yields.
    #[error("persisted windows were planned differently (levels {persisted:?}, now {current:?})")]
    PlanChanged { persisted: Vec<(Millis, usize)>, current: Vec<(Millis, usize)> },
    /// A page points outside its ring.
    #[error("persisted page {index} of level {level} is out of range")]
    PageOutOfRange { level: usize, index: usize },
}

impl Counters {
    pub fn header(&self) -> CountersHeader {
        CountersHeader {
            cum: self.cum,
            origin: self.origin,
            now: self.now,
            levels: self.levels.iter().map(|l| (l.width, l.slots.len(), l.filled_through)).collect(),
        }
    }

    /// The level plan, `(width, slots)` per level: equal plans can share persisted rings.
    pub fn plan_signature(&self) -> Vec<(Millis, usize)> {
        self.levels.iter().map(|l| (l.width, l.slots.len())).collect()
    }

    /// Pages changed since the last call (all pages on the first call after a restore).
    pub fn take_dirty_pages(&mut self) -> Vec<Page> {
        let mut pages = Vec::new();
        for (level_index, level) in self.levels.iter_mut().enumerate() {
            let mut dirty = std::mem::take(&mut level.dirty);
            while dirty != 0 {
                let index = dirty.trailing_zeros() as usize;
                dirty &= dirty - 1;
                let start = index * PAGE_SLOTS;
                let end = (start + PAGE_SLOTS).min(level.slots.len());
                pages.push(Page { level: level_index, index, slots: level.slots[start..end].to_vec() });
            }
        }
        pages
    }

    /// Replaces this (freshly planned) state with a persisted one.
    pub fn restore(&mut self, header: &CountersHeader, pages: &[Page]) -> Result<(), RestoreError> {
        let persisted: Vec<(Millis, usize)> = header.levels.iter().map(|&(w, n, _)| (w, n)).collect();
        if persisted != self.plan_signature() {
            return Err(RestoreError::PlanChanged { persisted, current: self.plan_signature() });
        }
        for page in pages {
            let level = self
                .levels
                .get_mut(page.level)
                .ok_or(RestoreError::PageOutOfRange { level: page.level, index: page.index })?;
            let start = page.index * PAGE_SLOTS;
            let target = level
                .slots
                .get_mut(start..start + page.slots.len())
                .ok_or(RestoreError::PageOutOfRange { level: page.level, index: page.index })?;
            target.copy_from_slice(&page.slots);
        }
        for (level, &(_, _, filled_through)) in self.levels.iter_mut().zip(&header.levels) {
            level.filled_through = filled_through;
            level.dirty = 0;
        }
        self.cum = header.cum;
        self.origin = header.origin;
        self.now = header.now;
        Ok(())
    }
}

fn ceil_div(a: Millis, b: Millis) -> i64 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_767_225_600_000;

    /// Feeds `per_minute` increases at one-minute steps and returns the counters.
    fn fed(spans: &[Millis], per_minute: &[(f64, f64)]) -> (Counters, Vec<WindowRef>) {
        let (mut c, refs) = Counters::plan(spans);
        c.advance(T0);
        for (i, &(sel, tot)) in per_minute.iter().enumerate() {
            let t = T0 + (i as Millis + 1) * MINUTE;
            c.add(t, SELECTED, sel);
            c.add(t, TOTAL, tot);
        }
        (c, refs)
    }

    #[test]
    fn default_tiers_fit_the_memory_budget() {
        let spans = [30 * DAY, HOUR, 5 * MINUTE, 6 * HOUR, 30 * MINUTE, DAY, 2 * HOUR, 3 * DAY];
        let (c, _) = Counters::plan(&spans);
        assert!(c.heap_bytes() <= 32 * 1024, "{} bytes", c.heap_bytes());
        assert_eq!(c.levels.len(), 3);
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
        let data = vec![(1.0, 1.0); 3 * 24 * 60];
        let (c, refs) = fed(&[DAY], &data);
        // Uniform traffic: interpolation is exact, and 1d holds 1440 minutes.
        assert_eq!(c.increase(refs[0]).total, 1440.0);
    }

    #[test]
    fn restore_from_dirty_pages_reproduces_every_window() {
        let spans = [30 * DAY, HOUR, 5 * MINUTE, DAY, 3 * DAY];
        let data: Vec<_> = (0..5000).map(|i| ((i % 7) as f64, 100.0 + (i % 13) as f64)).collect();
        let (mut original, refs) = fed(&spans, &data[..3000]);
        // Two exports, as two flushes would write them; later pages overwrite earlier ones.
        let mut pages = original.take_dirty_pages();
        for (i, &(sel, tot)) in data[3000..].iter().enumerate() {
            let t = T0 + (3001 + i as Millis) * MINUTE;
            original.add(t, SELECTED, sel);
            original.add(t, TOTAL, tot);
        }
        pages.extend(original.take_dirty_pages());
        let (mut restored, _) = Counters::plan(&spans);
        restored.restore(&original.header(), &pages).expect("same plan");
        for &w in &refs {
            assert_eq!(restored.increase(w), original.increase(w), "window {}", w.span);
        }
        assert!(original.take_dirty_pages().is_empty(), "export clears dirty pages");
    }

    #[test]
    fn restore_refuses_a_different_plan() {
        let (original, _) = fed(&[HOUR], &[(1.0, 1.0)]);
        let (mut other, _) = Counters::plan(&[30 * DAY]);
        assert!(matches!(other.restore(&original.header(), &[]), Err(RestoreError::PlanChanged { .. })));
    }

    #[test]
    fn long_gap_keeps_old_boundaries_consistent() {
        let (mut c, refs) = fed(&[HOUR], &[(5.0, 5.0)]);
        c.add(T0 + 10 * DAY, TOTAL, 7.0);
        assert_eq!(c.increase(refs[0]), Increase { selected: 0.0, total: 7.0 });
    }
}
