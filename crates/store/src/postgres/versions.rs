//! Versions on PostgreSQL.
//!
//! Every write here first locks the template row (`lock_template_by_id`), so
//! writers of one template queue in one place and always take their locks in
//! the same order: template, then its versions and labels (labels.rs).

use promptvault_core::model::{Template, Version};
use promptvault_core::{TemplateId, TemplateName, VersionStatus};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::catalog::{insert_version, lock_template_by_id};
use super::codec::{self, TEMPLATE_COLS, TEMPLATE_FROM, VERSION_COLS};
use super::search::refresh_search;
use super::{PgStore, notify};
use crate::crypt::Vault;
use crate::cursor::{self, Position};
use crate::error::{Conflict, Result, StoreError};
use crate::rows::ContentColumns;
use crate::types::{Expect, NewVersion, Page, PageRequest, VersionSelector, Write};

fn selector_clause(qb: &mut QueryBuilder<Postgres>, selector: &VersionSelector) {
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
    conn: &mut PgConnection,
    vault: &Vault,
    template: TemplateId,
    seq: u32,
) -> Result<Version> {
    find_version(conn, vault, template, &VersionSelector::Seq(seq))
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("version {seq}")))
}

async fn find_version(
    conn: &mut PgConnection,
    vault: &Vault,
    template: TemplateId,
    selector: &VersionSelector,
) -> Result<Option<Version>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {VERSION_COLS} FROM prompt_template t JOIN prompt_template_version v ON v.template_id = t.id WHERE t.id = "
    ));
    qb.push_bind(*template.as_uuid());
    selector_clause(&mut qb, selector);
    let row = qb.build().fetch_optional(&mut *conn).await?;
    row.map(|r| codec::version(&r)?.decode(vault)).transpose()
}

