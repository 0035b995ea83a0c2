//! Change notices: what caches rely on to drop stale rows.
//!
//! On PostgreSQL the NOTIFY channel is shared by every schema of the
//! database, so a subscriber may also hear other tests' notices (and, in the
//! writing process, its own notice twice). The waits below therefore look
//! for the expected notice among whatever arrives, with a deadline.

use std::sync::Arc;
use std::time::Duration;

use promptvault_core::TemplateName;
use promptvault_store::{ChangeNotice, Expect, Store, TemplatePatch};
use promptvault_testkit::{Kind, TestDb};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::fixtures::*;

const DEADLINE: Duration = Duration::from_secs(5);

/// Waits for a notice matching `want`; `false` if none came by `within`.
async fn heard(
    rx: &mut broadcast::Receiver<ChangeNotice>,
    want: impl Fn(&ChangeNotice) -> bool,
    within: Duration,
) -> bool {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(n) if want(&n) => return true,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return false,
            }
        }
    };
    tokio::time::timeout(within, wait).await.unwrap_or(false)
}

fn about(name: &TemplateName) -> impl Fn(&ChangeNotice) -> bool + '_ {
    move |n| n.template.as_ref() == Some(name)
}

fn everything(n: &ChangeNotice) -> bool {
    n.template.is_none()
}

pub async fn change_notices_reach_subscribers(db: Arc<TestDb>) {
    let s = db.open().await;
    let mut rx = s.subscribe();
    prompt_type(&s, "general").await;
    assert!(heard(&mut rx, everything, DEADLINE).await, "a prompt type change invalidates everything");
    let (t, _) = simple(&s, "noticed").await;
    assert!(heard(&mut rx, about(&t.name), DEADLINE).await, "creating a template names it");
    s.create_version(t.id, 1, version("two", "1.1.0"), now().into()).await.unwrap();
    assert!(heard(&mut rx, about(&t.name), DEADLINE).await, "a new version names its template");
    s.update_template(
        &t.name,
        Expect::Any,
        TemplatePatch { description: Some(Some("d".into())), ..TemplatePatch::default() },
        now().into(),
    )
    .await
    .unwrap();
    assert!(heard(&mut rx, about(&t.name), DEADLINE).await, "a metadata change names its template");
}

pub async fn change_notices_reach_other_stores(db: Arc<TestDb>) {
    let writer = db.open().await;
    let other = db.open().await;
    let mut mine = writer.subscribe();
    let mut theirs = other.subscribe();
    let (t, _) = simple(&writer, "shared").await;
    assert!(heard(&mut mine, about(&t.name), DEADLINE).await, "the writing store hears its own write");
    // Both stores see the same data whatever the backend.
    assert_eq!(other.get_template(&t.name).await.unwrap().unwrap().id, t.id);
    match db.kind {
        Kind::Postgres => {
            // LISTEN/NOTIFY carries the write to the other store, as it would
            // to another process.
            assert!(heard(&mut theirs, about(&t.name), DEADLINE).await, "the other store hears the write");
            listener_recovers(&db, &writer, &other, theirs, &t.name).await;
        }
        Kind::Sqlite => {
            // SQLite has no channel between stores (the trait promises
            // cross-process notices for PostgreSQL only): a second store on
            // the same file, like a second process, learns nothing, so only
            // the in-process notice above is asserted.
            drop(theirs);
        }
    }
    for s in [writer, other] {
        tokio::time::timeout(DEADLINE, s.close()).await.expect("close stops the store, listener included");
    }
}

/// Kills the other store's LISTEN connection: it must reconnect, announce
/// that everything may have changed, and hear later writes again.
async fn listener_recovers(
    db: &TestDb,
    writer: &Arc<dyn Store>,
    other: &Arc<dyn Store>,
    mut theirs: broadcast::Receiver<ChangeNotice>,
    name: &TemplateName,
) {
    // Both stores have a listener named after the schema; killing both is fine.
    db.exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'promptvault-listener {}'",
        db.options.pg_schema
    ))
    .await;
    assert!(
        heard(&mut theirs, everything, Duration::from_secs(10)).await,
        "a reconnect invalidates everything"
    );
    // Another test's prompt-type notice is also `None`, so that alone does not
    // prove the reconnect: keep writing until one of our writes is heard.
    let mut recovered = false;
    for i in 0..20 {
        let patch = TemplatePatch { description: Some(Some(format!("rev {i}"))), ..TemplatePatch::default() };
        writer.update_template(name, Expect::Any, patch, now().into()).await.unwrap();
        if heard(&mut theirs, about(name), Duration::from_millis(500)).await {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the other store hears writes again after reconnecting");
    assert!(other.get_template(name).await.unwrap().is_some());
}
