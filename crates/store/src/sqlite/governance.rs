//! Approval workflows and custom compliance checks on SQLite. The rules are
//! in `crate::governance`; the single writer serializes the writes.

use promptvault_core::SecurityClassification;
use sqlx::SqliteConnection;

use super::SqliteStore;
use super::codec::{Col, ts};
use crate::error::{Conflict, Result};
use crate::governance::{ConfigRow, Definition, Plan, RowOp, Table};
use crate::types::{Stored, Write};

fn select(t: Table) -> String {
    format!("SELECT {} AS key, definition, source, updated_at, revision FROM {}", t.key, t.name)
}

fn row(r: &sqlx::sqlite::SqliteRow) -> Result<ConfigRow> {
    Ok(ConfigRow {
        key: r.text("key")?,
        definition: r.json("definition")?,
        source: r.text("source")?,
        updated_at: r.time("updated_at")?,
        revision: r.int("revision")?,
    })
}

async fn load_rows(conn: &mut SqliteConnection, t: Table) -> Result<Vec<ConfigRow>> {
    let sql = format!("{} ORDER BY {}", select(t), t.key);
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await?;
    rows.iter().map(row).collect()
}

/// Refuses when versions of `classifications` are in review.
async fn check_in_review(
    conn: &mut SqliteConnection,
    classifications: &[SecurityClassification],
    what: &'static str,
) -> Result<()> {
    if classifications.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; classifications.len()].join(", ");
    let sql = format!(
        "SELECT count(*) FROM prompt_template_version v JOIN prompt_template t ON t.id = v.template_id \
         WHERE v.status = 'review' AND t.security_classification IN ({marks})"
    );
    let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
    for c in classifications {
        q = q.bind(c.as_str());
    }
    let count = q.fetch_one(&mut *conn).await?;
    if count > 0 {
        return Err(Conflict::InUse { what, count: count.unsigned_abs(), by: "version(s) in review" }.into());
    }
    Ok(())
}

async fn apply(conn: &mut SqliteConnection, t: Table, op: &RowOp, at: &str) -> Result<()> {
    match op {
        RowOp::Insert { key, definition, source } => {
            let sql = format!(
                "INSERT INTO {} ({}, definition, source, updated_at, revision) VALUES (?, ?, ?, ?, 1)",
                t.name, t.key
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(key)
                .bind(definition.to_string())
                .bind(source.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(|e| super::codec::unique(e, t.what, key))?;
        }
        RowOp::Update { key, definition, source } => {
            let sql = format!(
                "UPDATE {} SET definition = ?, source = ?, updated_at = ?, revision = revision + 1 WHERE {} = ?",
                t.name, t.key
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(definition.to_string())
                .bind(source.as_str())
                .bind(at)
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
        RowOp::Delete { key } => {
            let sql = format!("DELETE FROM {} WHERE {} = ?", t.name, t.key);
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

impl SqliteStore {
    pub(super) async fn list_config<D: Definition>(&self) -> Result<Vec<Stored<D>>> {
        let mut conn = self.reader.acquire().await?;
        load_rows(&mut conn, D::TABLE).await?.into_iter().map(ConfigRow::decode).collect()
    }

    pub(super) async fn get_config<D: Definition>(&self, key: &str) -> Result<Option<Stored<D>>> {
        let t = D::TABLE;
        let sql = format!("{} WHERE {} = ?", select(t), t.key);
        let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(&self.reader).await?;
        r.map(|r| row(&r)?.decode()).transpose()
    }

    /// Reads every row, plans, and writes the plan with its audit event;
    /// a plan without rows to write changes and records nothing.
    pub(super) async fn write_config<D: Definition, T: Send>(
        &self,
        plan: impl FnOnce(Vec<ConfigRow>) -> Result<Plan<T>> + Send,
        w: Write,
    ) -> Result<T> {
        let t = D::TABLE;
        let mut tx = self.writer.begin().await?;
        let plan = plan(load_rows(&mut tx, t).await?)?;
        if plan.ops.is_empty() {
            return Ok(plan.result);
        }
        check_in_review(&mut tx, &plan.lost, t.what).await?;
        let at = ts(w.at);
        for op in &plan.ops {
            apply(&mut tx, t, op, &at).await?;
        }
        super::audit::commit(tx, w.audit.as_ref()).await?;
        self.notify(None);
        Ok(plan.result)
    }
}
