//! The audit trail: appends in the writer's transaction, the hash chain,
//! tampering found by verification, retention purges with a checkpoint.

use std::sync::Arc;

use promptvault_core::audit::{
    AuditEvent, AuditOutcome, BreakKind, ChainBreak, ChainVerifier, NewAuditEvent,
};
use promptvault_core::model::Revision;
use promptvault_store::{AuditFilter, Expect, Store, StoreError, Write};
use promptvault_testkit::TestDb;
use serde_json::json;

use super::fixtures::{now, simple};

fn event(action: &str, resource: &str) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(now(), "ada@example.com", action, "template", AuditOutcome::Success);
    e.actor_id = Some("u-1".into());
    e.resource = Some(resource.into());
    e.details = json!({"n": 1.5, "note": "ünïcode"});
    e
}

async fn verify(s: &Arc<dyn Store>) -> Result<u64, ChainBreak> {
    let head = s.audit_head().await.unwrap();
    let mut v = ChainVerifier::new(head.checkpoint.as_ref()).with_expected_head(Some((head.seq, head.hash)));
    let mut after = head.checkpoint.as_ref().map_or(0, |c| c.through_seq);
    loop {
        let page = s.audit_chain_page(after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            v.push(e)?;
        }
    }
    v.finish().map(|r| r.checked)
}

async fn all(s: &Arc<dyn Store>) -> Vec<AuditEvent> {
    s.list_audit(&AuditFilter { limit: 1000, ..AuditFilter::default() }).await.unwrap()
}

pub async fn audit_events_chain_and_ride_in_write_transactions(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "audited").await;
    let appended = s
        .append_audit(vec![event("template.read", "audited"), event("template.execute", "audited")])
        .await
        .unwrap();
    assert_eq!(appended.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(appended[1].prev_hash, appended[0].hash);

    // A change carries its event: both commit.
    let w = Write::audited(now(), event("template.update", "audited"));
    let patch =
        promptvault_store::TemplatePatch { description: Some(Some("new".into())), ..Default::default() };
    let updated = s.update_template(&t.name, Expect::Revision(t.revision), patch.clone(), w).await.unwrap();
    let events = all(&s).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].action, "template.update");
    assert_eq!(events[2].details, json!({"n": 1.5, "note": "ünïcode"}));

    // A refused change rolls its event back with it.
    let w = Write::audited(now(), event("template.update", "audited"));
    let stale =
        s.update_template(&t.name, Expect::Revision(Revision(updated.revision.0 - 1)), patch, w).await;
    assert!(matches!(stale, Err(StoreError::Stale { .. })), "{stale:?}");
    assert_eq!(all(&s).await.len(), 3);
    assert_eq!(verify(&s).await.unwrap(), 3);

    // Filters.
    let f = AuditFilter { action_prefix: Some("template.e".into()), limit: 10, ..AuditFilter::default() };
    assert_eq!(s.list_audit(&f).await.unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    let f = AuditFilter { newest_first: true, limit: 2, ..AuditFilter::default() };
    assert_eq!(s.list_audit(&f).await.unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 2]);
}

async fn chain_of(db: &TestDb, n: usize) -> Arc<dyn Store> {
    let s = db.open().await;
    let events = (0..n).map(|i| event("template.read", &format!("t{i}"))).collect();
    s.append_audit(events).await.unwrap();
    assert_eq!(verify(&s).await.unwrap(), n as u64);
    s
}

pub async fn audit_tampering_is_found_at_the_first_broken_event(db: Arc<TestDb>) {
    // An edited field.
    let s = chain_of(&db, 8).await;
    db.exec("UPDATE audit_event SET actor = 'mallory' WHERE seq = 4").await;
    let b = verify(&s).await.unwrap_err();
    assert_eq!((b.seq, b.kind), (4, BreakKind::Edited), "{b}");
    db.exec("UPDATE audit_event SET actor = 'ada@example.com' WHERE seq = 4").await;
    assert_eq!(verify(&s).await.unwrap(), 8);

    // A deleted row.
    db.exec("DELETE FROM audit_event WHERE seq = 6").await;
    let b = verify(&s).await.unwrap_err();
    assert_eq!((b.seq, b.kind), (7, BreakKind::Missing), "{b}");
}

pub async fn audit_swaps_and_truncation_are_found(db: Arc<TestDb>) {
    let s = chain_of(&db, 6).await;
    // Two rows swap their contents (sequence numbers stay in place).
    db.exec(
        "UPDATE audit_event SET resource = CASE seq WHEN 2 THEN 't4' WHEN 5 THEN 't1' END WHERE seq IN (2, 5)",
    )
    .await;
    let b = verify(&s).await.unwrap_err();
    assert_eq!((b.seq, b.kind), (2, BreakKind::Edited), "{b}");
    db.exec("UPDATE audit_event SET resource = CASE seq WHEN 2 THEN 't1' WHEN 5 THEN 't4' END WHERE seq IN (2, 5)")
        .await;
    assert_eq!(verify(&s).await.unwrap(), 6);
    // The newest rows deleted: the head kept beside the chain tells.
    db.exec("DELETE FROM audit_event WHERE seq >= 5").await;
    let b = verify(&s).await.unwrap_err();
    assert_eq!(b.kind, BreakKind::Missing, "{b}");
}

pub async fn audit_purge_leaves_a_verifiable_checkpoint(db: Arc<TestDb>) {
    let s = db.open().await;
    let old = now() - chrono::Duration::days(40);
    let mut events: Vec<NewAuditEvent> = (0..5)
        .map(|i| {
            let mut e = event("template.read", &format!("old{i}"));
            e.at = old + chrono::Duration::seconds(i);
            e
        })
        .collect();
    events.extend((0..3).map(|i| event("template.read", &format!("new{i}"))));
    s.append_audit(events).await.unwrap();
    let report = s.purge_audit(now() - chrono::Duration::days(30), now()).await.unwrap();
    assert_eq!(report.purged, 5);
    let cp = report.checkpoint.expect("checkpoint");
    assert_eq!((cp.through_seq, cp.purged), (5, 5));
    assert_eq!(all(&s).await.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![6, 7, 8]);
    assert_eq!(verify(&s).await.unwrap(), 3);
    // New events go on after the purge.
    s.append_audit(vec![event("template.read", "after")]).await.unwrap();
    assert_eq!(verify(&s).await.unwrap(), 4);
    // Nothing old enough: nothing purged, no new checkpoint.
    let again = s.purge_audit(now() - chrono::Duration::days(30), now()).await.unwrap();
    assert_eq!(again.purged, 0);
    assert!(again.checkpoint.is_none());
    // A forged checkpoint hash is caught at the first event after it.
    db.exec("UPDATE audit_checkpoint SET last_hash = '00000000000000000000000000000000000000000000000000000000000000ff'")
        .await;
    let b = verify(&s).await.unwrap_err();
    assert_eq!(b.seq, 6, "{b}");
}

pub async fn concurrent_audited_writes_keep_one_chain(db: Arc<TestDb>) {
    let s = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..5 {
                s.append_audit(vec![event("template.read", &format!("t{i}-{j}"))]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = all(&s).await;
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    assert_eq!(verify(&s).await.unwrap(), 40);
}
