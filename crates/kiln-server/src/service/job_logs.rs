//! A job's log as people read it: windows of it that begin and end on line boundaries (a
//! page shows one window of a 100 MB log and fetches its neighbours as the reader moves),
//! and a search over all of it that reads it part by part, in bounded memory.

use kiln_core::BuildStatus;
use kiln_store::{Store, StoreResult};

/// The bytes a page shows at once, and fetches at a time as the reader scrolls.
pub const WINDOW_BYTES: i64 = 256 * 1024;

/// A line longer than this is searched in pieces of this size (memory stays bounded).
const SEARCHED_LINE_BYTES: usize = 64 * 1024;

/// The most matches one search reports.
pub const MAX_MATCHES: usize = 1_000;

/// The most lines a window holds (short lines make much more HTML than their bytes).
pub const WINDOW_LINES: usize = 2_000;

/// Whether the build's log is all written: it grows only while the build may still run (a
/// manual or skipped job writes none), so its last line is shown even without a newline.
pub fn log_is_final(status: BuildStatus) -> bool {
    !matches!(
        status,
        BuildStatus::Running | BuildStatus::Pending | BuildStatus::Created
    )
}

/// Whole lines of a log: bytes `[start, end)`, the first of them line number `first_line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogWindow {
    pub start: i64,
    pub end: i64,
    pub first_line: i64,
    pub lines: i64,
    pub text: Vec<u8>,
}

/// Which end of the asked range a window keeps when it holds more than `WINDOW_LINES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first lines (a reader moving down, or a search's match).
    First,
    /// The last lines (the end of the log, or a reader moving up).
    Last,
}

/// The whole lines within `[from, to)` of the log of `build_id`, `size` bytes long: from
/// the first line that starts at `from` or later, up to the last newline before `to`.
/// With `whole_end` (the job is over), a last line without a newline is shown too. A line
/// longer than the window is cut, so a reader always moves on.
pub async fn window(
    store: &Store,
    build_id: i64,
    (from, to, kept): (i64, i64, Keep),
    (size, whole_end): (i64, bool),
) -> StoreResult<LogWindow> {
    let from = from.clamp(0, size);
    let to = to.clamp(from, size);
    // One byte more before `from`, to know whether a line starts at `from`.
    let read_from = (from - 1).max(0);
    let read = store.builds().trace_window(build_id, read_from, to).await?;
    let data = &read.data;
    let skip = if from == 0 {
        0
    } else {
        data.iter()
            .position(|b| *b == b'\n')
            .map_or(data.len(), |at| at + 1)
    };
    let body = &data[skip..];
    let keep = if to == size && whole_end {
        body.len()
    } else {
        match body.iter().rposition(|b| *b == b'\n') {
            Some(at) => at + 1,
            // One line longer than the window: cut it rather than show nothing.
            None if body.len() as i64 >= WINDOW_BYTES => body.len(),
            None => 0,
        }
    };
    let (cut_from, cut_to) = at_most_lines(&body[..keep], kept);
    let lines_skipped = data[..skip + cut_from]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as i64;
    let start = read.start + (skip + cut_from) as i64;
    let text = body[cut_from..cut_to].to_vec();
    Ok(LogWindow {
        start,
        end: start + text.len() as i64,
        first_line: read.lines_before + lines_skipped + 1,
        lines: line_count(&text),
        text,
    })
}

fn line_count(text: &[u8]) -> i64 {
    if text.is_empty() {
        return 0;
    }
    text.split(|b| *b == b'\n').count() as i64 - i64::from(text.ends_with(b"\n"))
}

/// The part of `text` (whole lines) with at most `WINDOW_LINES` lines, from the end `kept`.
fn at_most_lines(text: &[u8], kept: Keep) -> (usize, usize) {
    let newlines = || text.iter().enumerate().filter(|(_, b)| **b == b'\n');
    match kept {
        Keep::First => match newlines().nth(WINDOW_LINES - 1) {
            Some((at, _)) => (0, at + 1),
            None => (0, text.len()),
        },
        Keep::Last => {
            // The newline that ends the line before the last `WINDOW_LINES` ones.
            let ending = text.ends_with(b"\n");
            let back = WINDOW_LINES + usize::from(ending);
            let total = newlines().count();
            if total < back {
                return (0, text.len());
            }
            let (at, _) = newlines().nth(total - back).expect("counted");
            (at + 1, text.len())
        }
    }
}

/// A line where a search found its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub line: i64,
    /// Where the line starts in the log.
    pub offset: i64,
}

/// The lines of the log of `build_id` whose visible text (escape sequences and what a
/// carriage return hides left out) contains `needle`, ignoring ASCII case: at most
/// `MAX_MATCHES`, and whether there were more.
pub async fn search(store: &Store, build_id: i64, needle: &str) -> StoreResult<(Vec<Match>, bool)> {
    let needle = needle.to_ascii_lowercase().into_bytes();
    let mut scan = Scan::new(needle);
    let mut from = 0;
    loop {
        let parts = store.builds().trace_parts(build_id, from, 64).await?;
        let more = parts.len() == 64;
        for (start, data) in &parts {
            scan.feed(*start, data);
            from = start + data.len() as i64;
            if scan.full() {
                break;
            }
        }
        if !more || scan.full() {
            scan.finish();
            let more_found = scan.full();
            scan.matches.truncate(MAX_MATCHES);
            return Ok((scan.matches, more_found));
        }
    }
}

