//! Preparing a schema: name checks and creation.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::error::{Result, StoreError};

/// Schema names are spliced into SQL, so only plain lowercase identifiers
/// are accepted (they need no quoting and cannot change a statement).
pub(super) fn check_schema_name(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let plain = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && schema.len() <= 63;
    if !plain {
        return Err(StoreError::Setup(format!(
            "invalid PostgreSQL schema name {:?}: use [a-z_][a-z0-9_]*, at most 63 characters",
            schema.chars().take(80).collect::<String>()
        )));
    }
    if schema.starts_with("pg_") {
        return Err(StoreError::Setup(format!(
            "invalid PostgreSQL schema name {schema:?}: the pg_ prefix is reserved"
        )));
    }
    Ok(())
}

/// Creates the schema unless it exists. The existence check comes first so
/// a role without CREATE on the database can use a schema made for it.
pub(super) async fn create_schema(base: &PgConnectOptions, schema: &str) -> Result<()> {
    let mut conn = PgConnection::connect_with(base).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
            // Two processes creating it at once: the loser's catalog insert
            // fails on a unique index even with IF NOT EXISTS. The schema is there.
            let raced = e.as_database_error().is_some_and(|d| d.is_unique_violation());
            if !raced {
                return Err(e.into());
            }
        }
    }
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_schema_name;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["promptvault", "_x", "pv_test_0a1b", &"a".repeat(63)] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Public", "1abc", "a-b", "a\"b", "a;drop", "pg_temp", &"a".repeat(64), "é"] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }
}
