//! Where `.gitlab-ci.yml` files are compiled: on the blocking pool, a few at a time, with a
//! time limit. The compiler's own limits (kiln-ci's budget) bound the memory and the work of one
//! file; this bounds how many run at once, so that a burst of lint requests (v3's is open to
//! anyone, as in GitLab 8.x) cannot take the request threads or the machine's memory.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Compiles running at once; more wait for a slot.
const SLOTS: usize = 4;
/// From asking for a slot to the answer. A file within the compiler's limits takes well under
/// a second; this is the backstop.
const TIME_LIMIT: Duration = Duration::from_secs(10);
/// GitLab's message when resolving a configuration overruns its time.
pub const TOO_SLOW: &str = "Resolving config took longer than expected";

fn slots() -> &'static Arc<Semaphore> {
    static SLOTS_SEMAPHORE: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    SLOTS_SEMAPHORE.get_or_init(|| Arc::new(Semaphore::new(SLOTS)))
}

/// Runs `work` (a compile) off the request threads. Err is `TOO_SLOW` when it did not finish
/// in time; the work then still holds its slot until it ends, so the limit stays true.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, &'static str> {
    let attempt = async {
        let permit = slots()
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| TOO_SLOW)?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|_| TOO_SLOW)
    };
    tokio::time::timeout(TIME_LIMIT, attempt)
        .await
        .unwrap_or(Err(TOO_SLOW))
}
