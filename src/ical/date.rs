//! Plain calendar dates (`VALUE=DATE`), as used by all-day events and task due dates.
//!
//! Proleptic Gregorian calendar; day arithmetic goes through a day count since 1970-01-01
//! using Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms, which are exact
//! for every year and need no tables.

use std::fmt;

/// A calendar date without time or time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year (proleptic Gregorian).
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Day of month, 1–31.
    pub day: u32,
}

/// Day numbers of the first and last `Date` with an `i32` year; day counts beyond them are
/// clamped so conversions cannot overflow.
const MIN_DAYS: i64 = days_from_civil(i32::MIN as i64, 1, 1);
const MAX_DAYS: i64 = days_from_civil(i32::MAX as i64, 12, 31);

impl Date {
    /// A validated date: month 1–12, day within that month (leap years included).
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// Parses `YYYYMMDD`. Also accepts a DATE-TIME `YYYYMMDDTHHMMSS[Z]` and takes its date
    /// part (as written, without time zone conversion), because clients sometimes turn an
    /// all-day event into a timed one and we still want the day the user sees.
    /// Use [`When::parse`] where the time matters.
    pub fn parse_ical(s: &str) -> Option<Date> {
        parse_date_time(s).map(|(date, _)| date)
    }

    /// Formats as `YYYYMMDD`.
    pub fn to_ical(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// Parses ISO 8601 `YYYY-MM-DD` (the format Plane uses for start and target dates).
    pub fn parse_iso(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        Date::new(
            number(&b[..4])? as i32,
            number(&b[5..7])?,
            number(&b[8..10])?,
        )
    }

    /// Formats as `YYYY-MM-DD`.
    pub fn to_iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// The next day (the exclusive DTEND of a one-day all-day event).
    pub fn succ(&self) -> Date {
        self.add_days(1)
    }

    /// The previous day.
    pub fn pred(&self) -> Date {
        self.add_days(-1)
    }

    /// The date `n` days later (earlier if negative), saturating at the ends of the range.
    pub fn add_days(&self, n: i64) -> Date {
        Date::from_days_since_epoch(self.days_since_epoch().saturating_add(n))
    }

    /// The date `d` days after 1970-01-01, clamped to the range of `i32` years.
    pub fn from_days_since_epoch(d: i64) -> Date {
        let (year, month, day) = civil_from_days(d.clamp(MIN_DAYS, MAX_DAYS));
        Date {
            year: year as i32,
            month,
            day,
        }
    }

    /// Days since 1970-01-01 (which is 0). For an invalid `Date` built by hand (e.g. Feb 30)
    /// the result is that of the day it overflows into.
    pub fn days_since_epoch(&self) -> i64 {
        days_from_civil(self.year as i64, self.month as i64, self.day as i64)
    }
}

impl fmt::Display for Date {
    /// ISO 8601, `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso())
    }
}

/// `YYYYMMDD` or `YYYYMMDDTHHMMSS[Z]`: the date, and for a DATE-TIME the seconds since
/// midnight and whether it ends in `Z`.
fn parse_date_time(s: &str) -> Option<(Date, Option<(u32, bool)>)> {
    let b = s.as_bytes();
    let (date, time) = match b.len() {
        8 => (b, None),
        15 | 16 => {
            let (date, time) = b.split_at(8);
            if time[0] != b'T' || (time.len() == 8 && time[7] != b'Z') {
                return None;
            }
            let h = number(&time[1..3])?;
            let m = number(&time[3..5])?;
            let s = number(&time[5..7])?;
            // 60 admits a leap second, as RFC 5545 §3.3.12 does.
            if h > 23 || m > 59 || s > 60 {
                return None;
            }
            (date, Some((h * 3600 + m * 60 + s, time.len() == 8)))
        }
        _ => return None,
    };
    let date = Date::new(
        number(&date[..4])? as i32,
        number(&date[4..6])?,
        number(&date[6..8])?,
    )?;
    Some((date, time))
}

/// What the time of a DATE-TIME is relative to (RFC 5545 §3.3.5's three forms).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimeZone {
    /// `…Z`: UTC.
    Utc,
    /// `TZID=…`: local time in that zone.
    Zone(String),
    /// Neither: the same wall-clock time wherever the reader is.
    Floating,
}

