//! Request durations per route, for `sloguard_http_request_duration_seconds`: deploy tooling
//! polls the gate, and its operators alert when it slows down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::ROUTES;
use crate::daemon::Shared;
use crate::metrics::{Histogram, Reading};

/// Upper bounds in seconds: a gate answer takes tens of microseconds, so the finest buckets
/// resolve the sub-millisecond goal; the event log and `/metrics` at 10,000 SLOs take longer.
const BOUNDS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// One histogram per entry of [`ROUTES`], in the same order.
pub struct RequestStats {
    routes: [Histogram<{ BOUNDS.len() }>; ROUTES.len()],
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats { routes: std::array::from_fn(|_| Histogram::new(&BOUNDS)) }
    }
}

impl RequestStats {
    pub fn observe(&self, route: usize, duration: Duration) {
        self.routes[route].observe(duration);
    }

    /// Each route's template and what its histogram holds.
    pub fn per_route(&self) -> impl Iterator<Item = (&'static str, Reading)> + '_ {
        ROUTES.iter().zip(&self.routes).map(|(route, histogram)| (*route, histogram.read()))
    }
}

/// Middleware state: where to record, and which route this layer wraps.
#[derive(Clone)]
pub(super) struct Timed {
    pub shared: Arc<Shared>,
    pub route: usize,
}

/// Times the route's handler, from the parsed request to the response being ready; the time
/// spent writing the response out is the kernel's and the client's, not the daemon's.
pub(super) async fn time_request(State(timed): State<Timed>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    timed.shared.stats.requests.observe(timed.route, started.elapsed());
    response
}
