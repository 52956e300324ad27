//! Prometheus-style durations: `5m`, `1h30m`, `30d`, `1y` (= 365 d).
//!
//! Owns the one duration syntax used in spec files, so windows read the same in a spec as in the
//! PromQL an operator would write by hand. Pure text-to-value code: no I/O, no clock.
//!
//! We do not use humantime directly although it is a dependency: it takes `1y` as 365.25 days,
//! accepts `1M` (month) and fractions such as `1.5h`, and allows spaces, so a window written for
//! Prometheus would silently mean something else here. Prometheus' own grammar
//! (`model.ParseDuration`) is small enough to implement exactly.

use std::time::Duration;

/// Why a duration string was rejected. Every variant names the offending text so the spec error
/// reads on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration (write e.g. `5m`)")]
    Empty,
    /// A number with no unit after it, such as `3600`: seconds or minutes would be a guess.
    #[error("invalid duration {0:?}: missing unit after the number (units: ms s m h d w y)")]
    MissingUnit(String),
    /// Something other than an ASCII digit where a number must start: a sign, a space, a dot
    /// of a fraction (`1.5h`), or a stray character.
    #[error("invalid duration {text:?}: expected a whole number at {found:?}")]
    ExpectedNumber { text: String, found: String },
    /// A unit outside `ms s m h d w y`, such as `1M` or `2min`.
    #[error("invalid duration {text:?}: unknown unit {unit:?} (units: ms s m h d w y)")]
    UnknownUnit { text: String, unit: String },
    /// Units repeated or not in descending order, such as `30m1h` or `1h1h`.
    #[error("invalid duration {text:?}: unit {unit:?} out of order (write units largest first, each once)")]
    OutOfOrder { text: String, unit: String },
    /// The duration adds up to zero, which is no window at all.
    #[error("invalid duration {0:?}: must be greater than zero")]
    Zero(String),
    /// The duration does not fit in 64-bit milliseconds (hundreds of millions of years).
    #[error("invalid duration {0:?}: too large")]
    Overflow(String),
}

/// Prometheus' units, largest first, with their length in milliseconds. The order is the only
/// order compound durations may use. `y` is 365 days, as in Prometheus (not 365.25).
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a Prometheus duration: one or more `<integer><unit>` parts with units from
/// `ms s m h d w y`, largest first, each at most once, no spaces, no fractions, total > 0.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total_ms: u64 = 0;
    // Index into UNITS of the smallest unit seen so far; the next part must use a smaller one.
    let mut next_allowed_unit = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let n_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n_digits == 0 {
            return Err(DurationError::ExpectedNumber { text: text.into(), found: rest.into() });
        }
        let (digits, after_digits) = rest.split_at(n_digits);
        let n_unit_chars = after_digits.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after_unit) = after_digits.split_at(n_unit_chars);
        if unit.is_empty() {
            return Err(match after_digits.chars().next() {
                None => DurationError::MissingUnit(text.into()),
                Some(_) => DurationError::ExpectedNumber { text: text.into(), found: after_digits.into() },
            });
        }
        let Some(unit_index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(DurationError::UnknownUnit { text: text.into(), unit: unit.into() });
        };
        if unit_index < next_allowed_unit {
            return Err(DurationError::OutOfOrder { text: text.into(), unit: unit.into() });
        }
        next_allowed_unit = unit_index + 1;
        let overflow = || DurationError::Overflow(text.into());
        let count: u64 = digits.parse().map_err(|_| overflow())?;
        let part_ms = count.checked_mul(UNITS[unit_index].1).ok_or_else(overflow)?;
        total_ms = total_ms.checked_add(part_ms).ok_or_else(overflow)?;
        rest = after_unit;
    }
    if total_ms == 0 {
        return Err(DurationError::Zero(text.into()));
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u64 {
        let parsed = parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        u64::try_from(parsed.as_millis()).unwrap()
    }

    fn err(text: &str) -> String {
        parse_duration(text).unwrap_err().to_string()
    }

    #[test]
    fn single_units() {
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("5s"), 5_000);
        assert_eq!(ms("5m"), 300_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms("30d"), 30 * 86_400_000);
        assert_eq!(ms("2w"), 14 * 86_400_000);
    }

    #[test]
    fn year_is_365_days_not_humantimes_365_25() {
        assert_eq!(ms("1y"), 365 * 86_400_000);
    }

    #[test]
    fn compound_forms_in_descending_order() {
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("1d12h"), 36 * 3_600_000);
        assert_eq!(ms("1m30s500ms"), 90_500);
        assert_eq!(ms("0h5m"), 300_000);
    }

    #[test]
    fn rejects_fractions() {
        assert_eq!(err("1.5h"), r#"invalid duration "1.5h": expected a whole number at ".5h""#);
    }

    #[test]
    fn rejects_bare_numbers() {
        assert_eq!(err("3600"), r#"invalid duration "3600": missing unit after the number (units: ms s m h d w y)"#);
    }

    #[test]
    fn rejects_unknown_units() {
        assert_eq!(err("1M"), r#"invalid duration "1M": unknown unit "M" (units: ms s m h d w y)"#);
        assert!(matches!(parse_duration("5min"), Err(DurationError::UnknownUnit { .. })));
    }

    #[test]
    fn rejects_signs_and_spaces() {
        assert_eq!(err("-5m"), r#"invalid duration "-5m": expected a whole number at "-5m""#);
        assert!(matches!(parse_duration("1h 30m"), Err(DurationError::ExpectedNumber { .. })));
        assert!(matches!(parse_duration(" 5m"), Err(DurationError::ExpectedNumber { .. })));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
    }

    #[test]
    fn rejects_zero() {
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero("0s".into())));
        assert_eq!(parse_duration("0h0m"), Err(DurationError::Zero("0h0m".into())));
    }

    #[test]
    fn rejects_out_of_order_and_repeated_units() {
        assert_eq!(
            err("30m1h"),
            r#"invalid duration "30m1h": unit "h" out of order (write units largest first, each once)"#
        );
        assert!(matches!(parse_duration("1h1h"), Err(DurationError::OutOfOrder { .. })));
        assert!(matches!(parse_duration("1s1m"), Err(DurationError::OutOfOrder { .. })));
    }

    #[test]
    fn rejects_overflow() {
        assert!(matches!(parse_duration("99999999999999999999s"), Err(DurationError::Overflow(_))));
        assert!(matches!(parse_duration("999999999999y"), Err(DurationError::Overflow(_))));
    }
}