/// The value of a DTSTART, DTEND or DUE as written: an all-day date, or a date with a time
/// of day. Two values that differ only in form (an all-day event made a 09:00 meeting on
/// the same day) are different `When`s, though their dates are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum When {
    /// `VALUE=DATE`: the whole day.
    Date(Date),
    /// A DATE-TIME.
    Time {
        /// The date as written (for UTC, the UTC date).
        date: Date,
        /// Seconds since midnight, as written (60 s leap seconds admitted).
        seconds: u32,
        /// What the time is relative to.
        zone: TimeZone,
    },
}

impl When {
    /// Parses a value with its `TZID` parameter. The value's shape decides, not a `VALUE`
    /// parameter: a bare `YYYYMMDD` is a date even without `VALUE=DATE` (some servers drop
    /// it), and a time is a time even under a wrong `VALUE=DATE`, so nothing a client wrote
    /// is lost. A TZID on a UTC time is ignored, as RFC 5545 says it must not be there.
    pub fn parse(value: &str, tzid: Option<&str>) -> Option<When> {
        let (date, time) = parse_date_time(value.trim())?;
        match time {
            None => Some(When::Date(date)),
            Some((seconds, utc)) => {
                let zone = match (utc, tzid.map(str::trim).filter(|z| !z.is_empty())) {
                    (true, _) => TimeZone::Utc,
                    (false, Some(z)) => TimeZone::Zone(z.to_string()),
                    (false, None) => TimeZone::Floating,
                };
                Some(When::Time {
                    date,
                    seconds,
                    zone,
                })
            }
        }
    }

    /// The date as written (a UTC time's UTC date; see `sync::fields::date_of` for the
    /// date a user sees).
    pub fn date(&self) -> Date {
        match self {
            When::Date(d) | When::Time { date: d, .. } => *d,
        }
    }

    /// Whether this is an all-day value.
    pub fn is_all_day(&self) -> bool {
        matches!(self, When::Date(_))
    }
}

impl fmt::Display for When {
    /// The value as iCalendar writes it, the zone after a `;`: `20261124`,
    /// `20261124T090000Z`, `20261124T090000;TZID=Europe/Berlin`, `20261124T090000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Date(d) => f.write_str(&d.to_ical()),
            When::Time {
                date,
                seconds,
                zone,
            } => {
                let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
                write!(f, "{}T{h:02}{m:02}{s:02}", date.to_ical())?;
                match zone {
                    TimeZone::Utc => f.write_str("Z"),
                    TimeZone::Zone(z) => write!(f, ";TZID={z}"),
                    TimeZone::Floating => Ok(()),
                }
            }
        }
    }
}

