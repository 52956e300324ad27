//! `sloguard demo-target`: a synthetic scrape target with a scripted incident, so a newcomer
//! sees a burn-rate page fire within a minute of starting it.
//!
//! Owns a pure counter model (every value is a function of time elapsed since start, so no
//! background task and deterministic tests) and a small axum server exposing it on `/metrics`.
//! It knows nothing of SLOs or the engine, and is never used to serve real data.
//!
//! The page carries its own `job` (and, for payments, `instance`) labels. A real Prometheus
//! scraping it needs `honor_labels: true`, or it renames them to `exported_job`/`exported_instance`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Checkout requests per second: high enough that a 5-minute window holds tens of thousands of
/// requests, so ratios are smooth, low enough to read the counters.
pub const DEFAULT_RATE: f64 = 100.0;

/// Quiet time before the incident: long enough for Prometheus to collect a baseline, short
/// enough that the newcomer is still watching.
pub const DEFAULT_INCIDENT_AFTER: Duration = Duration::from_secs(20);

/// Incident length: long enough for both the 5m and 1h page windows to fire and for the budget
/// to drop visibly (~12% of a 30-day 99.9% budget at the default ratio), then recover.
pub const DEFAULT_INCIDENT_FOR: Duration = Duration::from_secs(10 * 60);

/// Share of checkout requests answered 5xx during the incident: 500× the 0.1% a 99.9% SLO
/// allows, far above the 14.4× page threshold, so the page fires on the first evaluations.
pub const DEFAULT_INCIDENT_ERROR_RATIO: f64 = 0.5;

/// Share of checkout requests answered 5xx outside the incident: half of a 99.9% SLO's
/// allowance, so the budget burns slowly and no alert fires.
const BASELINE_ERROR_RATIO: f64 = 0.0005;

/// Share of checkout requests answered 404 in every phase. Present so that an availability
/// selector has client errors to exclude.
const CLIENT_ERROR_RATIO: f64 = 0.01;

/// Split of checkout 5xx between 500 and 503 (the rest), so `code=~"5.."` has two series to sum.
const SHARE_500_OF_5XX: f64 = 0.6;

/// Payments request rates per instance as a share of checkout's; unequal so per-instance
/// series are distinguishable. Payments is not part of the incident: a healthy contrast.
const PAYMENTS_SHARES: [(&str, f64); 2] = [("payments-0", 0.25), ("payments-1", 0.2)];

/// Share of payments requests answered 500: well within a 99.9% SLO.
const PAYMENTS_ERROR_RATIO: f64 = 0.0002;

/// Counters start as if the target had been up this long at baseline rates, so they look like a
/// production service's (and a restart of the demo looks like a counter reset, as it would).
const INITIAL_UPTIME: Duration = Duration::from_secs(3 * 24 * 3600);

/// Checkout latency histogram: `(le, cumulative share at baseline, during incident)`. The
/// `+Inf` bucket (share 1) is implied. Latency degrades with the errors, as it usually does.
const LATENCY_BUCKETS: [(&str, f64, f64); 3] = [("0.1", 0.85, 0.30), ("0.3", 0.996, 0.60), ("1", 0.999, 0.85)];

/// Mean checkout latency in seconds `(baseline, incident)`, for `_sum`.
const MEAN_LATENCY_SECONDS: (f64, f64) = (0.06, 0.45);

/// Content type of the Prometheus text exposition format.
const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the demo target simulates.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Checkout requests per second (payments run at a fixed share of it). Negative or NaN is 0.
    pub rate: f64,
    /// Time from start until checkout's incident begins.
    pub incident_after: Duration,
    /// How long the incident lasts; zero disables it.
    pub incident_for: Duration,
    /// Share of checkout requests answered 5xx during the incident, clamped to
    /// `[0, 1 - CLIENT_ERROR_RATIO]` (404s keep their share).
    pub incident_error_ratio: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            rate: DEFAULT_RATE,
            incident_after: DEFAULT_INCIDENT_AFTER,
            incident_for: DEFAULT_INCIDENT_FOR,
            incident_error_ratio: DEFAULT_INCIDENT_ERROR_RATIO,
        }
    }
}

