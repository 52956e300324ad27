//! Calendar periods for error budgets: a budget "per month in Europe/Berlin" counts events from
//! 00:00 local time on the 1st to the next 1st, whatever DST does in between.
//!
//! Owns the period arithmetic and nothing else; the time-zone database is jiff's bundled copy,
//! so a host or image without `/usr/share/zoneinfo` computes the same periods. Pure: instants in,
//! instants out, no clock.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::clock::{DAY, Millis};

/// The length of a budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// From Monday 00:00.
    Week,
    /// From the 1st, 00:00.
    Month,
    /// From 1 January, April, July or October, 00:00.
    Quarter,
}

impl Period {
    pub const NAMES: [&str; 3] = ["week", "month", "quarter"];

    pub fn parse(name: &str) -> Option<Period> {
        match name {
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            "quarter" => Some(Period::Quarter),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
        }
    }

    /// The longest such period, plus a day for a DST shift: how much history its counters keep.
    pub fn max_span(self) -> Millis {
        let days = match self {
            Period::Week => 7,
            Period::Month => 31,
            Period::Quarter => 92,
        };
        (days + 1) * DAY
    }
}

/// A calendar budget window, validated: the zone exists in the bundled database.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarWindow {
    pub period: Period,
    /// The IANA name as written (`Europe/Berlin`), for display.
    pub time_zone_name: String,
    pub time_zone: TimeZone,
}

impl CalendarWindow {
    /// Looks `name` up in the bundled time-zone database.
    pub fn new(period: Period, time_zone_name: &str) -> Option<CalendarWindow> {
        let time_zone = jiff::tz::db().get(time_zone_name).ok()?;
        Some(CalendarWindow { period, time_zone_name: time_zone_name.to_string(), time_zone })
    }

    /// `[start, end)` of the period holding `at`, as Unix milliseconds. A period starts at the
    /// first instant of its first day in the zone: 00:00, or the end of a DST gap at midnight.
    pub fn bounds(&self, at: Millis) -> (Millis, Millis) {
        let date = Timestamp::from_millisecond(at)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned_datetime(self.time_zone.clone())
            .date();
        let first = match self.period {
            Period::Week => date.checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days()),
            Period::Month => Ok(date.first_of_month()),
            Period::Quarter => Date::new(date.year(), (date.month() - 1) / 3 * 3 + 1, 1),
        }
        .expect("a period's first day is a valid date");
        let step = match self.period {
            Period::Week => 7.days(),
            Period::Month => 1.month(),
            Period::Quarter => 3.months(),
        };
        let next = first.checked_add(step).expect("the next period's first day is a valid date");
        (self.day_start(first), self.day_start(next))
    }

    fn day_start(&self, date: Date) -> Millis {
        date.to_zoned_datetime(self.time_zone.clone())
            .and_then(|z| z.start_of_day())
            .map(|z| z.timestamp().as_millisecond())
            .expect("dates near the present are in range")
    }

    /// `month (Europe/Berlin)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.period.as_str(), self.time_zone_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::rfc3339;

    fn at(text: &str) -> Millis {
        text.parse::<Timestamp>().expect("timestamp").as_millisecond()
    }

    fn bounds(period: Period, zone: &str, instant: &str) -> (String, String) {
        let (start, end) = CalendarWindow::new(period, zone).expect("zone").bounds(at(instant));
        (rfc3339(start), rfc3339(end))
    }

    #[test]
    fn months_follow_the_zone_across_dst() {
        // Berlin moved to summer time on 2026-03-29: March began at 23:00Z, April at 22:00Z.
        assert_eq!(
            bounds(Period::Month, "Europe/Berlin", "2026-03-30T14:00:00Z"),
            ("2026-02-28T23:00:00Z".into(), "2026-03-31T22:00:00Z".into())
        );
        assert_eq!(
            bounds(Period::Month, "Europe/Berlin", "2026-03-31T22:00:00Z"),
            ("2026-03-31T22:00:00Z".into(), "2026-04-30T22:00:00Z".into())
        );
    }

    #[test]
    fn weeks_start_on_monday_and_quarters_in_january_april_july_october() {
        // 2026-01-01 is a Thursday.
        assert_eq!(
            bounds(Period::Week, "UTC", "2026-01-01T12:00:00Z"),
            ("2025-12-29T00:00:00Z".into(), "2026-01-05T00:00:00Z".into())
        );
        assert_eq!(
            bounds(Period::Quarter, "America/New_York", "2026-05-15T00:00:00Z"),
            ("2026-04-01T04:00:00Z".into(), "2026-07-01T04:00:00Z".into())
        );
    }

    #[test]
    fn an_unknown_zone_is_none() {
        assert!(CalendarWindow::new(Period::Month, "Mars/Olympus_Mons").is_none());
        assert!(CalendarWindow::new(Period::Month, "UTC").is_some());
    }
}
