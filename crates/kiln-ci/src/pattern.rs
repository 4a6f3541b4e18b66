//! Slash-delimited regular expressions as GitLab writes them (`/^release-.*$/i`), shared by
//! only/except ref patterns, `rules:if` and `coverage:`.
//!
//! GitLab compiles them with RE2 (`Gitlab::UntrustedRegexp`); Rust's `regex` crate has the same
//! linear-time guarantees and nearly the same syntax, so a pattern valid in GitLab is valid here.
//! Flags are RE2's `i`, `s`, `m`, `U`, prefixed as `(?flags)` exactly as GitLab does.

use regex::{Regex, RegexBuilder};

/// Compiled programs are capped so a hostile pattern cannot make compilation itself expensive.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Splits `/body/flags` into (body, flags) when the text has that shape (flags from `ismU`).
/// The body may be empty; escaped slashes (`\/`) are unescaped like GitLab's lexer does.
pub(crate) fn split_literal(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix('/')?;
    let close = rest.rfind('/')?;
    let body = rest.get(..close)?;
    let flags = rest.get(close + 1..)?;
    if !flags.chars().all(|c| "ismU".contains(c)) {
        return None;
    }
    Some((body.replace("\\/", "/"), flags.to_string()))
}

/// Compiles a body with GitLab-style flags.
pub(crate) fn compile(body: &str, flags: &str) -> Result<Regex, regex::Error> {
    let source = if flags.is_empty() {
        body.to_string()
    } else {
        format!("(?{flags}){body}")
    };
    RegexBuilder::new(&source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// `Some(Ok(re))` for a valid `/…/flags` literal, `Some(Err)` for an invalid one, `None` when the
/// text is not slash-delimited at all.
pub(crate) fn from_literal(text: &str) -> Option<Result<Regex, regex::Error>> {
    let (body, flags) = split_literal(text)?;
    Some(compile(&body, &flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_compiles() {
        assert_eq!(
            split_literal("/^v\\d+/i"),
            Some(("^v\\d+".to_string(), "i".to_string()))
        );
        assert_eq!(split_literal("master"), None);
        assert_eq!(split_literal("/a/x"), None);
        assert_eq!(
            split_literal("/a\\/b/"),
            Some(("a/b".to_string(), String::new()))
        );
        let re = from_literal("/^RELEASE/i").and_then(Result::ok);
        assert!(re.is_some_and(|re| re.is_match("release-1")));
        assert!(matches!(from_literal("/(/"), Some(Err(_))));
    }
}
