//! The signing time, passed in by the caller, and its two spellings.

use std::fmt;

/// A point in time, seconds since 1970-01-01T00:00:00Z (UTC, no leap seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub unix_seconds: i64,
}

/// A UTC calendar time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday.
    weekday: u32,
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Timestamp {
    pub fn new(unix_seconds: i64) -> Self {
        Timestamp { unix_seconds }
    }

    fn civil(self) -> Civil {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs = self.unix_seconds.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days: days since 1970-01-01 to (y, m, d).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// ISO 8601 basic format, `20130524T000000Z` (`x-amz-date`, `x-oss-date`).
    pub fn iso8601_basic(self) -> String {
        let c = self.civil();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// RFC 3339 / ISO 8601 extended format, `2013-05-24T00:00:00Z` (image configs'
    /// `created`).
    pub fn rfc3339(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// The date of the credential scope, `20130524`.
    pub fn date_stamp(self) -> String {
        let c = self.civil();
        format!("{:04}{:02}{:02}", c.year, c.month, c.day)
    }

    /// RFC 1123 (the HTTP `Date` header), `Fri, 24 May 2013 00:00:00 GMT`.
    pub fn http_date(self) -> String {
        HttpDate(self).to_string()
    }
}

struct HttpDate(Timestamp);

impl fmt::Display for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0.civil();
        write!(
            f,
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            WEEKDAYS[c.weekday as usize],
            c.day,
            MONTHS[c.month as usize - 1],
            c.year,
            c.hour,
            c.minute,
            c.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = Timestamp::new(1369353600);
        assert_eq!(t.iso8601_basic(), "20130524T000000Z");
        assert_eq!(t.date_stamp(), "20130524");
        assert_eq!(t.http_date(), "Fri, 24 May 2013 00:00:00 GMT");
        let t = Timestamp::new(1709251199);
        assert_eq!(t.iso8601_basic(), "20240229T235959Z");
        assert_eq!(t.http_date(), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(
            Timestamp::new(0).http_date(),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(Timestamp::new(-1).iso8601_basic(), "19691231T235959Z");
        assert_eq!(
            Timestamp::new(951782400).http_date(),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            Timestamp::new(4102444800).iso8601_basic(),
            "21000101T000000Z"
        );
        assert_eq!(Timestamp::new(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::new(951_782_400).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Timestamp::new(1_796_342_400 + 3661).rfc3339(),
            "2026-12-04T01:01:01Z"
        );
    }

    #[test]
    fn every_day_of_four_centuries_counts_up() {
        // Consecutive days give consecutive dates, weekdays cycle, months have their lengths.
        let mut prev = Timestamp::new(-86_400 * 365 * 170).civil();
        for day in (-365 * 170 + 1)..(365 * 230) {
            let c = Timestamp::new(day * 86_400).civil();
            assert_eq!(c.weekday, (prev.weekday + 1) % 7);
            if c.day == 1 {
                let leap = prev.year % 4 == 0 && (prev.year % 100 != 0 || prev.year % 400 == 0);
                let len = [
                    31,
                    if leap { 29 } else { 28 },
                    31,
                    30,
                    31,
                    30,
                    31,
                    31,
                    30,
                    31,
                    30,
                    31,
                ];
                assert_eq!(prev.day, len[prev.month as usize - 1], "{prev:?} {c:?}");
                assert_eq!(c.month, prev.month % 12 + 1);
            } else {
                assert_eq!(
                    (c.year, c.month, c.day),
                    (prev.year, prev.month, prev.day + 1)
                );
            }
            prev = c;
        }
    }
}
