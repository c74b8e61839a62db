//! Calendar arithmetic for quota resets: when does "today" end in the zone Google resets in?
//!
//! Google resets daily quotas at midnight America/Los_Angeles (US daylight-saving rules since
//! 2007: from the second Sunday of March, 02:00 local, to the first Sunday of November, 02:00
//! local). The zone is a setting because one source claims UTC.

use std::fmt;
use std::str::FromStr;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// The zone whose midnight ends a quota day (Google's: Pacific, by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResetZone {
    /// America/Los_Angeles with its daylight-saving changes.
    #[default]
    Pacific,
    /// A fixed offset from UTC, in seconds (`UTC`, `UTC+8`, `UTC-5`).
    Fixed(i64),
}

impl FromStr for ResetZone {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("America/Los_Angeles") || text.eq_ignore_ascii_case("pacific") {
            return Ok(ResetZone::Pacific);
        }
        let Some(rest) = text.strip_prefix("UTC") else {
            return Err(format!("unknown zone {text:?} (use America/Los_Angeles, UTC or UTC±H)"));
        };
        if rest.is_empty() {
            return Ok(ResetZone::Fixed(0));
        }
        let hours: i64 = rest
            .trim_start_matches('+')
            .parse()
            .map_err(|_| format!("unknown zone {text:?} (use America/Los_Angeles, UTC or UTC±H)"))?;
        if !(-12..=14).contains(&hours) {
            return Err(format!("offset out of range in {text:?}"));
        }
        Ok(ResetZone::Fixed(hours * HOUR))
    }
}

impl fmt::Display for ResetZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetZone::Pacific => write!(f, "America/Los_Angeles"),
            ResetZone::Fixed(0) => write!(f, "UTC"),
            ResetZone::Fixed(off) => write!(f, "UTC{:+}", off / HOUR),
        }
    }
}

impl ResetZone {
    /// The zone's offset from UTC (seconds, east positive) at the UTC instant `unix`.
    pub fn offset_at(self, unix: i64) -> i64 {
        match self {
            ResetZone::Fixed(off) => off,
            ResetZone::Pacific => {
                if pacific_dst_at(unix) {
                    -7 * HOUR
                } else {
                    -8 * HOUR
                }
            }
        }
    }

    /// The first local midnight strictly after `unix`, as a UTC unix time.
    pub fn next_midnight(self, unix: i64) -> i64 {
        let local = unix + self.offset_at(unix);
        let next_local_midnight = (local.div_euclid(DAY) + 1) * DAY;
        // Midnight is never inside a DST change (they happen at 02:00), so the offset that
        // applies at midnight is the one of the instant just before it.
        let guess = next_local_midnight - self.offset_at(unix);
        next_local_midnight - self.offset_at(guess - 1)
    }
}

/// Is daylight time in force in Los Angeles at the UTC instant `unix`?
fn pacific_dst_at(unix: i64) -> bool {
    let (year, _, _) = civil_from_days(unix.div_euclid(DAY));
    // DST starts 02:00 PST (10:00 UTC) on the second Sunday of March and ends 02:00 PDT
    // (09:00 UTC) on the first Sunday of November.
    let start = days_from_civil(year, 3, nth_sunday(year, 3, 2)) * DAY + 10 * HOUR;
    let end = days_from_civil(year, 11, nth_sunday(year, 11, 1)) * DAY + 9 * HOUR;
    unix >= start && unix < end
}

/// Day of month of the `n`th Sunday of `month`.
fn nth_sunday(year: i64, month: u32, n: u32) -> u32 {
    let first = days_from_civil(year, month, 1);
    // 1970-01-01 was a Thursday; weekday 0 = Sunday.
    let weekday = (first + 4).rem_euclid(7) as u32;
    let first_sunday = 1 + (7 - weekday) % 7;
    first_sunday + 7 * (n - 1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A day number as `YYYY-MM-DD` (how usage items and `/v1/usage` name a day). Written without
/// `core::fmt`: every request names its day.
pub(crate) fn day_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let mut out = String::with_capacity(10);
    push_padded(&mut out, u64::try_from(y).unwrap_or(0), 4);
    out.push('-');
    push_padded(&mut out, u64::from(m), 2);
    out.push('-');
    push_padded(&mut out, u64::from(d), 2);
    out
}

/// `n` in decimal, with leading zeros to `width` digits.
fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.push_str(digits);
}

