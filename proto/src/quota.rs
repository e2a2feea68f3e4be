//! Quota periods (AWS usage plans' QuotaSettings): which period a moment falls in and when that
//! period starts, on the UTC calendar. Both planes use it, so a data plane's count for a period
//! and the control plane's stored usage agree on what "this period" is.
//!
//! Periods repeat from an anchor: a plan's `start` if it has one, otherwise midnight UTC
//! (DAY), Monday midnight UTC (WEEK) or the 1st of the month (MONTH). Period 0 is the one
//! containing the anchor, and moments before the anchor belong to it too; AWS's `offset`
//! (requests subtracted from the limit in the initial period) applies to period 0 only.

/// Seconds in a day.
pub const DAY_S: i64 = 86_400;
/// 1970-01-05, the first Monday of the Unix epoch: the default anchor of weekly periods.
pub const FIRST_MONDAY_S: i64 = 4 * DAY_S;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
    Month,
}

/// A quota as both planes evaluate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    pub limit: u64,
    pub period: Period,
    /// Requests subtracted from `limit` in period 0.
    pub offset: u64,
    /// Unix seconds at which period 0 starts.
    pub anchor_s: i64,
}

impl Rule {
    /// The index of the period containing `now_s` (0 for moments before the anchor).
    pub fn index(&self, now_s: i64) -> u64 {
        if now_s <= self.anchor_s {
            return 0;
        }
        let since = now_s - self.anchor_s;
        match self.period {
            Period::Day => (since / DAY_S) as u64,
            Period::Week => (since / (7 * DAY_S)) as u64,
            Period::Month => {
                let (ay, am, _) = civil_from_days(self.anchor_s.div_euclid(DAY_S));
                let (ny, nm, _) = civil_from_days(now_s.div_euclid(DAY_S));
                let mut months = (ny - ay) * 12 + (i64::from(nm) - i64::from(am));
                // The anchor's day of month and time may not have come yet this month.
                if self.start(months as u64) > now_s {
                    months -= 1;
                }
                months.max(0) as u64
            }
        }
    }

    /// Unix seconds at which period `index` starts.
    pub fn start(&self, index: u64) -> i64 {
        let index = index as i64;
        match self.period {
            Period::Day => self.anchor_s + index * DAY_S,
            Period::Week => self.anchor_s + index * 7 * DAY_S,
            Period::Month => {
                let days = self.anchor_s.div_euclid(DAY_S);
                let time_of_day = self.anchor_s.rem_euclid(DAY_S);
                let (y, m, d) = civil_from_days(days);
                let months = i64::from(m) - 1 + index;
                let (y, m) = (y + months.div_euclid(12), (months.rem_euclid(12) + 1) as u32);
                // A start on the 31st falls on the last day of shorter months.
                let d = d.min(days_in_month(y, m));
                days_from_civil(y, m, d) * DAY_S + time_of_day
            }
        }
    }

    /// The limit that applies in period `index`.
    pub fn limit_in(&self, index: u64) -> u64 {
        if index == 0 {
            self.limit.saturating_sub(self.offset)
        } else {
            self.limit
        }
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `2026-12-01T00:00:00Z`, or `2026-12-01` for midnight UTC, into Unix seconds.
pub fn parse_utc(text: &str) -> Result<i64, String> {
    let bad = || format!("'{text}' is not a UTC date (2026-12-01) or time (2026-12-01T08:00:00Z)");
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let mut next = |max: u32| -> Result<u32, String> {
        let n: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if n > max {
            return Err(bad());
        }
        Ok(n)
    };
    let (y, m, d) = (next(9999)?, next(12)?, next(31)?);
    if y < 1970 || m == 0 || d == 0 || d > days_in_month(i64::from(y), m) {
        return Err(bad());
    }
    let mut seconds = days_from_civil(i64::from(y), m, d) * DAY_S;
    if let Some(time) = time {
        let fields: Vec<&str> = time.split(':').collect();
        let [h, mi, s] = fields.as_slice() else { return Err(bad()) };
        let (h, mi, s): (i64, i64, i64) =
            (h.parse().map_err(|_| bad())?, mi.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?);
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&s) {
            return Err(bad());
        }
        seconds += h * 3600 + mi * 60 + s;
    }
    Ok(seconds)
}

/// Unix seconds as `2026-12-01T08:00:00Z`.
pub fn format_utc(seconds: i64) -> String {
    let (y, m, d) = civil_from_days(seconds.div_euclid(DAY_S));
    let t = seconds.rem_euclid(DAY_S);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", t / 3600, t / 60 % 60, t % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        parse_utc(text).unwrap()
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 365, 11_016, 20_788, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(at("2026-12-01"), 1_796_083_200);
        assert_eq!(format_utc(at("2024-02-29T23:59:59Z")), "2024-02-29T23:59:59Z");
        assert!(parse_utc("2023-02-29").is_err());
        assert!(parse_utc("2026-12-01T24:00:00Z").is_err());
        assert!(parse_utc("2026-12-01T10:00:00").is_err(), "a time without Z is not UTC");
    }

    #[test]
    fn days_and_weeks_start_at_midnight_utc_and_monday_by_default() {
        let day = Rule { limit: 10, period: Period::Day, offset: 0, anchor_s: 0 };
        let i = day.index(at("2026-12-01T23:59:59Z"));
        assert_eq!(day.start(i), at("2026-12-01"));
        assert_eq!(day.index(at("2026-12-02")), i + 1);
        let week = Rule { limit: 10, period: Period::Week, offset: 0, anchor_s: FIRST_MONDAY_S };
        // 2026-12-03 is a Thursday; its week began on Monday 2026-11-30.
        assert_eq!(week.start(week.index(at("2026-12-03T12:00:00Z"))), at("2026-11-30"));
    }

    #[test]
    fn months_follow_the_calendar_from_the_anchor() {
        let month = Rule { limit: 10, period: Period::Month, offset: 0, anchor_s: 0 };
        assert_eq!(month.start(month.index(at("2026-12-31T23:00:00Z"))), at("2026-12-01"));
        assert_eq!(month.start(month.index(at("2027-01-01"))), at("2027-01-01"));
        // Anchored on the 31st at 06:00: February's period starts on its last day.
        let late = Rule { limit: 10, period: Period::Month, offset: 0, anchor_s: at("2026-01-31T06:00:00Z") };
        assert_eq!(late.start(1), at("2026-02-28T06:00:00Z"));
        assert_eq!(late.index(at("2026-02-28T05:59:59Z")), 0);
        assert_eq!(late.index(at("2026-02-28T06:00:00Z")), 1);
        assert_eq!(late.index(at("2026-03-31T06:00:00Z")), 2);
        assert_eq!(late.index(at("2025-06-01")), 0, "before the start is the initial period");
    }

    #[test]
    fn the_offset_applies_to_the_initial_period_only() {
        let rule = Rule { limit: 100, period: Period::Day, offset: 30, anchor_s: at("2026-12-01T12:00:00Z") };
        assert_eq!(rule.limit_in(rule.index(at("2026-12-02T11:00:00Z"))), 70);
        assert_eq!(rule.limit_in(rule.index(at("2026-12-02T12:00:00Z"))), 100);
        let more = Rule { offset: 1_000, ..rule };
        assert_eq!(more.limit_in(0), 0);
    }
}
