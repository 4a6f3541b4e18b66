//! When a pipeline schedule runs: a five-field cron pattern (`minute hour day-of-month month
//! day-of-week`, with lists, ranges, steps, names and the `@daily`-style nicknames, as GitLab's
//! Fugit reads them) in an IANA time zone (`UTC` by default, `Europe/Berlin` …), evaluated in
//! that zone so that `0 9 * * *` stays at nine o'clock across daylight saving time.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// GitLab's `cron: syntax is invalid`.
    #[error("cron syntax is invalid")]
    Cron,
    /// GitLab's `cron_timezone: syntax is invalid`.
    #[error("cron_timezone syntax is invalid")]
    TimeZone,
}

/// A cron pattern and the zone it is read in, checked.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    pub fn parse(pattern: &str, zone: &str) -> Result<CronSchedule, ScheduleError> {
        let pattern = pattern.trim();
        let fields = pattern.split_whitespace().count();
        if !(pattern.starts_with('@') && fields == 1) && fields != 5 {
            return Err(ScheduleError::Cron);
        }
        let cron = Cron::from_str(pattern).map_err(|_| ScheduleError::Cron)?;
        let zone = Tz::from_str(zone.trim()).map_err(|_| ScheduleError::TimeZone)?;
        Ok(CronSchedule { cron, zone })
    }

    /// The first run strictly after `after_ms` (ms since the epoch), or None when the pattern
    /// never matches (`0 0 31 2 *`).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after: DateTime<Utc> = Utc.timestamp_millis_opt(after_ms).single()?;
        let local = after.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc).timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .expect("time")
    }

    #[test]
    fn runs_follow_the_pattern_in_its_zone() {
        let daily = CronSchedule::parse("0 9 * * *", "Europe/Berlin").unwrap();
        // Winter: 09:00 in Berlin is 08:00 UTC; summer: 07:00 UTC.
        assert_eq!(
            daily.next_after(at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-11T08:00:00Z"))
        );
        assert_eq!(
            daily.next_after(at("2026-07-10T12:00:00Z")),
            Some(at("2026-07-11T07:00:00Z"))
        );
        let every_five = CronSchedule::parse("*/5 * * * *", "UTC").unwrap();
        assert_eq!(
            every_five.next_after(at("2026-03-01T10:02:30Z")),
            Some(at("2026-03-01T10:05:00Z"))
        );
        // Strictly after: a run exactly now is the next one's predecessor.
        assert_eq!(
            every_five.next_after(at("2026-03-01T10:05:00Z")),
            Some(at("2026-03-01T10:10:00Z"))
        );
        let weekdays = CronSchedule::parse("30 6 * * mon-fri", "UTC").unwrap();
        // 2026-03-07 is a Saturday.
        assert_eq!(
            weekdays.next_after(at("2026-03-07T00:00:00Z")),
            Some(at("2026-03-09T06:30:00Z"))
        );
        let nightly = CronSchedule::parse("@daily", "America/New_York").unwrap();
        assert_eq!(
            nightly.next_after(at("2026-03-01T12:00:00Z")),
            Some(at("2026-03-02T05:00:00Z"))
        );
    }

    #[test]
    fn bad_patterns_and_zones_are_refused() {
        for pattern in [
            "",
            "* * * *",
            "* * * * * *",
            "61 * * * *",
            "hello",
            "@sometimes",
        ] {
            assert_eq!(
                CronSchedule::parse(pattern, "UTC").map(|_| ()),
                Err(ScheduleError::Cron),
                "{pattern:?}"
            );
        }
        assert_eq!(
            CronSchedule::parse("* * * * *", "Mars/Olympus").map(|_| ()),
            Err(ScheduleError::TimeZone)
        );
    }
}
