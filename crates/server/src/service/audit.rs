//! The audit log of the server: what is recorded, at which detail, and the
//! writer for events that do not belong to a change.
//!
//! A change (create, update, delete, a label move) carries its event into
//! the store's transaction ([`promptvault_store::Write`]): the change and its
//! record commit together or not at all. Reads, renders, denied attempts and
//! failures have no transaction of their own; they go through a bounded
//! queue to one task that appends them in batches, and a graceful shutdown
//! drains the queue. Every event, either way, passes the alert thresholds.
//!
//! Refusals before authentication (a bad token, no token) can be caused by
//! anyone at any rate, so they take [`AuditLog::try_record`]: it never
//! waits, and it leaves part of the queue to everyone else. A flood of bad
//! tokens therefore cannot hold up requests; past that share the surplus
//! refusals are counted (`promptvault_audit_dropped_total`) and logged
//! instead of written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promptvault_core::audit::{AlertTracker, AuditOutcome, DetailLevel, NewAuditEvent};
use promptvault_core::authz::Principal;
use promptvault_store::{Store, StoreError};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ServiceError;

const BATCH: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_millis(20);
const QUEUE: usize = 8_192;
/// Free slots [`AuditLog::try_record`] leaves to other events.
const RESERVED: usize = QUEUE / 2;

enum Msg {
    Event(Box<NewAuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// Where raised alerts go besides the log and the audit trail: the hook
/// point for outbound webhooks. Called on the request's task, so an
/// implementation hands the alert off (a channel, a spawned task) rather
/// than doing I/O in place.
pub trait AlertHook: Send + Sync + 'static {
    fn raised(&self, alert: &promptvault_core::audit::Alert);
}

/// The sending side, held by the registry.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    level: DetailLevel,
    alerts: Arc<Mutex<AlertTracker>>,
    /// Events [`AuditLog::try_record`] could not queue.
    dropped: Arc<AtomicU64>,
    hooks: Arc<std::sync::RwLock<Vec<Arc<dyn AlertHook>>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("level", &self.level).finish_non_exhaustive()
    }
}

/// The writer task; stop it with [`AuditWriter::shutdown`].
#[derive(Debug)]
pub struct AuditWriter {
    handle: JoinHandle<()>,
    stop: CancellationToken,
}

/// Starts the writer.
pub fn start(store: Arc<dyn Store>, level: DetailLevel, alerts: AlertTracker) -> (AuditLog, AuditWriter) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let stop = CancellationToken::new();
    let handle = tokio::spawn(run(store, rx, stop.clone()));
    let log = AuditLog {
        tx,
        level,
        alerts: Arc::new(Mutex::new(alerts)),
        dropped: Arc::default(),
        hooks: Arc::default(),
    };
    (log, AuditWriter { handle, stop })
}

impl AuditLog {
    /// Adds a receiver of every alert raised from now on (outbound
    /// webhooks will be one).
    pub fn add_alert_hook(&self, hook: Arc<dyn AlertHook>) {
        if let Ok(mut hooks) = self.hooks.write() {
            hooks.push(hook);
        }
    }

    #[must_use]
    pub fn level(&self) -> DetailLevel {
        self.level
    }

    /// An event about `who` doing `action` to `resource`, with details
    /// reduced to the configured level.
    #[must_use]
    #[allow(clippy::too_many_arguments, reason = "one argument per field of the event")]
    pub fn event(
        &self,
        who: &Principal,
        action: &str,
        resource_kind: &str,
        resource: Option<String>,
        outcome: AuditOutcome,
        reason: Option<String>,
        details: Value,
    ) -> NewAuditEvent {
        // Secrets never reach the trail, whatever the detail level.
        let reason = reason.map(|r| crate::content::redact_secrets(&r).into_owned());
        let mut details = self.level.details(details);
        crate::content::redact_secrets_in(&mut details);
        NewAuditEvent {
            at: promptvault_core::model::truncate_to_micros(chrono::Utc::now()),
            actor_id: Some(who.user_id.to_string()),
            actor: who.display.clone(),
            action: action.to_owned(),
            resource_kind: resource_kind.to_owned(),
            resource,
            outcome,
            reason,
            request_id: who.origin.request_id.clone(),
            client_addr: who.origin.client_addr.clone(),
            details,
        }
    }

