//! A Prometheus histogram over fixed bounds, updated from any thread without a lock: the API's
//! request durations and the delivery task's notification latency use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a histogram held when read: `(upper bound, cumulative count)` per bucket, `+Inf` last,
/// and the sum of observations in seconds.
pub struct Reading {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
}

pub struct Histogram<const N: usize> {
    /// Upper bounds in seconds, ascending; `+Inf` is implied after them.
    bounds: &'static [f64; N],
    /// Observations per bucket, not cumulative, so an observation is one increment.
    counts: [AtomicU64; N],
    above_last_bound: AtomicU64,
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub const fn new(bounds: &'static [f64; N]) -> Self {
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
            above_last_bound: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = self.bounds.iter().position(|bound| seconds <= *bound);
        bucket.map_or(&self.above_last_bound, |i| &self.counts[i]).fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn read(&self) -> Reading {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .chain([&f64::INFINITY])
            .zip(self.counts.iter().chain([&self.above_last_bound]))
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        Reading { buckets, sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive_of_their_bound() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];
        let histogram = Histogram::new(&BOUNDS);
        for ms in [1, 2, 10, 500] {
            histogram.observe(Duration::from_millis(ms));
        }
        let Reading { buckets, sum } = histogram.read();
        assert_eq!(buckets, [(0.001, 1), (0.01, 3), (0.1, 3), (f64::INFINITY, 4)]);
        assert!((sum - 0.513).abs() < 1e-12, "{sum}");
    }
}
