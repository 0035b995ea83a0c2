//! The version lifecycle: transitions, review rounds, race-safe approvals,
//! deprecation.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use promptvault_core::audit::{AuditOutcome, NewAuditEvent};
use promptvault_core::model::{Deprecation, Revision, Template, Version};
use promptvault_core::workflow::{WorkflowDefinition, WorkflowStep};
use promptvault_core::{SecurityClassification, UserId, VersionStatus};
use promptvault_store::{
    AuditFilter, Conflict, DecisionKind, DecisionRecord, Expect, NewDecision, NewTemplate, NewUser,
    ReviewInput, ReviewResult, StatusChange, Store, StoreError, VersionSelector, Write,
};
use promptvault_testkit::TestDb;
use serde_json::json;

use crate::fixtures::*;

fn step(name: &str, role: &str, required: u32) -> WorkflowStep {
    WorkflowStep {
        name: name.to_owned(),
        approver_roles: vec![role.to_owned()],
        required_approvals: required,
        sla_hours: Some(48),
    }
}

fn workflow(steps: Vec<WorkflowStep>) -> WorkflowDefinition {
    WorkflowDefinition {
        name: "test".to_owned(),
        description: None,
        classifications: vec![SecurityClassification::Internal],
        steps,
    }
}

/// A review by a reviewer, then a security sign-off by a publisher.
fn two_steps() -> WorkflowDefinition {
    workflow(vec![step("review", "reviewer", 1), step("security", "publisher", 1)])
}

fn roles(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| (*s).to_owned()).collect()
}

fn audited(action: &str) -> Write {
    Write::audited(now(), NewAuditEvent::new(now(), "tester", action, "version", AuditOutcome::Success))
}

async fn audit_count(s: &Arc<dyn Store>) -> usize {
    s.list_audit(&AuditFilter { limit: 1000, ..AuditFilter::default() }).await.unwrap().len()
}

async fn version_of(s: &Arc<dyn Store>, t: &Template, seq: u32) -> Version {
    s.get_version(t.id, &VersionSelector::Seq(seq)).await.unwrap().unwrap()
}

/// A stored user (versions reference their author).
async fn user(s: &Arc<dyn Store>, email: &str) -> UserId {
    let new = NewUser { email: Some(email.to_owned()), ..NewUser::default() };
    s.create_user(new, now().into()).await.unwrap().id
}

/// A template whose first version was written by `author`.
async fn authored(s: &Arc<dyn Store>, n: &str, author: UserId) -> (Template, Version) {
    let ty = prompt_type(s, "general").await;
    let mut first = version("Hello {{ name }}", "1.0.0");
    first.author_id = Some(author);
    s.create_template(
        NewTemplate {
            name: name(n),
            prompt_type_id: ty.id,
            description: None,
            long_description_markdown: None,
            creator_id: Some(author),
            owner_id: Some(author),
            tags: vec![],
            security_classification: SecurityClassification::Internal,
            access: Default::default(),
        },
        first,
        now().into(),
    )
    .await
    .unwrap()
}

fn submission(by: UserId) -> StatusChange {
    StatusChange {
        to: VersionStatus::Review,
        new_round: true,
        deprecation: None,
        check_results: Some(json!([{"check": "length_limit", "passed": true}])),
        decision: Some(NewDecision {
            step: "submit".into(),
            user_id: by,
            decision: DecisionKind::Submit,
            comment: Some("please review".into()),
        }),
    }
}

async fn submit(s: &Arc<dyn Store>, t: &Template, seq: u32, by: UserId) -> Version {
    s.transition_version(t.id, seq, Expect::Any, submission(by), audited("version.submit")).await.unwrap()
}

fn approve(by: UserId, r: &[&str]) -> ReviewInput {
    ReviewInput { user_id: by, roles: roles(r), comment: None, approve: true, at: now(), check_results: None }
}

fn reject(by: UserId, r: &[&str], comment: Option<&str>) -> ReviewInput {
    ReviewInput { approve: false, comment: comment.map(str::to_owned), ..approve(by, r) }
}

async fn review(
    s: &Arc<dyn Store>,
    t: &Template,
    seq: u32,
    input: ReviewInput,
    def: &WorkflowDefinition,
) -> Result<ReviewResult, StoreError> {
    s.review_decision(t.id, seq, input, def, audited("version.review")).await
}

