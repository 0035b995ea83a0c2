//! Users, their roles and keys, custom roles: `/users`, `/keys`, `/roles`, `/me`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use promptvault_core::authz::{Permission, Principal, RoleDef};
use promptvault_core::{ApiKeyId, DeploymentModel, UserId};
use promptvault_store::{ApiKeyRecord, StoredRole, User, UserPatch};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::dto::double_option;
use super::{NO_STORE, body_value, etag, required_if_match};
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::service::identity::CreateUser;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub external_user_id: Option<String>,
    pub supabase_user_id: Option<Uuid>,
    pub did: Option<String>,
    pub at_protocol_handle: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: *u.id.as_uuid(),
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            external_user_id: u.external_user_id,
            supabase_user_id: u.supabase_user_id,
            did: u.did,
            at_protocol_handle: u.at_protocol_handle,
            data: u.data,
            roles: u.roles,
            disabled: u.disabled_at.is_some(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub external_user_id: Option<String>,
    pub supabase_user_id: Option<Uuid>,
    pub did: Option<String>,
    pub at_protocol_handle: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Role names (built-in or custom).
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, deserialize_with = "double_option")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub external_user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub supabase_user_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    pub did: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub at_protocol_handle: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Option<Value>>,
    /// A disabled user's keys and sessions stop working.
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    pub roles: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDto {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The public part of the token, to recognise it.
    pub prefix: String,
    pub deployment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRecord> for KeyDto {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: *k.id.as_uuid(),
            user_id: *k.user_id.as_uuid(),
            name: k.name,
            prefix: k.prefix,
            deployment: k.deployment,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// `electron_local`, `electron_remote` or `web_application`.
    pub deployment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCreated {
    pub key: KeyDto,
    /// The bearer token. Shown this once; only its hash is stored.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleDto {
    pub name: String,
    pub description: String,
    /// `resource:action[@scope][<=classification]`.
    pub permissions: Vec<String>,
    pub builtin: bool,
    pub revision: Option<i64>,
}

fn role_dto(def: RoleDef, stored: Option<StoredRole>) -> RoleDto {
    RoleDto {
        name: def.name,
        description: def.description,
        permissions: def.permissions.iter().map(ToString::to_string).collect(),
        builtin: def.builtin,
        revision: stored.map(|s| s.revision.0),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub items: Vec<RoleDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    /// `resource:action[@scope][<=classification]`, e.g. `template:update@type=support`.
    pub permissions: Vec<String>,
}

fn permissions(raw: &[String]) -> Result<Vec<Permission>, ApiError> {
    raw.iter()
        .map(|p| {
            p.parse::<Permission>().map_err(|e| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_permission", e.to_string())
            })
        })
        .collect()
}

pub(super) fn user_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse::<Uuid>().map(UserId::from).map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", format!("{raw:?} is not a user id"))
    })
}

