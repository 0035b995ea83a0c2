//! Prompt types on PostgreSQL.

use promptvault_core::PromptTypeId;
use promptvault_core::PromptTypeKey;
use promptvault_core::model::PromptType;
use sqlx::PgConnection;
use sqlx::types::Json;

use super::codec::{self, TYPE_COLS};
use super::{PgStore, notify};
use crate::error::{Conflict, Result, StoreError};
use crate::types::{Expect, NewPromptType, PromptTypePatch, Write};

impl PgStore {
    pub(super) async fn create_prompt_type_impl(&self, new: NewPromptType, w: Write) -> Result<PromptType> {
        let at = w.at;
        let id = PromptTypeId::new();
        let mut tx = self.pool.begin().await?;
        // Checked first for a precise error; the unique constraints still
        // decide when two processes race.
        for (col, value, what) in
            [("key", new.key.as_str(), "prompt type"), ("name", new.name.as_str(), "prompt type name")]
        {
            let sql = format!("SELECT 1 FROM prompt_type WHERE {col} = $1");
            if sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&mut *tx).await?.is_some() {
                return Err(Conflict::AlreadyExists { what, name: value.to_owned() }.into());
            }
        }
        let sql = format!(
            "INSERT INTO prompt_type (id, key, name, schema, policy, created_at, revision) VALUES ($1, $2, $3, $4, $5, $6, 1) \
             RETURNING {TYPE_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(new.key.as_str())
            .bind(&new.name)
            .bind(new.schema.as_ref().map(Json))
            .bind(Json(&new.policy))
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| codec::unique(e, "prompt type", new.key.as_str()))?;
        let created = codec::prompt_type(&row)?.decode()?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(created)
    }

    pub(super) async fn get_prompt_type_by_key_impl(
        &self,
        key: &PromptTypeKey,
    ) -> Result<Option<PromptType>> {
        let sql = format!("SELECT {TYPE_COLS} FROM prompt_type WHERE key = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key.as_str()).fetch_optional(&self.pool).await?;
        row.map(|r| codec::prompt_type(&r)?.decode()).transpose()
    }

    pub(super) async fn get_prompt_type_by_id_impl(&self, id: PromptTypeId) -> Result<Option<PromptType>> {
        let sql = format!("SELECT {TYPE_COLS} FROM prompt_type WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.as_uuid()).fetch_optional(&self.pool).await?;
        row.map(|r| codec::prompt_type(&r)?.decode()).transpose()
    }

    pub(super) async fn list_prompt_types_impl(&self) -> Result<Vec<PromptType>> {
        let sql = format!("SELECT {TYPE_COLS} FROM prompt_type ORDER BY key");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
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
        let mut tx = self.pool.begin().await?;
        let current = lock_prompt_type(&mut tx, key, "FOR NO KEY UPDATE").await?;
        expect.check("prompt type", current.revision)?;
        let name = patch.name.unwrap_or(current.name);
        let schema = patch.schema.unwrap_or(current.schema);
        let policy = patch.policy.unwrap_or(current.policy);
        let sql = format!(
            "UPDATE prompt_type SET name = $1, schema = $2, updated_at = $3, revision = revision + 1, policy = $5 \
             WHERE id = $4 \
             RETURNING {TYPE_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&name)
            .bind(schema.as_ref().map(Json))
            .bind(at)
            .bind(current.id.as_uuid())
            .bind(Json(&policy))
            .bind(Json(&policy))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| codec::unique(e, "prompt type name", &name))?;
        let updated = codec::prompt_type(&row)?.decode()?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(updated)
    }

    pub(super) async fn delete_prompt_type_impl(
        &self,
        key: &PromptTypeKey,
        expect: Expect,
        w: Write,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE conflicts with the key-share lock a template insert
        // takes on its type, so the count below sees every committed user.
        let current = lock_prompt_type(&mut tx, key, "FOR UPDATE").await?;
        expect.check("prompt type", current.revision)?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM prompt_template WHERE prompt_type_id = $1")
            .bind(current.id.as_uuid())
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
        sqlx::query("DELETE FROM prompt_type WHERE id = $1")
            .bind(current.id.as_uuid())
            .execute(&mut *tx)
            .await?;
        notify::commit(tx, None, w.audit.as_ref()).await
    }
}

/// Reads a prompt type and locks its row (`lock` is a fixed locking clause).
async fn lock_prompt_type(
    conn: &mut PgConnection,
    key: &PromptTypeKey,
    lock: &'static str,
) -> Result<PromptType> {
    let sql = format!("SELECT {TYPE_COLS} FROM prompt_type WHERE key = $1 {lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("prompt type {key}")))?;
    codec::prompt_type(&row)?.decode()
}
