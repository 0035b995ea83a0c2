//! The version lifecycle: submit for review (compliance checks run), approve
//! or reject (approval workflows, four eyes), deprecate, archive, restore.

use chrono::{DateTime, Utc};
use promptvault_core::audit::AuditOutcome;
use promptvault_core::authz::{Action, Principal, Resource};
use promptvault_core::compliance::{CheckResult, CheckSubject, blocking};
use promptvault_core::model::{Deprecation, Revision, Template, Version};
use promptvault_core::{TemplateName, VersionStatus};
use promptvault_store::{
    Conflict, DecisionKind, DecisionRecord, Expect, InReview, NewDecision, ReviewInput, StatusChange,
    StoreError,
};
use serde_json::{Value, json};

use super::versions::VersionRef;
use super::{Registry, Result, ServiceError, template_target};

/// A lifecycle move other than review decisions.
#[derive(Debug, Clone)]
pub enum Move {
    Submit { comment: Option<String> },
    Deprecate { replacement: Option<u32>, until: Option<DateTime<Utc>>, reason: Option<String> },
    Archive,
    Restore,
}

/// The outcome of a move: the version and the compliance results (submit).
#[derive(Debug, Clone)]
pub struct Moved {
    pub template: Template,
    pub version: Version,
    pub checks: Vec<CheckResult>,
}

/// A version waiting for review, with where it stands.
#[derive(Debug, Clone)]
pub struct ReviewItem {
    pub item: InReview,
    pub workflow: Option<String>,
    pub current_step: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub overdue_hours: Option<u64>,
}

