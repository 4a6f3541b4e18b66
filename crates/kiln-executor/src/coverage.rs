//! Coverage from the trace, as GitLab computes it: the last line that matches the job's regex,
//! the last match on it, and the first number in that match. Lines are fed as they stream,
//! so the trace is never held whole.

use regex::Regex;

pub struct CoverageScanner {
    regex: Option<Regex>,
    partial: Vec<u8>,
    last: Option<f64>,
}

/// A partial line longer than this is scanned as it is and dropped (bounded memory).
const MAX_LINE: usize = 64 * 1024;

impl CoverageScanner {
    pub fn new(pattern: Option<&str>) -> CoverageScanner {
        CoverageScanner {
            regex: pattern.and_then(|p| Regex::new(p).ok()),
            partial: Vec::new(),
            last: None,
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.regex.is_none() {
            return;
        }
        for &byte in data {
            if byte == b'\n' || self.partial.len() >= MAX_LINE {
                self.line();
            } else {
                self.partial.push(byte);
            }
        }
    }

    fn line(&mut self) {
        if let Some(regex) = &self.regex {
            let line = String::from_utf8_lossy(&self.partial);
            // The last match on the line; within it the last capture group that took part, if any.
            let found = regex.captures_iter(&line).last().and_then(|caps| {
                (1..caps.len())
                    .rev()
                    .find_map(|i| caps.get(i))
                    .or_else(|| caps.get(0))
                    .map(|m| m.as_str().to_owned())
            });
            if let Some(found) = found {
                let number = Regex::new(r"\d+(\.\d+)?")
                    .ok()
                    .and_then(|n| n.find(&found).and_then(|m| m.as_str().parse::<f64>().ok()));
                if let Some(number) = number {
                    self.last = Some(number);
                }
            }
        }
        self.partial.clear();
    }

    pub fn finish(mut self) -> Option<f64> {
        if !self.partial.is_empty() {
            self.line();
        }
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_last_matching_line_across_chunks() {
        let mut s = CoverageScanner::new(Some(r"Coverage: \d+\.\d+%"));
        s.feed(b"Coverage: 10.5%\nnoise\nCover");
        s.feed(b"age: 87.25%\nmore noise\n");
        assert_eq!(s.finish(), Some(87.25));
    }

    #[test]
    fn no_regex_or_no_match_is_none() {
        let mut s = CoverageScanner::new(None);
        s.feed(b"Coverage: 10%\n");
        assert_eq!(s.finish(), None);
        let mut s = CoverageScanner::new(Some("total: \\d+"));
        s.feed(b"nothing here");
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn gitlab_style_lines_with_text_around() {
        let mut s = CoverageScanner::new(Some(r"TOTAL.+ (\d+%)"));
        s.feed(b"TOTAL    120   10    92%\n");
        assert_eq!(
            s.finish(),
            Some(92.0),
            "the last capture group, as GitLab does"
        );
    }
}