/// Binds `addr` (use port 0 for any free port) and reports the address actually bound.
pub async fn bind(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `/` and `/metrics` on `listener` until `shutdown` resolves, then drains connections.
/// Elapsed time, and so every counter, starts now.
pub async fn serve(
    listener: TcpListener,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let state = Arc::new(DemoState { opts, started: Instant::now() });
    let app = Router::new().route("/", get(index)).route("/metrics", get(metrics)).with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

struct DemoState {
    opts: DemoOptions,
    /// Monotonic, so a wall-clock step never makes counters jump or run backwards.
    started: Instant,
}

async fn index() -> &'static str {
    "sloguard demo target: synthetic checkout and payments traffic with a scripted checkout \
     incident; metrics at /metrics\n"
}

async fn metrics(State(state): State<Arc<DemoState>>) -> impl IntoResponse {
    let body = render(&state.opts, state.started.elapsed());
    ([(CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)], body)
}

/// Seconds spent at baseline rates and in the incident, from the simulated boot
/// (`INITIAL_UPTIME` before start) until `elapsed` after start.
#[derive(Debug, Clone, Copy)]
struct Phases {
    baseline_s: f64,
    incident_s: f64,
}

impl Phases {
    fn at(opts: &DemoOptions, elapsed: Duration) -> Phases {
        let incident_end = opts.incident_after.saturating_add(opts.incident_for);
        let incident = elapsed.min(incident_end).saturating_sub(opts.incident_after);
        let baseline = INITIAL_UPTIME + (elapsed - incident);
        Phases { baseline_s: baseline.as_secs_f64(), incident_s: incident.as_secs_f64() }
    }
}

/// A series' event rate (per second) in each phase. Counters integrate it piecewise, so they
/// only ever grow: each rate is non-negative and phase durations only grow with elapsed time.
#[derive(Debug, Clone, Copy)]
struct Rate {
    baseline: f64,
    incident: f64,
}

impl Rate {
    fn steady(per_s: f64) -> Rate {
        Rate { baseline: per_s, incident: per_s }
    }

    /// Events up to the end of `phases`, before flooring.
    fn integral(self, phases: Phases) -> f64 {
        self.baseline * phases.baseline_s + self.incident * phases.incident_s
    }

    /// Counter value: the floor of the integral, monotonic because the floor is.
    fn count(self, phases: Phases) -> f64 {
        self.integral(phases).floor()
    }
}

/// Every `http_requests_total` series: its label block and its rate.
fn request_series(opts: &DemoOptions) -> Vec<(String, Rate)> {
    let rate = opts.rate.max(0.0);
    // `clamp` keeps NaN, which would make every checkout counter NaN; treat it as no errors.
    let incident_5xx = if opts.incident_error_ratio.is_nan() {
        0.0
    } else {
        opts.incident_error_ratio.clamp(0.0, 1.0 - CLIENT_ERROR_RATIO)
    };
    let ok_share = |ratio_5xx: f64| 1.0 - CLIENT_ERROR_RATIO - ratio_5xx;
    let mut series = vec![
        (
            r#"job="checkout",code="200""#.to_string(),
            Rate { baseline: rate * ok_share(BASELINE_ERROR_RATIO), incident: rate * ok_share(incident_5xx) },
        ),
        (r#"job="checkout",code="404""#.to_string(), Rate::steady(rate * CLIENT_ERROR_RATIO)),
    ];
    for (code, share) in [("500", SHARE_500_OF_5XX), ("503", 1.0 - SHARE_500_OF_5XX)] {
        series.push((
            format!(r#"job="checkout",code="{code}""#),
            Rate { baseline: rate * BASELINE_ERROR_RATIO * share, incident: rate * incident_5xx * share },
        ));
    }
    for (instance, share) in PAYMENTS_SHARES {
        let instance_rate = rate * share;
        series.push((
            format!(r#"job="payments",instance="{instance}",code="200""#),
            Rate::steady(instance_rate * (1.0 - PAYMENTS_ERROR_RATIO)),
        ));
        series.push((
            format!(r#"job="payments",instance="{instance}",code="500""#),
            Rate::steady(instance_rate * PAYMENTS_ERROR_RATIO),
        ));
    }
    series
}

/// The whole `/metrics` page after `elapsed` since start.
fn render(opts: &DemoOptions, elapsed: Duration) -> String {
    use std::fmt::Write;

    let phases = Phases::at(opts, elapsed);
    let rate = opts.rate.max(0.0);
    let mut page = String::new();
    // Writing to a String cannot fail, hence the ignored results.
    let _ = writeln!(page, "# HELP http_requests_total HTTP requests handled, by status code (synthetic).");
    let _ = writeln!(page, "# TYPE http_requests_total counter");
    for (labels, series_rate) in request_series(opts) {
        let _ = writeln!(page, "http_requests_total{{{labels}}} {}", series_rate.count(phases));
    }
    let _ = writeln!(page, "# HELP http_request_duration_seconds Checkout request latency in seconds (synthetic).");
    let _ = writeln!(page, "# TYPE http_request_duration_seconds histogram");
    for (le, baseline_share, incident_share) in LATENCY_BUCKETS {
        let bucket = Rate { baseline: rate * baseline_share, incident: rate * incident_share };
        let _ = writeln!(
            page,
            r#"http_request_duration_seconds_bucket{{job="checkout",le="{le}"}} {}"#,
            bucket.count(phases)
        );
    }
    // `+Inf` and `_count` come from the same number, so they agree exactly as the format requires.
    let total = Rate::steady(rate).count(phases);
    let _ = writeln!(page, r#"http_request_duration_seconds_bucket{{job="checkout",le="+Inf"}} {total}"#);
    let latency_sum = Rate { baseline: rate * MEAN_LATENCY_SECONDS.0, incident: rate * MEAN_LATENCY_SECONDS.1 };
    let _ =
        writeln!(page, r#"http_request_duration_seconds_sum{{job="checkout"}} {:.3}"#, latency_sum.integral(phases));
    let _ = writeln!(page, r#"http_request_duration_seconds_count{{job="checkout"}} {total}"#);
    page
}

#[cfg(test)]
mod tests;
