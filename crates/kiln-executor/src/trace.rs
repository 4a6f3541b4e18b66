//! The trace of a running job: bytes go to the transport in batches (one append per batch,
//! not per line) at most `FLUSH_AFTER` after they were written, up to the size limit, after
//! which a notice says the rest was dropped. A byte counts as written only once the
//! transport has stored it; a failed append is sent again, at the same offset.

use crate::transport::{SinkError, Transport};
use std::time::{Duration, Instant};

const BATCH_BYTES: usize = 64 * 1024;
/// Output waits at most this long before it is sent, so a quiet job's trace is current.
pub const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// Tries of the last flush of a job before its remaining output is given up.
const FINAL_TRIES: u32 = 5;

/// What masked values become in the trace, as in GitLab.
pub const MASK: &[u8] = b"[MASKED]";

/// Replaces masked values in a stream of output that may split them anywhere: the end of
/// what it has seen is held back while it could still be the start of a value.
#[derive(Debug, Default)]
pub struct Masker {
    values: Vec<Vec<u8>>,
    held: Vec<u8>,
}

impl Masker {
    pub fn new(values: &[String]) -> Masker {
        let mut values: Vec<Vec<u8>> = values
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| v.as_bytes().to_vec())
            .collect();
        // The longest first, so a value containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker {
            values,
            held: Vec::new(),
        }
    }

    /// The output that is certain now, masked; what might begin a value is kept back.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.values.is_empty() {
            return data.to_vec();
        }
        let mut text = std::mem::take(&mut self.held);
        text.extend_from_slice(data);
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        'scan: while at < text.len() {
            for value in &self.values {
                if text[at..].starts_with(value) {
                    out.extend_from_slice(MASK);
                    at += value.len();
                    continue 'scan;
                }
            }
            // A proper prefix of a value reaching the end: wait for what follows.
            let rest = &text[at..];
            if self
                .values
                .iter()
                .any(|v| v.len() > rest.len() && v.starts_with(rest))
            {
                self.held = rest.to_vec();
                return out;
            }
            out.push(text[at]);
            at += 1;
        }
        out
    }

    /// What is held back, once no more output follows (it was not a value).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

pub struct TraceWriter<'a, T: Transport> {
    transport: &'a mut T,
    masker: Masker,
    buffer: Vec<u8>,
    /// Bytes the transport has stored: the offset of the next append.
    stored: u64,
    /// When the oldest unsent byte was written.
    waiting_since: Option<Instant>,
    limit: u64,
    truncated: bool,
    gone: bool,
}

impl<'a, T: Transport> TraceWriter<'a, T> {
    /// A writer that masks `masked` values in the job's output.
    pub fn masking(transport: &'a mut T, limit: u64, masked: &[String]) -> Self {
        TraceWriter {
            transport,
            masker: Masker::new(masked),
            buffer: Vec::with_capacity(BATCH_BYTES),
            stored: 0,
            waiting_since: None,
            limit,
            truncated: false,
            gone: false,
        }
    }

    /// The transport said the job is no longer this runner's: it must stop.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// How long until buffered output is due to be sent; None when nothing waits.
    pub fn due_in(&self) -> Option<Duration> {
        self.waiting_since
            .map(|since| FLUSH_AFTER.saturating_sub(since.elapsed()))
    }

    /// The transport, for steps that need it between trace writes.
    pub fn transport(&mut self) -> &mut T {
        self.transport
    }

    pub async fn write(&mut self, data: &[u8]) {
        if self.truncated || self.gone {
            return;
        }
        let masked = self.masker.push(data);
        self.write_masked(&masked).await;
    }

    async fn write_masked(&mut self, data: &[u8]) {
        if self.truncated || self.gone {
            return;
        }
        let room = self
            .limit
            .saturating_sub(self.stored + self.buffer.len() as u64) as usize;
        if data.len() > room {
            self.buffer.extend_from_slice(&data[..room]);
            self.truncated = true;
            let notice = format!(
                "\n\x1b[31;1mJob's log exceeded limit of {} bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n",
                self.limit
            );
            self.buffer.extend_from_slice(notice.as_bytes());
            self.flush().await;
            return;
        }
        self.buffer.extend_from_slice(data);
        self.waiting_since.get_or_insert_with(Instant::now);
        if self.buffer.len() >= BATCH_BYTES || self.due_in() == Some(Duration::ZERO) {
            self.flush().await;
        }
    }

    /// A line from the runner itself (not the job), always kept. It goes out with the next
    /// flush (at most `FLUSH_AFTER` later while the job runs): notes written together cost
    /// one append.
    pub fn note(&mut self, line: &str) {
        // The job's output before the note goes first (a note ends what it printed).
        let held = self.masker.finish();
        self.buffer.extend_from_slice(&held);
        self.buffer.extend_from_slice(line.as_bytes());
        self.buffer.push(b'\n');
        self.waiting_since.get_or_insert_with(Instant::now);
    }

    /// Sends what is buffered. On a failure that may pass, it stays buffered for the next
    /// flush (a little later, not at once).
    pub async fn flush(&mut self) {
        if self.buffer.is_empty() || self.gone {
            self.waiting_since = None;
            return;
        }
        match self.transport.append_trace(self.stored, &self.buffer).await {
            Ok(()) => {
                self.stored += self.buffer.len() as u64;
                self.buffer.clear();
                self.waiting_since = None;
            }
            Err(SinkError::JobGone) => {
                self.gone = true;
                self.buffer.clear();
                self.waiting_since = None;
            }
            Err(SinkError::Retry(err)) => {
                tracing::warn!(error = %err, offset = self.stored, "could not store trace; will retry");
                self.waiting_since = Some(Instant::now());
            }
        }
    }

    /// The job's last flush: tries a few times before giving up what is left.
    pub async fn finish(&mut self) {
        let held = self.masker.finish();
        self.write_masked(&held).await;
        for attempt in 0..FINAL_TRIES {
            self.flush().await;
            if self.buffer.is_empty() || self.gone {
                return;
            }
            tokio::time::sleep(FLUSH_AFTER * 2_u32.pow(attempt)).await;
        }
        tracing::error!(
            bytes = self.buffer.len(),
            "trace output lost: the transport kept failing"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Masker;

    fn masked(values: &[&str], pieces: &[&str]) -> String {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut masker = Masker::new(&values);
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(masker.push(piece.as_bytes()));
        }
        out.extend(masker.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_masked_wherever_the_output_splits_them() {
        let secret = "s3cr3t-value";
        let whole = format!("token={secret} and again {secret}\n");
        for split in 0..whole.len() {
            let (a, b) = whole.split_at(split);
            assert_eq!(
                masked(&[secret], &[a, b]),
                "token=[MASKED] and again [MASKED]\n",
                "split at {split}"
            );
        }
        let bytes: Vec<String> = whole.chars().map(|c| c.to_string()).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(
            masked(&[secret], &pieces),
            "token=[MASKED] and again [MASKED]\n"
        );
    }

    #[test]
    fn a_partial_value_at_the_end_is_shown_as_it_was() {
        assert_eq!(masked(&["abcdefgh"], &["x abcd"]), "x abcd");
        assert_eq!(masked(&[], &["plain"]), "plain");
        assert_eq!(
            masked(&["abcdefgh", "abcdefghij"], &["abcdefghij"]),
            "[MASKED]"
        );
    }
}
