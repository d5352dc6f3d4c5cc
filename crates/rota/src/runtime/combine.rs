//! Flat-combined batch writes: whoever finishes writes for everyone waiting.

use std::sync::Mutex;

use futures_util::future::BoxFuture;

/// Writes a batch for a [`Combiner`].
pub(crate) trait BatchWrite<T>: Sync {
    /// Writes `batch`, retrying as it sees fit.
    fn write(&self, batch: Vec<T>) -> BoxFuture<'_, ()>;
}

/// Batches writes without a task of its own (flat combining): the first
/// task to finish writes, and whatever finishes while it writes joins the
/// next batch. An idle process answers without a hop between tasks; a busy
/// one writes in large batches.
pub(crate) struct Combiner<T> {
    queue: Mutex<Vec<T>>,
    writing: tokio::sync::Mutex<()>,
}

impl<T> Default for Combiner<T> {
    fn default() -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T> Combiner<T> {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`, then writes unless another task is writing.
    pub(crate) async fn push(&self, item: T, writer: &impl BatchWrite<T>) {
        self.queue().push(item);
        self.flush(writer).await;
    }

    /// Writes everything queued. A task that finds the writer busy returns:
    /// the writer looks at the queue again after it lets go, so nothing is
    /// stranded.
    pub(crate) async fn flush(&self, writer: &impl BatchWrite<T>) {
        loop {
            {
                let Ok(_writing) = self.writing.try_lock() else {
                    return;
                };
                let batch = std::mem::take(&mut *self.queue());
                if !batch.is_empty() {
                    writer.write(batch).await;
                }
            }
            if self.queue().is_empty() {
                return;
            }
        }
    }
}
