//! Approval workflows and custom compliance checks: create, replace with a
//! revision, delete, files applied at start, and the two things the store
//! keeps consistent (no classification claimed twice; no version in review
//! losing its workflow).

use std::sync::Arc;
use std::time::Duration;

use promptvault_core::audit::{AuditOutcome, NewAuditEvent};
use promptvault_core::compliance::{CheckDefinition, RegexTarget, Rule, Severity};
use promptvault_core::model::Revision;
use promptvault_core::workflow::{WorkflowDefinition, WorkflowStep};
use promptvault_core::{SecurityClassification, VersionStatus};
use promptvault_store::{
    AuditFilter, ConfigSource, Conflict, Expect, FileSync, Put, StatusChange, Store, StoreError, Write,
};
use promptvault_testkit::TestDb;
use tokio::sync::broadcast::error::RecvError;

use crate::fixtures::*;

use SecurityClassification::{Confidential, Internal, Public, Restricted};

fn workflow(name: &str, classifications: &[SecurityClassification]) -> WorkflowDefinition {
    WorkflowDefinition {
        name: name.to_owned(),
        description: Some(format!("the {name} workflow")),
        classifications: classifications.to_vec(),
        steps: vec![WorkflowStep {
            name: "review".to_owned(),
            approver_roles: vec!["reviewer".to_owned()],
            required_approvals: 1,
            sla_hours: Some(24),
        }],
    }
}

fn check(key: &str, pattern: &str) -> CheckDefinition {
    CheckDefinition {
        key: key.to_owned(),
        name: format!("check {key}"),
        description: String::new(),
        severity: Severity::Error,
        applies_to: vec!["support".to_owned()],
        enabled: true,
        rule: Rule::RegexMustNotMatch { pattern: pattern.to_owned(), target: RegexTarget::Text },
    }
}

fn audited(action: &str) -> Write {
    Write::audited(now(), NewAuditEvent::new(now(), "admin", action, "workflow", AuditOutcome::Success))
}

async fn actions(s: &Arc<dyn Store>) -> Vec<String> {
    let all = s.list_audit(&AuditFilter { limit: 1000, ..AuditFilter::default() }).await.unwrap();
    let mut actions: Vec<String> = all.into_iter().map(|e| e.action).collect();
    actions.sort();
    actions
}

async fn names(s: &Arc<dyn Store>) -> Vec<String> {
    s.list_workflows().await.unwrap().into_iter().map(|w| w.def.name).collect()
}

fn in_use(r: Result<impl std::fmt::Debug, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Conflict(Conflict::InUse { what: "workflow", count: 1, .. }))),
        "{r:?}"
    );
}

fn claimed_twice(r: Result<impl std::fmt::Debug, StoreError>) {
    assert!(
        matches!(
            &r,
            Err(StoreError::Conflict(Conflict::WorkflowSet { code: "classification_claimed_twice", .. }))
        ),
        "{r:?}"
    );
}

