//! Templates (metadata) on PostgreSQL.

use chrono::{DateTime, Utc};
use promptvault_core::model::{Template, Version};
use promptvault_core::{TemplateId, TemplateName};
use sqlx::PgConnection;
use sqlx::types::Json;

use super::codec::{self, TEMPLATE_COLS, TEMPLATE_FROM};
use super::search::refresh_search;
use super::{PgStore, notify};
use crate::error::{Result, StoreError};
use crate::rows::ContentColumns;
use crate::types::{Expect, NewTemplate, NewVersion, TemplatePatch, Write};

impl PgStore {
    pub(super) async fn create_template_impl(
        &self,
        new: NewTemplate,
        first: NewVersion,
        w: Write,
    ) -> Result<(Template, Version)> {
        let at = w.at;
        let id = TemplateId::new();
        let mut tx = self.pool.begin().await?;
        let tags: Vec<&str> = new.tags.iter().map(|t| t.as_str()).collect();
        sqlx::query(
            "INSERT INTO prompt_template (id, prompt_type_id, name, description, long_description_markdown, \
             creator_id, owner_id, security_classification, tags, created_at, revision, latest_seq, last_seq, latest_version, \
             access) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, 1, 1, $11, $12)",
        )
        .bind(id.as_uuid())
        .bind(new.prompt_type_id.as_uuid())
        .bind(new.name.as_str())
        .bind(&new.description)
        .bind(&new.long_description_markdown)
        .bind(new.creator_id.map(uuid::Uuid::from))
        .bind(new.owner_id.map(uuid::Uuid::from))
        .bind(new.security_classification.as_str())
        .bind(Json(&tags))
        .bind(at)
        .bind(first.version.to_string())
        .bind(Json(&new.access))
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::unique(e, "template", new.name.as_str()))?;
        write_tags(&mut tx, id, &tags).await?;
        insert_version(&mut tx, &self.vault, id, new.security_classification, 1, &first, at).await?;
        refresh_search(&mut tx, id).await?;
        let template = template_by_id(&mut tx, id).await?;
        let version = super::versions::load_version(&mut tx, &self.vault, id, 1).await?;
        notify::commit(tx, Some(&new.name), w.audit.as_ref()).await?;
        Ok((template, version))
    }

    pub(super) async fn get_template_impl(&self, name: &TemplateName) -> Result<Option<Template>> {
        let mut conn = self.pool.acquire().await?;
        find_template(&mut conn, name).await
    }

    pub(super) async fn update_template_impl(
        &self,
        name: &TemplateName,
        expect: Expect,
        patch: TemplatePatch,
        w: Write,
    ) -> Result<Template> {
        let at = w.at;
        let mut tx = self.pool.begin().await?;
        let current = lock_template(&mut tx, name, "FOR NO KEY UPDATE OF t").await?;
        expect.check("template", current.revision)?;
        let tags: Vec<String> = patch
            .tags
            .map(|t| t.into_iter().map(|t| t.into_string()).collect())
            .unwrap_or_else(|| current.tags.iter().map(|t| t.to_string()).collect());
        let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        sqlx::query(
            "UPDATE prompt_template SET prompt_type_id = $1, description = $2, long_description_markdown = $3, \
             owner_id = $4, security_classification = $5, tags = $6, updated_at = $7, revision = revision + 1, \
             access = $9 WHERE id = $8",
        )
        .bind(patch.prompt_type_id.unwrap_or(current.prompt_type_id).as_uuid())
        .bind(patch.description.unwrap_or(current.description))
        .bind(patch.long_description_markdown.unwrap_or(current.long_description_markdown))
        .bind(patch.owner_id.unwrap_or(current.owner_id).map(uuid::Uuid::from))
        .bind(patch.security_classification.unwrap_or(current.security_classification).as_str())
        .bind(Json(&tag_refs))
        .bind(at)
        .bind(current.id.as_uuid())
        .bind(Json(patch.access.as_ref().unwrap_or(&current.access)))
        .execute(&mut *tx)
        .await?;
        write_tags(&mut tx, current.id, &tag_refs).await?;
        let class = patch.security_classification.unwrap_or(current.security_classification);
        if class != current.security_classification && self.vault.sealer(class)?.is_some() {
            // Its versions are sealed now, in this transaction; its renders
            // by the re-encryption job.
            super::keys::queue_template(&mut tx, current.id.as_uuid()).await?;
            super::keys::seal_template_versions(&mut tx, &self.vault, current.id.as_uuid()).await?;
        }
        refresh_search(&mut tx, current.id).await?;
        let updated = template_by_id(&mut tx, current.id).await?;
        notify::commit(tx, Some(name), w.audit.as_ref()).await?;
        Ok(updated)
    }

    pub(super) async fn delete_template_impl(
        &self,
        name: &TemplateName,
        expect: Expect,
        w: Write,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let current = lock_template(&mut tx, name, "FOR UPDATE OF t").await?;
        expect.check("template", current.revision)?;
        // Labels first: they reference versions without a cascade.
        sqlx::query("DELETE FROM prompt_label WHERE template_id = $1")
            .bind(current.id.as_uuid())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM prompt_template WHERE id = $1")
            .bind(current.id.as_uuid())
            .execute(&mut *tx)
            .await?;
        notify::commit(tx, Some(name), w.audit.as_ref()).await
    }
}

