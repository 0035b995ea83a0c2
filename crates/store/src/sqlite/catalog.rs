//! Prompt types and templates (metadata, listing, search) on SQLite.

use chrono::{DateTime, Utc};
use promptvault_core::model::{PromptType, Template, Version};
use promptvault_core::{ChatItem, PromptTypeKey, TemplateBody, TemplateName};
use sqlx::{Acquire, QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteStore;
use super::codec::{self, Col, TEMPLATE_COLS, TYPE_COLS, ts};
use crate::cursor::{self, Position};
use crate::error::{Conflict, Result, StoreError};
use crate::rows::{ContentColumns, folder_range, search_name, search_terms};
use crate::types::{
    Expect, NewPromptType, NewTemplate, NewVersion, Page, PageRequest, PromptTypePatch, TemplateFilter,
    TemplatePatch, Write,
};

impl SqliteStore {
    pub(super) async fn create_prompt_type_impl(&self, new: NewPromptType, w: Write) -> Result<PromptType> {
        let at = w.at;
        let id = promptvault_core::PromptTypeId::new();
        let mut tx = self.writer.begin().await?;
        for (col, value, what) in
            [("key", new.key.as_str(), "prompt type"), ("name", new.name.as_str(), "prompt type name")]
        {
            let sql = format!("SELECT 1 FROM prompt_type WHERE {col} = ?");
            if sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&mut *tx).await?.is_some() {
                return Err(Conflict::AlreadyExists { what, name: value.to_owned() }.into());
            }
        }
        sqlx::query(
            "INSERT INTO prompt_type (id, key, name, schema, policy, created_at, revision) VALUES (?, ?, ?, ?, ?, ?, 1)",
        )
        .bind(id.to_string())
        .bind(new.key.as_str())
        .bind(&new.name)
        .bind(new.schema.as_ref().map(ToString::to_string))
        .bind(serde_json::to_string(&new.policy).unwrap_or_else(|_| "{}".into()))
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::unique(e, "prompt type", new.key.as_str()))?;
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {TYPE_COLS} FROM prompt_type WHERE id = ?")))
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        codec::prompt_type(&row)?.decode()
    }

    pub(super) async fn get_prompt_type_impl(&self, col: &str, value: &str) -> Result<Option<PromptType>> {
        let sql = format!("SELECT {TYPE_COLS} FROM prompt_type WHERE {col} = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&self.reader).await?;
        row.map(|r| codec::prompt_type(&r)?.decode()).transpose()
    }

    pub(super) async fn list_prompt_types_impl(&self) -> Result<Vec<PromptType>> {
        let sql = format!("SELECT {TYPE_COLS} FROM prompt_type ORDER BY key");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reader).await?;
        rows.iter().map(|r| codec::prompt_type(r)?.decode()).collect()
    }

    pub(super) async fn update_prompt_type_impl(
        &self,
        key: &PromptTypeKey,
        expect: Expect,
        patch: PromptTypePatch,
        w: Write,
    ) -> Result<PromptType> {
        let at = w.at;
        let mut tx = self.writer.begin().await?;
        let sql = format!("SELECT {TYPE_COLS} FROM prompt_type WHERE key = ?");
        let Some(row) =
            sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(key.as_str()).fetch_optional(&mut *tx).await?
        else {
            return Err(StoreError::NotFound(format!("prompt type {key}")));
        };
        let current = codec::prompt_type(&row)?.decode()?;
        expect.check("prompt type", current.revision)?;
        let name = patch.name.unwrap_or(current.name);
        let schema = patch.schema.unwrap_or(current.schema);
        let policy = patch.policy.unwrap_or(current.policy);
        sqlx::query(
            "UPDATE prompt_type SET name = ?, schema = ?, policy = ?, updated_at = ?, revision = revision + 1 \
             WHERE id = ?",
        )
        .bind(&name)
        .bind(schema.as_ref().map(ToString::to_string))
        .bind(serde_json::to_string(&policy).unwrap_or_else(|_| "{}".into()))
            .bind(ts(at))
            .bind(current.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| codec::unique(e, "prompt type name", &name))?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key.as_str()).fetch_one(&mut *tx).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        codec::prompt_type(&row)?.decode()
    }

    pub(super) async fn delete_prompt_type_impl(
        &self,
        key: &PromptTypeKey,
        expect: Expect,
        w: Write,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let sql = format!("SELECT {TYPE_COLS} FROM prompt_type WHERE key = ?");
        let Some(row) =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key.as_str()).fetch_optional(&mut *tx).await?
        else {
            return Err(StoreError::NotFound(format!("prompt type {key}")));
        };
        let current = codec::prompt_type(&row)?.decode()?;
        expect.check("prompt type", current.revision)?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM prompt_template WHERE prompt_type_id = ?")
            .bind(current.id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        if count > 0 {
            return Err(Conflict::InUse {
                what: "prompt type",
                count: count.unsigned_abs(),
                by: "template(s)",
            }
            .into());
        }
        sqlx::query("DELETE FROM prompt_type WHERE id = ?")
            .bind(current.id.to_string())
            .execute(&mut *tx)
            .await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(())
    }

    pub(super) async fn create_template_impl(
        &self,
        new: NewTemplate,
        first: NewVersion,
        w: Write,
    ) -> Result<(Template, Version)> {
        let at = w.at;
        let id = promptvault_core::TemplateId::new();
        let mut tx = self.writer.begin().await?;
        let tags: Vec<&str> = new.tags.iter().map(|t| t.as_str()).collect();
        sqlx::query(
            "INSERT INTO prompt_template (id, prompt_type_id, name, description, long_description_markdown, \
             creator_id, owner_id, security_classification, tags, created_at, revision, latest_seq, last_seq, latest_version, \
             access) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1, 1, ?, ?)",
        )
        .bind(id.to_string())
        .bind(new.prompt_type_id.to_string())
        .bind(new.name.as_str())
        .bind(&new.description)
        .bind(&new.long_description_markdown)
        .bind(new.creator_id.map(|u| u.to_string()))
        .bind(new.owner_id.map(|u| u.to_string()))
        .bind(new.security_classification.as_str())
        .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()))
        .bind(ts(at))
        .bind(first.version.to_string())
        .bind(serde_json::to_string(&new.access).unwrap_or_else(|_| "{}".into()))
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::unique(e, "template", new.name.as_str()))?;
        write_tags(&mut tx, id, &tags).await?;
        insert_version(&mut tx, &self.vault, id, new.security_classification, 1, &first, at).await?;
        refresh_search(&mut tx, id).await?;
        let template = load_template(&mut tx, &new.name).await?;
        let version = super::versions::load_version(&mut tx, &self.vault, id, 1).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok((template, version))
    }

    pub(super) async fn get_template_impl(&self, name: &TemplateName) -> Result<Option<Template>> {
        let mut conn = self.reader.acquire().await?;
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
        let mut tx = self.writer.begin().await?;
        let current = load_template(&mut tx, name).await?;
        expect.check("template", current.revision)?;
        let type_id = patch.prompt_type_id.unwrap_or(current.prompt_type_id);
        let tags: Vec<String> = patch
            .tags
            .map(|t| t.into_iter().map(|t| t.into_string()).collect())
            .unwrap_or_else(|| current.tags.iter().map(|t| t.to_string()).collect());
        let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        sqlx::query(
            "UPDATE prompt_template SET prompt_type_id = ?, description = ?, long_description_markdown = ?, \
             owner_id = ?, security_classification = ?, tags = ?, access = ?, updated_at = ?, revision = revision + 1 \
             WHERE id = ?",
        )
        .bind(type_id.to_string())
        .bind(patch.description.unwrap_or(current.description))
        .bind(patch.long_description_markdown.unwrap_or(current.long_description_markdown))
        .bind(patch.owner_id.unwrap_or(current.owner_id).map(|u| u.to_string()))
        .bind(patch.security_classification.unwrap_or(current.security_classification).as_str())
        .bind(serde_json::to_string(&tag_refs).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&patch.access.unwrap_or(current.access)).unwrap_or_else(|_| "{}".into()))
        .bind(ts(at))
        .bind(current.id.to_string())
        .execute(&mut *tx)
        .await?;
        write_tags(&mut tx, current.id, &tag_refs).await?;
        let class = patch.security_classification.unwrap_or(current.security_classification);
        if class != current.security_classification && self.vault.sealer(class)?.is_some() {
            // Its versions are sealed now, in this transaction; its renders
            // by the re-encryption job.
            super::keys::queue_template(&mut tx, &current.id.to_string()).await?;
            super::keys::seal_template_versions(&mut tx, &self.vault, &current.id.to_string()).await?;
        }
        refresh_search(&mut tx, current.id).await?;
        let updated = load_template(&mut tx, name).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(updated)
    }

    pub(super) async fn delete_template_impl(
        &self,
        name: &TemplateName,
        expect: Expect,
        w: Write,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let current = load_template(&mut tx, name).await?;
        expect.check("template", current.revision)?;
        let id = current.id.to_string();
        sqlx::query(
            "DELETE FROM template_search WHERE rowid = (SELECT rowid FROM prompt_template WHERE id = ?)",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM prompt_label WHERE template_id = ?").bind(&id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM prompt_template WHERE id = ?").bind(&id).execute(&mut *tx).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(())
    }

    pub(super) async fn list_templates_impl(
        &self,
        filter: &TemplateFilter,
        page: &PageRequest,
    ) -> Result<Page<Template>> {
        let limit = page.limit();
        let position: Option<Position> = page.cursor.as_deref().map(cursor::decode).transpose()?;
        let terms = filter.query.as_deref().map(search_terms).unwrap_or_default();
        let searching = filter.query.is_some();
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {TEMPLATE_COLS} FROM prompt_template t JOIN prompt_type pt ON pt.id = t.prompt_type_id"
        ));
        if searching {
            if terms.is_empty() {
                return Ok(Page { items: vec![], next_cursor: None });
            }
            qb.push(" JOIN template_search s ON s.rowid = t.rowid");
        }
        qb.push(" WHERE 1 = 1");
        if let Some(k) = &filter.type_key {
            qb.push(" AND pt.key = ").push_bind(k.as_str().to_owned());
        }
        if let Some(tag) = &filter.tag {
            qb.push(" AND t.id IN (SELECT template_id FROM prompt_template_tag WHERE tag = ")
                .push_bind(tag.as_str().to_owned())
                .push(")");
        }
        if let Some(status) = filter.status {
            qb.push(" AND t.id IN (SELECT template_id FROM prompt_template_version WHERE status = ")
                .push_bind(status.as_str())
                .push(")");
        }
        if let Some(c) = filter.classification {
            qb.push(" AND t.security_classification = ").push_bind(c.as_str());
        }
        if let Some(owner) = filter.owner_id {
            qb.push(" AND t.owner_id = ").push_bind(owner.to_string());
        }
        if let Some(folder) = &filter.folder {
            let (lo, hi) = folder_range(folder);
            qb.push(" AND t.name >= ").push_bind(lo).push(" AND t.name < ").push_bind(hi);
        }
        let offset = if searching {
            let expr = terms.iter().map(|t| format!("\"{t}\"*")).collect::<Vec<_>>().join(" ");
            qb.push(" AND template_search MATCH ").push_bind(expr);
            let offset = match position {
                None => 0,
                Some(Position::Offset(o)) => o,
                Some(_) => return Err(StoreError::InvalidCursor),
            };
            qb.push(" ORDER BY bm25(template_search, 10.0, 4.0, 4.0, 1.0), t.name LIMIT ")
                .push_bind(i64::from(limit) + 1)
                .push(" OFFSET ")
                .push_bind(i64::try_from(offset).map_err(|_| StoreError::InvalidCursor)?);
            Some(offset)
        } else {
            match position {
                None => {}
                Some(Position::AfterName(n)) => {
                    qb.push(" AND t.name > ").push_bind(n);
                }
                Some(_) => return Err(StoreError::InvalidCursor),
            }
            qb.push(" ORDER BY t.name LIMIT ").push_bind(i64::from(limit) + 1);
            None
        };
        let rows = qb.build().fetch_all(&self.reader).await?;
        let mut items = rows.iter().map(|r| codec::template(r)?.decode()).collect::<Result<Vec<_>>>()?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = more.then(|| match offset {
            Some(o) => cursor::encode(&Position::Offset(o + u64::from(limit))),
            None => cursor::encode(&Position::AfterName(
                items.last().map(|t| t.name.to_string()).unwrap_or_default(),
            )),
        });
        Ok(Page { items, next_cursor })
    }
}

