//! Text encodings of ids, times and JSON in SQLite, and row readers.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::rows::{
    ApiKeyRow, LabelMoveRow, LabelRow, PromptRow, PromptTypeRow, RoleRow, SessionRow, TemplateRow, UserRow,
    VersionRow,
};

/// Fixed-width RFC 3339 in UTC with microseconds: text order is time order.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    // Same text as the format "%Y-%m-%dT%H:%M:%S%.6fZ", without parsing a
    // format string on every call (this runs for every usage record).
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ")
        .map(|n| n.and_utc())
        .map_err(|e| StoreError::corrupt(format!("timestamp {s:?}: {e}")))
}

fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::corrupt(format!("id {s:?}: {e}")))
}

fn parse_json(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::corrupt(format!("json: {e}")))
}

/// Typed column access with corrupt-data errors.
pub(super) trait Col {
    fn text(&self, col: &str) -> Result<String>;
    fn text_opt(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn int_opt(&self, col: &str) -> Result<Option<i64>>;
    fn blob_opt(&self, col: &str) -> Result<Option<Vec<u8>>>;
    fn uuid(&self, col: &str) -> Result<Uuid> {
        parse_uuid(&self.text(col)?)
    }
    fn uuid_opt(&self, col: &str) -> Result<Option<Uuid>> {
        self.text_opt(col)?.as_deref().map(parse_uuid).transpose()
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        parse_ts(&self.text(col)?)
    }
    fn time_opt(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        self.text_opt(col)?.as_deref().map(parse_ts).transpose()
    }
    fn json(&self, col: &str) -> Result<Value> {
        parse_json(&self.text(col)?)
    }
    fn json_opt(&self, col: &str) -> Result<Option<Value>> {
        self.text_opt(col)?.as_deref().map(parse_json).transpose()
    }
}

impl Col for SqliteRow {
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get::<String, _>(col)?)
    }
    fn text_opt(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get::<Option<String>, _>(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get::<i64, _>(col)?)
    }
    fn int_opt(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get::<Option<i64>, _>(col)?)
    }
    fn blob_opt(&self, col: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get::<Option<Vec<u8>>, _>(col)?)
    }
}

pub(super) const TYPE_COLS: &str = "id, key, name, schema, policy, created_at, updated_at, revision";

pub(super) fn prompt_type(r: &SqliteRow) -> Result<PromptTypeRow> {
    Ok(PromptTypeRow {
        id: r.uuid("id")?,
        key: r.text("key")?,
        name: r.text("name")?,
        policy: r.json("policy")?,
        schema: r.json_opt("schema")?,
        created_at: r.time("created_at")?,
        updated_at: r.time_opt("updated_at")?,
        revision: r.int("revision")?,
    })
}

/// Template columns; the query must join `prompt_type pt`.
pub(super) const TEMPLATE_COLS: &str = "t.id, t.prompt_type_id, pt.key AS type_key, t.name, \
    t.description, t.long_description_markdown, t.creator_id, t.owner_id, t.tags, \
    t.security_classification, t.created_at, t.updated_at, t.revision, t.latest_seq, \
    t.latest_version, t.access";

pub(super) fn template(r: &SqliteRow) -> Result<TemplateRow> {
    let tags: Vec<String> =
        serde_json::from_value(r.json("tags")?).map_err(|e| StoreError::corrupt(format!("tags: {e}")))?;
    Ok(TemplateRow {
        access: r.json("access")?,
        id: r.uuid("id")?,
        prompt_type_id: r.uuid("prompt_type_id")?,
        type_key: r.text("type_key")?,
        name: r.text("name")?,
        description: r.text_opt("description")?,
        long_description_markdown: r.text_opt("long_description_markdown")?,
        creator_id: r.uuid_opt("creator_id")?,
        owner_id: r.uuid_opt("owner_id")?,
        tags,
        security_classification: r.text("security_classification")?,
        created_at: r.time("created_at")?,
        updated_at: r.time_opt("updated_at")?,
        revision: r.int("revision")?,
        latest_seq: r.int("latest_seq")?,
        latest_version: r.text("latest_version")?,
    })
}

