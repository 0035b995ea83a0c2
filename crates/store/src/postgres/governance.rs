//! Approval workflows and custom compliance checks on PostgreSQL. The rules
//! are in `crate::governance`. A write locks its table `IN EXCLUSIVE MODE`
//! (reads go on; other writers of the table queue), so two processes cannot
//! both claim one classification or both create one key.

use promptvault_core::SecurityClassification;
use sqlx::PgConnection;
use sqlx::Row;

use super::{PgStore, notify};
use crate::error::{Conflict, Result};
use crate::governance::{ConfigRow, Definition, Plan, RowOp, Table};
use crate::types::{Stored, Write};

fn select(t: Table) -> String {
    format!("SELECT {} AS key, definition, source, updated_at, revision FROM {}", t.key, t.name)
}

fn row(r: &sqlx::postgres::PgRow) -> Result<ConfigRow> {
    Ok(ConfigRow {
        key: r.try_get("key")?,
        definition: r.try_get("definition")?,
        source: r.try_get("source")?,
        updated_at: r.try_get("updated_at")?,
        revision: r.try_get("revision")?,
    })
}

async fn load_rows(conn: &mut PgConnection, t: Table) -> Result<Vec<ConfigRow>> {
    let sql = format!("{} ORDER BY {}", select(t), t.key);
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await?;
    rows.iter().map(row).collect()
}

/// Refuses when versions of `classifications` are in review.
async fn check_in_review(
    conn: &mut PgConnection,
    classifications: &[SecurityClassification],
    what: &'static str,
) -> Result<()> {
    if classifications.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = classifications.iter().map(|c| c.as_str()).collect();
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM prompt_template_version v JOIN prompt_template t ON t.id = v.template_id \
         WHERE v.status = 'review' AND t.security_classification = ANY($1)",
    )
    .bind(&names)
    .fetch_one(&mut *conn)
    .await?;
    if count > 0 {
        return Err(Conflict::InUse { what, count: count.unsigned_abs(), by: "version(s) in review" }.into());
    }
    Ok(())
}

async fn apply(
    conn: &mut PgConnection,
    t: Table,
    op: &RowOp,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    match op {
        RowOp::Insert { key, definition, source } => {
            let sql = format!(
                "INSERT INTO {} ({}, definition, source, updated_at, revision) VALUES ($1, $2, $3, $4, 1)",
                t.name, t.key
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(key)
                .bind(definition)
                .bind(source.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(|e| super::codec::unique(e, t.what, key))?;
        }
        RowOp::Update { key, definition, source } => {
            let sql = format!(
                "UPDATE {} SET definition = $1, source = $2, updated_at = $3, revision = revision + 1 \
                 WHERE {} = $4",
                t.name, t.key
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(definition)
                .bind(source.as_str())
                .bind(at)
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
        RowOp::Delete { key } => {
            let sql = format!("DELETE FROM {} WHERE {} = $1", t.name, t.key);
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

impl PgStore {
    pub(super) async fn list_config<D: Definition>(&self) -> Result<Vec<Stored<D>>> {
        let mut conn = self.pool.acquire().await?;
        load_rows(&mut conn, D::TABLE).await?.into_iter().map(ConfigRow::decode).collect()
    }

    pub(super) async fn get_config<D: Definition>(&self, key: &str) -> Result<Option<Stored<D>>> {
        let t = D::TABLE;
        let sql = format!("{} WHERE {} = $1", select(t), t.key);
        let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(&self.pool).await?;
        r.map(|r| row(&r)?.decode()).transpose()
    }

    /// Locks the table, reads every row, plans, and writes the plan with its
    /// audit event; a plan without rows to write changes and records nothing.
    pub(super) async fn write_config<D: Definition, T: Send>(
        &self,
        plan: impl FnOnce(Vec<ConfigRow>) -> Result<Plan<T>> + Send,
        w: Write,
    ) -> Result<T> {
        let t = D::TABLE;
        let mut tx = self.pool.begin().await?;
        let lock = format!("LOCK TABLE {} IN EXCLUSIVE MODE", t.name);
        sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut *tx).await?;
        let plan = plan(load_rows(&mut tx, t).await?)?;
        if plan.ops.is_empty() {
            return Ok(plan.result);
        }
        check_in_review(&mut tx, &plan.lost, t.what).await?;
        for op in &plan.ops {
            apply(&mut tx, t, op, w.at).await?;
        }
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(plan.result)
    }
}
