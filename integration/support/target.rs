//! A scrape target whose request counters the test drives: `req_total{svc,code}` per service,
//! served on loopback from the test process. An incident is a burst of 5xx; a recovery a
//! flood of 200s that dilutes every window below its burn threshold.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;

/// Requests a service has served before the test starts, all good: the baseline.
const BASELINE_OK: f64 = 1_000.0;
/// An incident: as many failures as successes, a 50% error ratio, 500× a 99.9% SLO's budget.
const INCIDENT_REQUESTS: f64 = 1_000.0;
/// A recovery: enough good requests that every window's error ratio falls to about 1e-4.
const RECOVERY_REQUESTS: f64 = 20_000_000.0;

type Counters = Arc<Mutex<BTreeMap<String, [f64; 2]>>>;

pub struct Target {
    addr: SocketAddr,
    counters: Counters,
}

impl Target {
    pub async fn start(services: &[String]) -> Target {
        let counters: Counters =
            Arc::new(Mutex::new(services.iter().map(|s| (s.clone(), [BASELINE_OK, 0.0])).collect()));
        let app = axum::Router::new().route("/metrics", axum::routing::get(metrics)).with_state(counters.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let addr = listener.local_addr().expect("target address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Target { addr, counters }
    }

    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    pub fn incident(&self, service: &str) {
        let mut counters = self.counters.lock().expect("counters lock");
        let [ok, err] = counters.get_mut(service).expect("known service");
        *ok += INCIDENT_REQUESTS;
        *err += INCIDENT_REQUESTS;
    }

    pub fn recover(&self, service: &str) {
        self.counters.lock().expect("counters lock").get_mut(service).expect("known service")[0] += RECOVERY_REQUESTS;
    }
}

async fn metrics(State(counters): State<Counters>) -> String {
    let mut page = String::from("# TYPE req_total counter\n");
    for (service, [ok, err]) in counters.lock().expect("counters lock").iter() {
        let _ = writeln!(page, "req_total{{svc=\"{service}\",code=\"200\"}} {ok}");
        let _ = writeln!(page, "req_total{{svc=\"{service}\",code=\"500\"}} {err}");
    }
    page
}