/// The code of a workflow refusal; panics on anything else.
fn refusal(res: Result<ReviewResult, StoreError>) -> (&'static str, String) {
    match res {
        Err(StoreError::Conflict(Conflict::ReviewRefused { code, message })) => (code, message),
        other => panic!("expected a review refusal, got {other:?}"),
    }
}

fn kinds(d: &[DecisionRecord]) -> Vec<(u32, &str, DecisionKind)> {
    d.iter().map(|d| (d.round, d.step.as_str(), d.decision)).collect()
}

fn approvals_in(d: &[DecisionRecord], round: u32, step: &str) -> usize {
    d.iter().filter(|d| d.round == round && d.step == step && d.decision == DecisionKind::Approve).count()
}

pub async fn lifecycle_submit_starts_a_round_and_records_it(db: Arc<TestDb>) {
    let s = db.open().await;
    let author = user(&s, "author@example.com").await;
    let (t, v1) = authored(&s, "submit", author).await;
    assert_eq!((v1.review_round, v1.status_changed_at, v1.deprecation.clone()), (0, None, None));
    assert_eq!(v1.check_results, None);
    let mut notices = s.subscribe();
    // On PostgreSQL, the echo of the creation's notice (and other tests'
    // notices: the channel is per database) may still arrive; let it, and
    // drop it, so what is heard below comes from the transition.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while notices.try_recv().is_ok() {}
    let events = audit_count(&s).await;

    let at = now() + TimeDelta::seconds(5);
    let w = Write::audited(
        at,
        NewAuditEvent::new(at, "author", "version.submit", "version", AuditOutcome::Success),
    );
    let v =
        s.transition_version(t.id, 1, Expect::Revision(v1.revision), submission(author), w).await.unwrap();
    assert_eq!((v.status, v.review_round, v.revision), (VersionStatus::Review, 1, Revision(2)));
    assert_eq!((v.status_changed_at, v.updated_at), (Some(at), Some(at)));
    assert_eq!(v.check_results, Some(json!([{"check": "length_limit", "passed": true}])));
    assert_eq!(v.content_hash, v1.content_hash, "lifecycle state is not content");
    assert_eq!(version_of(&s, &t, 1).await, v, "what was returned is what is stored");
    assert_eq!(audit_count(&s).await, events + 1);
    let heard: Vec<_> = std::iter::from_fn(|| notices.try_recv().ok()).collect();
    assert!(heard.iter().any(|n| n.template.as_ref() == Some(&t.name)), "caches are told: {heard:?}");

    let decisions = s.list_decisions(t.id, 1).await.unwrap();
    assert_eq!(
        decisions,
        [DecisionRecord {
            round: 1,
            step: "submit".into(),
            user_id: author,
            decision: DecisionKind::Submit,
            comment: Some("please review".into()),
            decided_at: at,
        }]
    );
    assert!(s.list_decisions(t.id, 9).await.unwrap().is_empty(), "no such version: nothing");

    let waiting = s.list_in_review().await.unwrap();
    assert_eq!(waiting.len(), 1);
    let w = &waiting[0];
    assert_eq!((w.template.as_str(), w.seq, w.round), ("submit", 1, 1));
    assert_eq!((w.classification, w.submitted_at), (SecurityClassification::Internal, at));
    assert!(w.approvals.is_empty());
}

