//! GitLab's human durations (`timeout`, `start_in`, `artifacts:expire_in`), parsed the way the
//! ChronicDuration gem used by GitLab reads them: a bare number is seconds, units may be
//! abbreviated, amounts may be fractional, "and" and commas are noise, and `h:m:s` is accepted.
//! "never" is not a duration; callers that allow it handle it before calling us.

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;
const WEEK: f64 = 7.0 * DAY;
/// ChronicDuration's month is 30 days and its year 365.25 days.
const MONTH: f64 = 30.0 * DAY;
const YEAR: f64 = 365.25 * DAY;

/// Parses GitLab human durations: "3600" (seconds), "1h 30m", "30 minutes", "1 week",
/// "2 days 4 hours", "1.5 hours", "1:30:00"; None for invalid; "never" handled by callers.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() {
        return None;
    }
    if text.contains(':') {
        return parse_clock(&text);
    }
    let tokens = tokenize(&text)?;
    let mut total = 0.0_f64;
    let mut iter = tokens.into_iter().peekable();
    let mut saw_amount = false;
    while let Some(token) = iter.next() {
        let Token::Number(amount) = token else {
            // A unit with no amount before it ("hours") is not a duration.
            return None;
        };
        saw_amount = true;
        let unit = match iter.peek() {
            Some(Token::Word(word)) => {
                let seconds = unit_seconds(word)?;
                iter.next();
                seconds
            }
            // A trailing or bare number counts in seconds, as ChronicDuration's default unit.
            _ => 1.0,
        };
        total += amount * unit;
    }
    if !saw_amount || !total.is_finite() || total < 0.0 || total > u64::MAX as f64 {
        return None;
    }
    Some(total.floor() as u64)
}

enum Token {
    Number(f64),
    Word(String),
}

/// Splits "1h30m, 2 days and 4.5 hours" into numbers and unit words; None on stray characters.
fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || *c == '.')
            {
                i += 1;
            }
            let number: String = chars.get(start..i)?.iter().collect();
            tokens.push(Token::Number(number.parse().ok()?));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while chars.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
                i += 1;
            }
            let word: String = chars.get(start..i)?.iter().collect();
            if word != "and" {
                tokens.push(Token::Word(word));
            }
        } else {
            return None;
        }
    }
    Some(tokens)
}

fn unit_seconds(word: &str) -> Option<f64> {
    Some(match word {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => HOUR,
        "d" | "day" | "days" => DAY,
        "w" | "wk" | "wks" | "week" | "weeks" => WEEK,
        "mo" | "mos" | "month" | "months" => MONTH,
        "y" | "yr" | "yrs" | "year" | "years" => YEAR,
        _ => return None,
    })
}

/// "1:30" is minutes:seconds, "1:30:00" hours:minutes:seconds.
fn parse_clock(text: &str) -> Option<u64> {
    let parts: Vec<u64> = text
        .split(':')
        .map(|p| p.trim().parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = match parts.as_slice() {
        [m, s] => (0, *m, *s),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    h.checked_mul(3600)?
        .checked_add(m.checked_mul(60)?)?
        .checked_add(s)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn plain_seconds() {
        assert_eq!(parse_duration("3600"), Some(3600));
        assert_eq!(parse_duration(" 42 "), Some(42));
        assert_eq!(parse_duration("0"), Some(0));
    }

    #[test]
    fn units_and_abbreviations() {
        assert_eq!(parse_duration("1h 30m"), Some(5400));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("30 minutes"), Some(1800));
        assert_eq!(parse_duration("1 week"), Some(604_800));
        assert_eq!(
            parse_duration("2 days 4 hours"),
            Some(2 * 86_400 + 4 * 3600)
        );
        assert_eq!(parse_duration("3 mins 4 sec"), Some(184));
        assert_eq!(
            parse_duration("1 day, 2 hours and 10 minutes"),
            Some(86_400 + 7200 + 600)
        );
        assert_eq!(parse_duration("2 weeks"), Some(1_209_600));
        assert_eq!(parse_duration("1 month"), Some(2_592_000));
        assert_eq!(parse_duration("1 year"), Some(31_557_600));
        assert_eq!(parse_duration("10 Seconds"), Some(10));
    }

    #[test]
    fn fractions_and_clock() {
        assert_eq!(parse_duration("1.5 hours"), Some(5400));
        assert_eq!(parse_duration("0.5 days"), Some(43_200));
        assert_eq!(parse_duration("1:30"), Some(90));
        assert_eq!(parse_duration("1:30:00"), Some(5400));
        assert_eq!(parse_duration("1h 30"), Some(3630));
    }

    #[test]
    fn invalid() {
        for bad in [
            "",
            "   ",
            "never",
            "hours",
            "1 fortnight",
            "abc",
            "1..5 h",
            "1:2:3:4",
            "-5",
            "1;2",
            "1:x",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
