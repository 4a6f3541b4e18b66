//! A job's log as HTML: ANSI colours and styles become classes (the Content-Security-Policy
//! allows no inline style), GitLab's collapsible sections (`section_start:TIME:NAME` …
//! `section_end:TIME:NAME`, `[collapsed=true]`) become `<details>` with their duration, and
//! every line gets a number that links to itself (`#L123`). Every byte of the log is escaped:
//! whatever a job prints stays text.

use std::fmt::Write as _;

/// The SGR state of the text being written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn classes(&self) -> String {
        let mut classes = Vec::new();
        if let Some(fg) = self.fg {
            classes.push(format!("fg{fg}"));
        }
        if let Some(bg) = self.bg {
            classes.push(format!("bg{bg}"));
        }
        for (on, name) in [(self.bold, "b"), (self.italic, "i"), (self.underline, "u")] {
            if on {
                classes.push(name.to_owned());
            }
        }
        classes.join(" ")
    }

    /// Applies one SGR sequence's parameters (`1;31`); 256-colour and RGB ones are skipped.
    fn apply(&mut self, params: &str) {
        let codes: Vec<u16> = params.split(';').map(|p| p.parse().unwrap_or(0)).collect();
        let mut i = 0;
        while let Some(&code) = codes.get(i) {
            match code {
                0 => *self = Style::default(),
                1 => self.bold = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => self.bold = false,
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some((code - 30) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((code - 40) as u8),
                49 => self.bg = None,
                90..=97 => self.fg = Some((code - 90 + 8) as u8),
                100..=107 => self.bg = Some((code - 100 + 8) as u8),
                38 | 48 => {
                    // 38;5;N or 38;2;R;G;B: skip their arguments.
                    i += match codes.get(i + 1) {
                        Some(5) => 2,
                        Some(2) => 4,
                        _ => 0,
                    };
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// A section open at this point of the log.
struct Open {
    name: String,
    started: i64,
}

/// The log `text` as HTML lines, numbered from `first_line`.
pub fn render(text: &str, first_line: usize) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut style = Style::default();
    let mut open: Vec<Open> = Vec::new();
    let mut number = first_line;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        let (line, marker) = take_marker(line);
        match marker {
            Some(Marker::Start {
                name,
                time,
                collapsed,
            }) => {
                let _ = write!(
                    out,
                    "<details class=\"section\"{} data-section=\"{}\"><summary>",
                    if collapsed { "" } else { " open" },
                    escape(&name)
                );
                write_line(&mut out, number, line, &mut style);
                out.push_str("</summary>");
                number += 1;
                open.push(Open {
                    name,
                    started: time,
                });
                continue;
            }
            Some(Marker::End { name, time }) => {
                if let Some(at) = open.iter().rposition(|o| o.name == name) {
                    while open.len() > at {
                        let section = open.pop().expect("an open section");
                        let secs = (time - section.started).max(0);
                        let _ = write!(
                            out,
                            "<p class=\"section-duration\">{}</p></details>",
                            duration(secs)
                        );
                    }
                }
                if line.is_empty() {
                    // The line is not shown, but it keeps its number: numbers count the
                    // log's newlines, as windows and the search do.
                    number += 1;
                    continue;
                }
            }
            None => {}
        }
        write_line(&mut out, number, line, &mut style);
        number += 1;
    }
    for _ in open {
        out.push_str("</details>");
    }
    out
}

fn write_line(out: &mut String, number: usize, line: &str, style: &mut Style) {
    let _ = write!(
        out,
        "<div class=\"line\" id=\"L{number}\"><a class=\"n\" href=\"#L{number}\">{number}</a><span class=\"t\">"
    );
    write_styled(out, line, style);
    out.push_str("</span></div>");
}

/// The text with its escape sequences turned into spans (a carriage return inside a line,
/// as progress bars print, keeps what follows it, as a terminal shows).
fn write_styled(out: &mut String, line: &str, style: &mut Style) {
    let line = line.rsplit('\r').next().unwrap_or(line);
    let mut rest = line;
    let mut span_open = false;
    let open_span = |out: &mut String, style: &Style, span_open: &mut bool| {
        if *span_open {
            out.push_str("</span>");
            *span_open = false;
        }
        let classes = style.classes();
        if !classes.is_empty() {
            let _ = write!(out, "<span class=\"{classes}\">");
            *span_open = true;
        }
    };
    open_span(out, style, &mut span_open);
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&escape(&rest[..at]));
        let after = &rest[at + 1..];
        let (sequence, len) = crate::ansi::sequence(after.as_bytes());
        if let crate::ansi::Escape::Style(params) = sequence {
            style.apply(std::str::from_utf8(params).unwrap_or(""));
            open_span(out, style, &mut span_open);
        }
        // Sequences end on ASCII bytes or after whole characters: `len` is a char boundary.
        rest = after.get(len..).unwrap_or("");
    }
    out.push_str(&escape(rest));
    if span_open {
        out.push_str("</span>");
    }
}

enum Marker {
    Start {
        name: String,
        time: i64,
        collapsed: bool,
    },
    End {
        name: String,
        time: i64,
    },
}

/// A `section_start:`/`section_end:` marker at the start of the line (after any escape
/// sequences a runner puts before it), and the line's text without it.
fn take_marker(line: &str) -> (&str, Option<Marker>) {
    let trimmed = line.trim_start_matches(['\x1b', '[', '0', 'K']);
    for (prefix, start) in [("section_start:", true), ("section_end:", false)] {
        let Some(rest) = trimmed.strip_prefix(prefix) else {
            continue;
        };
        let Some((time, rest)) = rest.split_once(':') else {
            continue;
        };
        let Ok(time) = time.parse::<i64>() else {
            continue;
        };
        // The name ends at the `\r` that hides the marker in a terminal.
        let (name, text) = rest.split_once('\r').unwrap_or((rest, ""));
        let text = text.strip_prefix("\x1b[0K").unwrap_or(text);
        let (name, options) = match name.split_once('[') {
            Some((name, options)) => (name, options),
            None => (name, ""),
        };
        let marker = if start {
            Marker::Start {
                name: name.to_owned(),
                time,
                collapsed: options.contains("collapsed=true"),
            }
        } else {
            Marker::End {
                name: name.to_owned(),
                time,
            }
        };
        return (text, Some(marker));
    }
    (line, None)
}

fn duration(secs: i64) -> String {
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

/// Text as HTML or XML character data and attribute values (control characters dropped).
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_become_classes_and_text_stays_text() {
        let html = render("\x1b[32;1mok\x1b[0;m <script>alert(1)</script>\n", 1);
        assert_eq!(
            html,
            "<div class=\"line\" id=\"L1\"><a class=\"n\" href=\"#L1\">1</a><span class=\"t\"><span class=\"fg2 b\">ok</span> &lt;script&gt;alert(1)&lt;/script&gt;</span></div>"
        );
        // An escape that tries to close the markup is dropped, not passed on.
        let tricky = render(
            "\x1b[31m\"><img src=x onerror=alert(1)>\x1b]0;title\x07\n",
            1,
        );
        assert!(!tricky.contains("<img"), "{tricky}");
        assert!(tricky.contains("&quot;&gt;&lt;img"), "{tricky}");
    }

    #[test]
    fn sections_fold_with_their_duration() {
        let log = "before\n\x1b[0Ksection_start:100:build_step[collapsed=true]\r\x1b[0KBuilding\ninside\n\x1b[0Ksection_end:165:build_step\r\x1b[0K\nafter\n";
        let html = render(log, 1);
        assert!(
            html.contains("<details class=\"section\" data-section=\"build_step\"><summary>"),
            "{html}"
        );
        assert!(html.contains(">Building</span></div></summary>"), "{html}");
        assert!(
            html.contains("<p class=\"section-duration\">01:05</p></details>"),
            "{html}"
        );
        // The section's end is not shown but keeps its number: "after" is the fifth line.
        assert!(
            !html.contains("id=\"L4\"")
                && html.contains(
                    "id=\"L5\"><a class=\"n\" href=\"#L5\">5</a><span class=\"t\">after<"
                ),
            "{html}"
        );
        let open = render("section_start:1:a\r\x1b[0KA\n", 1);
        assert!(open.contains(" open data-section=\"a\""), "{open}");
    }

    #[test]
    fn a_carriage_return_keeps_what_follows() {
        let html = render("10%\r50%\r100%\n", 7);
        assert!(
            html.contains("id=\"L7\"") && html.contains(">100%<"),
            "{html}"
        );
        assert!(!html.contains("50%"));
    }
}