    /// Runs the alert thresholds over an event; an alert is logged and
    /// recorded as an event of its own.
    pub async fn observe(&self, ev: &NewAuditEvent) {
        for alert in self.alerts_for(ev) {
            self.enqueue(alert).await;
        }
    }

    /// The events of the alerts `ev` fires, each logged and counted.
    fn alerts_for(&self, ev: &NewAuditEvent) -> Vec<NewAuditEvent> {
        let alerts = match self.alerts.lock() {
            Ok(mut tracker) => tracker.observe(ev),
            Err(_) => Vec::new(),
        };
        alerts
            .into_iter()
            .map(|alert| {
                tracing::warn!(
                    rule = %alert.rule,
                    actor = %alert.actor,
                    count = alert.count,
                    window_minutes = alert.window_minutes,
                    "audit alert"
                );
                metrics::counter!("promptvault_audit_alerts_total").increment(1);
                if let Ok(hooks) = self.hooks.read() {
                    for hook in hooks.iter() {
                        hook.raised(&alert);
                    }
                }
                alert.to_event()
            })
            .collect()
    }

    /// Queues an event without ever waiting, for refusals that anyone can
    /// cause at any rate (unauthenticated requests). The event is dropped,
    /// counted and logged when fewer than half of the queue's slots are free,
    /// so such a flood cannot delay other events or the requests recording
    /// them. Alerts it fires may use the reserved half. `false` when dropped.
    pub fn try_record(&self, ev: NewAuditEvent) -> bool {
        for alert in self.alerts_for(&ev) {
            self.try_enqueue(alert, 0);
        }
        self.try_enqueue(ev, RESERVED)
    }

    fn try_enqueue(&self, ev: NewAuditEvent, keep_free: usize) -> bool {
        let sent = self.tx.capacity() > keep_free && self.tx.try_send(Msg::Event(Box::new(ev))).is_ok();
        if !sent {
            metrics::counter!("promptvault_audit_dropped_total").increment(1);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The first, then one line per thousand: the flood itself must
            // not flood the log.
            if dropped % 1000 == 1 {
                tracing::warn!(
                    dropped,
                    "the audit queue is busy: unauthenticated refusals are being dropped"
                );
            }
        }
        sent
    }

    /// Queues an event that belongs to no change; waits while the queue is
    /// full rather than drop it.
    pub async fn record(&self, ev: NewAuditEvent) {
        self.observe(&ev).await;
        self.enqueue(ev).await;
    }

    async fn enqueue(&self, ev: NewAuditEvent) {
        if self.tx.send(Msg::Event(Box::new(ev))).await.is_err() {
            tracing::error!("audit event after shutdown: not recorded");
        }
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) -> Result<(), ServiceError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Flush(done))
            .await
            .map_err(|_| ServiceError::Unavailable("the server is shutting down".into()))?;
        wait.await.map_err(|_| ServiceError::Unavailable("the audit writer stopped".into()))
    }
}

impl AuditWriter {
    /// Stops accepting events, writes what is queued, and waits for it.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.handle.await {
            tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "audit writer failed");
        }
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>, stop: CancellationToken) {
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
                    rx.close();
                    stopping = true;
                    continue;
                }
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        let mut urgent = matches!(batch[0], Msg::Flush(_));
        while !urgent && batch.len() < BATCH {
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
                    urgent = matches!(m, Msg::Flush(_));
                    batch.push(m);
                }
                None => break,
            }
        }
        write_batch(&store, batch, stopping).await;
    }
}