/// Version columns, prefixed `v_` so they can sit beside template columns.
pub(super) const VERSION_COLS: &str = "v.id AS v_id, v.template_id AS v_template_id, \
    v.seq AS v_seq, v.version AS v_version, v.status AS v_status, v.kind AS v_kind, \
    v.template_text AS v_template_text, v.messages AS v_messages, \
    v.parameter_schema AS v_parameter_schema, v.config AS v_config, \
    v.content_hash AS v_content_hash, v.author_id AS v_author_id, \
    v.change_description AS v_change_description, v.bump AS v_bump, \
    v.restored_from AS v_restored_from, v.created_at AS v_created_at, \
    v.updated_at AS v_updated_at, v.revision AS v_revision, \
    v.review_round AS v_review_round, v.status_changed_at AS v_status_changed_at, \
    v.deprecation AS v_deprecation, v.check_results AS v_check_results, \
    v.sealed AS v_sealed, v.sealed_key AS v_sealed_key";

pub(super) fn version(r: &SqliteRow) -> Result<VersionRow> {
    Ok(VersionRow {
        id: r.uuid("v_id")?,
        template_id: r.uuid("v_template_id")?,
        seq: r.int("v_seq")?,
        version: r.text("v_version")?,
        status: r.text("v_status")?,
        kind: r.text("v_kind")?,
        template_text: r.text_opt("v_template_text")?,
        messages: r.json_opt("v_messages")?,
        parameter_schema: r.json("v_parameter_schema")?,
        config: r.json("v_config")?,
        content_hash: r.text("v_content_hash")?,
        author_id: r.uuid_opt("v_author_id")?,
        change_description: r.text_opt("v_change_description")?,
        bump: r.text_opt("v_bump")?,
        restored_from: r.int_opt("v_restored_from")?,
        created_at: r.time("v_created_at")?,
        updated_at: r.time_opt("v_updated_at")?,
        revision: r.int("v_revision")?,
        review_round: r.int("v_review_round")?,
        status_changed_at: r.time_opt("v_status_changed_at")?,
        deprecation: r.json_opt("v_deprecation")?,
        check_results: r.json_opt("v_check_results")?,
        sealed: r.blob_opt("v_sealed")?,
        sealed_key: r.text_opt("v_sealed_key")?,
    })
}

pub(super) fn label(r: &SqliteRow) -> Result<LabelRow> {
    Ok(LabelRow {
        name: r.text("name")?,
        version_seq: r.int("seq")?,
        version_id: r.uuid("version_id")?,
        updated_at: r.time("updated_at")?,
        updated_by: r.uuid_opt("updated_by")?,
        revision: r.int("revision")?,
    })
}

pub(super) fn label_move(r: &SqliteRow) -> Result<LabelMoveRow> {
    Ok(LabelMoveRow {
        label: r.text("label")?,
        from_seq: r.int_opt("from_seq")?,
        to_seq: r.int_opt("to_seq")?,
        at: r.time("at")?,
        by: r.uuid_opt("by_user")?,
    })
}

pub(super) fn prompt(r: &SqliteRow) -> Result<PromptRow> {
    Ok(PromptRow {
        id: r.uuid("id")?,
        template_id: r.uuid_opt("prompt_template_id")?,
        prompt_type_id: r.uuid_opt("prompt_type_id")?,
        version_id: r.uuid_opt("version_id")?,
        version_seq: r.int_opt("version_seq")?,
        data: r.json_opt("data")?,
        prompt_text: r.text_opt("prompt_text")?,
        sender_id: r.uuid_opt("sender_id")?,
        created_at: r.time("created_at")?,
        session_id: r.text_opt("session_id")?,
        request_id: r.text_opt("request_id")?,
        agent_id: r.text_opt("agent_id")?,
        deployment_model: r.text("deployment_model")?,
        outcome: r.text_opt("outcome")?,
        outcome_detail: r.text_opt("outcome_detail")?,
        outcome_at: r.time_opt("outcome_at")?,
        sealed: r.blob_opt("sealed")?,
        sealed_key: r.text_opt("sealed_key")?,
    })
}

