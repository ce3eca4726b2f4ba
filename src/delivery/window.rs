//! Send windows: mail goes out only on the window's days and hours in the recipient's own
//! time zone (the contact's, else the account's, else the configured default — never a
//! silent UTC), and correctly across daylight-saving changes.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::definitions::values::SendWindow;

/// The next time mail may go out: `None` when `now` is inside every window given.
pub fn next_opening(
    now: DateTime<Utc>,
    zone: Tz,
    windows: &[&SendWindow],
) -> Option<DateTime<Utc>> {
    let mut candidate = now;
    // Each window may push the time later; a week of days covers every schedule.
    for _ in 0..8 {
        let mut moved = false;
        for window in windows {
            if let Some(opening) = opening_of(candidate, zone, window)
                && opening > candidate
            {
                candidate = opening;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    (candidate > now).then_some(candidate)
}

/// `now` if it is inside `window`, else the window's next opening.
fn opening_of(now: DateTime<Utc>, zone: Tz, window: &SendWindow) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&zone);
    let allowed = |date: NaiveDate| window.days.iter().any(|d| d.to_chrono() == date.weekday());
    let time = local.time();
    if allowed(local.date_naive()) && window.hours.contains(time) {
        return Some(now);
    }
    let first_day = if time < window.hours.start { 0 } else { 1 };
    (first_day..first_day + 8)
        .map(|offset| local.date_naive() + Duration::days(offset))
        .find(|date| allowed(*date))
        .map(|date| at_local(zone, date, window.hours.start))
}

/// A local wall-clock time as UTC. A time skipped by a spring-forward change becomes the
/// first valid time after it; a repeated time takes its first occurrence.
fn at_local(zone: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let mut naive = date.and_time(time);
    for _ in 0..4 {
        match zone.from_local_datetime(&naive) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => naive += Duration::minutes(30),
        }
    }
    naive.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::values::{HourRange, Weekday};

    fn weekdays_9_to_5() -> SendWindow {
        SendWindow {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            hours: "09:00-17:00".parse::<HourRange>().expect("hours"),
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn inside_the_window_mail_goes_now() {
        let window = weekdays_9_to_5();
        // Tuesday 10:00 in New York (EST, UTC-5).
        assert_eq!(
            next_opening(
                utc(2026, 11, 24, 15, 0),
                chrono_tz::America::New_York,
                &[&window]
            ),
            None
        );
    }

    #[test]
    fn at_night_mail_waits_for_the_morning_in_the_recipients_zone() {
        let window = weekdays_9_to_5();
        // Tuesday 03:00 UTC is Monday 22:00 in New York: next opening Tuesday 09:00 EST.
        let next = next_opening(
            utc(2026, 11, 24, 3, 0),
            chrono_tz::America::New_York,
            &[&window],
        );
        assert_eq!(next, Some(utc(2026, 11, 24, 14, 0)));
        // The same instant is Tuesday 04:00 in Berlin: opening 09:00 CET = 08:00 UTC.
        let next = next_opening(
            utc(2026, 11, 24, 3, 0),
            chrono_tz::Europe::Berlin,
            &[&window],
        );
        assert_eq!(next, Some(utc(2026, 11, 24, 8, 0)));
    }

    #[test]
    fn weekends_are_skipped_across_a_spring_forward_change() {
        let window = weekdays_9_to_5();
        // New York springs forward on Sunday 2026-03-08: Friday 18:00 EST → Monday 09:00 EDT.
        let next = next_opening(
            utc(2026, 3, 6, 23, 0),
            chrono_tz::America::New_York,
            &[&window],
        );
        assert_eq!(next, Some(utc(2026, 3, 9, 13, 0)));
        // Berlin springs forward on Sunday 2026-03-29: Saturday → Monday 09:00 CEST = 07:00 UTC.
        let next = next_opening(
            utc(2026, 3, 28, 12, 0),
            chrono_tz::Europe::Berlin,
            &[&window],
        );
        assert_eq!(next, Some(utc(2026, 3, 30, 7, 0)));
    }

    #[test]
    fn fall_back_change_in_the_southern_hemisphere() {
        let window = weekdays_9_to_5();
        // Sydney falls back on Sunday 2026-04-05 (AEDT UTC+11 → AEST UTC+10).
        // Friday 2026-04-03 20:00 AEDT = 09:00 UTC → Monday 09:00 AEST = Sunday 23:00 UTC.
        let next = next_opening(
            utc(2026, 4, 3, 9, 0),
            chrono_tz::Australia::Sydney,
            &[&window],
        );
        assert_eq!(next, Some(utc(2026, 4, 5, 23, 0)));
    }

    #[test]
    fn a_skipped_local_time_moves_to_the_first_valid_one() {
        let early = SendWindow {
            days: vec![Weekday::Sun],
            hours: "02:30-05:00".parse().expect("hours"),
        };
        // 02:30 does not exist in New York on 2026-03-08; the window opens at 03:00 EDT.
        let next = next_opening(
            utc(2026, 3, 7, 12, 0),
            chrono_tz::America::New_York,
            &[&early],
        );
        assert_eq!(next, Some(utc(2026, 3, 8, 7, 0)));
    }

    #[test]
    fn a_whole_day_window_holds_only_on_other_days() {
        let weekend = SendWindow {
            days: vec![Weekday::Sat, Weekday::Sun],
            hours: "00:00-24:00".parse().expect("hours"),
        };
        // Saturday 23:59 UTC goes at once; Friday 23:30 waits for Saturday 00:00.
        let saturday = utc(2026, 11, 28, 23, 59);
        assert_eq!(next_opening(saturday, chrono_tz::UTC, &[&weekend]), None);
        let friday = utc(2026, 11, 27, 23, 30);
        assert_eq!(
            next_opening(friday, chrono_tz::UTC, &[&weekend]),
            Some(utc(2026, 11, 28, 0, 0))
        );
        assert!("09:00-24:30".parse::<HourRange>().is_err());
        assert!("17:00-09:00".parse::<HourRange>().is_err());
    }

    #[test]
    fn a_journey_window_narrows_the_global_one() {
        let global = weekdays_9_to_5();
        let journey = SendWindow {
            days: vec![Weekday::Mon, Weekday::Tue],
            hours: "07:00-15:00".parse().expect("hours"),
        };
        // Wednesday 10:00 UTC (London): global open, journey closed until Monday 09:00.
        let next = next_opening(
            utc(2026, 11, 25, 10, 0),
            chrono_tz::Europe::London,
            &[&global, &journey],
        );
        assert_eq!(next, Some(utc(2026, 11, 30, 9, 0)));
    }
}
