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

pub struct TraceWriter<'a, T: Transport> {
    transport: &'a mut T,
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
    pub fn new(transport: &'a mut T, limit: u64) -> Self {
        TraceWriter {
            transport,
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