async fn write_batch(store: &Arc<dyn Store>, batch: Vec<Msg>, stopping: bool) {
    let mut events = Vec::with_capacity(batch.len());
    let mut flushes = Vec::new();
    for m in batch {
        match m {
            Msg::Event(e) => events.push(*e),
            Msg::Flush(done) => flushes.push(done),
        }
    }
    let mut attempt = 0u32;
    while !events.is_empty() {
        match store.append_audit(events.clone()).await {
            Ok(_) => {
                metrics::counter!("promptvault_audit_events_written_total").increment(events.len() as u64);
                break;
            }
            Err(e) => {
                attempt += 1;
                metrics::counter!("promptvault_audit_write_errors_total").increment(1);
                let give_up =
                    matches!(e, StoreError::Corrupt(_)) || (stopping && attempt >= 5) || attempt >= 50;
                tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), attempt, events = events.len(), "audit batch write failed");
                if give_up {
                    tracing::error!(events = events.len(), "audit events could not be written and are lost");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(20)))).await;
            }
        }
    }
    for done in flushes {
        let _ = done.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal() -> NewAuditEvent {
        NewAuditEvent::new(chrono::Utc::now(), "anonymous", "auth.authenticate", "auth", AuditOutcome::Denied)
    }

    /// A log whose writer never drains the queue, as under a flood.
    fn stalled() -> (AuditLog, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let alerts = AlertTracker::new(vec![]).expect("no rules");
        let log = AuditLog {
            tx,
            level: DetailLevel::default(),
            alerts: Arc::new(Mutex::new(alerts)),
            dropped: Arc::default(),
            hooks: Arc::default(),
        };
        (log, rx)
    }

    #[test]
    fn secrets_never_reach_an_event() {
        let (mut log, _rx) = stalled();
        log.level = DetailLevel::Comprehensive;
        let who = Principal {
            user_id: promptvault_core::UserId::new(),
            display: "ada".into(),
            credential: promptvault_core::authz::Credential::Session,
            roles: vec![],
            deployment: None,
            origin: promptvault_core::authz::Origin::default(),
            authenticated_at: None,
        };
        let key = "sk-proj-Zq8Lm2Nx4Vb6Cd1Ef3Gh5Jk7Pw9Ry0Tu";
        let ev = log.event(
            &who,
            "template.execute",
            "template",
            Some("t".into()),
            AuditOutcome::Failed,
            Some(format!("bad value {key}")),
            serde_json::json!({"parameters": {"p": key, "list": [format!("x {key}")]}, "seq": 1}),
        );
        assert_eq!(ev.reason.as_deref(), Some("bad value [REDACTED:credential]"));
        assert_eq!(
            ev.details,
            serde_json::json!({"parameters": {"p": "[REDACTED:credential]", "list": ["x [REDACTED:credential]"]}, "seq": 1})
        );
    }

    struct Collect(Mutex<Vec<promptvault_core::audit::Alert>>);

    impl AlertHook for Collect {
        fn raised(&self, alert: &promptvault_core::audit::Alert) {
            self.0.lock().unwrap().push(alert.clone());
        }
    }

    #[tokio::test]
    async fn alerts_reach_the_hooks_once_per_window() {
        let (mut log, _rx) = stalled();
        let rule = promptvault_core::audit::AlertRule {
            name: "denials".into(),
            outcome: AuditOutcome::Denied,
            action_prefix: Some("auth.".into()),
            threshold: 3,
            window_minutes: 5,
        };
        log.alerts = Arc::new(Mutex::new(AlertTracker::new(vec![rule]).unwrap()));
        let hook = Arc::new(Collect(Mutex::new(Vec::new())));
        log.add_alert_hook(hook.clone());
        for _ in 0..2 {
            log.record(refusal()).await;
        }
        assert!(hook.0.lock().unwrap().is_empty(), "below the threshold");
        for _ in 0..5 {
            log.record(refusal()).await;
        }
        let raised = hook.0.lock().unwrap().clone();
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!((raised[0].rule.as_str(), raised[0].count), ("denials", 3));
        // Someone else's successes do not count.
        let ok = NewAuditEvent::new(chrono::Utc::now(), "ada", "auth.login", "user", AuditOutcome::Success);
        log.record(ok).await;
        assert_eq!(hook.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn refusals_never_wait_and_leave_half_the_queue_to_others() {
        let (log, mut rx) = stalled();
        let queued = (0..QUEUE).filter(|_| log.try_record(refusal())).count();
        assert_eq!(queued, QUEUE - RESERVED);
        assert_eq!(log.dropped.load(Ordering::Relaxed), RESERVED as u64);
        // Other events still find room at once.
        let other =
            NewAuditEvent::new(chrono::Utc::now(), "ada", "template.read", "template", AuditOutcome::Success);
        tokio::time::timeout(Duration::from_secs(5), log.record(other)).await.expect("no wait");
        // Once the writer catches up, refusals are queued again.
        for _ in 0..RESERVED {
            rx.try_recv().expect("queued");
        }
        assert!(log.try_record(refusal()));
    }
}