pub(super) async fn find_template(conn: &mut PgConnection, name: &TemplateName) -> Result<Option<Template>> {
    let sql = format!("SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM} WHERE t.name = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name.as_str()).fetch_optional(&mut *conn).await?;
    row.map(|r| codec::template(&r)?.decode()).transpose()
}

/// Reads a template by name and locks its row until the transaction ends;
/// a writer waiting here reads the row as the previous writer committed it.
async fn lock_template(conn: &mut PgConnection, name: &TemplateName, lock: &'static str) -> Result<Template> {
    let sql = format!("SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM} WHERE t.name = $1 {lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("template {name}")))?;
    codec::template(&row)?.decode()
}

/// Reads a template by id and locks it against other writers. `NO KEY`
/// leaves the key-share locks of foreign-key checks free, so renders and
/// label inserts referencing the template are not blocked by it.
pub(super) async fn lock_template_by_id(conn: &mut PgConnection, id: TemplateId) -> Result<Template> {
    let sql = format!("SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM} WHERE t.id = $1 FOR NO KEY UPDATE OF t");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("template {id}")))?;
    codec::template(&row)?.decode()
}

pub(super) async fn template_by_id(conn: &mut PgConnection, id: TemplateId) -> Result<Template> {
    let sql = format!("SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM} WHERE t.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("template {id}")))?;
    codec::template(&row)?.decode()
}

async fn write_tags(conn: &mut PgConnection, id: TemplateId, tags: &[&str]) -> Result<()> {
    sqlx::query("DELETE FROM prompt_template_tag WHERE template_id = $1")
        .bind(id.as_uuid())
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO prompt_template_tag (template_id, tag) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING")
        .bind(id.as_uuid())
        .bind(tags)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn insert_version(
    conn: &mut PgConnection,
    vault: &crate::crypt::Vault,
    template: TemplateId,
    class: promptvault_core::SecurityClassification,
    seq: u32,
    v: &NewVersion,
    at: DateTime<Utc>,
) -> Result<()> {
    let id = promptvault_core::VersionId::new();
    let c = ContentColumns::for_row(&v.content, id.as_uuid(), vault.sealer(class)?.map(|r| &**r))?;
    sqlx::query(
        "INSERT INTO prompt_template_version (id, template_id, seq, version, status, kind, template_text, messages, \
         parameter_schema, config, content_hash, author_id, change_description, bump, restored_from, created_at, revision, \
         sealed, sealed_key) \
         VALUES ($1, $2, $3, $4, 'draft', $5, $6, $7::json, $8::json, $9::json, $10, $11, $12, $13, $14, $15, 1, $16, $17)",
    )
    .bind(id.as_uuid())
    .bind(template.as_uuid())
    .bind(i64::from(seq))
    .bind(v.version.to_string())
    .bind(c.kind)
    .bind(c.template_text)
    .bind(c.messages.map(|m| m.to_string()))
    .bind(c.parameter_schema.to_string())
    .bind(c.config.to_string())
    .bind(v.content_hash.to_string())
    .bind(v.author_id.map(uuid::Uuid::from))
    .bind(&v.change_description)
    .bind(v.bump.map(|b| b.as_str()))
    .bind(v.restored_from.map(i64::from))
    .bind(at)
    .bind(c.sealed)
    .bind(c.sealed_key)
    .execute(&mut *conn)
    .await
    .map_err(|e| codec::unique(e, "version", &v.version.to_string()))?;
    Ok(())
}
