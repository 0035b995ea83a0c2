//! Row readers for PostgreSQL's native types, and error mapping.
//!
//! Columns arrive as uuid, timestamptz, jsonb and bigint, so reading is a
//! typed `try_get`; decoding into domain records is shared in `crate::rows`.

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{Conflict, Result, StoreError};
use crate::rows::{
    ApiKeyRow, LabelMoveRow, LabelRow, PromptRow, PromptTypeRow, RoleRow, SessionRow, TemplateRow, UserRow,
    VersionRow,
};

// SQLSTATEs this backend reacts to.
const FOREIGN_KEY_VIOLATION: &str = "23503";
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK_DETECTED: &str = "40P01";

pub(super) const TYPE_COLS: &str = "id, key, name, schema, policy, created_at, updated_at, revision";

pub(super) fn prompt_type(r: &PgRow) -> Result<PromptTypeRow> {
    Ok(PromptTypeRow {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        policy: r.try_get("policy")?,
        schema: r.try_get("schema")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision: r.try_get("revision")?,
    })
}

/// Template columns; the query must join `prompt_type pt`.
pub(super) const TEMPLATE_COLS: &str = "t.id, t.prompt_type_id, pt.key AS type_key, t.name, \
    t.description, t.long_description_markdown, t.creator_id, t.owner_id, t.tags, \
    t.security_classification, t.created_at, t.updated_at, t.revision, t.latest_seq, \
    t.latest_version, t.access";

/// The FROM clause that goes with [`TEMPLATE_COLS`].
pub(super) const TEMPLATE_FROM: &str = "prompt_template t JOIN prompt_type pt ON pt.id = t.prompt_type_id";

pub(super) fn template(r: &PgRow) -> Result<TemplateRow> {
    Ok(TemplateRow {
        access: r.try_get("access")?,
        id: r.try_get("id")?,
        prompt_type_id: r.try_get("prompt_type_id")?,
        type_key: r.try_get("type_key")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        long_description_markdown: r.try_get("long_description_markdown")?,
        creator_id: r.try_get("creator_id")?,
        owner_id: r.try_get("owner_id")?,
        tags: tags(r.try_get("tags")?)?,
        security_classification: r.try_get("security_classification")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision: r.try_get("revision")?,
        latest_seq: r.try_get("latest_seq")?,
        latest_version: r.try_get("latest_version")?,
    })
}