/// RFC 3339 UTC with milliseconds, as the seed's `/v1/status` prints it.
pub(crate) fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(DAY));
    let rem = secs.rem_euclid(DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / HOUR,
        (rem % HOUR) / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// The quota day `now_ms` falls in, as `YYYY-MM-DD` in `zone`.
pub(crate) fn day_of(now_ms: u64, zone: ResetZone) -> String {
    let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX / 2);
    let local = now + zone.offset_at(now);
    day_text(local.div_euclid(86_400))
}

/// Seconds an item of the quota day at `now_ms` is kept: until the end of the next quota day.
pub(crate) fn ttl_secs(now_ms: u64, zone: ResetZone) -> u64 {
    let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX / 2);
    let next = zone.next_midnight(now);
    u64::try_from(next - now).unwrap_or(0) + 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(year: i64, month: u32, day: u32, hour: i64, min: i64) -> i64 {
        days_from_civil(year, month, day) * DAY + hour * HOUR + min * 60
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1000, 0, 19_000, 20_418, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(days_from_civil(2026, 12, 4)), "2026-12-04");
    }

    #[test]
    fn second_and_first_sundays() {
        assert_eq!(nth_sunday(2026, 3, 2), 8);
        assert_eq!(nth_sunday(2026, 11, 1), 1);
        assert_eq!(nth_sunday(2025, 3, 2), 9);
        assert_eq!(nth_sunday(2025, 11, 1), 2);
    }

    #[test]
    fn pacific_midnight_in_winter_and_summer() {
        // 2026-01-15 12:00 UTC = 04:00 PST → next midnight 2026-01-16 00:00 PST = 08:00 UTC.
        let z = ResetZone::Pacific;
        assert_eq!(z.next_midnight(utc(2026, 1, 15, 12, 0)), utc(2026, 1, 16, 8, 0));
        // 2026-07-01 06:59 UTC = 23:59 PDT June 30 → midnight July 1 PDT = 07:00 UTC.
        assert_eq!(z.next_midnight(utc(2026, 7, 1, 6, 59)), utc(2026, 7, 1, 7, 0));
        // Exactly at midnight, the next one is a day later.
        assert_eq!(z.next_midnight(utc(2026, 7, 1, 7, 0)), utc(2026, 7, 2, 7, 0));
    }

    #[test]
    fn pacific_midnight_across_dst_changes() {
        let z = ResetZone::Pacific;
        // 2026-03-07 23:00 PST (Mar 8 07:00 UTC): DST starts at 02:00 on Mar 8, after midnight.
        assert_eq!(z.next_midnight(utc(2026, 3, 8, 7, 0)), utc(2026, 3, 8, 8, 0));
        // Mar 8 05:00 PDT (12:00 UTC): the next midnight is already in daylight time.
        assert_eq!(z.next_midnight(utc(2026, 3, 8, 12, 0)), utc(2026, 3, 9, 7, 0));
        // 2026-10-31 20:00 PDT (Nov 1 03:00 UTC) → Nov 1 00:00 PDT = 07:00 UTC.
        assert_eq!(z.next_midnight(utc(2026, 11, 1, 3, 0)), utc(2026, 11, 1, 7, 0));
        // Nov 1 10:00 UTC = 02:00 PST after the change → Nov 2 00:00 PST = 08:00 UTC.
        assert_eq!(z.next_midnight(utc(2026, 11, 1, 10, 0)), utc(2026, 11, 2, 8, 0));
        // A day spanning the spring change is 23 hours long, the autumn one 25.
        let spring = z.next_midnight(utc(2026, 3, 8, 7, 30));
        assert_eq!(z.next_midnight(spring) - spring, 23 * HOUR);
        let autumn = z.next_midnight(utc(2026, 11, 1, 6, 30));
        assert_eq!(z.next_midnight(autumn) - autumn, 25 * HOUR);
    }

    #[test]
    fn fixed_zones() {
        assert_eq!("UTC".parse::<ResetZone>(), Ok(ResetZone::Fixed(0)));
        assert_eq!("UTC+8".parse::<ResetZone>(), Ok(ResetZone::Fixed(8 * HOUR)));
        assert_eq!("UTC-5".parse::<ResetZone>(), Ok(ResetZone::Fixed(-5 * HOUR)));
        assert!("Mars/Olympus".parse::<ResetZone>().is_err());
        let z = ResetZone::Fixed(0);
        assert_eq!(z.next_midnight(utc(2026, 1, 15, 12, 0)), utc(2026, 1, 16, 0, 0));
        assert_eq!(ResetZone::Fixed(8 * HOUR).to_string(), "UTC+8");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_millis(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
    }
}
