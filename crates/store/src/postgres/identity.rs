//! Users, custom roles, API keys and web sessions on PostgreSQL.
//!
//! Writes lock what their checks depend on, so that concurrent writers in
//! any process queue instead of both passing a check:
//!
//! * a user being changed is locked `FOR NO KEY UPDATE`; a user that a new
//!   key or session will reference, `FOR KEY SHARE` (a concurrent delete
//!   waits, or the write finds the user gone);
//! * custom roles being granted are locked `FOR KEY SHARE`, which conflicts
//!   with the `FOR UPDATE` of `delete_role`: a role is either still there
//!   when granted, or the grant waits and then finds it gone, and a delete
//!   counts every committed holder;
//! * the e-mail and external id are unique indexes; the Supabase user id,
//!   which has none, is checked under a transaction-scoped advisory lock
//!   on its value.

use chrono::{DateTime, Utc};
use promptvault_core::authz::{Permission, RoleDef, builtin};
use promptvault_core::model::Revision;
use promptvault_core::{ApiKeyId, UserId};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use super::codec::{self, KEY_COLS, KEY_FROM, ROLE_COLS, SESSION_COLS, USER_COLS};
use super::{PgStore, notify};
use crate::error::{Conflict, Result, StoreError};
use crate::rows::{permissions_json, role_set};
use crate::types::{
    ApiKeyRecord, Expect, NewApiKey, NewUser, SessionRecord, StoredRole, User, UserPatch, Write,
};

impl PgStore {
    // --- users and keys (authentication) -------------------------------

    pub(super) async fn bootstrap_admin_impl(&self, user: NewUser, key: NewApiKey) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // Two servers starting at once must not both create an admin: this
        // lock mode conflicts with itself and with inserts, not with reads.
        sqlx::query("LOCK TABLE api_key IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_key").fetch_one(&mut *tx).await?;
        if keys > 0 {
            return Ok(false);
        }
        let now = promptvault_core::model::truncate_to_micros(Utc::now());
        insert_user(&mut tx, &user, now).await?;
        insert_key(&mut tx, &key, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn find_api_key_impl(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
        let mut conn = self.pool.acquire().await?;
        key_where(&mut conn, "k.prefix = $1", prefix).await
    }

    pub(super) async fn touch_api_key_impl(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE api_key SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn get_user_impl(&self, id: UserId) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
        user_where(&mut conn, "u.id = $1", *id.as_uuid()).await
    }

    // --- users ----------------------------------------------------------

    pub(super) async fn create_user_impl(&self, new: NewUser, w: Write) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        insert_user(&mut tx, &new, w.at).await?;
        let user = load_user(&mut tx, new.id).await?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(user)
    }

    pub(super) async fn list_users_impl(&self) -> Result<Vec<User>> {
        // Byte order, as on SQLite, whatever the database's collation.
        let sql = format!(
            "SELECT {USER_COLS} FROM \"user\" u ORDER BY u.email IS NULL, u.email COLLATE \"C\", u.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(codec::user(r)?.decode())).collect()
    }

    pub(super) async fn find_user_by_email_impl(&self, email: &str) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
        user_where(&mut conn, "lower(u.email) = lower($1)", email).await
    }

