//! The trace of a running job: bytes go to a `TraceSink` in batches (one store write per
//! batch, not per line), up to the size limit, after which a notice says the rest was dropped.

use std::future::Future;
use std::time::{Duration, Instant};

/// Where a job's output goes: the store (embedded runner), the terminal (`kiln run`), or the
/// runner protocol (remote runner).
pub trait TraceSink: Send {
    fn append(&mut self, data: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;
}

const BATCH_BYTES: usize = 64 * 1024;
const BATCH_AGE: Duration = Duration::from_millis(100);

pub struct TraceWriter<'a, S: TraceSink> {
    sink: &'a mut S,
    buffer: Vec<u8>,
    since: Instant,
    written: u64,
    limit: u64,
    truncated: bool,
}

impl<'a, S: TraceSink> TraceWriter<'a, S> {
    pub fn new(sink: &'a mut S, limit: u64) -> Self {
        TraceWriter {
            sink,
            buffer: Vec::with_capacity(BATCH_BYTES),
            since: Instant::now(),
            written: 0,
            limit,
            truncated: false,
        }
    }

    pub async fn write(&mut self, data: &[u8]) {
        if self.truncated {
            return;
        }
        let room = self
            .limit
            .saturating_sub(self.written + self.buffer.len() as u64) as usize;
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
        if self.buffer.len() >= BATCH_BYTES || self.since.elapsed() >= BATCH_AGE {
            self.flush().await;
        }
    }

    /// A line from the runner itself (not the job), always kept.
    pub async fn note(&mut self, line: &str) {
        self.buffer.extend_from_slice(line.as_bytes());
        self.buffer.push(b'\n');
        self.flush().await;
    }

    pub async fn flush(&mut self) {
        if !self.buffer.is_empty() {
            let data = std::mem::take(&mut self.buffer);
            self.written += data.len() as u64;
            if let Err(err) = self.sink.append(&data).await {
                tracing::warn!(error = %err, "could not store trace");
            }
        }
        self.since = Instant::now();
    }
}
