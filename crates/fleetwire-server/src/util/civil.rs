//! Calendar dates in UTC from and to days since 1970-01-01 (Howard Hinnant's algorithms).

/// Days since 1970-01-01 of year `y`, month `m` (1–12), day `d`.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of `days` since 1970-01-01.
#[allow(clippy::many_single_char_names)] // date arithmetic's usual names
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The calendar month (UTC) holding unix time `t`, as `(year, month)`.
pub(crate) fn month_of(t: i64) -> (i64, i64) {
    let (y, m, _) = civil_from_days(t.div_euclid(86_400));
    (y, m)
}

/// Unix times of the first second of month `(year, month)` and of the month after it.
pub(crate) fn month_bounds(year: i64, month: i64) -> (i64, i64) {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    (
        days_from_civil(year, month, 1) * 86_400,
        days_from_civil(ny, nm, 1) * 86_400,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_their_bounds() {
        assert_eq!(month_of(1_750_000_000), (2025, 6));
        assert_eq!(month_bounds(2025, 6), (1_748_736_000, 1_751_328_000));
        assert_eq!(
            month_bounds(2024, 12).1,
            days_from_civil(2025, 1, 1) * 86_400
        );
        assert_eq!(month_of(-1), (1969, 12));
        for t in [0, 951_782_400, 1_709_164_800, 4_102_444_800] {
            let (y, m) = month_of(t);
            let (a, b) = month_bounds(y, m);
            assert!(a <= t && t < b);
        }
    }
}
