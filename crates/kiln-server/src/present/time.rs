//! GitLab's timestamp formats: UTC with milliseconds and `Z` for Kiln's own times, and the
//! author's own offset for commit dates (`2015-12-24T16:51:14.000+01:00`).

use time::{macros::format_description, OffsetDateTime, UtcOffset};

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2015-12-24T15:51:21.802Z`
pub fn utc(ms: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at(ms).format(format).unwrap_or_default()
}

/// `2016-08-12 15:23:28 UTC`, as GitLab's webhook payloads write times.
pub fn hook(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at(ms).format(format).unwrap_or_default()
}

/// `2015-12-24T16:51:14.000+01:00`
pub fn with_offset(ms: i64, offset_minutes: i64) -> String {
    let offset =
        UtcOffset::from_whole_seconds((offset_minutes * 60) as i32).unwrap_or(UtcOffset::UTC);
    let format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
    );
    at(ms).to_offset(offset).format(format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_reference_doc() {
        assert_eq!(utc(1_450_972_281_802), "2015-12-24T15:51:21.802Z");
        assert_eq!(hook(1_450_972_281_802), "2015-12-24 15:51:21 UTC");
        assert_eq!(
            with_offset(1_450_972_274_000, 60),
            "2015-12-24T16:51:14.000+01:00"
        );
        assert_eq!(
            with_offset(1_450_972_274_000, -330),
            "2015-12-24T10:21:14.000-05:30"
        );
        assert_eq!(
            with_offset(1_450_972_274_000, 0),
            "2015-12-24T15:51:14.000+00:00"
        );
    }
}
