//! Time as the engine sees it: Unix milliseconds, and RFC 3339 formatting for output.
//!
//! The engine never reads a clock; drivers (replay, the daemon) pass instants in. This module
//! owns the conversions so every output format agrees on one representation.

use std::fmt::Write;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Unix time in milliseconds, UTC. Exposition timestamps use this unit, so we keep it end to end.
pub type Millis = i64;

/// Milliseconds in one second, minute, hour and day, for readable arithmetic.
pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// Wall-clock time for the daemon. The engine never reads a clock; drivers pass instants in, and
/// tests substitute a clock they control.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        duration_millis(since_epoch)
    }
}

/// Formats `at` as RFC 3339 with a `Z` zone, e.g. `2026-01-04T14:01:00Z`.
pub fn rfc3339(at: Millis) -> String {
    let nanos = i128::from(at) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{at}ms"))
}

/// Converts a `std::time::Duration` to whole milliseconds, saturating far beyond any real window.
pub fn duration_millis(d: std::time::Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Formats a span compactly in Prometheus units, largest first: `5m`, `1h30m`, `30d`, `90s`.
pub fn format_span(span: Millis) -> String {
    // No weeks: SLO windows are written in days (`28d`), and `4w` would not match the spec.
    const UNITS: [(Millis, &str); 5] = [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s"), (1, "ms")];
    if span <= 0 {
        return "0s".to_string();
    }
    let mut rest = span;
    // Written in place: every snapshot formats each window of every SLO (thousands of spans a
    // second with 1,000 SLOs), and a `format!` per unit doubled the allocations.
    let mut out = String::with_capacity(8);
    for (unit, suffix) in UNITS {
        if rest >= unit {
            write!(out, "{}{suffix}", rest / unit).expect("writing to a String cannot fail");
            rest %= unit;
        }
    }
    out
}

/// Parses an RFC 3339 instant (`2026-01-04T14:01:00Z`, any offset) to Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Result<Millis, time::error::Parse> {
    let t = OffsetDateTime::parse(text, &Rfc3339)?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// Instants as RFC 3339 strings in serde (`#[serde(with = "crate::clock::serde_rfc3339")]`), so
/// records in the store and the API read the same text as the event log.
pub mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::{Millis, parse_rfc3339, rfc3339};

    pub fn serialize<S: Serializer>(at: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        parse_rfc3339(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_with_zone() {
        assert_eq!(rfc3339(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600_000 + 1_500), "2026-01-01T00:00:01.5Z");
    }

    #[test]
    fn parses_what_it_formats() {
        assert_eq!(parse_rfc3339("2026-01-01T00:00:01.5Z").unwrap(), 1_767_225_600_000 + 1_500);
        assert_eq!(parse_rfc3339("2026-01-01T01:00:00+01:00").unwrap(), 1_767_225_600_000);
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn spans_read_like_prometheus_durations() {
        assert_eq!(format_span(5 * MINUTE), "5m");
        assert_eq!(format_span(90 * MINUTE), "1h30m");
        assert_eq!(format_span(30 * DAY), "30d");
        assert_eq!(format_span(28 * DAY), "28d");
        assert_eq!(format_span(1_500), "1s500ms");
    }
}