impl PgStore {
    pub(super) async fn create_version_impl(
        &self,
        template: TemplateId,
        base_seq: u32,
        new: NewVersion,
        w: Write,
    ) -> Result<(TemplateName, Version)> {
        let at = w.at;
        let mut tx = self.pool.begin().await?;
        let t = lock_template_by_id(&mut tx, template).await?;
        if t.latest_seq != base_seq {
            return Err(Conflict::StaleBase { expected: base_seq, current: t.latest_seq }.into());
        }
        let last: i64 = sqlx::query_scalar("SELECT last_seq FROM prompt_template WHERE id = $1")
            .bind(template.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
        let seq = u32::try_from(last + 1).map_err(|_| StoreError::corrupt("sequence overflow"))?;
        insert_version(&mut tx, &self.vault, template, t.security_classification, seq, &new, at).await?;
        sqlx::query(
            "UPDATE prompt_template SET latest_seq = $1, last_seq = $1, latest_version = $2 WHERE id = $3",
        )
        .bind(i64::from(seq))
        .bind(new.version.to_string())
        .bind(template.as_uuid())
        .execute(&mut *tx)
        .await?;
        refresh_search(&mut tx, template).await?;
        let v = load_version(&mut tx, &self.vault, template, seq).await?;
        notify::commit(tx, Some(&t.name), w.audit.as_ref()).await?;
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
        let mut tx = self.pool.begin().await?;
        let t = lock_template_by_id(&mut tx, template).await?;
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
            "UPDATE prompt_template_version SET version = $1, kind = $2, template_text = $3, messages = $4::json, \
             parameter_schema = $5::json, config = $6::json, content_hash = $7, change_description = $8, bump = $9, updated_at = $10, \
             revision = revision + 1, sealed = $12, sealed_key = $13 WHERE id = $11",
        )
        .bind(new.version.to_string())
        .bind(c.kind)
        .bind(c.template_text)
        .bind(c.messages.map(|m| m.to_string()))
        .bind(c.parameter_schema.to_string())
        .bind(c.config.to_string())
        .bind(new.content_hash.to_string())
        .bind(&new.change_description)
        .bind(new.bump.map(|b| b.as_str()))
        .bind(at)
        .bind(current.id.as_uuid())
        .bind(c.sealed)
        .bind(c.sealed_key)
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::unique(e, "version", &new.version.to_string()))?;
        sqlx::query("UPDATE prompt_template SET latest_version = $1 WHERE id = $2")
            .bind(new.version.to_string())
            .bind(template.as_uuid())
            .execute(&mut *tx)
            .await?;
        refresh_search(&mut tx, template).await?;
        let v = load_version(&mut tx, &self.vault, template, seq).await?;
        notify::commit(tx, Some(&t.name), w.audit.as_ref()).await?;
        Ok((t.name, v))
    }

    pub(super) async fn delete_draft_impl(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        w: Write,
    ) -> Result<TemplateName> {
        let mut tx = self.pool.begin().await?;
        let t = lock_template_by_id(&mut tx, template).await?;
        let current = load_version(&mut tx, &self.vault, template, seq).await?;
        expect.check("version", current.revision)?;
        if !current.status.is_editable() {
            return Err(Conflict::NotEditable { seq, status: current.status }.into());
        }
        let labels: Vec<String> =
            sqlx::query_scalar("SELECT name FROM prompt_label WHERE version_id = $1 ORDER BY name")
                .bind(current.id.as_uuid())
                .fetch_all(&mut *tx)
                .await?;
        if !labels.is_empty() {
            return Err(Conflict::Labelled { seq, labels: labels.join(", ") }.into());
        }
        let remaining: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, version FROM prompt_template_version WHERE template_id = $1 AND seq <> $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(template.as_uuid())
        .bind(i64::from(seq))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((latest, latest_version)) = remaining else {
            return Err(Conflict::LastVersion.into());
        };
        sqlx::query("DELETE FROM prompt_template_version WHERE id = $1")
            .bind(current.id.as_uuid())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE prompt_template SET latest_seq = $1, latest_version = $2 WHERE id = $3")
            .bind(latest)
            .bind(latest_version)
            .bind(template.as_uuid())
            .execute(&mut *tx)
            .await?;
        refresh_search(&mut tx, template).await?;
        notify::commit(tx, Some(&t.name), w.audit.as_ref()).await?;
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
        let mut tx = self.pool.begin().await?;
        let t = lock_template_by_id(&mut tx, template).await?;
        let current = load_version(&mut tx, &self.vault, template, seq).await?;
        expect.check("version", current.revision)?;
        sqlx::query("UPDATE prompt_template_version SET status = $1, updated_at = $2, revision = revision + 1 WHERE id = $3")
            .bind(status.as_str())
            .bind(at)
            .bind(current.id.as_uuid())
            .execute(&mut *tx)
            .await?;
        let v = load_version(&mut tx, &self.vault, template, seq).await?;
        notify::commit(tx, Some(&t.name), w.audit.as_ref()).await?;
        Ok((t.name, v))
    }

    pub(super) async fn get_version_impl(
        &self,
        template: TemplateId,
        selector: &VersionSelector,
    ) -> Result<Option<Version>> {
        let mut conn = self.pool.acquire().await?;
        find_version(&mut conn, &self.vault, template, selector).await
    }

    pub(super) async fn resolve_impl(
        &self,
        name: &TemplateName,
        selector: &VersionSelector,
    ) -> Result<Option<(Template, Version)>> {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {TEMPLATE_COLS}, {VERSION_COLS} FROM {TEMPLATE_FROM} \
             JOIN prompt_template_version v ON v.template_id = t.id WHERE t.name = "
        ));
        qb.push_bind(name.as_str().to_owned());
        selector_clause(&mut qb, selector);
        let row = qb.build().fetch_optional(&self.pool).await?;
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
            "SELECT {VERSION_COLS} FROM prompt_template_version v WHERE v.template_id = $1 AND v.seq < $2 \
             ORDER BY v.seq DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(template.as_uuid())
            .bind(before)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut items =
            rows.iter().map(|r| codec::version(r)?.decode(&self.vault)).collect::<Result<Vec<_>>>()?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor =
            more.then(|| items.last().map(|v| cursor::encode(&Position::BeforeSeq(v.seq)))).flatten();
        Ok(Page { items, next_cursor })
    }
}
