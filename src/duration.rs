//! Prometheus-style durations (`5m`, `1h30m`, `30d`, `1y` = 365d). STUB: owned by the spec helper.
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("invalid duration {0:?}")]
pub struct DurationError(pub String);

pub fn parse_duration(_text: &str) -> Result<Duration, DurationError> {
    todo!()
}
