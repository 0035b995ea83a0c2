//! Versions and labels on SQLite.

use chrono::{DateTime, Utc};
use promptvault_core::model::{Label, LabelMove, Template, Version};
use promptvault_core::{LabelName, TemplateId, TemplateName, UserId, VersionStatus};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteStore;
use super::catalog::{insert_version, refresh_search, template_by_id};
use super::codec::{self, TEMPLATE_COLS, VERSION_COLS, ts};
use crate::crypt::Vault;
use crate::cursor::{self, Position};
use crate::error::{Conflict, Result, StoreError};
use crate::rows::ContentColumns;
use crate::types::{Expect, NewVersion, Page, PageRequest, VersionSelector, Write};

fn selector_clause(qb: &mut QueryBuilder<Sqlite>, selector: &VersionSelector) {
    match selector {
        VersionSelector::Seq(n) => {
            qb.push(" AND v.seq = ").push_bind(i64::from(*n));
        }
        VersionSelector::Semver(v) => {
            qb.push(" AND v.version = ").push_bind(v.to_string());
        }
        VersionSelector::Latest => {
            qb.push(" AND v.seq = t.latest_seq");
        }
        VersionSelector::Label(l) => {
            qb.push(" AND v.id = (SELECT version_id FROM prompt_label WHERE template_id = t.id AND name = ")
                .push_bind(l.as_str().to_owned())
                .push(")");
        }
    }
}

pub(super) async fn load_version(
    conn: &mut SqliteConnection,
    vault: &Vault,
    template: TemplateId,
    seq: u32,
) -> Result<Version> {
    find_version(conn, vault, template, &VersionSelector::Seq(seq))
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("version {seq}")))
}

async fn find_version(
    conn: &mut SqliteConnection,
    vault: &Vault,
    template: TemplateId,
    selector: &VersionSelector,
) -> Result<Option<Version>> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT {VERSION_COLS} FROM prompt_template t JOIN prompt_template_version v ON v.template_id = t.id WHERE t.id = "
    ));
    qb.push_bind(template.to_string());
    selector_clause(&mut qb, selector);
    let row = qb.build().fetch_optional(&mut *conn).await?;
    row.map(|r| codec::version(&r)?.decode(vault)).transpose()
}

impl SqliteStore {
    pub(super) async fn create_version_impl(
        &self,
        template: TemplateId,
        base_seq: u32,
        new: NewVersion,
        w: Write,
    ) -> Result<(TemplateName, Version)> {
        let at = w.at;
        let mut tx = self.writer.begin().await?;
        let t = template_by_id(&mut tx, template).await?;
        if t.latest_seq != base_seq {
            return Err(Conflict::StaleBase { expected: base_seq, current: t.latest_seq }.into());
        }
        let last: i64 = sqlx::query_scalar("SELECT last_seq FROM prompt_template WHERE id = ?")
            .bind(template.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let seq = u32::try_from(last + 1).map_err(|_| StoreError::corrupt("sequence overflow"))?;
        insert_version(&mut tx, &self.vault, template, t.security_classification, seq, &new, at).await?;
        sqlx::query(
            "UPDATE prompt_template SET latest_seq = ?, last_seq = ?, latest_version = ? WHERE id = ?",
        )
        .bind(i64::from(seq))
        .bind(i64::from(seq))
        .bind(new.version.to_string())
        .bind(template.to_string())
        .execute(&mut *tx)
        .await?;
        refresh_search(&mut tx, template).await?;
        let v = load_version(&mut tx, &self.vault, template, seq).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok((t.name, v))
    }

    pub(super) async fn update_draft_impl(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        new: NewVersion,
        w: Write,
    ) -> Result<(TemplateName, Version)> {
        let at = w.at;
        let mut tx = self.writer.begin().await?;
        let t = template_by_id(&mut tx, template).await?;
        let current = load_version(&mut tx, &self.vault, template, seq).await?;
        expect.check("version", current.revision)?;
        if !current.status.is_editable() {
            return Err(Conflict::NotEditable { seq, status: current.status }.into());
        }
        if t.latest_seq != seq {
            return Err(Conflict::Superseded { seq, latest: t.latest_seq }.into());
        }
        let c = ContentColumns::for_row(
            &new.content,
            current.id.as_uuid(),
            self.vault.sealer(t.security_classification)?.map(|r| &**r),
        )?;
        sqlx::query(
            "UPDATE prompt_template_version SET version = ?, kind = ?, template_text = ?, messages = ?, parameter_schema = ?, \
             config = ?, sealed = ?, sealed_key = ?, content_hash = ?, change_description = ?, bump = ?, updated_at = ?, \
             revision = revision + 1 WHERE template_id = ? AND seq = ?",
        )
        .bind(new.version.to_string())
        .bind(c.kind)
        .bind(c.template_text)
        .bind(c.messages.map(|m| m.to_string()))
        .bind(c.parameter_schema.to_string())
        .bind(c.config.to_string())
        .bind(c.sealed)
        .bind(c.sealed_key)
        .bind(new.content_hash.to_string())
        .bind(&new.change_description)
        .bind(new.bump.map(|b| b.as_str()))
        .bind(ts(at))
        .bind(template.to_string())
        .bind(i64::from(seq))
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::unique(e, "version", &new.version.to_string()))?;
        sqlx::query("UPDATE prompt_template SET latest_version = ? WHERE id = ?")
            .bind(new.version.to_string())
            .bind(template.to_string())
            .execute(&mut *tx)
            .await?;
        refresh_search(&mut tx, template).await?;
        let v = load_version(&mut tx, &self.vault, template, seq).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok((t.name, v))
    }