pub(super) async fn find_template(
    conn: &mut SqliteConnection,
    name: &TemplateName,
) -> Result<Option<Template>> {
    let sql = format!(
        "SELECT {TEMPLATE_COLS} FROM prompt_template t JOIN prompt_type pt ON pt.id = t.prompt_type_id WHERE t.name = ?"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name.as_str()).fetch_optional(&mut *conn).await?;
    row.map(|r| codec::template(&r)?.decode()).transpose()
}

pub(super) async fn load_template(conn: &mut SqliteConnection, name: &TemplateName) -> Result<Template> {
    find_template(conn, name).await?.ok_or_else(|| StoreError::NotFound(format!("template {name}")))
}

pub(super) async fn template_by_id(
    conn: &mut SqliteConnection,
    id: promptvault_core::TemplateId,
) -> Result<Template> {
    let sql = format!(
        "SELECT {TEMPLATE_COLS} FROM prompt_template t JOIN prompt_type pt ON pt.id = t.prompt_type_id WHERE t.id = ?"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("template {id}")))?;
    codec::template(&row)?.decode()
}

async fn write_tags(
    conn: &mut SqliteConnection,
    id: promptvault_core::TemplateId,
    tags: &[&str],
) -> Result<()> {
    let id = id.to_string();
    sqlx::query("DELETE FROM prompt_template_tag WHERE template_id = ?")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    for tag in tags {
        sqlx::query("INSERT OR IGNORE INTO prompt_template_tag (template_id, tag) VALUES (?, ?)")
            .bind(&id)
            .bind(*tag)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(super) async fn insert_version(
    conn: &mut SqliteConnection,
    vault: &crate::crypt::Vault,
    template: promptvault_core::TemplateId,
    class: promptvault_core::SecurityClassification,
    seq: u32,
    v: &NewVersion,
    at: DateTime<Utc>,
) -> Result<()> {
    let id = promptvault_core::VersionId::new();
    let c = ContentColumns::for_row(&v.content, id.as_uuid(), vault.sealer(class)?.map(|r| &**r))?;
    sqlx::query(
        "INSERT INTO prompt_template_version (id, template_id, seq, version, status, kind, template_text, messages, \
         parameter_schema, config, sealed, sealed_key, content_hash, author_id, change_description, bump, restored_from, \
         created_at, revision) \
         VALUES (?, ?, ?, ?, 'draft', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
    )
    .bind(id.to_string())
    .bind(template.to_string())
    .bind(i64::from(seq))
    .bind(v.version.to_string())
    .bind(c.kind)
    .bind(c.template_text)
    .bind(c.messages.map(|m| m.to_string()))
    .bind(c.parameter_schema.to_string())
    .bind(c.config.to_string())
    .bind(c.sealed)
    .bind(c.sealed_key)
    .bind(v.content_hash.to_string())
    .bind(v.author_id.map(|u| u.to_string()))
    .bind(&v.change_description)
    .bind(v.bump.map(|b| b.as_str()))
    .bind(v.restored_from.map(i64::from))
    .bind(ts(at))
    .execute(&mut *conn)
    .await
    .map_err(|e| codec::unique(e, "version", &v.version.to_string()))?;
    Ok(())
}

/// Rewrites the search entry of a template from its current rows.
pub(super) async fn refresh_search(
    conn: &mut SqliteConnection,
    id: promptvault_core::TemplateId,
) -> Result<()> {
    let row = sqlx::query(
        "SELECT t.rowid AS rid, t.name, t.description, t.tags, v.kind, v.template_text, v.messages, \
         v.sealed IS NOT NULL AS sealed \
         FROM prompt_template t JOIN prompt_template_version v ON v.template_id = t.id AND v.seq = t.latest_seq \
         WHERE t.id = ?",
    )
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    // Sealed content is never indexed: its template is found by name,
    // description and tags only.
    let body = match row.text_opt("template_text")? {
        _ if row.int("sealed")? != 0 => String::new(),
        Some(text) => text,
        None => {
            let items: Vec<ChatItem> = serde_json::from_value(row.json_opt("messages")?.unwrap_or_default())
                .map_err(StoreError::corrupt)?;
            TemplateBody::Chat(items).display_text()
        }
    };
    let name = row.text("name")?;
    let tags: Vec<String> = serde_json::from_value(row.json("tags")?).map_err(StoreError::corrupt)?;
    let rid = row.int("rid")?;
    let mut conn = conn.begin().await?;
    sqlx::query("DELETE FROM template_search WHERE rowid = ?").bind(rid).execute(&mut *conn).await?;
    sqlx::query("INSERT INTO template_search (rowid, name, description, tags, body) VALUES (?, ?, ?, ?, ?)")
        .bind(rid)
        .bind(search_name(&name))
        .bind(row.text_opt("description")?.unwrap_or_default())
        .bind(tags.join(" "))
        .bind(body)
        .execute(&mut *conn)
        .await?;
    conn.commit().await?;
    Ok(())
}
