//! Users, custom roles, API keys and web sessions on SQLite.
//!
//! Writes go through the single writer connection, so what a write checks
//! inside its transaction (a free e-mail, a role nobody holds) still holds
//! when it commits.

use chrono::{DateTime, Utc};
use promptvault_core::authz::{Permission, RoleDef, builtin};
use promptvault_core::model::Revision;
use promptvault_core::{ApiKeyId, UserId};
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::SqliteStore;
use super::codec::{self, KEY_COLS, KEY_FROM, ROLE_COLS, SESSION_COLS, USER_COLS, ts};
use crate::error::{Conflict, Result, StoreError};
use crate::rows::{permissions_json, role_set};
use crate::types::{
    ApiKeyRecord, Expect, NewApiKey, NewUser, SessionRecord, StoredRole, User, UserPatch, Write,
};

impl SqliteStore {
    // --- users and keys (authentication) -------------------------------

    pub(super) async fn bootstrap_admin_impl(&self, user: NewUser, key: NewApiKey) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
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
        let mut conn = self.reader.acquire().await?;
        key_where(&mut conn, "k.prefix = ?", prefix.to_owned()).await
    }

    pub(super) async fn touch_api_key_impl(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE api_key SET last_used_at = ? WHERE id = ?")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn get_user_impl(&self, id: UserId) -> Result<Option<User>> {
        let mut conn = self.reader.acquire().await?;
        user_where(&mut conn, "u.id = ?", id.to_string()).await
    }

    // --- users ----------------------------------------------------------

    pub(super) async fn create_user_impl(&self, new: NewUser, w: Write) -> Result<User> {
        let mut tx = self.writer.begin().await?;
        insert_user(&mut tx, &new, w.at).await?;
        let user = load_user(&mut tx, new.id).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(user)
    }

    pub(super) async fn list_users_impl(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLS} FROM \"user\" u ORDER BY u.email IS NULL, u.email, u.id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reader).await?;
        rows.iter().map(|r| Ok(codec::user(r)?.decode())).collect()
    }

    pub(super) async fn find_user_by_email_impl(&self, email: &str) -> Result<Option<User>> {
        let mut conn = self.reader.acquire().await?;
        user_where(&mut conn, "lower(u.email) = lower(?)", email.to_owned()).await
    }

    pub(super) async fn find_user_by_external_id_impl(&self, external_id: &str) -> Result<Option<User>> {
        let mut conn = self.reader.acquire().await?;
        user_where(&mut conn, "u.external_user_id = ?", external_id.to_owned()).await
    }

    pub(super) async fn find_user_by_supabase_id_impl(&self, id: Uuid) -> Result<Option<User>> {
        let mut conn = self.reader.acquire().await?;
        user_where(&mut conn, "u.supabase_user_id = ?", id.to_string()).await
    }

    pub(super) async fn user_password_hash_impl(&self, id: UserId) -> Result<Option<String>> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM \"user\" WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.reader)
                .await?;
        Ok(hash.flatten())
    }

    pub(super) async fn update_user_impl(&self, id: UserId, patch: UserPatch, w: Write) -> Result<User> {
        let mut tx = self.writer.begin().await?;
        let current = load_user(&mut tx, id).await?;
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
            "UPDATE \"user\" SET supabase_user_id = ?, did = ?, external_user_id = ?, email = ?, \
             at_protocol_handle = ?, data = ?, first_name = ?, last_name = ?, disabled_at = ?, updated_at = ?, \
             password_hash = CASE WHEN ? THEN ? ELSE password_hash END WHERE id = ?",
        )
        .bind(patch.supabase_user_id.unwrap_or(current.supabase_user_id).map(|u| u.to_string()))
        .bind(patch.did.unwrap_or(current.did))
        .bind(patch.external_user_id.unwrap_or(current.external_user_id))
        .bind(patch.email.unwrap_or(current.email))
        .bind(patch.at_protocol_handle.unwrap_or(current.at_protocol_handle))
        .bind(patch.data.unwrap_or(current.data).map(|d| d.to_string()))
        .bind(patch.first_name.unwrap_or(current.first_name))
        .bind(patch.last_name.unwrap_or(current.last_name))
        .bind(disabled_at.map(ts))
        .bind(ts(w.at))
        .bind(patch.password_hash.is_some())
        .bind(patch.password_hash.flatten())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::unique(e, "user", &id.to_string()))?;
        if patch.disabled == Some(true) {
            sqlx::query("DELETE FROM web_session WHERE user_id = ?")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let user = load_user(&mut tx, id).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(user)
    }

    pub(super) async fn delete_user_impl(&self, id: UserId, w: Write) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        // Keys, roles and sessions go by ON DELETE CASCADE; templates,
        // versions and renders keep their rows with the user set to NULL.
        let deleted =
            sqlx::query("DELETE FROM \"user\" WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        super::audit::commit(tx, w.audit.as_ref()).await
    }

    pub(super) async fn set_user_roles_impl(&self, id: UserId, roles: Vec<String>, w: Write) -> Result<User> {
        let mut tx = self.writer.begin().await?;
        load_user(&mut tx, id).await?;
        let roles = check_roles(&mut tx, roles).await?;
        write_roles(&mut tx, id, &roles).await?;
        sqlx::query("UPDATE \"user\" SET updated_at = ? WHERE id = ?")
            .bind(ts(w.at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let user = load_user(&mut tx, id).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(user)
    }

    // --- custom roles ---------------------------------------------------

    pub(super) async fn list_roles_impl(&self) -> Result<Vec<StoredRole>> {
        let sql = format!("SELECT {ROLE_COLS} FROM role ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reader).await?;
        rows.iter().map(|r| codec::role(r)?.decode()).collect()
    }

    pub(super) async fn get_role_impl(&self, name: &str) -> Result<Option<StoredRole>> {
        let mut conn = self.reader.acquire().await?;
        find_role(&mut conn, name).await
    }

    pub(super) async fn create_role_impl(&self, role: RoleDef, w: Write) -> Result<StoredRole> {
        let mut tx = self.writer.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM role WHERE name = ?")
            .bind(&role.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists || builtin::NAMES.contains(&role.name.as_str()) {
            return Err(Conflict::AlreadyExists { what: "role", name: role.name }.into());
        }
        sqlx::query(
            "INSERT INTO role (name, description, permissions, created_at, revision) VALUES (?, ?, ?, ?, 1)",
        )
        .bind(&role.name)
        .bind(&role.description)
        .bind(permissions_json(&role.permissions)?.to_string())
        .bind(ts(w.at))
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::unique(e, "role", &role.name))?;
        let stored = load_role(&mut tx, &role.name).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
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
        let mut tx = self.writer.begin().await?;
        // Only the revision is read, so a role whose stored permissions do
        // not decode can still be repaired by replacing them.
        let revision: Option<i64> = sqlx::query_scalar("SELECT revision FROM role WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let revision = revision.ok_or_else(|| StoreError::NotFound(format!("role {name}")))?;
        expect.check("role", Revision(revision))?;
        sqlx::query(
            "UPDATE role SET description = ?, permissions = ?, updated_at = ?, revision = revision + 1 \
             WHERE name = ?",
        )
        .bind(&description)
        .bind(permissions_json(&permissions)?.to_string())
        .bind(ts(w.at))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let stored = load_role(&mut tx, name).await?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(stored)
    }

    pub(super) async fn delete_role_impl(&self, name: &str, w: Write) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM role WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("role {name}")));
        }
        let holders: i64 = sqlx::query_scalar("SELECT count(*) FROM user_role WHERE role = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        if holders > 0 {
            return Err(Conflict::InUse { what: "role", count: holders.unsigned_abs(), by: "user(s)" }.into());
        }
        sqlx::query("DELETE FROM role WHERE name = ?").bind(name).execute(&mut *tx).await?;
        super::audit::commit(tx, w.audit.as_ref()).await
    }

    // --- API keys -------------------------------------------------------

    pub(super) async fn create_api_key_impl(&self, new: NewApiKey, w: Write) -> Result<ApiKeyRecord> {
        let mut tx = self.writer.begin().await?;
        load_user(&mut tx, new.user_id).await?;
        insert_key(&mut tx, &new, w.at).await?;
        let key = key_where(&mut tx, "k.id = ?", new.id.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("API key {}", new.id)))?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(key)
    }

    pub(super) async fn list_api_keys_impl(&self, user: Option<UserId>) -> Result<Vec<ApiKeyRecord>> {
        let filter = if user.is_some() { "WHERE k.user_id = ?" } else { "" };
        let sql = format!("SELECT {KEY_COLS} FROM {KEY_FROM} {filter} ORDER BY k.created_at DESC, k.id DESC");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(u) = user {
            query = query.bind(u.to_string());
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter().map(|r| codec::api_key(r)?.decode()).collect()
    }

    pub(super) async fn get_api_key_impl(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>> {
        let mut conn = self.reader.acquire().await?;
        key_where(&mut conn, "k.id = ?", id.to_string()).await
    }

    pub(super) async fn revoke_api_key_impl(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        w: Write,
    ) -> Result<ApiKeyRecord> {
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query("UPDATE api_key SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("API key {id}")));
        }
        let key = key_where(&mut tx, "k.id = ?", id.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("API key {id}")))?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
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
        let mut tx = self.writer.begin().await?;
        load_user(&mut tx, user).await?;
        sqlx::query(
            "INSERT INTO web_session (token_hash, user_id, created_at, last_seen_at, expires_at, authenticated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(token_hash.as_slice())
        .bind(user.to_string())
        .bind(ts(at))
        .bind(ts(at))
        .bind(ts(expires_at))
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::unique(e, "session", "(token)"))?;
        let session = find_session(&mut tx, &token_hash)
            .await?
            .ok_or_else(|| StoreError::NotFound("session".into()))?;
        super::audit::commit(tx, w.audit.as_ref()).await?;
        Ok(session)
    }

    pub(super) async fn find_session_impl(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        let mut conn = self.reader.acquire().await?;
        find_session(&mut conn, token_hash).await
    }

    pub(super) async fn touch_session_impl(&self, token_hash: &[u8; 32], at: DateTime<Utc>) -> Result<()> {
        // Fixed-width timestamps: text order is time order.
        sqlx::query("UPDATE web_session SET last_seen_at = ? WHERE token_hash = ? AND last_seen_at < ?")
            .bind(ts(at))
            .bind(token_hash.as_slice())
            .bind(ts(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn delete_session_impl(&self, token_hash: &[u8; 32], w: Write) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let deleted = sqlx::query("DELETE FROM web_session WHERE token_hash = ?")
            .bind(token_hash.as_slice())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound("session".into()));
        }
        super::audit::commit(tx, w.audit.as_ref()).await
    }

    pub(super) async fn reauthenticate_session_impl(
        &self,
        token_hash: &[u8; 32],
        at: DateTime<Utc>,
        w: Write,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE web_session SET authenticated_at = ?, last_seen_at = MAX(last_seen_at, ?) WHERE token_hash = ?",
        )
        .bind(ts(at))
        .bind(ts(at))
        .bind(token_hash.as_slice())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("session".into()));
        }
        super::audit::commit(tx, w.audit.as_ref()).await
    }

    pub(super) async fn delete_expired_sessions_impl(&self, now: DateTime<Utc>) -> Result<u64> {
        let deleted = sqlx::query("DELETE FROM web_session WHERE expires_at <= ?")
            .bind(ts(now))
            .execute(&self.writer)
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// The first user matching `clause` (one `?`, bound to `value`).
async fn user_where(
    conn: &mut SqliteConnection,
    clause: &'static str,
    value: String,
) -> Result<Option<User>> {
    let sql =
        format!("SELECT {USER_COLS} FROM \"user\" u WHERE {clause} ORDER BY u.created_at, u.id LIMIT 1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&mut *conn).await?;
    row.map(|r| Ok(codec::user(&r)?.decode())).transpose()
}

async fn load_user(conn: &mut SqliteConnection, id: UserId) -> Result<User> {
    user_where(conn, "u.id = ?", id.to_string())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
}

async fn insert_user(conn: &mut SqliteConnection, new: &NewUser, at: DateTime<Utc>) -> Result<()> {
    check_unique(conn, None, new.email.as_deref(), new.external_user_id.as_deref(), new.supabase_user_id)
        .await?;
    let roles = check_roles(conn, new.roles.clone()).await?;
    sqlx::query(
        "INSERT INTO \"user\" (id, supabase_user_id, did, external_user_id, email, at_protocol_handle, data, \
         first_name, last_name, created_at, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.id.to_string())
    .bind(new.supabase_user_id.map(|u| u.to_string()))
    .bind(&new.did)
    .bind(&new.external_user_id)
    .bind(&new.email)
    .bind(&new.at_protocol_handle)
    .bind(new.data.as_ref().map(ToString::to_string))
    .bind(&new.first_name)
    .bind(&new.last_name)
    .bind(ts(at))
    .bind(&new.password_hash)
    .execute(&mut *conn)
    .await
    .map_err(|e| codec::unique(e, "user", &new.id.to_string()))?;
    write_roles(conn, new.id, &roles).await
}

/// Refuses values that identify another user than `except`: an e-mail
/// (case-insensitively), an external id, a Supabase user id.
async fn check_unique(
    conn: &mut SqliteConnection,
    except: Option<UserId>,
    email: Option<&str>,
    external_id: Option<&str>,
    supabase_id: Option<Uuid>,
) -> Result<()> {
    let except = except.map(|u| u.to_string()).unwrap_or_default();
    let supabase_id = supabase_id.map(|u| u.to_string());
    let checks = [
        ("lower(email) = lower(?)", email, "user"),
        ("external_user_id = ?", external_id, "user with external id"),
        ("supabase_user_id = ?", supabase_id.as_deref(), "user with Supabase id"),
    ];
    for (clause, value, what) in checks {
        let Some(value) = value else { continue };
        let sql = format!("SELECT 1 FROM \"user\" WHERE {clause} AND id <> ?");
        let taken = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(&except)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        if taken {
            return Err(Conflict::AlreadyExists { what, name: value.to_owned() }.into());
        }
    }
    Ok(())
}

/// The role set to store: every name built in or stored, sorted, once.
async fn check_roles(conn: &mut SqliteConnection, roles: Vec<String>) -> Result<Vec<String>> {
    let roles = role_set(roles);
    for role in &roles {
        if builtin::NAMES.contains(&role.as_str()) {
            continue;
        }
        let known = sqlx::query("SELECT 1 FROM role WHERE name = ?")
            .bind(role)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        if !known {
            return Err(StoreError::NotFound(format!("role {role}")));
        }
    }
    Ok(roles)
}

async fn write_roles(conn: &mut SqliteConnection, user: UserId, roles: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM user_role WHERE user_id = ?").bind(user.to_string()).execute(&mut *conn).await?;
    for role in roles {
        sqlx::query("INSERT INTO user_role (user_id, role) VALUES (?, ?)")
            .bind(user.to_string())
            .bind(role)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn find_role(conn: &mut SqliteConnection, name: &str) -> Result<Option<StoredRole>> {
    let sql = format!("SELECT {ROLE_COLS} FROM role WHERE name = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(&mut *conn).await?;
    row.map(|r| codec::role(&r)?.decode()).transpose()
}

async fn load_role(conn: &mut SqliteConnection, name: &str) -> Result<StoredRole> {
    find_role(conn, name).await?.ok_or_else(|| StoreError::NotFound(format!("role {name}")))
}

async fn insert_key(conn: &mut SqliteConnection, key: &NewApiKey, at: DateTime<Utc>) -> Result<()> {
    let taken = sqlx::query("SELECT 1 FROM api_key WHERE prefix = ?")
        .bind(&key.prefix)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if taken {
        return Err(Conflict::AlreadyExists { what: "API key", name: key.prefix.clone() }.into());
    }
    sqlx::query(
        "INSERT INTO api_key (id, user_id, name, prefix, secret_hash, created_at, expires_at, deployment) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key.id.to_string())
    .bind(key.user_id.to_string())
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(key.secret_hash.as_slice())
    .bind(ts(at))
    .bind(key.expires_at.map(ts))
    .bind(&key.deployment)
    .execute(&mut *conn)
    .await
    .map_err(|e| codec::unique(e, "API key", &key.prefix))?;
    Ok(())
}

/// The key matching `clause` (one `?`, bound to `value`).
async fn key_where(
    conn: &mut SqliteConnection,
    clause: &'static str,
    value: String,
) -> Result<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {KEY_COLS} FROM {KEY_FROM} WHERE {clause}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&mut *conn).await?;
    row.map(|r| codec::api_key(&r)?.decode()).transpose()
}

async fn find_session(conn: &mut SqliteConnection, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
    let sql = format!("SELECT {SESSION_COLS} FROM web_session WHERE token_hash = ?");
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(token_hash.as_slice()).fetch_optional(&mut *conn).await?;
    row.map(|r| Ok(codec::session(&r)?.decode())).transpose()
}