/// ASCII digits only (no sign, no spaces) as a number; at most 4 digits are ever passed.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date; all arithmetic in i64 so any
/// `Date`, even a hand-built invalid one, computes without overflow.
const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (month + 9).rem_euclid(12); // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(year: i32, month: u32, day: u32) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn parse_and_format() {
        assert_eq!(Date::parse_ical("20261124"), Some(d(2026, 11, 24)));
        assert_eq!(Date::parse_ical("20261124T093000"), Some(d(2026, 11, 24)));
        assert_eq!(Date::parse_ical("20261124T235960Z"), Some(d(2026, 11, 24)));
        assert_eq!(d(2026, 11, 24).to_ical(), "20261124");
        assert_eq!(d(7, 1, 2).to_ical(), "00070102");
        assert_eq!(Date::parse_iso("2026-02-28"), Some(d(2026, 2, 28)));
        assert_eq!(d(2026, 2, 3).to_iso(), "2026-02-03");
        assert_eq!(d(2026, 2, 3).to_string(), "2026-02-03");
        for bad in [
            "",
            "2026112",
            "202611245",
            "2026-11-24",
            "2026112A",
            "+2026112",
            "20261324",
            "20261100",
            "20261131",
            "20260229",
            "20261124T",
            "20261124 093000",
            "20261124T240000",
            "20261124T236000",
            "20261124T093000X",
            "20261124T09300Z",
            "２０２６１１２４",
        ] {
            assert_eq!(Date::parse_ical(bad), None, "{bad:?}");
        }
        for bad in [
            "20261124",
            "2026-1-24",
            "2026/11/24",
            "2026-11-24T00",
            "2026-02-30",
            "-026-01-01",
        ] {
            assert_eq!(Date::parse_iso(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn values_keep_their_form() {
        let day = d(2026, 11, 24);
        let at = |seconds, zone| When::Time {
            date: day,
            seconds,
            zone,
        };
        assert_eq!(When::parse("20261124", None), Some(When::Date(day)));
        assert_eq!(When::parse(" 20261124 ", None), Some(When::Date(day)));
        let berlin = When::parse("20261124T090000", Some("Europe/Berlin"));
        let zone = TimeZone::Zone("Europe/Berlin".into());
        assert_eq!(berlin, Some(at(9 * 3600, zone)));
        assert_eq!(
            When::parse("20261124T090000Z", Some("Europe/Berlin")),
            Some(at(9 * 3600, TimeZone::Utc)),
            "a TZID on a UTC time is ignored"
        );
        let floating = When::parse("20261124T000000", Some("")).unwrap();
        assert_eq!(floating, at(0, TimeZone::Floating));
        assert_eq!(When::parse("2026-11-24", None), None);
        assert_eq!(When::parse("20261124T250000", None), None);
        // The same date in another form is another value.
        assert_ne!(When::Date(day), floating);
        assert_eq!(floating.date(), day);
        assert!(When::Date(day).is_all_day() && !floating.is_all_day());
        let shown: Vec<String> = [
            When::Date(day),
            berlin.unwrap(),
            at(45_296, TimeZone::Utc),
            floating,
        ]
        .iter()
        .map(When::to_string)
        .collect();
        assert_eq!(
            shown,
            [
                "20261124",
                "20261124T090000;TZID=Europe/Berlin",
                "20261124T123456Z",
                "20261124T000000"
            ]
        );
    }

    #[test]
    fn leap_years() {
        assert!(Date::parse_ical("20240229").is_some());
        assert!(Date::parse_ical("20000229").is_some());
        assert!(Date::parse_ical("19000229").is_none());
        assert!(Date::parse_ical("20230229").is_none());
        assert_eq!(d(2024, 2, 28).succ(), d(2024, 2, 29));
        assert_eq!(d(2023, 2, 28).succ(), d(2023, 3, 1));
        assert_eq!(d(2100, 3, 1).pred(), d(2100, 2, 28));
        assert_eq!(d(2000, 3, 1).pred(), d(2000, 2, 29));
    }

    #[test]
    fn day_arithmetic() {
        assert_eq!(d(1970, 1, 1).days_since_epoch(), 0);
        assert_eq!(d(1969, 12, 31).days_since_epoch(), -1);
        assert_eq!(d(2000, 1, 1).days_since_epoch(), 10_957);
        assert_eq!(Date::from_days_since_epoch(20_416), d(2025, 11, 24));
        assert_eq!(d(2026, 12, 31).succ(), d(2027, 1, 1));
        assert_eq!(d(2027, 1, 1).pred(), d(2026, 12, 31));
        assert_eq!(d(2026, 1, 31).succ(), d(2026, 2, 1));
        assert_eq!(d(2026, 11, 24).add_days(-365), d(2025, 11, 24));
        // Every day over four centuries round-trips and is valid.
        let start = d(1899, 12, 25).days_since_epoch();
        let mut prev = Date::from_days_since_epoch(start - 1);
        for n in start..start + 146_097 {
            let date = Date::from_days_since_epoch(n);
            assert_eq!(date.days_since_epoch(), n);
            assert_eq!(Date::new(date.year, date.month, date.day), Some(date));
            assert_eq!(prev.succ(), date);
            assert!(prev < date);
            prev = date;
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        let max = d(i32::MAX, 12, 31);
        assert_eq!(max.succ(), max);
        assert_eq!(Date::from_days_since_epoch(i64::MAX), max);
        assert_eq!(Date::from_days_since_epoch(i64::MIN), d(i32::MIN, 1, 1));
        assert_eq!(d(i32::MIN, 1, 1).pred(), d(i32::MIN, 1, 1));
        // Hand-built invalid dates overflow into the following month instead of panicking.
        assert_eq!(d(2026, 2, 30).succ(), d(2026, 3, 3));
        let _ = d(0, 0, 0).days_since_epoch();
    }
}