pub async fn lifecycle_invalid_transitions_are_refused_with_from_and_to(db: Arc<TestDb>) {
    let s = db.open().await;
    let author = user(&s, "author@example.com").await;
    let (t, v1) = authored(&s, "moves", author).await;
    let events = audit_count(&s).await;

    let mut change = submission(author);
    change.to = VersionStatus::Approved;
    let res = s.transition_version(t.id, 1, Expect::Any, change, audited("version.approve")).await;
    let Err(StoreError::Conflict(c @ Conflict::InvalidTransition { .. })) = res else {
        panic!("expected an invalid transition, got {res:?}")
    };
    assert_eq!(
        c,
        Conflict::InvalidTransition {
            from: VersionStatus::Draft,
            to: VersionStatus::Approved,
            allowed: &[VersionStatus::Review]
        }
    );
    assert_eq!(c.to_string(), "a version cannot go from draft to approved; from draft it can go to: review");
    let res = s
        .transition_version(t.id, 1, Expect::Any, StatusChange::to(VersionStatus::Draft), audited("x"))
        .await;
    assert!(res.unwrap_err().to_string().contains("cannot go from draft to draft"));

    // Refusals write nothing: no status, no round, no decision, no event.
    assert_eq!(version_of(&s, &t, 1).await, v1);
    assert!(s.list_decisions(t.id, 1).await.unwrap().is_empty());
    assert_eq!(audit_count(&s).await, events);

    // All the way to archived, which is final.
    for to in
        [VersionStatus::Review, VersionStatus::Approved, VersionStatus::Deprecated, VersionStatus::Archived]
    {
        let v = s.transition_version(t.id, 1, Expect::Any, StatusChange::to(to), now().into()).await.unwrap();
        assert_eq!(v.status, to);
    }
    for to in VersionStatus::ALL {
        let res = s.transition_version(t.id, 1, Expect::Any, StatusChange::to(to), now().into()).await;
        let msg = match res {
            Err(StoreError::Conflict(c @ Conflict::InvalidTransition { .. })) => c.to_string(),
            other => panic!("archived -> {to} must be refused, got {other:?}"),
        };
        assert!(
            msg.contains(&format!("from archived to {to}")) && msg.ends_with("can go to: nothing"),
            "{msg}"
        );
    }
    let missing = s
        .transition_version(t.id, 7, Expect::Any, StatusChange::to(VersionStatus::Review), now().into())
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
}

pub async fn lifecycle_stale_expect_is_refused(db: Arc<TestDb>) {
    let s = db.open().await;
    let author = user(&s, "author@example.com").await;
    let (t, v1) = authored(&s, "stale", author).await;
    let v2 = submit(&s, &t, 1, author).await;
    let events = audit_count(&s).await;
    let res = s
        .transition_version(
            t.id,
            1,
            Expect::Revision(v1.revision),
            StatusChange::to(VersionStatus::Draft),
            audited("x"),
        )
        .await;
    assert!(matches!(res, Err(StoreError::Stale { what: "version", current: Some(Revision(2)) })), "{res:?}");
    assert_eq!(version_of(&s, &t, 1).await, v2);
    assert_eq!(audit_count(&s).await, events);
    let back = s
        .transition_version(
            t.id,
            1,
            Expect::Revision(v2.revision),
            StatusChange::to(VersionStatus::Draft),
            now().into(),
        )
        .await
        .unwrap();
    assert_eq!((back.status, back.revision, back.review_round), (VersionStatus::Draft, Revision(3), 1));
}

pub async fn lifecycle_two_step_workflow_approves_with_two_people(db: Arc<TestDb>) {
    let s = db.open().await;
    let def = two_steps();
    let author = user(&s, "author@example.com").await;
    let (reviewer, publisher) = (UserId::new(), UserId::new());
    let (t, _) = authored(&s, "two-steps", author).await;
    let submitted = submit(&s, &t, 1, author).await;
    let events = audit_count(&s).await;

    let first = review(&s, &t, 1, approve(reviewer, &["reviewer"]), &def).await.unwrap();
    let o = first.outcome.unwrap();
    assert_eq!((o.step.as_str(), o.step_complete, o.workflow_complete), ("review", true, false));
    assert_eq!(o.next_step.as_deref(), Some("security"));
    assert_eq!(first.version, submitted, "an approval short of the end leaves the version as it is");
    let waiting = s.list_in_review().await.unwrap();
    assert_eq!(waiting[0].approvals.len(), 1);
    assert_eq!(
        (waiting[0].approvals[0].step.as_str(), waiting[0].approvals[0].user_id.clone()),
        ("review", reviewer.to_string())
    );

    let mut last = approve(publisher, &["publisher"]);
    last.comment = Some("ship it".into());
    last.check_results = Some(json!({"blocking": 0}));
    let done = review(&s, &t, 1, last, &def).await.unwrap();
    let o = done.outcome.unwrap();
    assert_eq!((o.step.as_str(), o.workflow_complete, o.next_step), ("security", true, None));
    let v = done.version;
    assert_eq!(
        (v.status, v.review_round, v.revision),
        (VersionStatus::Approved, 1, submitted.revision.next())
    );
    assert_eq!(v.check_results, Some(json!({"blocking": 0})));
    assert!(v.status_changed_at >= submitted.status_changed_at);
    assert_eq!(version_of(&s, &t, 1).await, v);
    assert!(s.list_in_review().await.unwrap().is_empty());
    assert_eq!(audit_count(&s).await, events + 2);

    let d = s.list_decisions(t.id, 1).await.unwrap();
    assert_eq!(
        kinds(&d),
        [
            (1, "submit", DecisionKind::Submit),
            (1, "review", DecisionKind::Approve),
            (1, "security", DecisionKind::Approve)
        ]
    );
    assert_eq!((d[1].user_id, d[2].user_id), (reviewer, publisher));
    assert_eq!(d[2].comment.as_deref(), Some("ship it"));

    // Nothing more is taken once approved.
    let (code, _) = refusal(review(&s, &t, 1, approve(UserId::new(), &["publisher"]), &def).await);
    assert_eq!(code, "workflow_complete");
}

