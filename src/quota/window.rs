//! Quota windows: which stretch of time a quota's spending counts in. A
//! window starts at its UTC period's start (a day, a calendar month; never
//! for `none`) or at the quota's last reset, whichever is later, and ends
//! with its period.

use crate::store::{Quota, QuotaPeriod};

const DAY_MS: i64 = 86_400_000;

/// The stretch of time spending counts in, unix ms; `end` is exclusive
/// (`i64::MAX`: never ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

/// The window of `q` that holds `now_ms`.
pub fn window(q: &Quota, now_ms: i64) -> Window {
    let (start, end) = match q.period {
        QuotaPeriod::Day => {
            let start = day_start(now_ms);
            (start, start + DAY_MS)
        }
        QuotaPeriod::Month => month(now_ms),
        QuotaPeriod::None => (0, i64::MAX),
    };
    let start = q
        .reset_at
        .filter(|r| *r > start && *r <= now_ms)
        .unwrap_or(start);
    Window { start, end }
}

/// The start of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// The UTC calendar month holding `ms`: (start, end).
fn month(ms: i64) -> (i64, i64) {
    let days = ms.div_euclid(DAY_MS);
    let (y, m, _) = civil_from_days(days);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        days_from_civil(y, m, 1) * DAY_MS,
        days_from_civil(ny, nm, 1) * DAY_MS,
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (y, m, d).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The inverse: (y, m, d) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        let t =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
    }

    fn quota(period: QuotaPeriod, reset_at: Option<i64>) -> Quota {
        Quota {
            limit: 10,
            period,
            reset_at,
        }
    }

    #[test]
    fn a_day_window_is_the_utc_day() {
        let w = window(
            &quota(QuotaPeriod::Day, None),
            ms("2026-12-05T23:59:59.999Z"),
        );
        assert_eq!(w.start, ms("2026-12-05T00:00:00Z"));
        assert_eq!(w.end, ms("2026-12-06T00:00:00Z"));
    }

    #[test]
    fn a_month_window_is_the_calendar_month_across_years_and_leap_days() {
        let w = window(&quota(QuotaPeriod::Month, None), ms("2026-12-31T12:00:00Z"));
        assert_eq!(
            (w.start, w.end),
            (ms("2026-12-01T00:00:00Z"), ms("2027-01-01T00:00:00Z"))
        );
        let w = window(&quota(QuotaPeriod::Month, None), ms("2028-02-29T00:00:00Z"));
        assert_eq!(
            (w.start, w.end),
            (ms("2028-02-01T00:00:00Z"), ms("2028-03-01T00:00:00Z"))
        );
        let w = window(&quota(QuotaPeriod::Month, None), ms("1969-12-15T00:00:00Z"));
        assert_eq!(w.start, ms("1969-12-01T00:00:00Z"));
    }

    #[test]
    fn a_reset_starts_the_window_afresh_until_the_period_turns() {
        let reset = ms("2026-12-05T10:00:00Z");
        let q = quota(QuotaPeriod::Day, Some(reset));
        assert_eq!(window(&q, ms("2026-12-05T11:00:00Z")).start, reset);
        // The next day's window starts with the day.
        assert_eq!(
            window(&q, ms("2026-12-06T01:00:00Z")).start,
            ms("2026-12-06T00:00:00Z")
        );
        // A fixed number of uses never renews, but a reset renews it.
        let none = quota(QuotaPeriod::None, Some(reset));
        let w = window(&none, ms("2027-06-01T00:00:00Z"));
        assert_eq!((w.start, w.end), (reset, i64::MAX));
        assert_eq!(window(&quota(QuotaPeriod::None, None), reset).start, 0);
    }
}
