//! A scrape target the test controls: request counters it sets exactly, background traffic at a
//! chosen error mix, and modes that make it fail (HTTP 503) or serve a half-broken page.
//!
//! Runs on the test's own runtime, so it stops with the test. Counters only move when the test
//! says so (`add`) or at whole ticks of background traffic, which keeps every error ratio the
//! daemon computes exact and the assertions on budgets deterministic.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// How often background traffic adds its per-tick requests: ten ticks a second.
pub const TRAFFIC_TICK: Duration = Duration::from_millis(100);

/// What the target answers on `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A valid exposition page.
    Healthy,
    /// HTTP 503, as an overloaded or half-started exporter answers.
    Unavailable,
    /// A page whose error-counter line is cut short (no closing brace): the other lines parse.
    Malformed,
    /// A valid page without the request counters, as after an exporter's metric was renamed:
    /// the scrape succeeds, the SLI's series are gone.
    Vanished,
    /// A valid page whose error counter reads `NaN`, as a broken exporter's can.
    NotANumber,
}

#[derive(Debug)]
struct Counters {
    ok: u64,
    errors: u64,
    /// Requests added per traffic tick: `(ok, errors)`.
    traffic: (u64, u64),
    mode: Mode,
}

/// A running target, serving `http_requests_total{job=<job>,code="200"|"500"}`.
pub struct Target {
    addr: SocketAddr,
    state: Arc<Mutex<Counters>>,
}

impl Target {
    /// Starts a healthy target on a free loopback port with `ok` requests already counted (a
    /// target that has been up for a while) and no background traffic.
    pub async fn start(job: &str, ok: u64) -> Target {
        let state = Arc::new(Mutex::new(Counters { ok, errors: 0, traffic: (0, 0), mode: Mode::Healthy }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let addr = listener.local_addr().expect("target addr");
        let app = Router::new().route("/metrics", get(metrics)).with_state((job.to_string(), state.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("target server") });
        let ticking = Arc::downgrade(&state);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TRAFFIC_TICK);
            loop {
                ticker.tick().await;
                let Some(state) = ticking.upgrade() else { return };
                let mut c = state.lock().expect("target lock");
                c.ok += c.traffic.0;
                c.errors += c.traffic.1;
            }
        });
        Target { addr, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The scrape URL, as a spec lists it.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Counts `ok` more good requests and `errors` more failed ones, at once.
    pub fn add(&self, ok: u64, errors: u64) {
        let mut c = self.state.lock().expect("target lock");
        c.ok += ok;
        c.errors += errors;
    }

    /// Background traffic: `ok` good and `errors` failed requests every [`TRAFFIC_TICK`].
    pub fn set_traffic(&self, ok: u64, errors: u64) {
        self.state.lock().expect("target lock").traffic = (ok, errors);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().expect("target lock").mode = mode;
    }
}

async fn metrics(State((job, state)): State<(String, Arc<Mutex<Counters>>)>) -> Response {
    let (ok, errors, mode) = {
        let c = state.lock().expect("target lock");
        (c.ok, c.errors, c.mode)
    };
    let error_line = match mode {
        Mode::Unavailable => return (StatusCode::SERVICE_UNAVAILABLE, "overloaded\n").into_response(),
        Mode::Healthy => format!("http_requests_total{{job=\"{job}\",code=\"500\"}} {errors}"),
        Mode::Malformed => format!("http_requests_total{{job=\"{job}\",code=\"500\" {errors}"),
        Mode::NotANumber => format!("http_requests_total{{job=\"{job}\",code=\"500\"}} NaN"),
        Mode::Vanished => {
            let page = "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.7e9\n";
            return ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], page).into_response();
        }
    };
    let page = format!(
        "# HELP http_requests_total Requests handled.\n# TYPE http_requests_total counter\n\
         http_requests_total{{job=\"{job}\",code=\"200\"}} {ok}\n{error_line}\n"
    );
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], page).into_response()
}
