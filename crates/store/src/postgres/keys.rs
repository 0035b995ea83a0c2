//! Encryption keys, re-encryption and the instance key on PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use promptvault_core::SecurityClassification;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::PgStore;
use super::search::refresh_search;
use crate::crypt::{
    self, EncryptionOptions, EncryptionStatus, InstanceKey, KeyRows, Keyring, MasterKey, OpenPlan,
    StoredState, Vault, WrappedKey,
};
use crate::error::{Result, StoreError};
use crate::rows::{ContentColumns, PlainContent, open_prompt, seal_prompt};

async fn read_state(conn: &mut PgConnection) -> Result<Option<StoredState>> {
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
        .map(|r| Ok(WrappedKey { id: r.try_get("id")?, wrapped: r.try_get("wrapped")? }))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(StoredState {
        fingerprint: row.try_get("master_fingerprint")?,
        active: row.try_get("active_key")?,
        scope: row.try_get("scope")?,
        keys,
    }))
}

async fn insert_key(conn: &mut PgConnection, k: &WrappedKey, at: DateTime<Utc>) -> Result<()> {
    sqlx::query("INSERT INTO encryption_key (id, wrapped, created_at) VALUES ($1, $2, $3)")
        .bind(&k.id)
        .bind(&k.wrapped)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn set_wrapped(conn: &mut PgConnection, keys: &[WrappedKey]) -> Result<()> {
    for k in keys {
        sqlx::query("UPDATE encryption_key SET wrapped = $1 WHERE id = $2")
            .bind(&k.wrapped)
            .bind(&k.id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Reads or creates the encryption rows and returns the store's vault.
/// Processes opening the same database at once are serialized by a lock on
/// the state table.
pub(super) async fn open_vault(pool: &PgPool, options: &EncryptionOptions) -> Result<Vault> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE encryption_state IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    let state = read_state(&mut tx).await?;
    let plan = crypt::plan_open(options, state.as_ref())?;
    let now = promptvault_core::model::truncate_to_micros(Utc::now());
    let fp = options.master.as_ref().map(MasterKey::fingerprint).unwrap_or_default();
    match &plan {
        OpenPlan::Plain | OpenPlan::Load => {}
        OpenPlan::Create { key } => {
            insert_key(&mut tx, key, now).await?;
            sqlx::query(
                "INSERT INTO encryption_state (id, master_fingerprint, active_key, scope, updated_at) \
                 VALUES (1, $1, $2, $3, $4)",
            )
            .bind(&fp)
            .bind(&key.id)
            .bind(options.scope.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        OpenPlan::Rewrap { keys } => {
            set_wrapped(&mut tx, keys).await?;
            rewrap_instance_keys(&mut tx, options).await?;
            sqlx::query("UPDATE encryption_state SET master_fingerprint = $1, updated_at = $2 WHERE id = 1")
                .bind(&fp)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tracing::warn!(keys = keys.len(), "re-wrapped the data keys with the new master key");
        }
    }
    if crypt::widens(options, state.as_ref(), &plan) {
        let classes: Vec<&str> = crypt::scope_classes(options.scope).to_vec();
        sqlx::query(
            "INSERT INTO seal_pending (template_id) SELECT id FROM prompt_template \
             WHERE security_classification = ANY($1) ON CONFLICT DO NOTHING",
        )
        .bind(&classes)
        .execute(&mut *tx)
        .await?;
    }
    if !matches!(plan, OpenPlan::Plain) {
        sqlx::query("UPDATE encryption_state SET scope = $1 WHERE id = 1")
            .bind(options.scope.as_str())
            .execute(&mut *tx)
            .await?;
    }
    let ring = crypt::keyring_after(options, state.as_ref(), &plan)?;
    tx.commit().await?;
    Ok(Vault::new(ring, options.scope))
}

/// Re-wraps the instance signing keys from the previous master key.
async fn rewrap_instance_keys(conn: &mut PgConnection, options: &EncryptionOptions) -> Result<()> {
    let (Some(prev), Some(new)) = (&options.previous, &options.master) else { return Ok(()) };
    let rows = sqlx::query("SELECT id, wrapped FROM instance_key").fetch_all(&mut *conn).await?;
    for r in rows {
        let id: String = r.try_get("id")?;
        let wrapped: Vec<u8> = r.try_get("wrapped")?;
        let again = crypt::rewrap_instance(prev, new, &id, &wrapped)?;
        sqlx::query("UPDATE instance_key SET wrapped = $1 WHERE id = $2")
            .bind(again)
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
fn resealed_version(vault: &Vault, ring: &Keyring, r: &PgRow) -> Result<(Uuid, ContentColumns)> {
    let id: Uuid = r.try_get("id")?;
    let sealed: Option<Vec<u8>> = r.try_get("sealed")?;
    let key: Option<String> = r.try_get("sealed_key")?;
    let plain = match (sealed, key) {
        (Some(blob), Some(key)) => PlainContent::open(vault, &id, &key, &blob)?,
        _ => PlainContent {
            text: r.try_get("template_text")?,
            messages: r.try_get("messages")?,
            schema: r.try_get("parameter_schema")?,
            config: r.try_get("config")?,
        },
    };
    let kind: String = r.try_get("kind")?;
    Ok((id, plain.seal(ring, &id, &kind)?))
}

/// Replaces a version row's content columns with sealed ones (only if its
/// revision is still `revision`, when given).
async fn write_sealed_version(
    conn: &mut PgConnection,
    id: &Uuid,
    c: ContentColumns,
    revision: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE prompt_template_version SET template_text = NULL, messages = NULL, parameter_schema = $1::json, \
         config = $2::json, sealed = $3, sealed_key = $4 WHERE id = $5 AND ($6::int8 IS NULL OR revision = $6)",
    )
    .bind(c.parameter_schema.to_string())
    .bind(c.config.to_string())
    .bind(c.sealed)
    .bind(c.sealed_key)
    .bind(id)
    .bind(revision)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const VERSION_CONTENT: &str = "v.id, v.kind, v.template_text, v.messages, v.parameter_schema, v.config, \
     v.sealed, v.sealed_key, v.revision, v.template_id, t.security_classification AS class";

/// Seals, under the active key, every plain version of `template` (its
/// classification now asks for it). Runs in the caller's transaction.
pub(super) async fn seal_template_versions(
    conn: &mut PgConnection,
    vault: &Vault,
    template: &Uuid,
) -> Result<()> {
    let ring = ring_of(vault)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_CONTENT} FROM prompt_template_version v JOIN prompt_template t ON t.id = v.template_id \
         WHERE v.template_id = $1 AND v.sealed IS NULL FOR UPDATE OF v"
    )))
    .bind(template)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        let (id, c) = resealed_version(vault, ring, r)?;
        write_sealed_version(conn, &id, c, None).await?;
    }
    Ok(())
}

/// Queues a template's content for sealing (after a reclassification).
pub(super) async fn queue_template(conn: &mut PgConnection, template: &Uuid) -> Result<()> {
    sqlx::query("INSERT INTO seal_pending (template_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(template)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl PgStore {
    pub(super) async fn encryption_status_impl(&self) -> Result<EncryptionStatus> {
        let mut conn = self.pool.acquire().await?;
        let Some(state) = read_state(&mut conn).await? else {
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
                    id: r.try_get("id")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                    rows: count(r.try_get("n")?),
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
        Ok(EncryptionStatus::of(self.vault.scope(), state, keys, count(unsealed)))
    }

    pub(super) async fn rotate_data_key_impl(&self) -> Result<String> {
        let ring = ring_of(&self.vault)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE encryption_state IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        let state =
            read_state(&mut tx).await?.ok_or_else(|| StoreError::Setup("no encryption keys yet".into()))?;
        if state.fingerprint != ring.master().fingerprint() {
            return Err(StoreError::Setup(format!(
                "the database's keys are now wrapped with master key {}; restart with that key before rotating",
                state.fingerprint
            )));
        }
        let now = promptvault_core::model::truncate_to_micros(Utc::now());
        let key = ring.mint();
        insert_key(&mut tx, &key, now).await?;
        sqlx::query("UPDATE encryption_state SET active_key = $1, updated_at = $2 WHERE id = 1")
            .bind(&key.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        ring.add(&key)?;
        tx.commit().await?;
        ring.set_active(&key.id);
        Ok(key.id)
    }

    pub(super) async fn rewrap_master_impl(&self, new: MasterKey) -> Result<()> {
        let ring = ring_of(&self.vault)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE encryption_state IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
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
        set_wrapped(&mut tx, &keys).await?;
        rewrap_instance_keys(&mut tx, &options).await?;
        sqlx::query("UPDATE encryption_state SET master_fingerprint = $1, updated_at = $2 WHERE id = 1")
            .bind(new.fingerprint())
            .bind(promptvault_core::model::truncate_to_micros(Utc::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One step of re-encryption; see [`crate::Store::reseal_batch`].
    /// Rows are locked with SKIP LOCKED, so processes sharing the database
    /// can run it at once without waiting on each other.
    pub(super) async fn reseal_batch_impl(&self, limit: u32) -> Result<u64> {
        let Some(ring) = self.vault.ring().cloned() else { return Ok(0) };
        let mut tx = self.pool.begin().await?;
        let Some(state) = read_state(&mut tx).await? else { return Ok(0) };
        if !ring.has(&state.active)
            && let Some(k) = state.keys.iter().find(|k| k.id == state.active)
        {
            // Another process rotated: learn its key.
            ring.add(k)?;
        }
        ring.set_active(&state.active);
        let active = state.active.clone();
        // Idle unless a key is being retired or a template waits for
        // sealing: the common case costs two small queries, not a scan.
        let retiring: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM encryption_key WHERE id <> $1 AND retired_at IS NULL")
                .bind(&active)
                .fetch_one(&mut *tx)
                .await?;
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM seal_pending").fetch_one(&mut *tx).await?;
        if retiring == 0 && queued == 0 {
            tx.commit().await?;
            return Ok(0);
        }
        let limit = i64::from(limit.max(1));
        let classes = crypt::scope_classes(ring.scope());
        let mut done = 0u64;

        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_CONTENT} FROM prompt_template_version v JOIN prompt_template t ON t.id = v.template_id \
             WHERE v.sealed_key IN (SELECT id FROM encryption_key WHERE id <> $1 AND retired_at IS NULL) \
                OR (v.sealed IS NULL AND v.template_id IN (SELECT template_id FROM seal_pending)) \
             LIMIT $2 FOR UPDATE OF v SKIP LOCKED"
        )))
        .bind(&active)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut touched = BTreeSet::new();
        for r in &rows {
            let class: String = r.try_get("class")?;
            let class: SecurityClassification = class.parse().map_err(StoreError::corrupt)?;
            let already = r.try_get::<Option<Vec<u8>>, _>("sealed")?.is_some();
            if !already && !classes.contains(&class.as_str()) {
                continue;
            }
            let (id, c) = resealed_version(&self.vault, &ring, r)?;
            write_sealed_version(&mut tx, &id, c, Some(r.try_get("revision")?)).await?;
            touched.insert(r.try_get::<Uuid, _>("template_id")?);
            done += 1;
        }
        for t in touched {
            refresh_search(&mut tx, t.into()).await?;
        }

        let rows = sqlx::query(
            "SELECT p.id, p.data, p.prompt_text, p.sealed, p.sealed_key FROM prompt p \
             WHERE p.sealed_key IN (SELECT id FROM encryption_key WHERE id <> $1 AND retired_at IS NULL) \
                OR (p.sealed IS NULL AND p.prompt_template_id IN (SELECT template_id FROM seal_pending)) \
             LIMIT $2 FOR UPDATE OF p SKIP LOCKED",
        )
        .bind(&active)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let id: Uuid = r.try_get("id")?;
            let sealed: Option<Vec<u8>> = r.try_get("sealed")?;
            let key: Option<String> = r.try_get("sealed_key")?;
            let (data, text): (Option<Value>, Option<String>) = match (sealed, key) {
                (Some(blob), Some(key)) => open_prompt(&self.vault, &id, &key, &blob)?,
                _ => (r.try_get("data")?, r.try_get("prompt_text")?),
            };
            let (key, blob) = seal_prompt(&ring, &id, data.as_ref(), text.as_deref())?;
            sqlx::query("UPDATE prompt SET data = NULL, prompt_text = NULL, sealed = $1, sealed_key = $2 WHERE id = $3")
                .bind(blob)
                .bind(key)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            done += 1;
        }

        if done == 0 {
            sqlx::query(
                "DELETE FROM seal_pending s WHERE NOT EXISTS (SELECT 1 FROM prompt_template_version v \
                   WHERE v.template_id = s.template_id AND v.sealed IS NULL) \
                 AND NOT EXISTS (SELECT 1 FROM prompt p WHERE p.prompt_template_id = s.template_id AND p.sealed IS NULL)",
            )
            .execute(&mut *tx)
            .await?;
            let list: Vec<&str> = classes.to_vec();
            sqlx::query(
                "DELETE FROM seal_pending WHERE template_id IN \
                 (SELECT id FROM prompt_template WHERE NOT (security_classification = ANY($1)))",
            )
            .bind(&list)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE encryption_key k SET retired_at = $1 WHERE k.id <> $2 AND k.retired_at IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM prompt_template_version WHERE sealed_key = k.id) \
                 AND NOT EXISTS (SELECT 1 FROM prompt WHERE sealed_key = k.id)",
            )
            .bind(promptvault_core::model::truncate_to_micros(Utc::now()))
            .bind(&active)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    pub(super) async fn instance_key_impl(&self, candidate: InstanceKey) -> Result<InstanceKey> {
        let ring = ring_of(&self.vault)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE instance_key IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        let existing = sqlx::query(
            "SELECT id, public_key, wrapped, created_at FROM instance_key ORDER BY created_at LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let key = match existing {
            Some(r) => {
                let id: String = r.try_get("id")?;
                let wrapped: Vec<u8> = r.try_get("wrapped")?;
                InstanceKey {
                    secret: crypt::unwrap_instance_secret(ring, &id, &wrapped)?,
                    public_key: r.try_get("public_key")?,
                    created_at: r.try_get("created_at")?,
                    id,
                }
            }
            None => {
                let wrapped = crypt::wrap_instance_secret(ring, &candidate.id, &candidate.secret);
                sqlx::query(
                    "INSERT INTO instance_key (id, public_key, wrapped, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&candidate.id)
                .bind(&candidate.public_key)
                .bind(wrapped)
                .bind(promptvault_core::model::truncate_to_micros(candidate.created_at))
                .execute(&mut *tx)
                .await?;
                candidate
            }
        };
        tx.commit().await?;
        Ok(key)
    }
}