pub async fn lifecycle_review_refusals_write_nothing(db: Arc<TestDb>) {
    let s = db.open().await;
    let def = two_steps();
    let author = user(&s, "author@example.com").await;
    let reviewer = UserId::new();
    let (t, v1) = authored(&s, "refusals", author).await;

    // Not in review yet.
    let res = review(&s, &t, 1, approve(reviewer, &["reviewer"]), &def).await;
    assert!(
        matches!(
            res,
            Err(StoreError::Conflict(Conflict::NotInReview { seq: 1, status: VersionStatus::Draft }))
        ),
        "{res:?}"
    );
    assert_eq!(version_of(&s, &t, 1).await, v1);

    submit(&s, &t, 1, author).await;
    review(&s, &t, 1, approve(reviewer, &["reviewer"]), &def).await.unwrap();
    let version = version_of(&s, &t, 1).await;
    let decisions = s.list_decisions(t.id, 1).await.unwrap();
    let events = audit_count(&s).await;

    let cases: Vec<(ReviewInput, &str, &str)> = vec![
        (approve(author, &["publisher", "reviewer", "admin"]), "four_eyes", "four-eyes"),
        (approve(reviewer, &["publisher"]), "already_approved", "already approved"),
        (approve(UserId::new(), &["reviewer", "admin"]), "missing_approver_role", "the role publisher"),
        (reject(author, &["publisher"], Some("no")), "author_cannot_reject", "withdraws"),
        (reject(UserId::new(), &["publisher"], Some("  ")), "comment_required", "comment"),
        (reject(UserId::new(), &["reviewer"], Some("no")), "missing_approver_role", "security"),
    ];
    for (input, code, needle) in cases {
        let (got, message) = refusal(review(&s, &t, 1, input, &def).await);
        assert_eq!(got, code, "{message}");
        assert!(message.contains(needle), "{message} should mention {needle}");
        assert_eq!(version_of(&s, &t, 1).await, version, "{code}: the version is unchanged");
        assert_eq!(s.list_decisions(t.id, 1).await.unwrap(), decisions, "{code}: no decision recorded");
        assert_eq!(audit_count(&s).await, events, "{code}: no audit event");
    }
}

pub async fn lifecycle_rejection_returns_to_draft_and_resubmission_starts_over(db: Arc<TestDb>) {
    let s = db.open().await;
    let def = workflow(vec![step("review", "reviewer", 2)]);
    let author = user(&s, "author@example.com").await;
    let (r1, r2) = (UserId::new(), UserId::new());
    let (t, _) = authored(&s, "rejected", author).await;
    submit(&s, &t, 1, author).await;
    let o = review(&s, &t, 1, approve(r1, &["reviewer"]), &def).await.unwrap().outcome.unwrap();
    assert_eq!((o.approvals_in_step, o.required, o.step_complete), (1, 2, false));

    let rejected = review(&s, &t, 1, reject(r2, &["reviewer"], Some("fix the tone")), &def).await.unwrap();
    assert!(rejected.outcome.is_none());
    assert_eq!((rejected.version.status, rejected.version.review_round), (VersionStatus::Draft, 1));
    assert!(s.list_in_review().await.unwrap().is_empty());
    let d = s.list_decisions(t.id, 1).await.unwrap();
    assert_eq!(
        d.last().map(|d| (d.decision, d.user_id, d.comment.as_deref())),
        Some((DecisionKind::Reject, r2, Some("fix the tone")))
    );
    assert_eq!(d.last().unwrap().step, "review");

    // The draft is editable again; the resubmission is round 2.
    s.update_draft(t.id, 1, Expect::Any, version("Hi {{ name }}", "1.0.0"), now().into()).await.unwrap();
    let again = submit(&s, &t, 1, author).await;
    assert_eq!((again.status, again.review_round), (VersionStatus::Review, 2));
    let waiting = s.list_in_review().await.unwrap();
    assert_eq!(
        (waiting[0].round, waiting[0].approvals.len()),
        (2, 0),
        "round 1's approval does not carry over"
    );

    // r1 approved in round 1: that neither blocks nor counts now.
    let o = review(&s, &t, 1, approve(r1, &["reviewer"]), &def).await.unwrap().outcome.unwrap();
    assert_eq!((o.approvals_in_step, o.workflow_complete), (1, false));
    let done = review(&s, &t, 1, approve(r2, &["reviewer"]), &def).await.unwrap();
    assert_eq!(done.version.status, VersionStatus::Approved);
    let d = s.list_decisions(t.id, 1).await.unwrap();
    assert_eq!(
        kinds(&d),
        [
            (1, "submit", DecisionKind::Submit),
            (1, "review", DecisionKind::Approve),
            (1, "review", DecisionKind::Reject),
            (2, "submit", DecisionKind::Submit),
            (2, "review", DecisionKind::Approve),
            (2, "review", DecisionKind::Approve)
        ]
    );
}