/// Who the caller is, with the roles they hold.
#[utoipa::path(get, path = "/me", tag = "users", operation_id = "whoami",
    responses((status = 200, body = UserDto), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn me(State(s): State<AppState>, who: Principal) -> Result<impl IntoResponse, ApiError> {
    let u = s.registry.get_user(&who, who.user_id).await?;
    Ok(([NO_STORE], axum::Json(UserDto::from(u))))
}

/// List users.
#[utoipa::path(get, path = "/users", tag = "users", operation_id = "list_users",
    responses((status = 200, body = UserList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_users(State(s): State<AppState>, who: Principal) -> Result<impl IntoResponse, ApiError> {
    let users = s.registry.list_users(&who).await?;
    Ok(([NO_STORE], axum::Json(UserList { items: users.into_iter().map(Into::into).collect() })))
}

/// Create a user.
#[utoipa::path(post, path = "/users", tag = "users", operation_id = "create_user",
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "E-mail or external id taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_user(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let u = s
        .registry
        .create_user(
            &who,
            CreateUser {
                email: req.email,
                first_name: req.first_name,
                last_name: req.last_name,
                external_user_id: req.external_user_id,
                supabase_user_id: req.supabase_user_id,
                did: req.did,
                at_protocol_handle: req.at_protocol_handle,
                data: req.data,
                roles: req.roles,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(UserDto::from(u))))
}

/// Read a user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", operation_id = "get_user",
    params(("id" = String, Path)),
    responses((status = 200, body = UserDto), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_user(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let u = s.registry.get_user(&who, user_id(&raw)?).await?;
    Ok(([NO_STORE], axum::Json(UserDto::from(u))))
}

/// Change a user's fields, or disable them.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", operation_id = "update_user",
    params(("id" = String, Path)),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserDto), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn update_user(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let patch = UserPatch {
        email: req.email,
        first_name: req.first_name,
        last_name: req.last_name,
        external_user_id: req.external_user_id,
        supabase_user_id: req.supabase_user_id,
        did: req.did,
        at_protocol_handle: req.at_protocol_handle,
        data: req.data,
        disabled: req.disabled,
        ..UserPatch::default()
    };
    let u = s.registry.update_user(&who, user_id(&raw)?, patch).await?;
    Ok(axum::Json(UserDto::from(u)))
}

/// Delete a user with their keys and sessions.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", operation_id = "delete_user",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_user(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.delete_user(&who, user_id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the roles a user holds.
#[utoipa::path(put, path = "/users/{id}/roles", tag = "users", operation_id = "set_user_roles",
    params(("id" = String, Path)),
    request_body = SetRolesRequest,
    responses((status = 200, body = UserDto), (status = 422, description = "Unknown role", body = Problem, content_type = "application/problem+json")))]
pub async fn set_roles(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<SetRolesRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let u = s.registry.set_user_roles(&who, user_id(&raw)?, req.roles).await?;
    Ok(axum::Json(UserDto::from(u)))
}