/// The `tags` column: a JSON array of strings.
pub(super) fn tags(value: Value) -> Result<Vec<String>> {
    serde_json::from_value(value).map_err(|e| StoreError::corrupt(format!("tags: {e}")))
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
    v.review_round::bigint AS v_review_round, v.status_changed_at AS v_status_changed_at, \
    v.deprecation AS v_deprecation, v.check_results AS v_check_results, \
    v.sealed AS v_sealed, v.sealed_key AS v_sealed_key";

pub(super) fn version(r: &PgRow) -> Result<VersionRow> {
    Ok(VersionRow {
        id: r.try_get("v_id")?,
        template_id: r.try_get("v_template_id")?,
        seq: r.try_get("v_seq")?,
        version: r.try_get("v_version")?,
        status: r.try_get("v_status")?,
        kind: r.try_get("v_kind")?,
        template_text: r.try_get("v_template_text")?,
        messages: r.try_get("v_messages")?,
        parameter_schema: r.try_get("v_parameter_schema")?,
        config: r.try_get("v_config")?,
        content_hash: r.try_get("v_content_hash")?,
        author_id: r.try_get("v_author_id")?,
        change_description: r.try_get("v_change_description")?,
        bump: r.try_get("v_bump")?,
        restored_from: r.try_get("v_restored_from")?,
        created_at: r.try_get("v_created_at")?,
        updated_at: r.try_get("v_updated_at")?,
        revision: r.try_get("v_revision")?,
        review_round: r.try_get("v_review_round")?,
        status_changed_at: r.try_get("v_status_changed_at")?,
        deprecation: r.try_get("v_deprecation")?,
        check_results: r.try_get("v_check_results")?,
        sealed: r.try_get("v_sealed")?,
        sealed_key: r.try_get("v_sealed_key")?,
    })
}

/// Label columns; the query must join the version as `v` for its seq.
pub(super) const LABEL_COLS: &str = "l.name, v.seq, l.version_id, l.updated_at, l.updated_by, l.revision";

pub(super) fn label(r: &PgRow) -> Result<LabelRow> {
    Ok(LabelRow {
        name: r.try_get("name")?,
        version_seq: r.try_get("seq")?,
        version_id: r.try_get("version_id")?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
        revision: r.try_get("revision")?,
    })
}

pub(super) fn label_move(r: &PgRow) -> Result<LabelMoveRow> {
    Ok(LabelMoveRow {
        label: r.try_get("label")?,
        from_seq: r.try_get("from_seq")?,
        to_seq: r.try_get("to_seq")?,
        at: r.try_get("at")?,
        by: r.try_get("by_user")?,
    })
}

pub(super) fn prompt(r: &PgRow) -> Result<PromptRow> {
    Ok(PromptRow {
        id: r.try_get("id")?,
        template_id: r.try_get("prompt_template_id")?,
        prompt_type_id: r.try_get("prompt_type_id")?,
        version_id: r.try_get("version_id")?,
        version_seq: r.try_get("version_seq")?,
        data: r.try_get("data")?,
        prompt_text: r.try_get("prompt_text")?,
        sender_id: r.try_get("sender_id")?,
        created_at: r.try_get("created_at")?,
        session_id: r.try_get("session_id")?,
        request_id: r.try_get("request_id")?,
        agent_id: r.try_get("agent_id")?,
        deployment_model: r.try_get("deployment_model")?,
        outcome: r.try_get("outcome")?,
        outcome_detail: r.try_get("outcome_detail")?,
        outcome_at: r.try_get("outcome_at")?,
        sealed: r.try_get("sealed")?,
        sealed_key: r.try_get("sealed_key")?,
    })
}

/// User columns, with the user's roles; the query reads `"user" u`.
pub(super) const USER_COLS: &str = "u.id, u.supabase_user_id, u.did, u.external_user_id, u.email, \
    u.at_protocol_handle, u.data, u.first_name, u.last_name, u.created_at, u.updated_at, u.disabled_at, \
    ARRAY(SELECT r.role FROM user_role r WHERE r.user_id = u.id ORDER BY r.role) AS roles";

pub(super) fn user(r: &PgRow) -> Result<UserRow> {
    Ok(UserRow {
        id: r.try_get("id")?,
        supabase_user_id: r.try_get("supabase_user_id")?,
        did: r.try_get("did")?,
        external_user_id: r.try_get("external_user_id")?,
        email: r.try_get("email")?,
        at_protocol_handle: r.try_get("at_protocol_handle")?,
        data: r.try_get("data")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        disabled_at: r.try_get("disabled_at")?,
        roles: r.try_get("roles")?,
    })
}

/// API key columns with the owner's roles and state; goes with [`KEY_FROM`].
pub(super) const KEY_COLS: &str = "k.id, k.user_id, k.name, k.prefix, k.secret_hash, k.created_at, \
    k.expires_at, k.revoked_at, k.last_used_at, k.deployment, u.disabled_at IS NOT NULL AS user_disabled, \
    ARRAY(SELECT r.role FROM user_role r WHERE r.user_id = k.user_id ORDER BY r.role) AS roles";

pub(super) const KEY_FROM: &str = "api_key k JOIN \"user\" u ON u.id = k.user_id";

pub(super) fn api_key(r: &PgRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        secret_hash: r.try_get("secret_hash")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
        deployment: r.try_get("deployment")?,
        roles: r.try_get("roles")?,
        user_disabled: r.try_get("user_disabled")?,
    })
}

pub(super) const ROLE_COLS: &str = "name, description, permissions, created_at, updated_at, revision";

pub(super) fn role(r: &PgRow) -> Result<RoleRow> {
    Ok(RoleRow {
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        permissions: r.try_get("permissions")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision: r.try_get("revision")?,
    })
}

pub(super) const SESSION_COLS: &str = "user_id, created_at, last_seen_at, expires_at, COALESCE(authenticated_at, created_at) AS authenticated_at";

pub(super) fn session(r: &PgRow) -> Result<SessionRow> {
    Ok(SessionRow {
        user_id: r.try_get("user_id")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        expires_at: r.try_get("expires_at")?,
        authenticated_at: r.try_get("authenticated_at")?,
    })
}

/// Maps a unique violation to "already exists"; passes other errors on.
pub(super) fn unique(err: sqlx::Error, what: &'static str, name: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        return Conflict::AlreadyExists { what, name: name.to_owned() }.into();
    }
    err.into()
}

fn sqlstate(err: &StoreError) -> Option<String> {
    match err {
        StoreError::Database(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A row this write referenced vanished under it (a concurrent delete
/// committed between our check and our insert), or PostgreSQL chose this
/// transaction as a deadlock victim: running the write again from the start
/// sees the new state.
pub(super) fn is_retryable(err: &StoreError) -> bool {
    matches!(
        sqlstate(err).as_deref(),
        Some(FOREIGN_KEY_VIOLATION | SERIALIZATION_FAILURE | DEADLOCK_DETECTED)
    )
}
