//! The lifecycle rules both backends apply, written once: given the locked
//! version row (and, for a review decision, the current round's approvals
//! read after taking the lock), decide what to write or why to refuse.
//! Each backend reads, calls [`plan_transition`] or [`plan_review`], and
//! writes the [`Plan`] in the same transaction.

use chrono::{DateTime, Utc};
use promptvault_core::model::Version;
use promptvault_core::workflow::{
    Approval, ApprovalOutcome, ApprovalRefused, ReviewProgress, WorkflowDefinition, check_approval,
    check_rejection, is_final,
};
use promptvault_core::{UserId, VersionStatus};
use serde_json::Value;

use crate::error::{Conflict, Result, StoreError};
use crate::types::{DecisionKind, Expect, ReviewInput, StatusChange};

/// The change to the version row.
pub(crate) struct RowUpdate {
    pub status: VersionStatus,
    /// Added to `review_round` (0 or 1).
    pub round_increment: i32,
    /// `None` leaves the column alone; `Some(None)` clears it.
    pub deprecation: Option<Option<Value>>,
    /// `None` leaves the column alone.
    pub check_results: Option<Value>,
}

/// A decision row to insert.
pub(crate) struct DecisionInsert {
    pub round: u32,
    pub step: String,
    pub user_id: UserId,
    pub decision: DecisionKind,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

/// What one lifecycle write does.
pub(crate) struct Plan {
    /// `None`: the version row stays as it is (an approval that does not
    /// complete the workflow).
    pub update: Option<RowUpdate>,
    pub decision: Option<DecisionInsert>,
    pub outcome: Option<ApprovalOutcome>,
}

/// Checks `expect` and the move, and says what `change` writes.
pub(crate) fn plan_transition(
    current: &Version,
    expect: Expect,
    change: StatusChange,
    at: DateTime<Utc>,
) -> Result<Plan> {
    expect.check("version", current.revision)?;
    let to = current.status.transition(change.to).map_err(Conflict::from)?;
    let round = if change.new_round {
        current.review_round.checked_add(1).ok_or_else(|| StoreError::corrupt("review round overflow"))?
    } else {
        current.review_round
    };
    let deprecation = change
        .deprecation
        .map(|d| {
            d.map(|d| serde_json::to_value(d).map_err(|e| StoreError::corrupt(format!("deprecation: {e}"))))
                .transpose()
        })
        .transpose()?;
    Ok(Plan {
        update: Some(RowUpdate {
            status: to,
            round_increment: i32::from(change.new_round),
            deprecation,
            check_results: change.check_results,
        }),
        decision: change.decision.map(|d| DecisionInsert {
            round,
            step: d.step,
            user_id: d.user_id,
            decision: d.decision,
            comment: d.comment,
            at,
        }),
        outcome: None,
    })
}

/// Decides one approval or rejection of `current` (locked) given the
/// approvals of its current round (read after the lock was taken).
///
/// A version without a recorded author (its author was deleted, or it was
/// imported) is nobody's: the four-eyes check then has no one to exclude.
pub(crate) fn plan_review(
    current: &Version,
    approvals: &[Approval],
    def: &WorkflowDefinition,
    input: ReviewInput,
) -> Result<Plan> {
    if current.status != VersionStatus::Review {
        // Whoever lost a race with the approval that completed this round
        // is told exactly that.
        if current.status == VersionStatus::Approved && is_final(def, approvals) {
            return Err(
                Conflict::from(ApprovalRefused::WorkflowComplete { workflow: def.name.clone() }).into()
            );
        }
        return Err(Conflict::NotInReview { seq: current.seq, status: current.status }.into());
    }
    let author = current.author_id.map(|a| a.to_string()).unwrap_or_default();
    let reviewer = input.user_id.to_string();
    let round = current.review_round;
    if input.approve {
        let outcome =
            check_approval(def, &author, approvals, &reviewer, &input.roles).map_err(Conflict::from)?;
        let update = outcome.workflow_complete.then_some(RowUpdate {
            status: VersionStatus::Approved,
            round_increment: 0,
            deprecation: None,
            check_results: input.check_results,
        });
        Ok(Plan {
            update,
            decision: Some(DecisionInsert {
                round,
                step: outcome.step.clone(),
                user_id: input.user_id,
                decision: DecisionKind::Approve,
                comment: input.comment,
                at: input.at,
            }),
            outcome: Some(outcome),
        })
    } else {
        check_rejection(def, &author, approvals, &reviewer, &input.roles, input.comment.as_deref())
            .map_err(Conflict::from)?;
        // check_rejection only passes while a step awaits approvals.
        let step = ReviewProgress::compute(def, approvals)
            .step(def)
            .map(|s| s.name.clone())
            .ok_or_else(|| StoreError::corrupt("rejection admitted without a current step"))?;
        Ok(Plan {
            update: Some(RowUpdate {
                status: VersionStatus::Draft,
                round_increment: 0,
                deprecation: None,
                check_results: None,
            }),
            decision: Some(DecisionInsert {
                round,
                step,
                user_id: input.user_id,
                decision: DecisionKind::Reject,
                comment: input.comment,
                at: input.at,
            }),
            outcome: None,
        })
    }
}