/// User columns, with the user's roles as a JSON array; the query reads
/// `"user" u`.
pub(super) const USER_COLS: &str = "u.id, u.supabase_user_id, u.did, u.external_user_id, u.email, \
    u.at_protocol_handle, u.data, u.first_name, u.last_name, u.created_at, u.updated_at, u.disabled_at, \
    (SELECT json_group_array(r.role) FROM user_role r WHERE r.user_id = u.id) AS roles";

fn roles(r: &SqliteRow) -> Result<Vec<String>> {
    serde_json::from_value(r.json("roles")?).map_err(|e| StoreError::corrupt(format!("roles: {e}")))
}

pub(super) fn user(r: &SqliteRow) -> Result<UserRow> {
    Ok(UserRow {
        id: r.uuid("id")?,
        supabase_user_id: r.uuid_opt("supabase_user_id")?,
        did: r.text_opt("did")?,
        external_user_id: r.text_opt("external_user_id")?,
        email: r.text_opt("email")?,
        at_protocol_handle: r.text_opt("at_protocol_handle")?,
        data: r.json_opt("data")?,
        first_name: r.text_opt("first_name")?,
        last_name: r.text_opt("last_name")?,
        created_at: r.time("created_at")?,
        updated_at: r.time_opt("updated_at")?,
        disabled_at: r.time_opt("disabled_at")?,
        roles: roles(r)?,
    })
}

/// API key columns with the owner's roles and state; goes with [`KEY_FROM`].
pub(super) const KEY_COLS: &str = "k.id, k.user_id, k.name, k.prefix, k.secret_hash, k.created_at, \
    k.expires_at, k.revoked_at, k.last_used_at, k.deployment, u.disabled_at IS NOT NULL AS user_disabled, \
    (SELECT json_group_array(r.role) FROM user_role r WHERE r.user_id = k.user_id) AS roles";

pub(super) const KEY_FROM: &str = "api_key k JOIN \"user\" u ON u.id = k.user_id";

pub(super) fn api_key(r: &SqliteRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.uuid("id")?,
        user_id: r.uuid("user_id")?,
        name: r.text("name")?,
        prefix: r.text("prefix")?,
        secret_hash: r.try_get::<Vec<u8>, _>("secret_hash")?,
        created_at: r.time("created_at")?,
        expires_at: r.time_opt("expires_at")?,
        revoked_at: r.time_opt("revoked_at")?,
        last_used_at: r.time_opt("last_used_at")?,
        deployment: r.text_opt("deployment")?,
        roles: roles(r)?,
        user_disabled: r.int("user_disabled")? != 0,
    })
}

pub(super) const ROLE_COLS: &str = "name, description, permissions, created_at, updated_at, revision";

pub(super) fn role(r: &SqliteRow) -> Result<RoleRow> {
    Ok(RoleRow {
        name: r.text("name")?,
        description: r.text("description")?,
        permissions: r.json("permissions")?,
        created_at: r.time("created_at")?,
        updated_at: r.time_opt("updated_at")?,
        revision: r.int("revision")?,
    })
}

pub(super) const SESSION_COLS: &str = "user_id, created_at, last_seen_at, expires_at, COALESCE(authenticated_at, created_at) AS authenticated_at";

pub(super) fn session(r: &SqliteRow) -> Result<SessionRow> {
    Ok(SessionRow {
        user_id: r.uuid("user_id")?,
        created_at: r.time("created_at")?,
        last_seen_at: r.time("last_seen_at")?,
        expires_at: r.time("expires_at")?,
        authenticated_at: r.time("authenticated_at")?,
    })
}

/// Maps a unique violation to "already exists"; passes other errors on.
pub(super) fn unique(err: sqlx::Error, what: &'static str, name: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        return crate::Conflict::AlreadyExists { what, name: name.to_owned() }.into();
    }
    err.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_round_trip() {
        for t in ["2026-11-25T04:19:34.623218Z", "2026-01-02T03:04:05.000000Z", "1999-12-31T23:59:59.999999Z"]
        {
            let parsed = parse_ts(t).unwrap();
            assert_eq!(ts(parsed), t);
        }
    }
}