pub async fn workflows_crud_with_revisions_and_classification_conflicts(db: Arc<TestDb>) {
    let s = db.open().await;
    let mut rx = s.subscribe();
    let t0 = now();
    let strict = workflow("strict", &[Confidential]);
    let created = s.put_workflow(strict.clone(), Put::Create, Write::from(t0)).await.unwrap();
    assert_eq!(created.def, strict);
    assert_eq!((created.source, created.revision, created.updated_at), (ConfigSource::Api, Revision(1), t0));
    assert_eq!(s.get_workflow("strict").await.unwrap().as_ref(), Some(&created));
    assert!(s.get_workflow("Strict").await.unwrap().is_none());
    // Writes announce that everything may have changed.
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rx.recv().await {
                Ok(n) if n.template.is_none() => return true,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return false,
            }
        }
    })
    .await;
    assert_eq!(heard, Ok(true), "a workflow write invalidates everything");

    let again = s.put_workflow(workflow("strict", &[Restricted]), Put::Create, now().into()).await;
    assert!(matches!(again, Err(StoreError::Conflict(Conflict::AlreadyExists { what: "workflow", .. }))));
    // Another workflow may not claim a classification a stored one governs.
    claimed_twice(
        s.put_workflow(workflow("other", &[Public, Confidential]), Put::Create, now().into()).await,
    );
    s.put_workflow(workflow("basic", &[Public, Internal]), Put::Create, now().into()).await.unwrap();
    assert_eq!(names(&s).await, ["basic", "strict"]);

    // Replacing checks the revision and bumps it.
    let mut wider = strict.clone();
    wider.classifications.push(Restricted);
    let t1 = now();
    let replaced =
        s.put_workflow(wider.clone(), Put::Replace(Expect::Revision(Revision(1))), t1.into()).await.unwrap();
    assert_eq!((replaced.revision, replaced.updated_at, &replaced.def), (Revision(2), t1, &wider));
    let stale =
        s.put_workflow(strict.clone(), Put::Replace(Expect::Revision(Revision(1))), now().into()).await;
    assert!(
        matches!(stale, Err(StoreError::Stale { what: "workflow", current: Some(Revision(2)) })),
        "{stale:?}"
    );
    let missing = s.put_workflow(workflow("nope", &[]), Put::Replace(Expect::Any), now().into()).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    claimed_twice(
        s.put_workflow(workflow("basic", &[Restricted]), Put::Replace(Expect::Any), now().into()).await,
    );
    assert_eq!(s.get_workflow("strict").await.unwrap().unwrap().def, wider, "refusals change nothing");

    // Deleting checks the revision too; then the name is free again.
    let stale = s.delete_workflow("strict", Expect::Revision(Revision(1)), now().into()).await;
    assert!(matches!(stale, Err(StoreError::Stale { .. })), "{stale:?}");
    s.delete_workflow("strict", Expect::Revision(Revision(2)), audited("workflow.delete")).await.unwrap();
    assert!(matches!(
        s.delete_workflow("strict", Expect::Any, now().into()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(names(&s).await, ["basic"]);
    s.put_workflow(workflow("other", &[Confidential]), Put::Create, audited("workflow.create"))
        .await
        .unwrap();
    assert_eq!(actions(&s).await, ["workflow.create", "workflow.delete"], "each write records its event");
}

pub async fn workflows_cannot_be_taken_from_versions_in_review(db: Arc<TestDb>) {
    let s = db.open().await;
    s.sync_file_workflows(vec![workflow("strict", &[Confidential])], now().into()).await.unwrap();
    let (t, _) = template(
        &s,
        TemplateSpec { name: "secret/plan", classification: Confidential, ..TemplateSpec::default() },
    )
    .await;
    let mut submit = StatusChange::to(VersionStatus::Review);
    submit.new_round = true;
    s.transition_version(t.id, 1, Expect::Any, submit, now().into()).await.unwrap();
    let before = actions(&s).await.len();

    in_use(s.delete_workflow("strict", Expect::Any, audited("workflow.delete")).await);
    in_use(s.put_workflow(workflow("strict", &[Restricted]), Put::Replace(Expect::Any), now().into()).await);
    // Nor may the file drop it, or hand its classification to another workflow.
    in_use(s.sync_file_workflows(vec![], audited("workflow.update")).await);
    let moved = vec![workflow("strict", &[Restricted]), workflow("other", &[Confidential])];
    in_use(s.sync_file_workflows(moved, audited("workflow.update")).await);
    assert_eq!(actions(&s).await.len(), before, "refusals record nothing");
    assert_eq!(s.get_workflow("strict").await.unwrap().unwrap().def.classifications, [Confidential]);

    // Changing its steps, or adding a classification, keeps the review's workflow.
    let mut two = workflow("strict", &[Confidential, Restricted]);
    two.steps[0].required_approvals = 2;
    s.put_workflow(two, Put::Replace(Expect::Any), now().into()).await.unwrap();
    // Other classifications are free to move.
    s.put_workflow(workflow("open", &[Public]), Put::Create, now().into()).await.unwrap();
    s.delete_workflow("open", Expect::Any, now().into()).await.unwrap();

    // Once the version left review, the workflow may go.
    s.transition_version(t.id, 1, Expect::Any, StatusChange::to(VersionStatus::Draft), now().into())
        .await
        .unwrap();
    s.delete_workflow("strict", Expect::Any, now().into()).await.unwrap();
    assert!(names(&s).await.is_empty());
}

pub async fn workflow_files_are_authoritative_for_the_names_they_list(db: Arc<TestDb>) {
    let s = db.open().await;
    let a = workflow("a", &[Public]);
    let b = workflow("b", &[Internal]);
    let sync = s.sync_file_workflows(vec![a.clone(), b.clone()], audited("workflow.update")).await.unwrap();
    assert_eq!(sync, FileSync { created: vec!["a".into(), "b".into()], ..FileSync::default() });
    let stored = s.get_workflow("a").await.unwrap().unwrap();
    assert_eq!((stored.source, stored.revision), (ConfigSource::File, Revision(1)));

    // The same file again changes and records nothing.
    let sync = s.sync_file_workflows(vec![a.clone(), b.clone()], audited("workflow.update")).await.unwrap();
    assert!(sync.is_empty(), "{sync:?}");
    assert_eq!(actions(&s).await, ["workflow.update"]);

    // Edited through the API, it becomes an API workflow until the file says otherwise.
    let mut edited = a.clone();
    edited.description = Some("edited".into());
    let e = s.put_workflow(edited, Put::Replace(Expect::Any), now().into()).await.unwrap();
    assert_eq!((e.source, e.revision), (ConfigSource::Api, Revision(2)));
    s.put_workflow(workflow("x", &[Restricted]), Put::Create, now().into()).await.unwrap();

    // The next file: `a` as the file has it, `b` dropped, `c` new; `x` (API) stays.
    let c = workflow("c", &[Confidential]);
    let sync = s.sync_file_workflows(vec![a.clone(), c.clone()], audited("workflow.update")).await.unwrap();
    assert_eq!(
        sync,
        FileSync { created: vec!["c".into()], updated: vec!["a".into()], removed: vec!["b".into()] }
    );
    let back = s.get_workflow("a").await.unwrap().unwrap();
    assert_eq!((back.def, back.source, back.revision), (a.clone(), ConfigSource::File, Revision(3)));
    assert_eq!(names(&s).await, ["a", "c", "x"]);

    // All or nothing: a file colliding with an API workflow changes nothing.
    let d = workflow("d", &[Internal]);
    let clash = s.sync_file_workflows(vec![a.clone(), d, workflow("y", &[Restricted])], now().into()).await;
    claimed_twice(clash);
    assert_eq!(names(&s).await, ["a", "c", "x"]);
    // A name twice in one file is refused.
    let twice = s.sync_file_workflows(vec![a.clone(), a.clone()], now().into()).await;
    assert!(matches!(twice, Err(StoreError::Conflict(Conflict::AlreadyExists { .. }))), "{twice:?}");

    // An empty file removes what came from files only.
    let sync = s.sync_file_workflows(vec![], now().into()).await.unwrap();
    assert_eq!(sync.removed, ["a", "c"]);
    assert_eq!(names(&s).await, ["x"]);
}

pub async fn checks_crud_and_files(db: Arc<TestDb>) {
    let s = db.open().await;
    let t0 = now();
    let cards = check("no_cards", r"\d{16}");
    let created = s.put_check(cards.clone(), Put::Create, audited("check.create")).await.unwrap();
    assert_eq!(
        (created.def.clone(), created.source, created.revision),
        (cards.clone(), ConfigSource::Api, Revision(1))
    );
    assert!(created.updated_at >= t0);
    assert_eq!(s.get_check("no_cards").await.unwrap(), Some(created));
    let again = s.put_check(cards.clone(), Put::Create, now().into()).await;
    assert!(matches!(again, Err(StoreError::Conflict(Conflict::AlreadyExists { what: "check", .. }))));
    let builtin = s.put_check(check("length_limit", "x"), Put::Create, now().into()).await;
    assert!(matches!(builtin, Err(StoreError::Conflict(Conflict::AlreadyExists { .. }))), "{builtin:?}");

    let mut warn = cards.clone();
    warn.severity = Severity::Warning;
    let replaced =
        s.put_check(warn.clone(), Put::Replace(Expect::Revision(Revision(1))), now().into()).await.unwrap();
    assert_eq!((replaced.revision, replaced.def.severity), (Revision(2), Severity::Warning));
    let stale = s.put_check(cards.clone(), Put::Replace(Expect::Revision(Revision(1))), now().into()).await;
    assert!(matches!(stale, Err(StoreError::Stale { what: "check", .. })), "{stale:?}");

    // A checks file: its own keys only.
    let sync =
        s.sync_file_checks(vec![check("no_keys", "sk-[a-z]+")], audited("check.update")).await.unwrap();
    assert_eq!(sync.created, ["no_keys"]);
    let keys: Vec<String> = s.list_checks().await.unwrap().into_iter().map(|c| c.def.key).collect();
    assert_eq!(keys, ["no_cards", "no_keys"]);
    assert_eq!(s.get_check("no_keys").await.unwrap().unwrap().source, ConfigSource::File);
    let refused = s.sync_file_checks(vec![check("declared_variables", "x")], now().into()).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    let sync = s.sync_file_checks(vec![], now().into()).await.unwrap();
    assert_eq!(sync.removed, ["no_keys"]);

    s.delete_check("no_cards", Expect::Revision(Revision(2)), audited("check.delete")).await.unwrap();
    assert!(s.list_checks().await.unwrap().is_empty());
    assert!(matches!(
        s.delete_check("no_cards", Expect::Any, now().into()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(actions(&s).await, ["check.create", "check.delete", "check.update"]);
}

pub async fn concurrent_workflow_claims_one_wins(db: Arc<TestDb>) {
    let s = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.put_workflow(workflow(&format!("w{i}"), &[Restricted]), Put::Create, now().into()).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => claimed_twice(Err::<(), _>(e)),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.list_workflows().await.unwrap().len(), 1);
}
