//! Helpers shared by the integration tests: ports, bounded waiting, the built binary, and the
//! real services the tests run against (`prometheus`), the daemon under test (`daemon`) and a
//! scrape target the tests control (`target`).

pub mod ctl_target;
pub mod daemon;
pub mod daemon_proc;
pub mod prometheus;
pub mod slack;
pub mod smtp;
pub mod target;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

/// How often `wait_until` polls: fast enough that tests do not idle, slow enough not to load a
/// 2-core CI machine with requests.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Prepares process-wide state every test needs: the one rustls crypto provider (ring), as `main`
/// installs it. Safe to call from every test; only the first call installs.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A loopback port that was free a moment ago. Another process can take it before the caller
/// binds it, so callers that spawn a server must tolerate a bind failure (see `prometheus`).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr of bound listener").port()
}

/// A loopback address on which nothing listens, for "server unreachable" tests.
pub fn closed_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// Polls `probe` until it yields `Some`, failing the test with `what` after `timeout`. Waiting
/// on real processes (Prometheus, the daemon) needs real time; paused time cannot drive them.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The `sloguard` binary cargo built for this test run.
pub fn sloguard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sloguard"))
}
