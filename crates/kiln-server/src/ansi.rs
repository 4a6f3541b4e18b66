//! Terminal escape sequences in job logs, read the one way both the log's HTML and its search
//! need: which bytes a sequence spans, and whether it sets a style (SGR). Nothing else a
//! terminal would do with them (hyperlinks, titles, cursor moves) is honoured.

/// An escape sequence found after an ESC byte.
#[derive(Debug, PartialEq, Eq)]
pub enum Escape<'a> {
    /// `ESC [ params m`: the style parameters (`1;31`).
    Style(&'a [u8]),
    /// Anything else, shown as nothing.
    Other,
}

/// The sequence that `after` (the bytes after an ESC) starts with, and its length in bytes.
/// A sequence cut off by the end of the line spans the rest of it.
pub fn sequence(after: &[u8]) -> (Escape<'_>, usize) {
    match after.first() {
        // CSI: parameter and intermediate bytes, then one final byte (`@`..`~`).
        Some(b'[') => {
            let body = &after[1..];
            match body.iter().position(|b| (0x40..=0x7e).contains(b)) {
                Some(end) if body[end] == b'm' => (Escape::Style(&body[..end]), end + 2),
                Some(end) => (Escape::Other, end + 2),
                None => (Escape::Other, after.len()),
            }
        }
        // OSC (hyperlinks, window titles): up to BEL or ST (`ESC \`).
        Some(b']') => {
            let mut i = 1;
            while i < after.len() {
                match after[i] {
                    0x07 => return (Escape::Other, i + 1),
                    0x1b if after.get(i + 1) == Some(&b'\\') => return (Escape::Other, i + 2),
                    _ => i += 1,
                }
            }
            (Escape::Other, after.len())
        }
        // Character set designations take one more byte.
        Some(b'(' | b')' | b'*' | b'+') if after.get(1).is_some_and(u8::is_ascii) => {
            (Escape::Other, 2)
        }
        // Any other two-character sequence; a multi-byte character after ESC goes whole.
        Some(_) => {
            let continuation = after[1..]
                .iter()
                .take_while(|b| (0x80..0xc0).contains(*b))
                .count();
            (Escape::Other, 1 + continuation)
        }
        None => (Escape::Other, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_span_what_a_terminal_reads() {
        assert_eq!(sequence(b"[1;31mred"), (Escape::Style(b"1;31"), 6));
        assert_eq!(sequence(b"[2Jx"), (Escape::Other, 3));
        assert_eq!(sequence(b"[0K"), (Escape::Other, 3));
        assert_eq!(sequence(b"]8;;javascript:x\x1b\\link"), (Escape::Other, 18));
        assert_eq!(sequence(b"]0;title\x07rest"), (Escape::Other, 9));
        assert_eq!(sequence(b"]8;;cut"), (Escape::Other, 7));
        assert_eq!(sequence(b"(Bx"), (Escape::Other, 2));
        assert_eq!(sequence("é!".as_bytes()), (Escape::Other, 2));
        assert_eq!(sequence(b"[12"), (Escape::Other, 3));
        assert_eq!(sequence(b""), (Escape::Other, 0));
    }
}
