//! The usage writer: renders are recorded in batches, off the request path.
//!
//! A render hands its record to a bounded queue and returns; one task
//! writes batches (up to `batch_size` records, at most `flush_interval`
//! late) in one transaction each. When the queue is full, renders wait for
//! room rather than drop records. Outcome reports travel through the same
//! queue, so they always apply after the render they refer to. On shutdown
//! the writer drains the queue before it stops: nothing accepted is lost.

use std::sync::Arc;
use std::time::Duration;

use promptvault_core::PromptId;
use promptvault_core::model::{OutcomeRecord, PromptRecord};
use promptvault_store::{OutcomeResult, Store, StoreError, UsageEvent};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ServiceError;

enum Msg {
    Render(Box<PromptRecord>),
    Outcome {
        prompt: PromptId,
        outcome: OutcomeRecord,
        reply: oneshot::Sender<Result<OutcomeResult, String>>,
    },
    Flush(oneshot::Sender<()>),
}

/// The sending side, held by the registry.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Render(_) => "Render",
            Msg::Outcome { .. } => "Outcome",
            Msg::Flush(_) => "Flush",
        })
    }
}

/// The writer task; stop it with [`UsageWriter::shutdown`].
#[derive(Debug)]
pub struct UsageWriter {
    handle: JoinHandle<()>,
    stop: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
pub struct UsageConfig {
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
}

/// Starts the writer.
pub fn start(store: Arc<dyn Store>, config: UsageConfig) -> (UsageRecorder, UsageWriter) {
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let stop = CancellationToken::new();
    let handle = tokio::spawn(run(store, rx, config, stop.clone()));
    (UsageRecorder { tx }, UsageWriter { handle, stop })
}

impl UsageRecorder {
    /// Queues a render record; waits while the queue is full.
    pub async fn record(&self, record: PromptRecord) -> Result<(), ServiceError> {
        metrics::gauge!("promptvault_usage_queue_depth")
            .set((self.tx.max_capacity() - self.tx.capacity()) as f64);
        self.tx
            .send(Msg::Render(Box::new(record)))
            .await
            .map_err(|_| ServiceError::Unavailable("the server is shutting down".into()))
    }

    /// Records an outcome after every render queued before it.
    pub async fn outcome(
        &self,
        prompt: PromptId,
        outcome: OutcomeRecord,
    ) -> Result<OutcomeResult, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Outcome { prompt, outcome, reply })
            .await
            .map_err(|_| ServiceError::Unavailable("the server is shutting down".into()))?;
        answer
            .await
            .map_err(|_| ServiceError::Unavailable("the usage writer stopped".into()))?
            .map_err(ServiceError::Internal)
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) -> Result<(), ServiceError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Flush(done))
            .await
            .map_err(|_| ServiceError::Unavailable("the server is shutting down".into()))?;
        wait.await.map_err(|_| ServiceError::Unavailable("the usage writer stopped".into()))
    }
}

impl UsageWriter {
    /// Stops accepting records, writes what is queued, and waits for it.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.handle.await {
            tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "usage writer failed");
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Msg>,
    config: UsageConfig,
    stop: CancellationToken,
) {
    let mut stopping = false;
    loop {
        let first = if stopping {
            match rx.recv().await {
                Some(m) => m,
                None => break,
            }
        } else {
            tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => break },
                () = stop.cancelled() => {
                    // Refuse new records; what is queued is still written.
                    rx.close();
                    stopping = true;
                    continue;
                }
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.flush_interval;
        let mut urgent = !matches!(batch[0], Msg::Render(_));
        while !urgent && batch.len() < config.batch_size {
            let next = if stopping {
                rx.try_recv().ok()
            } else {
                tokio::select! {
                    m = rx.recv() => m,
                    () = tokio::time::sleep_until(deadline) => None,
                    () = stop.cancelled() => None,
                }
            };
            match next {
                Some(m) => {
                    urgent = !matches!(m, Msg::Render(_));
                    batch.push(m);
                }
                None => break,
            }
        }
        write_batch(&store, batch, stopping).await;
    }
}

/// Writes one batch, retrying while the database is unreachable.
async fn write_batch(store: &Arc<dyn Store>, batch: Vec<Msg>, stopping: bool) {
    let mut events = Vec::with_capacity(batch.len());
    let mut replies = Vec::new();
    let mut flushes = Vec::new();
    for m in batch {
        match m {
            Msg::Render(r) => events.push(UsageEvent::Render(r)),
            Msg::Outcome { prompt, outcome, reply } => {
                events.push(UsageEvent::Outcome { prompt_id: prompt, outcome });
                replies.push(reply);
            }
            Msg::Flush(done) => flushes.push(done),
        }
    }
    let renders = events.iter().filter(|e| matches!(e, UsageEvent::Render(_))).count();
    let mut attempt = 0u32;
    let outcome = loop {
        if events.is_empty() {
            break Ok(Vec::new());
        }
        let started = std::time::Instant::now();
        match store.record_usage(events.clone()).await {
            Ok(results) => {
                metrics::histogram!("promptvault_usage_batch_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("promptvault_usage_records_written_total").increment(renders as u64);
                break Ok(results);
            }
            Err(e) => {
                attempt += 1;
                metrics::counter!("promptvault_usage_write_errors_total").increment(1);
                let give_up =
                    matches!(e, StoreError::Corrupt(_)) || (stopping && attempt >= 5) || attempt >= 50;
                tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), attempt, records = events.len(), "usage batch write failed");
                if give_up {
                    tracing::error!(records = renders, "usage records could not be written and are lost");
                    break Err(e.to_string());
                }
                let backoff = Duration::from_millis(100 * u64::from(attempt.min(20)));
                tokio::time::sleep(backoff).await;
            }
        }
    };
    match outcome {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
    for done in flushes {
        let _ = done.send(());
    }
}
