use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sessionware_core::Error;
use tokio::task::JoinHandle;

/// The background task started by [`SqlStore::spawn_cleanup`](crate::SqlStore::spawn_cleanup): it deletes expired sessions
/// every period.
///
/// It ends by itself when the last clone of the store is dropped (the application stopped
/// using it) or when the Tokio runtime shuts down; [`stop`](Self::stop) ends it sooner.
/// Dropping this handle does not stop the task.
#[derive(Debug)]
pub struct CleanupTask {
    handle: JoinHandle<()>,
}

impl CleanupTask {
    /// Runs `run` on the store every `period` while the store lives.
    pub(crate) fn spawn<T, F, Fut>(
        runtime: &tokio::runtime::Handle,
        store: Weak<T>,
        period: Duration,
        run: F,
    ) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, Error>> + Send,
    {
        let handle = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // Holding only a weak reference between runs is what lets the task end with
                // the application instead of keeping the pool alive forever.
                let Some(inner) = store.upgrade() else { break };
                match run(inner).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "expired sessions deleted"),
                    Err(e) => tracing::warn!(error = %e, "deleting expired sessions failed"),
                }
            }
        });
        Self { handle }
    }

    /// Stops the task (a run in progress is abandoned; its batch commits or rolls back whole).
    pub fn stop(self) {
        self.handle.abort();
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}
