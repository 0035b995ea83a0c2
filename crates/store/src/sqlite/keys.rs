//! Encryption keys, re-encryption and the instance key on SQLite.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use promptvault_core::SecurityClassification;
use sqlx::{Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::SqliteStore;
use super::codec::{Col, ts};
use crate::crypt::{
    self, EncryptionOptions, EncryptionStatus, InstanceKey, KeyRows, Keyring, MasterKey, OpenPlan,
    StoredState, Vault, WrappedKey,
};
use crate::error::{Result, StoreError};
use crate::rows::{ContentColumns, seal_prompt};

async fn read_state(conn: &mut SqliteConnection) -> Result<Option<StoredState>> {
    let Some(row) =
        sqlx::query("SELECT master_fingerprint, active_key, scope FROM encryption_state WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(None);
    };
    let keys = sqlx::query("SELECT id, wrapped FROM encryption_key ORDER BY created_at, id")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok(WrappedKey { id: r.text("id")?, wrapped: r.try_get("wrapped")? }))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(StoredState {
        fingerprint: row.text("master_fingerprint")?,
        active: row.text("active_key")?,
        scope: row.text("scope")?,
        keys,
    }))
}

async fn insert_key(conn: &mut SqliteConnection, k: &WrappedKey, at: DateTime<Utc>) -> Result<()> {
    sqlx::query("INSERT INTO encryption_key (id, wrapped, created_at) VALUES (?, ?, ?)")
        .bind(&k.id)
        .bind(&k.wrapped)
        .bind(ts(at))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn queue_in_scope(conn: &mut SqliteConnection, classes: &[&str]) -> Result<()> {
    let list = classes.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "INSERT OR IGNORE INTO seal_pending (template_id) \
         SELECT id FROM prompt_template WHERE security_classification IN ({list})"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
    Ok(())
}

/// Reads or creates the encryption rows and returns the store's vault.
pub(super) async fn open_vault(writer: &SqlitePool, options: &EncryptionOptions) -> Result<Vault> {
    let mut tx = writer.begin().await?;
    let state = read_state(&mut tx).await?;
    let plan = crypt::plan_open(options, state.as_ref())?;
    let now = Utc::now();
    match &plan {
        OpenPlan::Plain | OpenPlan::Load => {}
        OpenPlan::Create { key } => {
            insert_key(&mut tx, key, now).await?;
            let fp = options.master.as_ref().map(MasterKey::fingerprint).unwrap_or_default();
            sqlx::query(
                "INSERT INTO encryption_state (id, master_fingerprint, active_key, scope, updated_at) VALUES (1, ?, ?, ?, ?)",
            )
            .bind(fp)
            .bind(&key.id)
            .bind(options.scope.as_str())
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        }
        OpenPlan::Rewrap { keys } => {
            for k in keys {
                sqlx::query("UPDATE encryption_key SET wrapped = ? WHERE id = ?")
                    .bind(&k.wrapped)
                    .bind(&k.id)
                    .execute(&mut *tx)
                    .await?;
            }
            rewrap_instance_keys(&mut tx, options).await?;
            let fp = options.master.as_ref().map(MasterKey::fingerprint).unwrap_or_default();
            sqlx::query("UPDATE encryption_state SET master_fingerprint = ?, updated_at = ? WHERE id = 1")
                .bind(fp)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
            tracing::warn!(keys = keys.len(), "re-wrapped the data keys with the new master key");
        }
    }
    if crypt::widens(options, state.as_ref(), &plan) {
        queue_in_scope(&mut tx, crypt::scope_classes(options.scope)).await?;
    }
    if !matches!(plan, OpenPlan::Plain) {
        sqlx::query("UPDATE encryption_state SET scope = ? WHERE id = 1")
            .bind(options.scope.as_str())
            .execute(&mut *tx)
            .await?;
    }
    let ring = crypt::keyring_after(options, state.as_ref(), &plan)?;
    tx.commit().await?;
    Ok(Vault::new(ring, options.scope))
}

/// Re-wraps the instance signing keys from the previous master key.
async fn rewrap_instance_keys(conn: &mut SqliteConnection, options: &EncryptionOptions) -> Result<()> {
    let (Some(prev), Some(new)) = (&options.previous, &options.master) else { return Ok(()) };
    let rows = sqlx::query("SELECT id, wrapped FROM instance_key").fetch_all(&mut *conn).await?;
    for r in rows {
        let id = r.text("id")?;
        let wrapped: Vec<u8> = r.try_get("wrapped")?;
        let secret = crypt::rewrap_instance(prev, new, &id, &wrapped)?;
        sqlx::query("UPDATE instance_key SET wrapped = ? WHERE id = ?")
            .bind(secret)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn ring_of(vault: &Vault) -> Result<&Arc<Keyring>> {
    vault.ring().ok_or_else(|| StoreError::Setup("no master key is configured".into()))
}

/// The content of a version row as sealed columns under the active key.
fn resealed_version(
    vault: &Vault,
    ring: &Keyring,
    r: &sqlx::sqlite::SqliteRow,
) -> Result<(Uuid, ContentColumns)> {
    let id = r.uuid("id")?;
    let sealed: Option<Vec<u8>> = r.blob_opt("sealed")?;
    let key: Option<String> = r.text_opt("sealed_key")?;
    let plain = crate::rows::PlainContent {
        text: r.text_opt("template_text")?,
        messages: r.json_opt("messages")?,
        schema: r.json("parameter_schema")?,
        config: r.json("config")?,
    };
    let plain = match (sealed, key) {
        (Some(blob), Some(key)) => crate::rows::PlainContent::open(vault, &id, &key, &blob)?,
        _ => plain,
    };
    Ok((id, plain.seal(ring, &id, r.text("kind")?.as_str())?))
}

impl SqliteStore {
    pub(super) async fn encryption_status_impl(&self) -> Result<EncryptionStatus> {
        let mut conn = self.reader.acquire().await?;
        let state = read_state(&mut conn).await?;
        let Some(state) = state else {
            return Ok(EncryptionStatus::disabled(self.vault.scope()));
        };
        let rows = sqlx::query(
            "SELECT k.id, k.created_at, k.retired_at, \
             (SELECT COUNT(*) FROM prompt_template_version WHERE sealed_key = k.id) + \
             (SELECT COUNT(*) FROM prompt WHERE sealed_key = k.id) AS n \
             FROM encryption_key k ORDER BY k.created_at, k.id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let keys = rows
            .iter()
            .map(|r| {
                Ok(KeyRows {
                    id: r.text("id")?,
                    created_at: r.time("created_at")?,
                    retired_at: r.time_opt("retired_at")?,
                    rows: u64::try_from(r.int("n")?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let unsealed: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM prompt_template_version v JOIN seal_pending s ON s.template_id = v.template_id \
               WHERE v.sealed IS NULL) + \
             (SELECT COUNT(*) FROM prompt p JOIN seal_pending s ON s.template_id = p.prompt_template_id \
               WHERE p.sealed IS NULL)",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(EncryptionStatus::of(self.vault.scope(), state, keys, u64::try_from(unsealed).unwrap_or(0)))
    }

    pub(super) async fn rotate_data_key_impl(&self) -> Result<String> {
        let ring = ring_of(&self.vault)?;
        let mut tx = self.writer.begin().await?;
        let state =
            read_state(&mut tx).await?.ok_or_else(|| StoreError::Setup("no encryption keys yet".into()))?;
        if state.fingerprint != ring.master().fingerprint() {
            return Err(StoreError::Setup(format!(
                "the database's keys are now wrapped with master key {}; restart with that key before rotating",
                state.fingerprint
            )));
        }
        let key = ring.mint();
        insert_key(&mut tx, &key, Utc::now()).await?;
        sqlx::query("UPDATE encryption_state SET active_key = ?, updated_at = ? WHERE id = 1")
            .bind(&key.id)
            .bind(ts(Utc::now()))
            .execute(&mut *tx)
            .await?;
        ring.add(&key)?;
        tx.commit().await?;
        ring.set_active(&key.id);
        Ok(key.id)
    }

    pub(super) async fn rewrap_master_impl(&self, new: MasterKey) -> Result<()> {
        let ring = ring_of(&self.vault)?;
        let mut tx = self.writer.begin().await?;
        let state =
            read_state(&mut tx).await?.ok_or_else(|| StoreError::Setup("no encryption keys yet".into()))?;
        let options = EncryptionOptions {
            master: Some(new.clone()),
            previous: Some(ring.master().clone()),
            scope: ring.scope(),
        };
        let OpenPlan::Rewrap { keys } = crypt::plan_open(&options, Some(&state))? else {
            return Err(StoreError::Setup("the new master key is the current one".into()));
        };
        for k in &keys {
            sqlx::query("UPDATE encryption_key SET wrapped = ? WHERE id = ?")
                .bind(&k.wrapped)
                .bind(&k.id)
                .execute(&mut *tx)
                .await?;
        }
        rewrap_instance_keys(&mut tx, &options).await?;
        sqlx::query("UPDATE encryption_state SET master_fingerprint = ?, updated_at = ? WHERE id = 1")
            .bind(new.fingerprint())
            .bind(ts(Utc::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One step of re-encryption: up to `limit` rows sealed with an older
    /// key, or not sealed though their template is queued, are sealed with
    /// the active key, each batch in one transaction. Returns how many rows
    /// were rewritten (0: nothing left).
    pub(super) async fn reseal_batch_impl(&self, limit: u32) -> Result<u64> {
        let Some(ring) = self.vault.ring().cloned() else { return Ok(0) };
        let mut tx = self.writer.begin().await?;
        let Some(state) = read_state(&mut tx).await? else { return Ok(0) };
        if !ring.has(&state.active) {
            // Another process rotated: learn its key.
            if let Some(k) = state.keys.iter().find(|k| k.id == state.active) {
                ring.add(k)?;
            }
        }
        ring.set_active(&state.active);
        let active = state.active.clone();
        // Idle unless a key is being retired or a template waits for
        // sealing: the common case costs two small queries, not a scan.
        let retiring: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM encryption_key WHERE id <> ? AND retired_at IS NULL")
                .bind(&active)
                .fetch_one(&mut *tx)
                .await?;
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM seal_pending").fetch_one(&mut *tx).await?;
        if retiring == 0 && queued == 0 {
            tx.commit().await?;
            return Ok(0);
        }
        let limit = i64::from(limit.max(1));
        let mut done = 0u64;
        let classes = crypt::scope_classes(ring.scope());

        // Versions: older keys, or queued templates' plain rows in scope.
        let rows = sqlx::query(
            "SELECT v.id, v.kind, v.template_text, v.messages, v.parameter_schema, v.config, v.sealed, v.sealed_key, \
             v.revision, v.template_id, t.security_classification AS class \
             FROM prompt_template_version v JOIN prompt_template t ON t.id = v.template_id \
             WHERE v.sealed_key IN (SELECT id FROM encryption_key WHERE id <> ? AND retired_at IS NULL) \
             UNION ALL \
             SELECT v.id, v.kind, v.template_text, v.messages, v.parameter_schema, v.config, v.sealed, v.sealed_key, \
             v.revision, v.template_id, t.security_classification AS class \
             FROM seal_pending s JOIN prompt_template_version v ON v.template_id = s.template_id \
             JOIN prompt_template t ON t.id = v.template_id WHERE v.sealed IS NULL \
             LIMIT ?",
        )
        .bind(&active)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut touched = std::collections::BTreeSet::new();
        for r in &rows {
            let class: SecurityClassification = r.text("class")?.parse().map_err(StoreError::corrupt)?;
            let already = r.blob_opt("sealed")?.is_some();
            if !already && !classes.contains(&class.as_str()) {
                continue;
            }
            let (id, c) = resealed_version(&self.vault, &ring, r)?;
            write_sealed_version(&mut tx, &id, c, Some(r.int("revision")?)).await?;
            touched.insert(r.text("template_id")?);
            done += 1;
        }
        for t in &touched {
            let id = promptvault_core::TemplateId::from(Uuid::parse_str(t).map_err(StoreError::corrupt)?);
            super::catalog::refresh_search(&mut tx, id).await?;
        }

        // Renders: older keys, or queued templates' plain rows.
        let rows = sqlx::query(
            "SELECT p.id, p.data, p.prompt_text, p.sealed, p.sealed_key FROM prompt p \
             WHERE p.sealed_key IN (SELECT id FROM encryption_key WHERE id <> ? AND retired_at IS NULL) \
             UNION ALL \
             SELECT p.id, p.data, p.prompt_text, p.sealed, p.sealed_key \
             FROM seal_pending s JOIN prompt p ON p.prompt_template_id = s.template_id WHERE p.sealed IS NULL \
             LIMIT ?",
        )
        .bind(&active)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let id = r.uuid("id")?;
            let (data, text) = match (r.blob_opt("sealed")?, r.text_opt("sealed_key")?) {
                (Some(blob), Some(key)) => crate::rows::open_prompt(&self.vault, &id, &key, &blob)?,
                _ => (r.json_opt("data")?, r.text_opt("prompt_text")?),
            };
            let (key, blob) = seal_prompt(&ring, &id, data.as_ref(), text.as_deref())?;
            sqlx::query(
                "UPDATE prompt SET data = NULL, prompt_text = NULL, sealed = ?, sealed_key = ? WHERE id = ?",
            )
            .bind(blob)
            .bind(key)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            done += 1;
        }

        if done == 0 {
            // Queued templates with nothing left (or out of scope again),
            // and keys no row uses any more.
            sqlx::query(
                "DELETE FROM seal_pending WHERE NOT EXISTS (SELECT 1 FROM prompt_template_version v \
                   WHERE v.template_id = seal_pending.template_id AND v.sealed IS NULL) \
                 AND NOT EXISTS (SELECT 1 FROM prompt p WHERE p.prompt_template_id = seal_pending.template_id \
                   AND p.sealed IS NULL)",
            )
            .execute(&mut *tx)
            .await?;
            let list = classes.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM seal_pending WHERE template_id IN \
                 (SELECT id FROM prompt_template WHERE security_classification NOT IN ({list}))"
            )))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE encryption_key SET retired_at = ? WHERE id <> ? AND retired_at IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM prompt_template_version WHERE sealed_key = encryption_key.id) \
                 AND NOT EXISTS (SELECT 1 FROM prompt WHERE sealed_key = encryption_key.id)",
            )
            .bind(ts(Utc::now()))
            .bind(&active)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    pub(super) async fn instance_key_impl(&self, candidate: InstanceKey) -> Result<InstanceKey> {
        let ring = ring_of(&self.vault)?;
        let mut tx = self.writer.begin().await?;
        let existing = sqlx::query(
            "SELECT id, public_key, wrapped, created_at FROM instance_key ORDER BY created_at LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let key = match existing {
            Some(r) => {
                let id = r.text("id")?;
                let wrapped: Vec<u8> = r.try_get("wrapped")?;
                InstanceKey {
                    secret: crypt::unwrap_instance_secret(ring, &id, &wrapped)?,
                    public_key: r.try_get("public_key")?,
                    created_at: r.time("created_at")?,
                    id,
                }
            }
            None => {
                let wrapped = crypt::wrap_instance_secret(ring, &candidate.id, &candidate.secret);
                sqlx::query(
                    "INSERT INTO instance_key (id, public_key, wrapped, created_at) VALUES (?, ?, ?, ?)",
                )
                .bind(&candidate.id)
                .bind(&candidate.public_key)
                .bind(wrapped)
                .bind(ts(candidate.created_at))
                .execute(&mut *tx)
                .await?;
                candidate
            }
        };
        tx.commit().await?;
        Ok(key)
    }
}

/// Queues a template's content for sealing (after a reclassification).
pub(super) async fn queue_template(conn: &mut SqliteConnection, template: &str) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO seal_pending (template_id) VALUES (?)")
        .bind(template)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Seals, under the active key, every plain version of `template` (its
/// classification now asks for it). Runs in the caller's transaction.
pub(super) async fn seal_template_versions(
    conn: &mut SqliteConnection,
    vault: &Vault,
    template: &str,
) -> Result<()> {
    let ring = ring_of(vault)?;
    let rows = sqlx::query(
        "SELECT id, kind, template_text, messages, parameter_schema, config, sealed, sealed_key \
         FROM prompt_template_version WHERE template_id = ? AND sealed IS NULL",
    )
    .bind(template)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        let (id, c) = resealed_version(vault, ring, r)?;
        write_sealed_version(conn, &id, c, None).await?;
    }
    Ok(())
}

/// Replaces a version row's content columns with sealed ones (only if its
/// revision is still `revision`, when given).
async fn write_sealed_version(
    conn: &mut SqliteConnection,
    id: &Uuid,
    c: ContentColumns,
    revision: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE prompt_template_version SET template_text = NULL, messages = NULL, parameter_schema = ?, \
         config = ?, sealed = ?, sealed_key = ? WHERE id = ? AND (? IS NULL OR revision = ?)",
    )
    .bind(c.parameter_schema.to_string())
    .bind(c.config.to_string())
    .bind(c.sealed)
    .bind(c.sealed_key)
    .bind(id.to_string())
    .bind(revision)
    .bind(revision)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