pub async fn lifecycle_deprecate_undo_and_archive(db: Arc<TestDb>) {
    let s = db.open().await;
    let def = workflow(vec![step("review", "reviewer", 1)]);
    let author = user(&s, "author@example.com").await;
    let (t, v1) = authored(&s, "old", author).await;
    submit(&s, &t, 1, author).await;
    let approved = review(&s, &t, 1, approve(UserId::new(), &["reviewer"]), &def).await.unwrap().version;
    assert_eq!(approved.status, VersionStatus::Approved);
    s.create_version(t.id, 1, version("newer", "1.1.0"), now().into()).await.unwrap();

    let until: DateTime<Utc> = now() + TimeDelta::days(30);
    let notice = Deprecation { replacement_seq: Some(2), until: Some(until), reason: Some("use v2".into()) };
    let change = StatusChange {
        deprecation: Some(Some(notice.clone())),
        ..StatusChange::to(VersionStatus::Deprecated)
    };
    let at = now() + TimeDelta::seconds(3);
    let deprecated = s
        .transition_version(t.id, 1, Expect::Revision(approved.revision), change, Write::from(at))
        .await
        .unwrap();
    assert_eq!(
        (deprecated.status, deprecated.deprecation.clone()),
        (VersionStatus::Deprecated, Some(notice.clone()))
    );
    assert_eq!(deprecated.status_changed_at, Some(at));
    assert_eq!(deprecated.review_round, 1, "the round stays");
    assert_eq!(deprecated.check_results, approved.check_results, "left alone unless given");
    assert_eq!(version_of(&s, &t, 1).await.deprecation, Some(notice.clone()));
    assert_eq!(deprecated.content_hash, v1.content_hash);

    // Undo: back to approved, notice cleared.
    let change = StatusChange { deprecation: Some(None), ..StatusChange::to(VersionStatus::Approved) };
    let undone = s
        .transition_version(t.id, 1, Expect::Revision(deprecated.revision), change, now().into())
        .await
        .unwrap();
    assert_eq!((undone.status, undone.deprecation), (VersionStatus::Approved, None));

    // Deprecate again, then archive: the notice stays with the archived version.
    let change = StatusChange {
        deprecation: Some(Some(notice.clone())),
        ..StatusChange::to(VersionStatus::Deprecated)
    };
    s.transition_version(t.id, 1, Expect::Any, change, now().into()).await.unwrap();
    let archived = s
        .transition_version(
            t.id,
            1,
            Expect::Any,
            StatusChange::to(VersionStatus::Archived),
            audited("version.archive"),
        )
        .await
        .unwrap();
    assert_eq!((archived.status, archived.deprecation), (VersionStatus::Archived, Some(notice)));
    let back = s
        .transition_version(t.id, 1, Expect::Any, StatusChange::to(VersionStatus::Approved), now().into())
        .await;
    assert!(matches!(back, Err(StoreError::Conflict(Conflict::InvalidTransition { .. }))), "{back:?}");
    // Only the review's decisions were recorded.
    assert_eq!(s.list_decisions(t.id, 1).await.unwrap().len(), 2);
}

