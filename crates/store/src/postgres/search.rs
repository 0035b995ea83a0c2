//! Listing and full-text search of templates on PostgreSQL.
//!
//! `template_search` holds two tsvectors per template in the 'simple'
//! configuration (no stemming, no stop words: the same words match as on
//! SQLite's FTS5): `document` (name, description, tags and the newest text)
//! is what matches; `meta` (name, description, tags) is what ranks, so
//! ranking never reads the text's large vector. [`refresh_search`] rewrites
//! them in every transaction that changes what they are computed from.

use promptvault_core::model::Template;
use promptvault_core::{ChatItem, TemplateBody, TemplateId};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::PgStore;
use super::codec::{self, TEMPLATE_COLS, TEMPLATE_FROM};
use crate::cursor::{self, Position};
use crate::error::{Result, StoreError};
use crate::rows::{folder_range, search_name, search_terms};
use crate::types::{Page, PageRequest, TemplateFilter};

impl PgStore {
    pub(super) async fn list_templates_impl(
        &self,
        filter: &TemplateFilter,
        page: &PageRequest,
    ) -> Result<Page<Template>> {
        let limit = page.limit();
        let position: Option<Position> = page.cursor.as_deref().map(cursor::decode).transpose()?;
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {TEMPLATE_COLS} FROM {TEMPLATE_FROM}"));
        let offset = match &filter.query {
            Some(query) => {
                let terms = search_terms(query);
                if terms.is_empty() {
                    return Ok(Page { items: vec![], next_cursor: None });
                }
                // Terms are bare words (operators stripped): each one a prefix, all required.
                let tsquery = terms.iter().map(|t| format!("{t}:*")).collect::<Vec<_>>().join(" & ");
                qb.push(" JOIN template_search s ON s.template_id = t.id, to_tsquery('simple', ")
                    .push_bind(tsquery)
                    .push(") q WHERE s.document @@ q");
                push_filters(&mut qb, filter);
                let offset = match position {
                    None => 0,
                    Some(Position::Offset(o)) => o,
                    Some(_) => return Err(StoreError::InvalidCursor),
                };
                qb.push(" ORDER BY ts_rank(s.meta, q) DESC, t.name LIMIT ")
                    .push_bind(i64::from(limit) + 1)
                    .push(" OFFSET ")
                    .push_bind(i64::try_from(offset).map_err(|_| StoreError::InvalidCursor)?);
                Some(offset)
            }
            None => {
                qb.push(" WHERE TRUE");
                push_filters(&mut qb, filter);
                match position {
                    None => {}
                    Some(Position::AfterName(n)) => {
                        qb.push(" AND t.name > ").push_bind(n);
                    }
                    Some(_) => return Err(StoreError::InvalidCursor),
                }
                qb.push(" ORDER BY t.name LIMIT ").push_bind(i64::from(limit) + 1);
                None
            }
        };
        let rows = qb.build().fetch_all(&self.pool).await?;
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

/// The filters other than the query, each as ` AND …`. `t.name` has the
/// "C" collation, so the folder range is a byte range, as on SQLite.
fn push_filters(qb: &mut QueryBuilder<Postgres>, filter: &TemplateFilter) {
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
        qb.push(" AND t.owner_id = ").push_bind(uuid::Uuid::from(owner));
    }
    if let Some(folder) = &filter.folder {
        let (lo, hi) = folder_range(folder);
        qb.push(" AND t.name >= ").push_bind(lo).push(" AND t.name < ").push_bind(hi);
    }
}

/// Rewrites the search entry of a template from its current rows: name
/// (weight A), description and tags (B), newest version's text (D, in
/// `document` only).
pub(super) async fn refresh_search(conn: &mut PgConnection, id: TemplateId) -> Result<()> {
    let row = sqlx::query(
        "SELECT t.name, t.description, t.tags, v.template_text, v.messages, v.sealed IS NOT NULL AS sealed \
         FROM prompt_template t JOIN prompt_template_version v ON v.template_id = t.id AND v.seq = t.latest_seq \
         WHERE t.id = $1",
    )
    .bind(id.as_uuid())
    .fetch_one(&mut *conn)
    .await?;
    // Sealed content is never indexed: its template is found by name,
    // description and tags only.
    let body = match row.try_get::<Option<String>, _>("template_text")? {
        _ if row.try_get::<bool, _>("sealed")? => String::new(),
        Some(text) => text,
        None => {
            let messages: Option<serde_json::Value> = row.try_get("messages")?;
            let items: Vec<ChatItem> =
                serde_json::from_value(messages.unwrap_or_default()).map_err(StoreError::corrupt)?;
            TemplateBody::Chat(items).display_text()
        }
    };
    let name: String = row.try_get("name")?;
    let tags = codec::tags(row.try_get("tags")?)?;
    sqlx::query(
        "WITH m AS (SELECT setweight(to_tsvector('simple', $2), 'A') || setweight(to_tsvector('simple', $3), 'B') \
         || setweight(to_tsvector('simple', $4), 'B') AS meta) \
         INSERT INTO template_search (template_id, meta, document) \
         SELECT $1, m.meta, m.meta || setweight(to_tsvector('simple', $5), 'D') FROM m \
         ON CONFLICT (template_id) DO UPDATE SET meta = excluded.meta, document = excluded.document",
    )
    .bind(id.as_uuid())
    .bind(search_name(&name))
    .bind(row.try_get::<Option<String>, _>("description")?.unwrap_or_default())
    .bind(tags.join(" "))
    .bind(body)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
