//! The version lifecycle on PostgreSQL: transitions, review decisions and
//! their records.
//!
//! A write locks the template (`lock_template_by_id`, like every version
//! write, so lock order stays template → version → audit head) and then the
//! version row itself (`FOR NO KEY UPDATE`). Concurrent decisions on one
//! version therefore queue; the one that goes second reads, under READ
//! COMMITTED, the approvals the first committed, and the workflow is
//! re-checked on what it read. `NO KEY` because the key never changes here,
//! so renders inserting `prompt` rows that reference the version (a
//! `KEY SHARE` lock through the foreign key) do not wait for a review.

use chrono::{DateTime, Utc};
use promptvault_core::model::Version;
use promptvault_core::workflow::{Approval, WorkflowDefinition};
use promptvault_core::{TemplateId, TemplateName};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::catalog::lock_template_by_id;
use super::codec::{self, VERSION_COLS};
use super::versions::load_version;
use super::{PgStore, notify};
use crate::error::{Result, StoreError};
use crate::lifecycle::{self, Plan};
use crate::rows::{DecisionRow, InReviewRow, group_in_review};
use crate::types::{DecisionRecord, Expect, InReview, ReviewInput, ReviewResult, StatusChange, Write};

const DECISION_COLS: &str =
    "d.round::bigint AS round, d.step, d.user_id, d.decision, d.comment, d.decided_at";

fn decision_row(r: &PgRow) -> Result<DecisionRow> {
    Ok(DecisionRow {
        round: r.try_get("round")?,
        step: r.try_get("step")?,
        user_id: r.try_get("user_id")?,
        decision: r.try_get("decision")?,
        comment: r.try_get("comment")?,
        decided_at: r.try_get("decided_at")?,
    })
}

/// Reads version `seq` and locks its row until the transaction ends.
async fn lock_version(
    conn: &mut PgConnection,
    vault: &crate::crypt::Vault,
    template: TemplateId,
    seq: u32,
) -> Result<Version> {
    let sql = format!(
        "SELECT {VERSION_COLS} FROM prompt_template_version v WHERE v.template_id = $1 AND v.seq = $2 \
         FOR NO KEY UPDATE"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(template.as_uuid())
        .bind(i64::from(seq))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("version {seq}")))?;
    codec::version(&row)?.decode(vault)
}

/// The approvals of `version`'s current round, oldest first.
async fn round_approvals(conn: &mut PgConnection, version: &Version) -> Result<Vec<Approval>> {
    let sql = format!(
        "SELECT {DECISION_COLS} FROM version_decision d \
         WHERE d.version_id = $1 AND d.round = $2 AND d.decision = 'approve' ORDER BY d.decided_at, d.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(version.id.as_uuid())
        .bind(i64::from(version.review_round))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| Ok(decision_row(r)?.approval())).collect()
}

/// Writes `plan` to the version `current`.
async fn apply(conn: &mut PgConnection, current: &Version, plan: &Plan, at: DateTime<Utc>) -> Result<()> {
    if let Some(u) = &plan.update {
        sqlx::query(
            "UPDATE prompt_template_version SET status = $1, status_changed_at = $2, updated_at = $2, \
             review_round = review_round + $3, \
             deprecation = CASE WHEN $4 THEN $5::jsonb ELSE deprecation END, \
             check_results = CASE WHEN $6 THEN $7::jsonb ELSE check_results END, \
             revision = revision + 1 WHERE id = $8",
        )
        .bind(u.status.as_str())
        .bind(at)
        .bind(u.round_increment)
        .bind(u.deprecation.is_some())
        .bind(u.deprecation.clone().flatten().map(|d| d.to_string()))
        .bind(u.check_results.is_some())
        .bind(u.check_results.as_ref().map(ToString::to_string))
        .bind(current.id.as_uuid())
        .execute(&mut *conn)
        .await?;
    }
    if let Some(d) = &plan.decision {
        let round = i32::try_from(d.round).map_err(|_| StoreError::corrupt("review round out of range"))?;
        sqlx::query(
            "INSERT INTO version_decision (id, version_id, round, step, user_id, decision, comment, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::now_v7())
        .bind(current.id.as_uuid())
        .bind(round)
        .bind(&d.step)
        .bind(d.user_id.as_uuid())
        .bind(d.decision.as_str())
        .bind(&d.comment)
        .bind(d.at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl PgStore {
    pub(super) async fn transition_version_impl(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        change: StatusChange,
        w: Write,
    ) -> Result<(TemplateName, Version)> {
        let mut tx = self.pool.begin().await?;
        let t = lock_template_by_id(&mut tx, template).await?;
        let current = lock_version(&mut tx, &self.vault, template, seq).await?;
        let plan = lifecycle::plan_transition(&current, expect, change, w.at)?;
        apply(&mut tx, &current, &plan, w.at).await?;
        let v = load_version(&mut tx, &self.vault, template, seq).await?;
        notify::commit(tx, Some(&t.name), w.audit.as_ref()).await?;
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
        let mut tx = self.pool.begin().await?;
        let t = lock_template_by_id(&mut tx, template).await?;
        let current = lock_version(&mut tx, &self.vault, template, seq).await?;
        // Read after the lock: sees every decision committed before it.
        let approvals = round_approvals(&mut tx, &current).await?;
        let plan = lifecycle::plan_review(&current, &approvals, workflow, decision)?;
        apply(&mut tx, &current, &plan, w.at).await?;
        let version = load_version(&mut tx, &self.vault, template, seq).await?;
        notify::commit(tx, Some(&t.name), w.audit.as_ref()).await?;
        Ok((t.name, ReviewResult { version, outcome: plan.outcome }))
    }

    pub(super) async fn list_decisions_impl(
        &self,
        template: TemplateId,
        seq: u32,
    ) -> Result<Vec<DecisionRecord>> {
        let sql = format!(
            "SELECT {DECISION_COLS} FROM version_decision d JOIN prompt_template_version v ON v.id = d.version_id \
             WHERE v.template_id = $1 AND v.seq = $2 ORDER BY d.round, d.decided_at, d.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(template.as_uuid())
            .bind(i64::from(seq))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| decision_row(r)?.decode()).collect()
    }

    pub(super) async fn list_in_review_impl(&self) -> Result<Vec<InReview>> {
        // One statement, so versions and approvals come from one snapshot.
        let rows = sqlx::query(
            "SELECT v.id AS version_id, t.name AS template, v.seq, t.security_classification AS classification, \
             v.review_round::bigint AS round, COALESCE(v.status_changed_at, v.updated_at, v.created_at) AS submitted_at, \
             d.step, d.user_id, d.comment, d.decided_at \
             FROM prompt_template_version v JOIN prompt_template t ON t.id = v.template_id \
             LEFT JOIN version_decision d ON d.version_id = v.id AND d.round = v.review_round AND d.decision = 'approve' \
             WHERE v.status = 'review' \
             ORDER BY COALESCE(v.status_changed_at, v.updated_at, v.created_at), t.name, v.seq, d.decided_at, d.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(InReviewRow {
                    version_id: r.try_get("version_id")?,
                    template: r.try_get("template")?,
                    seq: r.try_get("seq")?,
                    classification: r.try_get("classification")?,
                    round: r.try_get("round")?,
                    submitted_at: r.try_get("submitted_at")?,
                    step: r.try_get("step")?,
                    user_id: r.try_get("user_id")?,
                    comment: r.try_get("comment")?,
                    decided_at: r.try_get("decided_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        group_in_review(rows)
    }
}