/// Races `inputs` as concurrent decisions on version 1 of `t`.
async fn race(
    s: &Arc<dyn Store>,
    t: &Template,
    def: &WorkflowDefinition,
    inputs: Vec<ReviewInput>,
) -> Vec<Result<ReviewResult, StoreError>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(inputs.len()));
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|input| {
            let (s, def, barrier, id) = (s.clone(), def.clone(), barrier.clone(), t.id);
            tokio::spawn(async move {
                barrier.wait().await;
                s.review_decision(id, 1, input, &def, audited("version.review")).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

pub async fn lifecycle_racing_last_approvals_complete_once(db: Arc<TestDb>) {
    let s = db.open().await;
    let def = workflow(vec![step("review", "reviewer", 3)]);
    let author = user(&s, "author@example.com").await;
    let (t, _) = authored(&s, "race", author).await;
    submit(&s, &t, 1, author).await;
    for _ in 0..2 {
        review(&s, &t, 1, approve(UserId::new(), &["reviewer"]), &def).await.unwrap();
    }
    let events = audit_count(&s).await;

    let results = race(&s, &t, &def, (0..8).map(|_| approve(UserId::new(), &["reviewer"])).collect()).await;
    let mut completed = 0;
    for r in results {
        match r {
            Ok(r) => {
                let o = r.outcome.unwrap();
                assert!(o.workflow_complete && o.approvals_in_step == 3, "{o:?}");
                assert_eq!(r.version.status, VersionStatus::Approved);
                completed += 1;
            }
            Err(StoreError::Conflict(Conflict::ReviewRefused { code: "workflow_complete", .. })) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(completed, 1, "exactly one approval completes the workflow");
    let d = s.list_decisions(t.id, 1).await.unwrap();
    assert_eq!(approvals_in(&d, 1, "review"), 3, "no approval past the requirement: {d:?}");
    assert_eq!(version_of(&s, &t, 1).await.status, VersionStatus::Approved);
    assert_eq!(audit_count(&s).await, events + 1, "one event, for the one decision taken");

    // Two one-approval steps and eight reviewers holding both roles: one is
    // counted in each step, the rest are refused.
    let def = workflow(vec![step("review", "reviewer", 1), step("security", "reviewer", 1)]);
    let (t, _) = authored(&s, "race-two", author).await;
    submit(&s, &t, 1, author).await;
    let results = race(&s, &t, &def, (0..8).map(|_| approve(UserId::new(), &["reviewer"])).collect()).await;
    let mut steps: Vec<(String, bool)> = Vec::new();
    for r in results {
        match r {
            Ok(r) => {
                let o = r.outcome.unwrap();
                steps.push((o.step, o.workflow_complete));
            }
            Err(StoreError::Conflict(Conflict::ReviewRefused { code: "workflow_complete", .. })) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    steps.sort();
    assert_eq!(steps, [("review".to_owned(), false), ("security".to_owned(), true)]);
    let d = s.list_decisions(t.id, 1).await.unwrap();
    assert_eq!((approvals_in(&d, 1, "review"), approvals_in(&d, 1, "security")), (1, 1), "{d:?}");
    assert_eq!(version_of(&s, &t, 1).await.status, VersionStatus::Approved);
}

pub async fn lifecycle_same_user_racing_approves_once(db: Arc<TestDb>) {
    let s = db.open().await;
    let def = workflow(vec![step("review", "reviewer", 2)]);
    let author = user(&s, "author@example.com").await;
    let (t, _) = authored(&s, "twice", author).await;
    let submitted = submit(&s, &t, 1, author).await;
    let me = UserId::new();
    let results = race(&s, &t, &def, (0..8).map(|_| approve(me, &["reviewer"])).collect()).await;
    let mut ok = 0;
    for r in results {
        match r {
            Ok(r) => {
                assert_eq!(r.outcome.unwrap().approvals_in_step, 1);
                ok += 1;
            }
            Err(StoreError::Conflict(Conflict::ReviewRefused { code: "already_approved", .. })) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1, "one person counts once");
    let d = s.list_decisions(t.id, 1).await.unwrap();
    assert_eq!(approvals_in(&d, 1, "review"), 1, "{d:?}");
    assert_eq!(version_of(&s, &t, 1).await, submitted, "still in review, unchanged");
    let waiting = s.list_in_review().await.unwrap();
    assert_eq!(waiting[0].approvals.iter().map(|a| a.user_id.clone()).collect::<Vec<_>>(), [me.to_string()]);
}