/// The blocking results in a sentence: each check by name and key, with
/// what it found.
fn blocked_detail(blocked: &[&CheckResult]) -> String {
    blocked
        .iter()
        .map(|c| format!("{} (`{}`): {}", c.name, c.check, c.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Registry {
    fn run_checks(&self, t: &Template, v: &Version) -> Vec<CheckResult> {
        self.governance.current().checks.run(&CheckSubject::of(t, &v.content))
    }

    /// Submit, deprecate, archive or restore a version.
    pub async fn move_version(
        &self,
        who: &Principal,
        name: &TemplateName,
        v: &VersionRef,
        expect: Option<Revision>,
        how: Move,
    ) -> Result<Moved> {
        let action = if matches!(how, Move::Submit { .. }) { Action::Update } else { Action::Publish };
        self.gate(who, action, Resource::Template, Some(name.as_str())).await?;
        let t = self.template_or_404(name).await?;
        self.authorize(who, action, Resource::Template, &template_target(&t), Some(name.as_str())).await?;
        let version = self.version_or_404(&t, v).await?;
        let expect = expect.map_or(Expect::Any, Expect::Revision);
        let mut checks = Vec::new();
        let (verb, change) = match how {
            Move::Submit { comment } => {
                super::check_text("comment", comment.as_deref(), 2_000)?;
                checks = self.run_checks(&t, &version);
                let results = serde_json::to_value(&checks).unwrap_or(Value::Null);
                let blocked = blocking(&checks);
                if !blocked.is_empty() {
                    let detail = blocked_detail(&blocked);
                    let e = ServiceError::Invalid {
                        code: "compliance_failed",
                        detail: format!("compliance checks block the submission: {detail}"),
                        extra: Some(("checks", results)),
                    };
                    self.audit_failed(who, "version.submit", Resource::Template, name.as_str(), &e).await;
                    return Err(e);
                }
                let change = StatusChange {
                    to: VersionStatus::Review,
                    new_round: true,
                    deprecation: None,
                    check_results: Some(results),
                    decision: Some(NewDecision {
                        step: "submit".into(),
                        user_id: who.user_id,
                        decision: DecisionKind::Submit,
                        comment,
                    }),
                };
                ("version.submit", change)
            }
            Move::Deprecate { replacement, until, reason } => {
                super::check_text("reason", reason.as_deref(), 2_000)?;
                if let Some(r) = replacement
                    && (r == version.seq || r > t.latest_seq)
                {
                    return Err(ServiceError::invalid(
                        "invalid_replacement",
                        format!(
                            "the replacement must be another existing version (1-{}), not {r}",
                            t.latest_seq
                        ),
                    ));
                }
                let mut change = StatusChange::to(VersionStatus::Deprecated);
                change.deprecation = Some(Some(Deprecation { replacement_seq: replacement, until, reason }));
                ("version.deprecate", change)
            }
            Move::Archive => {
                // A protected label must keep serving: archive only what no
                // protected label points at.
                let held: Vec<String> = self
                    .store
                    .list_labels(t.id)
                    .await?
                    .into_iter()
                    .filter(|l| l.version_seq == version.seq && self.is_protected(&l.name))
                    .map(|l| l.name.to_string())
                    .collect();
                if !held.is_empty() {
                    let e = ServiceError::conflict(
                        "label_points_here",
                        format!(
                            "protected label {} points at version {}; move it to another approved version first",
                            held.join(", "),
                            version.seq
                        ),
                    );
                    self.audit_failed(who, "version.archive", Resource::Template, name.as_str(), &e).await;
                    return Err(e);
                }
                ("version.archive", StatusChange::to(VersionStatus::Archived))
            }
            Move::Restore => {
                let mut change = StatusChange::to(VersionStatus::Approved);
                change.deprecation = Some(None);
                ("version.restore", change)
            }
        };
        let w = self.audited(who, verb, Resource::Template, name.as_str(), json!({"seq": version.seq}));
        match self.store.transition_version(t.id, version.seq, expect, change, w).await {
            Ok(version) => {
                self.caches.invalidate(&promptvault_store::ChangeNotice { template: Some(name.clone()) });
                Ok(Moved { template: t, version, checks })
            }
            Err(e) => {
                let e = ServiceError::from(e);
                self.audit_failed(who, verb, Resource::Template, name.as_str(), &e).await;
                Err(e)
            }
        }
    }

    /// Approve or reject a version in review, through the workflow of its
    /// classification (or directly when its type does not require approval).
    pub async fn review(
        &self,
        who: &Principal,
        name: &TemplateName,
        v: &VersionRef,
        approve: bool,
        comment: Option<String>,
    ) -> Result<Moved> {
        self.gate(who, Action::Approve, Resource::Template, Some(name.as_str())).await?;
        let t = self.template_or_404(name).await?;
        self.authorize(who, Action::Approve, Resource::Template, &template_target(&t), Some(name.as_str()))
            .await?;
        super::check_text("comment", comment.as_deref(), 2_000)?;
        let version = self.version_or_404(&t, v).await?;
        let verb = if approve { "version.approve" } else { "version.reject" };
        let mut checks = Vec::new();
        let mut results = None;
        if approve {
            checks = self.run_checks(&t, &version);
            let blocked = blocking(&checks);
            let json_results = serde_json::to_value(&checks).unwrap_or(Value::Null);
            if !blocked.is_empty() {
                let detail = blocked_detail(&blocked);
                let e = ServiceError::Invalid {
                    code: "compliance_failed",
                    detail: format!("compliance checks block the approval: {detail}"),
                    extra: Some(("checks", json_results)),
                };
                self.audit_failed(who, verb, Resource::Template, name.as_str(), &e).await;
                return Err(e);
            }
            results = Some(json_results);
        }
        let prompt_type = self.store.get_prompt_type_by_id(t.prompt_type_id).await?;
        let requires_approval = prompt_type.as_ref().is_none_or(|p| p.policy.requires_approval);
        let w = self.audited(
            who,
            verb,
            Resource::Template,
            name.as_str(),
            json!({"seq": version.seq, "comment": comment}),
        );
        let outcome = if requires_approval {
            let governance = self.governance.current();
            let Some(workflow) = governance.workflows.for_classification(t.security_classification) else {
                return Err(ServiceError::conflict(
                    "no_workflow",
                    format!(
                        "no approval workflow covers {} templates; configure one before approving",
                        t.security_classification
                    ),
                ));
            };
            let input = ReviewInput {
                user_id: who.user_id,
                roles: who.roles.iter().map(|r| r.name.clone()).collect(),
                comment,
                approve,
                at: Self::now(),
                check_results: results,
            };
            self.store.review_decision(t.id, version.seq, input, workflow, w).await.map(|r| r.version)
        } else {
            // The type does not require the workflow: one decision settles it.
            if !approve && comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
                return Err(ServiceError::invalid("comment_required", "a rejection needs a comment"));
            }
            let change = StatusChange {
                to: if approve { VersionStatus::Approved } else { VersionStatus::Draft },
                new_round: false,
                deprecation: None,
                check_results: results,
                decision: Some(NewDecision {
                    step: "direct".into(),
                    user_id: who.user_id,
                    decision: if approve { DecisionKind::Approve } else { DecisionKind::Reject },
                    comment,
                }),
            };
            self.store.transition_version(t.id, version.seq, Expect::Any, change, w).await
        };
        match outcome {
            Ok(version) => {
                self.caches.invalidate(&promptvault_store::ChangeNotice { template: Some(name.clone()) });
                Ok(Moved { template: t, version, checks })
            }
            Err(StoreError::Conflict(Conflict::ReviewRefused { code, message }))
                if matches!(
                    code,
                    "four_eyes" | "already_approved" | "missing_approver_role" | "author_cannot_reject"
                ) =>
            {
                // A rule about who may decide: a refusal, audited as one.
                let ev = self.audit.event(
                    who,
                    verb,
                    Resource::Template.as_str(),
                    Some(name.to_string()),
                    AuditOutcome::Denied,
                    Some(message.clone()),
                    json!({"seq": version.seq, "rule": code}),
                );
                self.audit.record(ev).await;
                Err(ServiceError::Forbidden { detail: message })
            }
            Err(e) => {
                let e = ServiceError::from(e);
                self.audit_failed(who, verb, Resource::Template, name.as_str(), &e).await;
                Err(e)
            }
        }
    }

    /// The decisions taken on a version, every round.
    pub async fn decisions(
        &self,
        who: &Principal,
        name: &TemplateName,
        v: &VersionRef,
    ) -> Result<Vec<DecisionRecord>> {
        self.gate(who, Action::Read, Resource::Template, Some(name.as_str())).await?;
        let t = self.template_or_404(name).await?;
        self.authorize(who, Action::Read, Resource::Template, &template_target(&t), Some(name.as_str()))
            .await?;
        let version = self.version_or_404(&t, v).await?;
        Ok(self.store.list_decisions(t.id, version.seq).await?)
    }

    /// Every version waiting for review, with its step and SLA.
    pub async fn reviews(&self, who: &Principal) -> Result<Vec<ReviewItem>> {
        self.gate(who, Action::Read, Resource::Template, None).await?;
        let now = Utc::now();
        let mut out = Vec::new();
        let governance = self.governance.current();
        for item in self.store.list_in_review().await? {
            let wf = governance.workflows.for_classification(item.classification);
            let (mut step, mut due, mut over) = (None, None, None);
            if let Some(def) = wf {
                let progress = promptvault_core::workflow::ReviewProgress::compute(def, &item.approvals);
                if let Some(i) = progress.current_step {
                    step = Some(def.steps[i].name.clone());
                    let started = promptvault_core::workflow::current_step_started_at(
                        def,
                        item.submitted_at,
                        &item.approvals,
                    )
                    .unwrap_or(item.submitted_at);
                    due = promptvault_core::workflow::step_due_at(def, i, started);
                    over = promptvault_core::workflow::overdue(def, started, i, now).map(|o| o.hours_over);
                }
            }
            out.push(ReviewItem {
                workflow: wf.map(|d| d.name.clone()),
                current_step: step,
                due_at: due,
                overdue_hours: over,
                item,
            });
        }
        Ok(out)
    }
}