    pub(super) async fn delete_draft_impl(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        w: Write,
    ) -> Result<TemplateName> {
        let mut tx = self.writer.begin().await?;
        let t = template_by_id(&mut tx, template).await?;
        let current = load_version(&mut tx, &self.vault, template, seq).await?;
        expect.check("version", current.revision)?;
        if !current.status.is_editable() {
            return Err(Conflict::NotEditable { seq, status: current.status }.into());
        }
        let labels: Vec<String> =
            sqlx::query_scalar("SELECT name FROM prompt_label WHERE version_id = ? ORDER BY name")
                .bind(current.id.to_string())
                .fetch_all(&mut *tx)
                .await?;
        if !labels.is_empty() {
            return Err(Conflict::Labelled { seq, labels: labels.join(", ") }.into());
        }
        let remaining: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, version FROM prompt_template_version WHERE template_id = ? AND seq <> ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(template.to_string())
        .bind(i64::from(seq))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((latest, latest_version)) = remaining else {
            return Err(Conflict::LastVersion.into());
        };
        sqlx::query("DELETE FROM prompt_template_version WHERE id = ?")
            .bind(current.id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE prompt_template SET latest_seq = ?, latest_version = ? WHERE id = ?")
            .bind(latest)
            .bind(latest_version)
            .bind(template.to_string())
            .execute(&mut *tx)
            .await?;
        refresh_search(&mut tx, template).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(t.name)
    }

    pub(super) async fn set_version_status_impl(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        status: VersionStatus,
        w: Write,
    ) -> Result<(TemplateName, Version)> {
        let at = w.at;
        let mut tx = self.writer.begin().await?;
        let t = template_by_id(&mut tx, template).await?;
        let current = load_version(&mut tx, &self.vault, template, seq).await?;
        expect.check("version", current.revision)?;
        sqlx::query(
            "UPDATE prompt_template_version SET status = ?, updated_at = ?, revision = revision + 1 WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(ts(at))
        .bind(current.id.to_string())
        .execute(&mut *tx)
        .await?;
        let v = load_version(&mut tx, &self.vault, template, seq).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok((t.name, v))
    }

    pub(super) async fn get_version_impl(
        &self,
        template: TemplateId,
        selector: &VersionSelector,
    ) -> Result<Option<Version>> {
        let mut conn = self.reader.acquire().await?;
        find_version(&mut conn, &self.vault, template, selector).await
    }

    pub(super) async fn resolve_impl(
        &self,
        name: &TemplateName,
        selector: &VersionSelector,
    ) -> Result<Option<(Template, Version)>> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {TEMPLATE_COLS}, {VERSION_COLS} FROM prompt_template t \
             JOIN prompt_type pt ON pt.id = t.prompt_type_id \
             JOIN prompt_template_version v ON v.template_id = t.id WHERE t.name = "
        ));
        qb.push_bind(name.as_str().to_owned());
        selector_clause(&mut qb, selector);
        let row = qb.build().fetch_optional(&self.reader).await?;
        row.map(|r| Ok((codec::template(&r)?.decode()?, codec::version(&r)?.decode(&self.vault)?)))
            .transpose()
    }

    pub(super) async fn list_versions_impl(
        &self,
        template: TemplateId,
        page: &PageRequest,
    ) -> Result<Page<Version>> {
        let limit = page.limit();
        let before = match page.cursor.as_deref().map(cursor::decode::<Position>).transpose()? {
            None => i64::MAX,
            Some(Position::BeforeSeq(s)) => i64::from(s),
            Some(_) => return Err(StoreError::InvalidCursor),
        };
        let sql = format!(
            "SELECT {VERSION_COLS} FROM prompt_template_version v WHERE v.template_id = ? AND v.seq < ? ORDER BY v.seq DESC LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(template.to_string())
            .bind(before)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await?;
        let mut items =
            rows.iter().map(|r| codec::version(r)?.decode(&self.vault)).collect::<Result<Vec<_>>>()?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor =
            more.then(|| items.last().map(|v| cursor::encode(&Position::BeforeSeq(v.seq)))).flatten();
        Ok(Page { items, next_cursor })
    }

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
        let mut tx = self.writer.begin().await?;
        let t = template_by_id(&mut tx, template).await?;
        let target = load_version(&mut tx, &self.vault, template, seq).await?;
        let current = find_label(&mut tx, template, label).await?;
        match (expect, &current) {
            (Expect::Revision(r), Some(l)) if r != l.revision => {
                return Err(StoreError::Stale { what: "label", current: Some(l.revision) });
            }
            (Expect::Revision(_), None) => return Err(StoreError::Stale { what: "label", current: None }),
            _ => {}
        }
        let from = current.as_ref().map(|l| l.version_seq);
        if from != Some(seq) {
            sqlx::query(
                "INSERT INTO prompt_label (template_id, name, version_id, updated_at, updated_by, revision) VALUES (?, ?, ?, ?, ?, 1) \
                 ON CONFLICT (template_id, name) DO UPDATE SET version_id = excluded.version_id, \
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by, revision = prompt_label.revision + 1",
            )
            .bind(template.to_string())
            .bind(label.as_str())
            .bind(target.id.to_string())
            .bind(ts(at))
            .bind(by.map(|u| u.to_string()))
            .execute(&mut *tx)
            .await?;
            record_move(&mut tx, template, label, from, Some(seq), by, at).await?;
        }
        let l = find_label(&mut tx, template, label)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("label {label}")))?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
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
        let mut tx = self.writer.begin().await?;
        let t = template_by_id(&mut tx, template).await?;
        let Some(current) = find_label(&mut tx, template, label).await? else {
            return Err(StoreError::NotFound(format!("label {label} of template {}", t.name)));
        };
        expect.check("label", current.revision)?;
        sqlx::query("DELETE FROM prompt_label WHERE template_id = ? AND name = ?")
            .bind(template.to_string())
            .bind(label.as_str())
            .execute(&mut *tx)
            .await?;
        record_move(&mut tx, template, label, Some(current.version_seq), None, by, at).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(t.name)
    }

    pub(super) async fn list_labels_impl(&self, template: TemplateId) -> Result<Vec<Label>> {
        let rows = sqlx::query(
            "SELECT l.name, v.seq, l.version_id, l.updated_at, l.updated_by, l.revision FROM prompt_label l \
             JOIN prompt_template_version v ON v.id = l.version_id WHERE l.template_id = ? ORDER BY l.name",
        )
        .bind(template.to_string())
        .fetch_all(&self.reader)
        .await?;
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
             WHERE template_id = ? AND (? IS NULL OR label = ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(template.to_string())
        .bind(label.map(|l| l.as_str().to_owned()))
        .bind(label.map(|l| l.as_str().to_owned()))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| codec::label_move(r)?.decode()).collect()
    }
}

async fn find_label(
    conn: &mut SqliteConnection,
    template: TemplateId,
    label: &LabelName,
) -> Result<Option<Label>> {
    let row = sqlx::query(
        "SELECT l.name, v.seq, l.version_id, l.updated_at, l.updated_by, l.revision FROM prompt_label l \
         JOIN prompt_template_version v ON v.id = l.version_id WHERE l.template_id = ? AND l.name = ?",
    )
    .bind(template.to_string())
    .bind(label.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| codec::label(&r)?.decode()).transpose()
}

async fn record_move(
    conn: &mut SqliteConnection,
    template: TemplateId,
    label: &LabelName,
    from: Option<u32>,
    to: Option<u32>,
    by: Option<UserId>,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("INSERT INTO prompt_label_history (template_id, label, from_seq, to_seq, at, by_user) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(template.to_string())
        .bind(label.as_str())
        .bind(from.map(i64::from))
        .bind(to.map(i64::from))
        .bind(ts(at))
        .bind(by.map(|u| u.to_string()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
