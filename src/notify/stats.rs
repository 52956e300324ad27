//! Delivery counters for `/metrics`: outbox depth, deliveries and failures per transport, and
//! a histogram of decision-to-delivery latency. Written by the delivery task, read by
//! `metrics::render`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Millis;
use crate::metrics::{Histogram, Reading};

/// The transports, in the order counters are kept and rendered.
pub const ROUTE_KINDS: [&str; 5] = ["slack", "email", "webhook", "alertmanager", "pagerduty"];

/// Upper bounds (seconds) of the latency histogram: sub-second is the loopback norm, seconds a
/// healthy remote API, minutes retries and backoff, an hour a real outage.
pub const LATENCY_BUCKETS: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];

pub struct NotifyStats {
    /// Items in the outbox after the last delivery pass.
    pub outbox_depth: AtomicU64,
    delivered: [AtomicU64; ROUTE_KINDS.len()],
    failures: [AtomicU64; ROUTE_KINDS.len()],
    latency: Histogram<{ LATENCY_BUCKETS.len() }>,
}

impl Default for NotifyStats {
    fn default() -> Self {
        NotifyStats {
            outbox_depth: AtomicU64::new(0),
            delivered: Default::default(),
            failures: Default::default(),
            latency: Histogram::new(&LATENCY_BUCKETS),
        }
    }
}

impl NotifyStats {
    pub fn delivered(&self, route_kind: &str, latency: Millis) {
        if let Some(i) = index(route_kind) {
            self.delivered[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(Duration::from_millis(latency.max(0) as u64));
    }

    pub fn failed(&self, route_kind: &str) {
        if let Some(i) = index(route_kind) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(route_kind, delivered, failures)` for every transport.
    pub fn per_route_kind(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        ROUTE_KINDS.iter().enumerate().map(|(i, kind)| {
            (*kind, self.delivered[i].load(Ordering::Relaxed), self.failures[i].load(Ordering::Relaxed))
        })
    }

    pub fn latency(&self) -> Reading {
        self.latency.read()
    }
}

fn index(route_kind: &str) -> Option<usize> {
    ROUTE_KINDS.iter().position(|k| *k == route_kind)
}
