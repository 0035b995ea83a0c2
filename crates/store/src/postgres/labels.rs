//! Labels and their history on PostgreSQL. Like every version write, a
//! label write first locks the template row, so moves of one label queue
//! and the revision check sees the previous move.

use chrono::{DateTime, Utc};
use promptvault_core::model::{Label, LabelMove};
use promptvault_core::{LabelName, TemplateId, TemplateName, UserId};
use sqlx::PgConnection;

use super::catalog::lock_template_by_id;
use super::codec::{self, LABEL_COLS};
use super::versions::load_version;
use super::{PgStore, notify};
use crate::error::{Result, StoreError};
use crate::types::{Expect, Write};

impl PgStore {
    pub(super) async fn set_label_impl(
        &self,
        template: TemplateId,
        label: &LabelName,
        seq: u32,
        expect: Expect,
        by: Option<UserId>,
        w: Write,
    ) -> Result<(TemplateName, Label)> {
        let at = w.at;
        let mut tx = self.pool.begin().await?;
        let t = lock_template_by_id(&mut tx, template).await?;
        let target = load_version(&mut tx, &self.vault, template, seq).await?;
        let current = find_label(&mut tx, template, label).await?;
        match (expect, &current) {
            (Expect::Revision(r), Some(l)) if r != l.revision => {
                return Err(StoreError::Stale { what: "label", current: Some(l.revision) });
            }
            (Expect::Revision(_), None) => {
                return Err(StoreError::Stale { what: "label", current: None });
            }
            _ => {}
        }
        let from = current.as_ref().map(|l| l.version_seq);
        if from != Some(seq) {
            sqlx::query(
                "INSERT INTO prompt_label (template_id, name, version_id, updated_at, updated_by, revision) \
                 VALUES ($1, $2, $3, $4, $5, 1) \
                 ON CONFLICT (template_id, name) DO UPDATE SET version_id = excluded.version_id, \
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by, revision = prompt_label.revision + 1",
            )
            .bind(template.as_uuid())
            .bind(label.as_str())
            .bind(target.id.as_uuid())
            .bind(at)
            .bind(by.map(uuid::Uuid::from))
            .execute(&mut *tx)
            .await?;
            record_move(&mut tx, template, label, from, Some(seq), by, at).await?;
        }
        let l = find_label(&mut tx, template, label)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("label {label}")))?;
        notify::commit(tx, Some(&t.name), w.audit.as_ref()).await?;
        Ok((t.name, l))
    }

    pub(super) async fn delete_label_impl(
        &self,
        template: TemplateId,
        label: &LabelName,
        expect: Expect,
        by: Option<UserId>,
        w: Write,
    ) -> Result<TemplateName> {
        let at = w.at;
        let mut tx = self.pool.begin().await?;
        let t = lock_template_by_id(&mut tx, template).await?;
        let Some(current) = find_label(&mut tx, template, label).await? else {
            return Err(StoreError::NotFound(format!("label {label} of template {}", t.name)));
        };
        expect.check("label", current.revision)?;
        sqlx::query("DELETE FROM prompt_label WHERE template_id = $1 AND name = $2")
            .bind(template.as_uuid())
            .bind(label.as_str())
            .execute(&mut *tx)
            .await?;
        record_move(&mut tx, template, label, Some(current.version_seq), None, by, at).await?;
        notify::commit(tx, Some(&t.name), w.audit.as_ref()).await?;
        Ok(t.name)
    }

    pub(super) async fn list_labels_impl(&self, template: TemplateId) -> Result<Vec<Label>> {
        let sql = format!(
            "SELECT {LABEL_COLS} FROM prompt_label l JOIN prompt_template_version v ON v.id = l.version_id \
             WHERE l.template_id = $1 ORDER BY l.name"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(template.as_uuid()).fetch_all(&self.pool).await?;
        rows.iter().map(|r| codec::label(r)?.decode()).collect()
    }

    pub(super) async fn label_history_impl(
        &self,
        template: TemplateId,
        label: Option<&LabelName>,
        limit: u32,
    ) -> Result<Vec<LabelMove>> {
        let rows = sqlx::query(
            "SELECT label, from_seq, to_seq, at, by_user FROM prompt_label_history \
             WHERE template_id = $1 AND ($2::text IS NULL OR label = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(template.as_uuid())
        .bind(label.map(|l| l.as_str().to_owned()))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| codec::label_move(r)?.decode()).collect()
    }
}

async fn find_label(
    conn: &mut PgConnection,
    template: TemplateId,
    label: &LabelName,
) -> Result<Option<Label>> {
    let sql = format!(
        "SELECT {LABEL_COLS} FROM prompt_label l JOIN prompt_template_version v ON v.id = l.version_id \
         WHERE l.template_id = $1 AND l.name = $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(template.as_uuid())
        .bind(label.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| codec::label(&r)?.decode()).transpose()
}

async fn record_move(
    conn: &mut PgConnection,
    template: TemplateId,
    label: &LabelName,
    from: Option<u32>,
    to: Option<u32>,
    by: Option<UserId>,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("INSERT INTO prompt_label_history (template_id, label, from_seq, to_seq, at, by_user) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(template.as_uuid())
        .bind(label.as_str())
        .bind(from.map(i64::from))
        .bind(to.map(i64::from))
        .bind(at)
        .bind(by.map(uuid::Uuid::from))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
