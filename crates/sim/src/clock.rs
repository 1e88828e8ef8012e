//! Simulated time. The simulator owns the clock: every payment carries its own instant, and
//! days of traffic run in seconds. Nothing here reads the wall clock.

use jiff::civil::{Date, Weekday};
use jiff::tz::{Offset, TimeZone};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

pub fn parse_date(text: &str) -> Option<Date> {
    text.parse::<Date>().ok()
}

/// One simulated day in the population's local time.
#[derive(Debug, Clone, Copy)]
pub struct SimDay {
    pub index: u32,
    /// Local midnight, Unix ms.
    pub start_ms: i64,
    pub weekend: bool,
    pub day_of_month: u32,
}

/// The calendar of a run: local midnights from the start date on.
#[derive(Debug, Clone)]
pub struct Calendar {
    start: Date,
    tz: TimeZone,
}

impl Calendar {
    pub fn new(start: Date, offset_minutes: i64) -> Calendar {
        let seconds = i32::try_from(offset_minutes.clamp(-18 * 60, 18 * 60) * 60).expect("bounded offset");
        let offset = Offset::from_seconds(seconds).expect("offset within ±18 h");
        Calendar { start, tz: TimeZone::fixed(offset) }
    }

    pub fn day(&self, index: u32) -> SimDay {
        let date = self.start.checked_add(jiff::Span::new().days(i64::from(index))).expect("date in range");
        let start_ms = date
            .to_zoned(self.tz.clone())
            .expect("local midnight exists in a fixed offset")
            .timestamp()
            .as_millisecond();
        SimDay {
            index,
            start_ms,
            weekend: matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday),
            day_of_month: date.day() as u32,
        }
    }

    /// The index of `date` in this calendar, if it falls on or after the start.
    pub fn index_of(&self, date: Date) -> Option<u32> {
        let days = self.start.until(date).ok()?.get_days();
        u32::try_from(days).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_local_midnights() {
        let cal = Calendar::new(parse_date("2026-10-26").unwrap(), 480);
        let d0 = cal.day(0);
        // 2026-10-26T00:00+08:00 = 2026-10-25T16:00Z.
        assert_eq!(d0.start_ms, 1_792_944_000_000);
        assert!(!d0.weekend, "a Monday");
        assert!(cal.day(5).weekend, "a Saturday");
        assert_eq!(cal.day(1).start_ms - d0.start_ms, DAY_MS);
        assert_eq!(cal.index_of(parse_date("2026-11-11").unwrap()), Some(16));
        assert_eq!(cal.day(16).day_of_month, 11);
    }
}
