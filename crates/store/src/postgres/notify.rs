//! Change notices across processes.
//!
//! Every write sends `pg_notify(CHANNEL, <template name or ''>)` inside its
//! transaction, so PostgreSQL delivers it at commit and never for a rollback.
//! A background task LISTENs on a connection of its own and forwards what
//! arrives to the store's broadcast channel. When that connection drops,
//! notices sent meanwhile are lost, so after reconnecting the task sends
//! `template: None` ("drop everything").
//!
//! The writing process hears its own notices twice (once directly, once
//! through LISTEN): notices are idempotent invalidations, and telling our
//! backends' pids apart from another process's is not reliable enough to be
//! worth the risk of missing one.

use std::time::Duration;

use promptvault_core::TemplateName;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{Mutex, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::types::ChangeNotice;

/// The NOTIFY channel. It is per database, not per schema: stores on other
/// schemas of the same database hear these too and drop cache entries they
/// did not need to (harmless, only wasteful).
pub(super) const CHANNEL: &str = "promptvault_changes";

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Announces the change to other processes, then commits.
/// `audit`, if any, is appended in the same transaction.
pub(super) async fn commit(
    mut tx: Transaction<'static, Postgres>,
    template: Option<&TemplateName>,
    audit: Option<&promptvault_core::audit::NewAuditEvent>,
) -> Result<()> {
    if let Some(ev) = audit {
        super::audit::append(&mut tx, ev.clone()).await?;
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(template.map_or("", |t| t.as_str()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The listening task; stopped by [`ListenerTask::stop`] or when the last
/// clone of the store is dropped.
#[derive(Debug)]
pub(super) struct ListenerTask {
    cancel: CancellationToken,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl ListenerTask {
    /// Subscribes (so nothing committed after this returns is missed), then
    /// spawns the task that forwards notices.
    pub(super) async fn start(
        options: PgConnectOptions,
        schema: &str,
        changes: broadcast::Sender<ChangeNotice>,
    ) -> Result<Self> {
        // A pool of its own, so the long-lived LISTEN connection neither
        // counts against the store's pool nor gets reaped as idle. The
        // application name tells operators which store's listener it is.
        let name = format!("promptvault-listener {schema}");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.application_name(&name))
            .await?;
        let listener = listen(&pool).await?;
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run(pool, listener, changes, cancel.clone()));
        Ok(Self { cancel, handle: Mutex::new(Some(handle)) })
    }

    /// Stops the task and waits (a bounded time) until its connection is
    /// closed: an unresponsive server must not make `close()` hang.
    pub(super) async fn stop(&self) {
        self.cancel.cancel();
        let handle = self.handle.lock().await.take();
        if let Some(mut handle) = handle {
            // A task that panicked has nothing left to clean up.
            if tokio::time::timeout(STOP_TIMEOUT, &mut handle).await.is_err() {
                tracing::warn!("change listener did not stop in time; abandoning its connection");
                handle.abort();
            }
        }
    }
}

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // We stop the listener before closing its pool ourselves.
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn run(
    pool: PgPool,
    mut listener: PgListener,
    changes: broadcast::Sender<ChangeNotice>,
    cancel: CancellationToken,
) {
    while forward(&mut listener, &changes, &cancel).await {
        // The old connection goes back (or away) before a new one is made.
        drop(listener);
        match reconnect(&pool, &cancel).await {
            Some(l) => listener = l,
            None => return pool.close().await,
        }
        tracing::info!("change listener reconnected; invalidating all cached templates");
        everything(&changes);
    }
    drop(listener);
    pool.close().await;
}

/// Forwards notices until the connection fails (`true`) or the store
/// closes (`false`).
async fn forward(
    listener: &mut PgListener,
    changes: &broadcast::Sender<ChangeNotice>,
    cancel: &CancellationToken,
) -> bool {
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return false,
            next = listener.try_recv() => next,
        };
        match next {
            Ok(Some(n)) => {
                let _ = changes.send(notice(n.payload()));
            }
            // The connection dropped and sqlx has already re-subscribed on a
            // new one; whatever was sent in between is lost.
            Ok(None) => everything(changes),
            Err(e) => {
                tracing::warn!(error = %e, "change listener lost its connection");
                return true;
            }
        }
    }
}

/// A fresh subscription, retried with exponential backoff; `None` once the
/// store is closing.
async fn reconnect(pool: &PgPool, cancel: &CancellationToken) -> Option<PgListener> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        match listen(pool).await {
            Ok(listener) => return Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "change listener cannot reconnect");
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// An empty payload means "everything"; so does one that is not a template
/// name (someone else's NOTIFY on our channel): dropping too much is safe.
fn notice(payload: &str) -> ChangeNotice {
    ChangeNotice { template: TemplateName::parse(payload).ok() }
}

fn everything(changes: &broadcast::Sender<ChangeNotice>) {
    let _ = changes.send(ChangeNotice { template: None });
}