/// A search under way: the line being read, and what matched so far.
struct Scan {
    needle: Vec<u8>,
    line: Vec<u8>,
    line_number: i64,
    line_offset: i64,
    /// Whether the current line already matched (a long line searched in pieces).
    matched: bool,
    matches: Vec<Match>,
}

impl Scan {
    fn new(needle: Vec<u8>) -> Scan {
        Scan {
            needle,
            line: Vec::new(),
            line_number: 1,
            line_offset: 0,
            matched: false,
            matches: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.matches.len() > MAX_MATCHES
    }

    fn feed(&mut self, start: i64, data: &[u8]) {
        let mut rest = data;
        let mut at = start;
        while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..newline]);
            self.test_line();
            at += newline as i64 + 1;
            rest = &rest[newline + 1..];
            self.line.clear();
            self.matched = false;
            self.line_number += 1;
            self.line_offset = at;
            if self.full() {
                return;
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > SEARCHED_LINE_BYTES {
            self.test_line();
            // Keep the end, so a match across the cut is still found.
            let keep = self.needle.len().min(self.line.len());
            self.line.drain(..self.line.len() - keep);
        }
    }

    fn finish(&mut self) {
        if !self.line.is_empty() {
            self.test_line();
        }
    }

    fn test_line(&mut self) {
        if self.matched || self.needle.is_empty() {
            return;
        }
        if contains(&visible(&self.line), &self.needle) {
            self.matched = true;
            self.matches.push(Match {
                line: self.line_number,
                offset: self.line_offset,
            });
        }
    }
}

/// What a line shows: after its last carriage return, without escape sequences, lowercased.
fn visible(line: &[u8]) -> Vec<u8> {
    let line = match line.iter().rposition(|b| *b == b'\r') {
        // A trailing `\r` (CRLF) hides nothing.
        Some(at) if at + 1 < line.len() => &line[at + 1..],
        Some(at) => &line[..at],
        None => line,
    };
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] == 0x1b {
            i += 1 + crate::ansi::sequence(&line[i + 1..]).1;
            continue;
        }
        out.push(line[i].to_ascii_lowercase());
        i += 1;
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_found(log: &[u8], needle: &str, piece: usize) -> Vec<(i64, i64)> {
        let mut scan = Scan::new(needle.to_ascii_lowercase().into_bytes());
        for (i, chunk) in log.chunks(piece).enumerate() {
            scan.feed((i * piece) as i64, chunk);
        }
        scan.finish();
        scan.matches.iter().map(|m| (m.line, m.offset)).collect()
    }

    #[test]
    fn search_sees_what_the_page_shows_whatever_the_parts() {
        let log = b"one\n\x1b[31mERR\x1b[0mOR here\nfine\n10%\rerror gone?\nlast error";
        for piece in [1, 3, 7, 100] {
            assert_eq!(
                lines_found(log, "error", piece),
                vec![(2, 4), (4, 29), (5, 45)],
                "{piece}"
            );
        }
        // What a carriage return hid is not found.
        assert_eq!(lines_found(b"secret\rshown\n", "secret", 4), vec![]);
    }

    #[test]
    fn a_window_keeps_at_most_its_lines_from_the_end_asked() {
        let text: Vec<u8> = (1..=WINDOW_LINES + 5)
            .flat_map(|n| format!("{n}\n").into_bytes())
            .collect();
        let (from, to) = at_most_lines(&text, Keep::First);
        assert_eq!(from, 0);
        assert!(text[..to].ends_with(format!("\n{WINDOW_LINES}\n").as_bytes()));
        let (from, to) = at_most_lines(&text, Keep::Last);
        assert_eq!(to, text.len());
        assert!(text[from..].starts_with(b"6\n"), "{}", from);
        assert_eq!(line_count(&text[from..to]), WINDOW_LINES as i64);
        let partial = b"a\nb\nc";
        assert_eq!(at_most_lines(partial, Keep::Last), (0, 5));
        assert_eq!((line_count(partial), line_count(b"")), (3, 0));
    }

    #[test]
    fn a_long_line_matches_once_and_across_its_pieces() {
        let mut log = vec![b'x'; SEARCHED_LINE_BYTES + 10];
        log.extend_from_slice(b"needle");
        log.extend(vec![b'y'; SEARCHED_LINE_BYTES * 2]);
        log.extend_from_slice(b"needle\nnext needle\n");
        assert_eq!(
            lines_found(&log, "NEEDLE", 4096),
            vec![(1, 0), (2, log.len() as i64 - 12)]
        );
    }
}
