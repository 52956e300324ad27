//! Time slices: a gauge SLI (a probe's success, a duration) as counters. Slices are aligned to
//! the Unix epoch; each closed slice's samples reduce to one value, and the slice adds one to
//! the total and, if the value fails the test, one to the bad count, at the slice's end. From
//! there on a time-slice SLO is an errors/total SLO over slices: same windows, burns, tiers,
//! budget and persistence.

use super::window::{Counters, SELECTED, TOTAL};
use crate::clock::Millis;
use crate::spec::{Reduce, SliceTest};

#[derive(Debug, Clone)]
pub(super) struct Slicer {
    slice: Millis,
    test: SliceTest,
    reduce: Reduce,
    /// The slice samples are arriving for: its start and its samples reduced so far (the sum
    /// for `avg`, with the count).
    open: Option<Open>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    start: Millis,
    value: f64,
    n: u32,
}

impl Slicer {
    pub fn new(slice: Millis, test: SliceTest, reduce: Reduce) -> Slicer {
        Slicer { slice, test, reduce, open: None }
    }

    pub fn length(&self) -> Millis {
        self.slice
    }

    /// Takes one sample of any series the SLI matches; a sample of a later slice closes the
    /// open one first.
    pub fn observe(&mut self, at: Millis, value: f64, counters: &mut Counters) {
        let start = at - at.rem_euclid(self.slice);
        match &mut self.open {
            Some(open) if open.start == start => {
                open.value = match self.reduce {
                    Reduce::Min => open.value.min(value),
                    Reduce::Max => open.value.max(value),
                    Reduce::Avg => open.value + value,
                };
                open.n += 1;
                return;
            }
            // A late sample of a closed slice: that slice is counted already.
            Some(open) if start < open.start => return,
            _ => self.close_before(Millis::MAX, counters),
        }
        self.open = Some(Open { start, value, n: 1 });
    }

    /// Closes the open slice if it ends at or before `now`: its samples are all in.
    pub fn close_before(&mut self, now: Millis, counters: &mut Counters) {
        let Some(open) = self.open else { return };
        let end = open.start + self.slice;
        if end > now {
            return;
        }
        self.open = None;
        let value = match self.reduce {
            Reduce::Avg => open.value / f64::from(open.n),
            Reduce::Min | Reduce::Max => open.value,
        };
        counters.add(end, TOTAL, 1.0);
        if !self.test.holds(value) {
            counters.add(end, SELECTED, 1.0);
        }
    }
}
