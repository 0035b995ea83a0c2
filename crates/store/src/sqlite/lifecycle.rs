//! The version lifecycle on SQLite: transitions, review decisions and their
//! records.
//!
//! Every write runs on the single writer connection, so a decision's read of
//! the round's approvals and its insert cannot interleave with another
//! writer's: the version is effectively locked for the whole transaction.

use chrono::{DateTime, Utc};
use promptvault_core::model::Version;
use promptvault_core::workflow::{Approval, WorkflowDefinition};
use promptvault_core::{TemplateId, TemplateName};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::catalog::template_by_id;
use super::codec::{Col, ts};
use super::versions::load_version;
use crate::error::Result;
use crate::lifecycle::{self, Plan};
use crate::rows::{DecisionRow, InReviewRow, group_in_review};
use crate::types::{DecisionRecord, Expect, InReview, ReviewInput, ReviewResult, StatusChange, Write};

fn decision_row(r: &SqliteRow) -> Result<DecisionRow> {
    Ok(DecisionRow {
        round: r.int("round")?,
        step: r.text("step")?,
        user_id: r.uuid("user_id")?,
        decision: r.text("decision")?,
        comment: r.text_opt("comment")?,
        decided_at: r.time("decided_at")?,
    })
}

/// The approvals of `version`'s round `round`, oldest first.
async fn round_approvals(conn: &mut SqliteConnection, version: &Version) -> Result<Vec<Approval>> {
    let rows = sqlx::query(
        "SELECT round, step, user_id, decision, comment, decided_at FROM version_decision \
         WHERE version_id = ? AND round = ? AND decision = 'approve' ORDER BY decided_at, id",
    )
    .bind(version.id.to_string())
    .bind(i64::from(version.review_round))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok(decision_row(r)?.approval())).collect()
}

/// Writes `plan` to the version `current`.
async fn apply(conn: &mut SqliteConnection, current: &Version, plan: &Plan, at: DateTime<Utc>) -> Result<()> {
    if let Some(u) = &plan.update {
        sqlx::query(
            "UPDATE prompt_template_version SET status = ?, status_changed_at = ?, updated_at = ?, \
             review_round = review_round + ?, \
             deprecation = CASE WHEN ? THEN ? ELSE deprecation END, \
             check_results = CASE WHEN ? THEN ? ELSE check_results END, \
             revision = revision + 1 WHERE id = ?",
        )
        .bind(u.status.as_str())
        .bind(ts(at))
        .bind(ts(at))
        .bind(u.round_increment)
        .bind(u.deprecation.is_some())
        .bind(u.deprecation.clone().flatten().map(|d| d.to_string()))
        .bind(u.check_results.is_some())
        .bind(u.check_results.as_ref().map(ToString::to_string))
        .bind(current.id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    if let Some(d) = &plan.decision {
        sqlx::query(
            "INSERT INTO version_decision (id, version_id, round, step, user_id, decision, comment, decided_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(current.id.to_string())
        .bind(i64::from(d.round))
        .bind(&d.step)
        .bind(d.user_id.to_string())
        .bind(d.decision.as_str())
        .bind(&d.comment)
        .bind(ts(d.at))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl SqliteStore {
    pub(super) async fn transition_version_impl(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        change: StatusChange,
        w: Write,
    ) -> Result<(TemplateName, Version)> {
        let mut tx = self.writer.begin().await?;
        let t = template_by_id(&mut tx, template).await?;
        let current = load_version(&mut tx, &self.vault, template, seq).await?;
        let plan = lifecycle::plan_transition(&current, expect, change, w.at)?;
        apply(&mut tx, &current, &plan, w.at).await?;
        let v = load_version(&mut tx, &self.vault, template, seq).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok((t.name, v))
    }

    pub(super) async fn review_decision_impl(
        &self,
        template: TemplateId,
        seq: u32,
        decision: ReviewInput,
        workflow: &WorkflowDefinition,
        w: Write,
    ) -> Result<(TemplateName, ReviewResult)> {
        let mut tx = self.writer.begin().await?;
        let t = template_by_id(&mut tx, template).await?;
        let current = load_version(&mut tx, &self.vault, template, seq).await?;
        let approvals = round_approvals(&mut tx, &current).await?;
        let plan = lifecycle::plan_review(&current, &approvals, workflow, decision)?;
        apply(&mut tx, &current, &plan, w.at).await?;
        let version = load_version(&mut tx, &self.vault, template, seq).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok((t.name, ReviewResult { version, outcome: plan.outcome }))
    }

    pub(super) async fn list_decisions_impl(
        &self,
        template: TemplateId,
        seq: u32,
    ) -> Result<Vec<DecisionRecord>> {
        let rows = sqlx::query(
            "SELECT d.round, d.step, d.user_id, d.decision, d.comment, d.decided_at FROM version_decision d \
             JOIN prompt_template_version v ON v.id = d.version_id WHERE v.template_id = ? AND v.seq = ? \
             ORDER BY d.round, d.decided_at, d.id",
        )
        .bind(template.to_string())
        .bind(i64::from(seq))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| decision_row(r)?.decode()).collect()
    }

    pub(super) async fn list_in_review_impl(&self) -> Result<Vec<InReview>> {
        // One statement, so versions and approvals come from one snapshot.
        let rows = sqlx::query(
            "SELECT v.id AS version_id, t.name AS template, v.seq, t.security_classification AS classification, \
             v.review_round AS round, COALESCE(v.status_changed_at, v.updated_at, v.created_at) AS submitted_at, \
             d.step, d.user_id, d.comment, d.decided_at \
             FROM prompt_template_version v JOIN prompt_template t ON t.id = v.template_id \
             LEFT JOIN version_decision d ON d.version_id = v.id AND d.round = v.review_round AND d.decision = 'approve' \
             WHERE v.status = 'review' \
             ORDER BY COALESCE(v.status_changed_at, v.updated_at, v.created_at), t.name, v.seq, d.decided_at, d.id",
        )
        .fetch_all(&self.reader)
        .await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(InReviewRow {
                    version_id: r.uuid("version_id")?,
                    template: r.text("template")?,
                    seq: r.int("seq")?,
                    classification: r.text("classification")?,
                    round: r.int("round")?,
                    submitted_at: r.time("submitted_at")?,
                    step: r.text_opt("step")?,
                    user_id: r.uuid_opt("user_id")?,
                    comment: r.text_opt("comment")?,
                    decided_at: r.time_opt("decided_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        group_in_review(rows)
    }
}