    pub(super) async fn find_user_by_external_id_impl(&self, external_id: &str) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
        user_where(&mut conn, "u.external_user_id = $1", external_id).await
    }

    pub(super) async fn find_user_by_supabase_id_impl(&self, id: Uuid) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
        user_where(&mut conn, "u.supabase_user_id = $1", id).await
    }

    pub(super) async fn user_password_hash_impl(&self, id: UserId) -> Result<Option<String>> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM \"user\" WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        Ok(hash.flatten())
    }

    pub(super) async fn update_user_impl(&self, id: UserId, patch: UserPatch, w: Write) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, id, "FOR NO KEY UPDATE").await?;
        let current = load_user(&mut tx, id).await?;
        let email = patch.email.clone().unwrap_or(current.email);
        let external_id = patch.external_user_id.clone().unwrap_or(current.external_user_id);
        check_unique(
            &mut tx,
            Some(id),
            patch.email.as_ref().and_then(Option::as_deref),
            patch.external_user_id.as_ref().and_then(Option::as_deref),
            patch.supabase_user_id.flatten(),
        )
        .await?;
        let disabled_at = match patch.disabled {
            None => current.disabled_at,
            Some(true) => current.disabled_at.or(Some(w.at)),
            Some(false) => None,
        };
        sqlx::query(
            "UPDATE \"user\" SET supabase_user_id = $1, did = $2, external_user_id = $3, email = $4, \
             at_protocol_handle = $5, data = $6, first_name = $7, last_name = $8, disabled_at = $9, \
             updated_at = $10, password_hash = CASE WHEN $11 THEN $12 ELSE password_hash END WHERE id = $13",
        )
        .bind(patch.supabase_user_id.unwrap_or(current.supabase_user_id))
        .bind(patch.did.unwrap_or(current.did))
        .bind(&external_id)
        .bind(&email)
        .bind(patch.at_protocol_handle.unwrap_or(current.at_protocol_handle))
        .bind(patch.data.unwrap_or(current.data).map(Json))
        .bind(patch.first_name.unwrap_or(current.first_name))
        .bind(patch.last_name.unwrap_or(current.last_name))
        .bind(disabled_at)
        .bind(w.at)
        .bind(patch.password_hash.is_some())
        .bind(patch.password_hash.flatten())
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(|e| user_unique(e, id, email.as_deref(), external_id.as_deref()))?;
        if patch.disabled == Some(true) {
            sqlx::query("DELETE FROM web_session WHERE user_id = $1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
        }
        let user = load_user(&mut tx, id).await?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(user)
    }

    pub(super) async fn delete_user_impl(&self, id: UserId, w: Write) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Keys, roles and sessions go by ON DELETE CASCADE; templates,
        // versions and renders keep their rows with the user set to NULL.
        let deleted =
            sqlx::query("DELETE FROM \"user\" WHERE id = $1").bind(id.as_uuid()).execute(&mut *tx).await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        notify::commit(tx, None, w.audit.as_ref()).await
    }

    pub(super) async fn set_user_roles_impl(&self, id: UserId, roles: Vec<String>, w: Write) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        // Two replacements of one user's roles queue here.
        lock_user(&mut tx, id, "FOR NO KEY UPDATE").await?;
        let roles = check_roles(&mut tx, roles).await?;
        write_roles(&mut tx, id, &roles).await?;
        sqlx::query("UPDATE \"user\" SET updated_at = $1 WHERE id = $2")
            .bind(w.at)
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        let user = load_user(&mut tx, id).await?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(user)
    }

    // --- custom roles ---------------------------------------------------

    pub(super) async fn list_roles_impl(&self) -> Result<Vec<StoredRole>> {
        let sql = format!("SELECT {ROLE_COLS} FROM role ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(|r| codec::role(r)?.decode()).collect()
    }

    pub(super) async fn get_role_impl(&self, name: &str) -> Result<Option<StoredRole>> {
        let mut conn = self.pool.acquire().await?;
        find_role(&mut conn, name).await
    }

    pub(super) async fn create_role_impl(&self, role: RoleDef, w: Write) -> Result<StoredRole> {
        if builtin::NAMES.contains(&role.name.as_str()) {
            return Err(Conflict::AlreadyExists { what: "role", name: role.name }.into());
        }
        let mut tx = self.pool.begin().await?;
        // Checked first for a precise error; the primary key still decides
        // when two processes race.
        let exists = sqlx::query("SELECT 1 FROM role WHERE name = $1")
            .bind(&role.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            return Err(Conflict::AlreadyExists { what: "role", name: role.name }.into());
        }
        let sql = format!(
            "INSERT INTO role (name, description, permissions, created_at, revision) VALUES ($1, $2, $3, $4, 1) \
             RETURNING {ROLE_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&role.name)
            .bind(&role.description)
            .bind(permissions_json(&role.permissions)?)
            .bind(w.at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| codec::unique(e, "role", &role.name))?;
        let stored = codec::role(&row)?.decode()?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(stored)
    }

    pub(super) async fn update_role_impl(
        &self,
        name: &str,
        expect: Expect,
        description: String,
        permissions: Vec<Permission>,
        w: Write,
    ) -> Result<StoredRole> {
        let mut tx = self.pool.begin().await?;
        // Only the revision is read, so a role whose stored permissions do
        // not decode can still be repaired by replacing them.
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM role WHERE name = $1 FOR NO KEY UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let revision = revision.ok_or_else(|| StoreError::NotFound(format!("role {name}")))?;
        expect.check("role", Revision(revision))?;
        let sql = format!(
            "UPDATE role SET description = $1, permissions = $2, updated_at = $3, revision = revision + 1 \
             WHERE name = $4 RETURNING {ROLE_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&description)
            .bind(permissions_json(&permissions)?)
            .bind(w.at)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        let stored = codec::role(&row)?.decode()?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(stored)
    }

    pub(super) async fn delete_role_impl(&self, name: &str, w: Write) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE conflicts with the key-share lock a grant takes, so the
        // count below sees every committed holder.
        let exists = sqlx::query("SELECT 1 FROM role WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("role {name}")));
        }
        let holders: i64 = sqlx::query_scalar("SELECT count(*) FROM user_role WHERE role = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        if holders > 0 {
            return Err(Conflict::InUse { what: "role", count: holders.unsigned_abs(), by: "user(s)" }.into());
        }
        sqlx::query("DELETE FROM role WHERE name = $1").bind(name).execute(&mut *tx).await?;
        notify::commit(tx, None, w.audit.as_ref()).await
    }

    // --- API keys -------------------------------------------------------

    pub(super) async fn create_api_key_impl(&self, new: NewApiKey, w: Write) -> Result<ApiKeyRecord> {
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, new.user_id, "FOR KEY SHARE").await?;
        insert_key(&mut tx, &new, w.at).await?;
        let key = key_where(&mut tx, "k.id = $1", *new.id.as_uuid())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("API key {}", new.id)))?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(key)
    }

    pub(super) async fn list_api_keys_impl(&self, user: Option<UserId>) -> Result<Vec<ApiKeyRecord>> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM {KEY_FROM} WHERE $1::uuid IS NULL OR k.user_id = $1 \
             ORDER BY k.created_at DESC, k.id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user.map(|u| *u.as_uuid()))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| codec::api_key(r)?.decode()).collect()
    }

    pub(super) async fn get_api_key_impl(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>> {
        let mut conn = self.pool.acquire().await?;
        key_where(&mut conn, "k.id = $1", *id.as_uuid()).await
    }

    pub(super) async fn revoke_api_key_impl(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        w: Write,
    ) -> Result<ApiKeyRecord> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE api_key SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2")
            .bind(at)
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("API key {id}")));
        }
        let key = key_where(&mut tx, "k.id = $1", *id.as_uuid())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("API key {id}")))?;
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(key)
    }

    // --- web sessions ---------------------------------------------------

    pub(super) async fn create_session_impl(
        &self,
        token_hash: [u8; 32],
        user: UserId,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        w: Write,
    ) -> Result<SessionRecord> {
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, user, "FOR KEY SHARE").await?;
        let sql = format!(
            "INSERT INTO web_session (token_hash, user_id, created_at, last_seen_at, expires_at, authenticated_at) \
             VALUES ($1, $2, $3, $3, $4, $3) RETURNING {SESSION_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash.as_slice())
            .bind(user.as_uuid())
            .bind(at)
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| codec::unique(e, "session", "(token)"))?;
        let session = codec::session(&row)?.decode();
        notify::commit(tx, None, w.audit.as_ref()).await?;
        Ok(session)
    }

    pub(super) async fn find_session_impl(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        let sql = format!("SELECT {SESSION_COLS} FROM web_session WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(codec::session(&r)?.decode())).transpose()
    }

    pub(super) async fn touch_session_impl(&self, token_hash: &[u8; 32], at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE web_session SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at < $1")
            .bind(at)
            .bind(token_hash.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn delete_session_impl(&self, token_hash: &[u8; 32], w: Write) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM web_session WHERE token_hash = $1")
            .bind(token_hash.as_slice())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound("session".into()));
        }
        notify::commit(tx, None, w.audit.as_ref()).await
    }

    pub(super) async fn reauthenticate_session_impl(
        &self,
        token_hash: &[u8; 32],
        at: DateTime<Utc>,
        w: Write,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE web_session SET authenticated_at = $1, last_seen_at = GREATEST(last_seen_at, $1) \
             WHERE token_hash = $2",
        )
        .bind(at)
        .bind(token_hash.as_slice())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("session".into()));
        }
        notify::commit(tx, None, w.audit.as_ref()).await
    }

    pub(super) async fn delete_expired_sessions_impl(&self, now: DateTime<Utc>) -> Result<u64> {
        let deleted = sqlx::query("DELETE FROM web_session WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// The first user matching `clause` (one parameter, `$1`).
async fn user_where<'q, T>(conn: &mut PgConnection, clause: &'static str, value: T) -> Result<Option<User>>
where
    T: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'q,
{
    let sql =
        format!("SELECT {USER_COLS} FROM \"user\" u WHERE {clause} ORDER BY u.created_at, u.id LIMIT 1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&mut *conn).await?;
    row.map(|r| Ok(codec::user(&r)?.decode())).transpose()
}

async fn load_user(conn: &mut PgConnection, id: UserId) -> Result<User> {
    user_where(conn, "u.id = $1", *id.as_uuid())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
}

/// Locks a user's row (`lock` is a fixed locking clause); `NotFound` when
/// there is none.
async fn lock_user(conn: &mut PgConnection, id: UserId, lock: &'static str) -> Result<()> {
    let sql = format!("SELECT 1 FROM \"user\" WHERE id = $1 {lock}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
}

async fn insert_user(conn: &mut PgConnection, new: &NewUser, at: DateTime<Utc>) -> Result<()> {
    check_unique(conn, None, new.email.as_deref(), new.external_user_id.as_deref(), new.supabase_user_id)
        .await?;
    let roles = check_roles(conn, new.roles.clone()).await?;
    sqlx::query(
        "INSERT INTO \"user\" (id, supabase_user_id, did, external_user_id, email, at_protocol_handle, data, \
         first_name, last_name, created_at, password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(new.id.as_uuid())
    .bind(new.supabase_user_id)
    .bind(&new.did)
    .bind(&new.external_user_id)
    .bind(&new.email)
    .bind(&new.at_protocol_handle)
    .bind(new.data.as_ref().map(Json))
    .bind(&new.first_name)
    .bind(&new.last_name)
    .bind(at)
    .bind(&new.password_hash)
    .execute(&mut *conn)
    .await
    .map_err(|e| user_unique(e, new.id, new.email.as_deref(), new.external_user_id.as_deref()))?;
    write_roles(conn, new.id, &roles).await
}

/// Refuses values that identify another user than `except`: an e-mail
/// (case-insensitively), an external id, a Supabase user id. The first two
/// have unique indexes that decide races ([`user_unique`] names them); the
/// Supabase id is serialised by an advisory lock held until commit.
async fn check_unique(
    conn: &mut PgConnection,
    except: Option<UserId>,
    email: Option<&str>,
    external_id: Option<&str>,
    supabase_id: Option<Uuid>,
) -> Result<()> {
    let except = except.map(|u| *u.as_uuid());
    if let Some(id) = supabase_id {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("promptvault user.supabase_user_id {id}"))
            .execute(&mut *conn)
            .await?;
    }
    let supabase_id = supabase_id.map(|u| u.to_string());
    let checks = [
        ("lower(email) = lower($1)", email, "user"),
        ("external_user_id = $1", external_id, "user with external id"),
        ("supabase_user_id = $1::uuid", supabase_id.as_deref(), "user with Supabase id"),
    ];
    for (clause, value, what) in checks {
        let Some(value) = value else { continue };
        let sql = format!("SELECT 1 FROM \"user\" WHERE {clause} AND id IS DISTINCT FROM $2");
        let taken = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(except)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        if taken {
            return Err(Conflict::AlreadyExists { what, name: value.to_owned() }.into());
        }
    }
    Ok(())
}

/// Maps a unique violation on a user row to the value that collided.
fn user_unique(err: sqlx::Error, id: UserId, email: Option<&str>, external_id: Option<&str>) -> StoreError {
    let constraint = match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint().map(str::to_owned),
        _ => return err.into(),
    };
    let (what, name) = match constraint.as_deref() {
        Some("user_email") => ("user", email.unwrap_or_default().to_owned()),
        Some("user_external_id") => ("user with external id", external_id.unwrap_or_default().to_owned()),
        _ => ("user", id.to_string()),
    };
    Conflict::AlreadyExists { what, name }.into()
}

/// The role set to store: every name built in or stored, sorted, once.
/// Stored roles are locked `FOR KEY SHARE` until commit.
async fn check_roles(conn: &mut PgConnection, roles: Vec<String>) -> Result<Vec<String>> {
    let roles = role_set(roles);
    let custom: Vec<&str> =
        roles.iter().map(String::as_str).filter(|r| !builtin::NAMES.contains(r)).collect();
    if custom.is_empty() {
        return Ok(roles);
    }
    let found: Vec<String> = sqlx::query_scalar("SELECT name FROM role WHERE name = ANY($1) FOR KEY SHARE")
        .bind(&custom)
        .fetch_all(&mut *conn)
        .await?;
    if let Some(missing) = custom.iter().find(|r| !found.iter().any(|f| f == *r)) {
        return Err(StoreError::NotFound(format!("role {missing}")));
    }
    Ok(roles)
}

async fn write_roles(conn: &mut PgConnection, user: UserId, roles: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM user_role WHERE user_id = $1").bind(user.as_uuid()).execute(&mut *conn).await?;
    sqlx::query("INSERT INTO user_role (user_id, role) SELECT $1, unnest($2::text[])")
        .bind(user.as_uuid())
        .bind(roles)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn find_role(conn: &mut PgConnection, name: &str) -> Result<Option<StoredRole>> {
    let sql = format!("SELECT {ROLE_COLS} FROM role WHERE name = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(&mut *conn).await?;
    row.map(|r| codec::role(&r)?.decode()).transpose()
}

async fn insert_key(conn: &mut PgConnection, key: &NewApiKey, at: DateTime<Utc>) -> Result<()> {
    let taken = sqlx::query("SELECT 1 FROM api_key WHERE prefix = $1")
        .bind(&key.prefix)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if taken {
        return Err(Conflict::AlreadyExists { what: "API key", name: key.prefix.clone() }.into());
    }
    sqlx::query(
        "INSERT INTO api_key (id, user_id, name, prefix, secret_hash, created_at, expires_at, deployment) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(key.id.as_uuid())
    .bind(key.user_id.as_uuid())
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(key.secret_hash.as_slice())
    .bind(at)
    .bind(key.expires_at)
    .bind(&key.deployment)
    .execute(&mut *conn)
    .await
    .map_err(|e| codec::unique(e, "API key", &key.prefix))?;
    Ok(())
}

/// The key matching `clause` (one parameter, `$1`).
async fn key_where<'q, T>(
    conn: &mut PgConnection,
    clause: &'static str,
    value: T,
) -> Result<Option<ApiKeyRecord>>
where
    T: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'q,
{
    let sql = format!("SELECT {KEY_COLS} FROM {KEY_FROM} WHERE {clause}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&mut *conn).await?;
    row.map(|r| codec::api_key(&r)?.decode()).transpose()
}
