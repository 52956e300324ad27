//! The daemon's own config file (`sloguard.yaml`): where to listen, where state lives, which
//! specs to load, and timing knobs. Validated types only; loading lives in `spec::load`'s
//! machinery so both files report errors the same way (`file:line:column: field: message`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How often the engine evaluates when no interval is configured: fine enough that a page fires
/// within seconds of the 5m window crossing, cheap enough for 10,000 SLOs (~5 ms per round).
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(10);
/// How often window pages are flushed: the most samples a crash can lose.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// How long events stay in the log: a quarter, enough for postmortems and quarterly reviews.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long SIGTERM waits for tasks to drain: under systemd's default TimeoutStopSec of 90 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// The file this came from, for reloads and messages.
    pub path: PathBuf,
    /// HTTP API and `/metrics`.
    pub listen: SocketAddr,
    /// sled database directory.
    pub data_dir: PathBuf,
    /// Spec files or directories, relative paths resolved against the config file's directory.
    pub specs: Vec<PathBuf>,
    pub evaluation_interval: Duration,
    pub flush_interval: Duration,
    pub event_retention: Duration,
    pub shutdown_grace: Duration,
}
