//! The daemon's own config file (`sloguard.yaml`): where to listen, where state lives, which
//! specs to load, and timing knobs. Loaded with the spec loader's machinery (`spec::check`), so
//! both files report errors the same way (`file:line:column: field: message`), all at once.
//!
//! ```yaml
//! listen: 127.0.0.1:9464           # required: IP address and port (quote IPv6: '[::]:9464')
//! data_dir: /var/lib/sloguard      # required
//! specs: /etc/sloguard/slo-specs   # required: a path or a list of paths (files or directories)
//! evaluation_interval: 10s         # optional, as are the three below; defaults below
//! flush_interval: 10s
//! event_retention: 90d
//! shutdown_grace: 10s
//! ```
//!
//! Relative `data_dir` and `specs` paths are relative to the config file's directory.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::spec::check::{Checker, parse_document, process_env, read_text};
use crate::spec::{ServiceSpec, SourceRule, SpecErrors, load_specs};

#[cfg(test)]
mod tests;

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

/// Loads and validates a daemon config file. Spec paths are resolved but not read; see
/// [`load_daemon`] for loading the specs too.
pub fn load_config(path: &Path) -> Result<DaemonConfig, SpecErrors> {
    let text = read_text(path, "config file").map_err(|e| SpecErrors(vec![e]))?;
    parse_config(path, &text)
}

/// Loads the config and then every spec it names, for running the daemon: each spec must have a
/// `source:`. Config errors stop there (the spec paths are not known); spec errors of all files
/// are reported together.
pub fn load_daemon(path: &Path) -> Result<(DaemonConfig, Vec<ServiceSpec>), SpecErrors> {
    let config = load_config(path)?;
    let specs = load_specs(&config.specs, SourceRule::Required)?;
    Ok((config, specs))
}

/// Validates config text; `path` is used in errors and as the base of relative paths.
fn parse_config(path: &Path, text: &str) -> Result<DaemonConfig, SpecErrors> {
    let raw: Spanned<RawConfig> = parse_document(path, text)?;
    let mut check = Checker::new(path, &process_env);
    let config = check_config(&mut check, &raw);
    check.finish(config)
}

/// Every field is checked before any result is combined with `?`, so all errors are recorded.
fn check_config(check: &mut Checker<'_>, raw: &Spanned<RawConfig>) -> Option<DaemonConfig> {
    let root = &raw.referenced;
    let RawConfig { listen, data_dir, specs, evaluation_interval, flush_interval, event_retention, shutdown_grace } =
        &raw.value;
    let listen = check.require(listen, root, "listen").and_then(|l| listen_address(check, l));
    let data_dir = check.require(data_dir, root, "data_dir").and_then(|d| check.path(d, "data_dir"));
    let specs = check.require(specs, root, "specs").and_then(|s| spec_paths(check, s));
    let evaluation_interval =
        check.duration_or(evaluation_interval, DEFAULT_EVALUATION_INTERVAL, "evaluation_interval");
    let flush_interval = check.duration_or(flush_interval, DEFAULT_FLUSH_INTERVAL, "flush_interval");
    let event_retention = check.duration_or(event_retention, DEFAULT_EVENT_RETENTION, "event_retention");
    let shutdown_grace = check.duration_or(shutdown_grace, DEFAULT_SHUTDOWN_GRACE, "shutdown_grace");
    Some(DaemonConfig {
        path: check.file.to_path_buf(),
        listen: listen?,
        data_dir: data_dir?,
        specs: specs?,
        evaluation_interval: evaluation_interval?,
        flush_interval: flush_interval?,
        event_retention: event_retention?,
        shutdown_grace: shutdown_grace?,
    })
}

/// An IP address and port. Host names are refused rather than resolved: what `localhost` means
/// depends on the resolver at start-up, and a daemon should bind exactly what the file says.
fn listen_address(check: &mut Checker<'_>, text: &Spanned<String>) -> Option<SocketAddr> {
    match text.value.parse() {
        Ok(address) => Some(address),
        Err(_) => check.error(
            &text.referenced,
            "listen",
            format!(
                "invalid socket address `{}`: expected an IP address and port, e.g. 127.0.0.1:9464 or '[::]:9464'",
                text.value
            ),
        ),
    }
}

fn spec_paths(check: &mut Checker<'_>, raw: &Spanned<RawPaths>) -> Option<Vec<PathBuf>> {
    match &raw.value {
        RawPaths::One(text) => {
            let text = Spanned::new(text.clone(), raw.referenced, raw.defined);
            check.path(&text, "specs").map(|path| vec![path])
        }
        RawPaths::Many(list) if list.is_empty() => {
            check.error(&raw.referenced, "specs", "must list at least one spec file or directory")
        }
        RawPaths::Many(list) => {
            let paths: Vec<Option<PathBuf>> =
                list.iter().enumerate().map(|(index, text)| check.path(text, &format!("specs[{index}]"))).collect();
            paths.into_iter().collect()
        }
    }
}

/// Raw serde mirror of `sloguard.yaml`, as `spec::raw` is of a spec: positions kept, required
/// fields still optional so all missing ones are reported together, unknown keys refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    specs: Option<Spanned<RawPaths>>,
    evaluation_interval: Option<Spanned<String>>,
    flush_interval: Option<Spanned<String>>,
    event_retention: Option<Spanned<String>>,
    shutdown_grace: Option<Spanned<String>>,
}

/// `specs:` as one path or a list. Hand-deserialized rather than `#[serde(untagged)]`, which
/// would lose the list items' positions and replace type errors with "did not match any variant".
#[derive(Debug)]
enum RawPaths {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawPaths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathsVisitor;
        impl<'de> Visitor<'de> for PathsVisitor {
            type Value = RawPaths;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<RawPaths, E> {
                Ok(RawPaths::One(path.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawPaths, A::Error> {
                let mut paths = Vec::new();
                while let Some(path) = seq.next_element()? {
                    paths.push(path);
                }
                Ok(RawPaths::Many(paths))
            }
        }
        deserializer.deserialize_any(PathsVisitor)
    }
}