/// List a user's API keys (your own need no permission).
#[utoipa::path(get, path = "/users/{id}/keys", tag = "keys", operation_id = "list_keys",
    params(("id" = String, Path)),
    responses((status = 200, body = KeyList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_keys(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let keys = s.registry.list_keys(&who, Some(user_id(&raw)?)).await?;
    Ok(([NO_STORE], axum::Json(KeyList { items: keys.into_iter().map(Into::into).collect() })))
}

/// Create an API key for a user; the token is in the answer, once.
#[utoipa::path(post, path = "/users/{id}/keys", tag = "keys", operation_id = "create_key",
    params(("id" = String, Path)),
    request_body = CreateKeyRequest,
    responses((status = 201, body = KeyCreated), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create_key(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let deployment = req.deployment.as_deref().map(body_value::<DeploymentModel>).transpose()?;
    let created =
        s.registry.create_key(&who, Some(user_id(&raw)?), req.name, req.expires_at, deployment).await?;
    let body = KeyCreated { key: created.key.into(), token: created.token.expose().to_owned() };
    Ok((StatusCode::CREATED, [NO_STORE], axum::Json(body)))
}

/// Revoke an API key (your own need no permission). Takes effect at once.
#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", operation_id = "revoke_key",
    params(("id" = String, Path)),
    responses((status = 200, body = KeyDto), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_key(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = raw.parse::<Uuid>().map(ApiKeyId::from).map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", format!("{raw:?} is not a key id"))
    })?;
    let k = s.registry.revoke_key(&who, id).await?;
    Ok(axum::Json(KeyDto::from(k)))
}

/// List roles, built-in and custom.
#[utoipa::path(get, path = "/roles", tag = "roles", operation_id = "list_roles",
    responses((status = 200, body = RoleList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_roles(State(s): State<AppState>, who: Principal) -> Result<impl IntoResponse, ApiError> {
    let roles = s.registry.list_roles(&who).await?;
    Ok(axum::Json(RoleList { items: roles.into_iter().map(|(d, s)| role_dto(d, s)).collect() }))
}

/// Create a custom role.
#[utoipa::path(post, path = "/roles", tag = "roles", operation_id = "create_role",
    request_body = RoleRequest,
    responses((status = 201, body = RoleDto), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_role(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<RoleRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = req.name.ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "a role needs a name")
    })?;
    let r = s.registry.create_role(&who, name, req.description, permissions(&req.permissions)?).await?;
    let tag = etag("role", r.revision);
    Ok((StatusCode::CREATED, tag, axum::Json(role_dto(r.def.clone(), Some(r)))))
}

/// Read a role.
#[utoipa::path(get, path = "/roles/{name}", tag = "roles", operation_id = "get_role",
    params(("name" = String, Path)),
    responses((status = 200, body = RoleDto), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_role(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (def, stored) = s.registry.get_role(&who, &name).await?;
    Ok(axum::Json(role_dto(def, stored)))
}

/// Change a custom role (needs `If-Match`).
#[utoipa::path(put, path = "/roles/{name}", tag = "roles", operation_id = "update_role",
    params(("name" = String, Path)),
    request_body = RoleRequest,
    responses((status = 200, body = RoleDto), (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn update_role(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<RoleRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let expect = required_if_match(&headers, "role", || None)?;
    let r =
        s.registry.update_role(&who, &name, expect, req.description, permissions(&req.permissions)?).await?;
    let tag = etag("role", r.revision);
    Ok((tag, axum::Json(role_dto(r.def.clone(), Some(r)))))
}

/// Delete a custom role (refused while users hold it).
#[utoipa::path(delete, path = "/roles/{name}", tag = "roles", operation_id = "delete_role",
    params(("name" = String, Path)),
    responses((status = 204), (status = 409, description = "Users hold it", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_role(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.delete_role(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    /// Whose decision; yourself when absent (someone else needs role:read).
    pub user_id: Option<Uuid>,
    /// create, read, update, delete, execute, approve or publish.
    pub action: String,
    /// template, type, prompt, label, user, role, key, audit, workflow, check, remote or webhook.
    pub resource: String,
    /// A template the decision is about.
    pub template: Option<String>,
    /// A prompt type the decision is about.
    #[serde(rename = "type")]
    pub type_key: Option<String>,
    /// For creating a template: its classification.
    pub classification: Option<String>,
    /// Judge as if the request came from this deployment (`electron_local`,
    /// `electron_remote`, `web_application`); the asking credential's
    /// deployment when absent.
    pub deployment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainResponse {
    pub user_id: Uuid,
    pub roles: Vec<String>,
    pub allowed: bool,
    /// Why, in words.
    pub reason: String,
    /// The role and permission that allowed it.
    pub granted_by: Option<String>,
}

/// Explain an authorization decision: may this user do this, and why.
#[utoipa::path(get, path = "/authz/explain", tag = "users", operation_id = "explain_authz",
    params(ExplainQuery),
    responses(
        (status = 200, body = ExplainResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn explain(
    State(s): State<AppState>,
    who: Principal,
    crate::error::ApiQuery(q): crate::error::ApiQuery<ExplainQuery>,
) -> Result<impl IntoResponse, ApiError> {
    use super::query_value;
    let req = crate::service::explain::ExplainRequest {
        user: q.user_id.map(UserId::from),
        action: query_value(&q.action)?,
        resource: query_value(&q.resource)?,
        template: q
            .template
            .as_deref()
            .map(|t| {
                promptvault_core::TemplateName::parse(t)
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string()))
            })
            .transpose()?,
        type_key: q.type_key.as_deref().map(query_value).transpose()?,
        classification: q.classification.as_deref().map(query_value).transpose()?,
        deployment: q.deployment.as_deref().map(query_value).transpose()?,
    };
    let e = s.registry.explain(&who, req).await?;
    Ok(axum::Json(ExplainResponse {
        user_id: *e.user.as_uuid(),
        roles: e.roles,
        allowed: e.decision.allowed,
        reason: e.decision.reason,
        granted_by: e.decision.granted_by,
    }))
}
