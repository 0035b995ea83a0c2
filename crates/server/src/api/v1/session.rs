//! Password sign-in for the web UI: `/login`, `/logout`, and setting
//! passwords at `/users/{id}/password`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use promptvault_core::authz::{Origin, Principal};
use serde::Deserialize;
use utoipa::ToSchema;

use super::NO_STORE;
use super::identity::{UserDto, user_id};
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("email", &self.email).finish_non_exhaustive()
    }
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session token, shown this once; also set as the `pv_session`
    /// cookie. Send it as `Authorization: Bearer <token>` from other clients.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// A session unused this long ends.
    pub idle_timeout_seconds: i64,
    pub user: UserDto,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The new password (at least 12 characters).
    pub password: String,
    /// Your current password, when you change your own and have one.
    #[serde(default)]
    pub current_password: Option<String>,
}

impl std::fmt::Debug for PasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordRequest").finish_non_exhaustive()
    }
}

/// Where an unauthenticated request comes from, for the audit trail.
pub struct RequestOrigin(pub Origin);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(RequestOrigin(crate::auth::origin_of(parts)))
    }
}

fn cookie_header(value: String) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&value)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "cookie"))
}

/// Sign in with an e-mail address and password; opens a web session.
#[utoipa::path(post, path = "/login", tag = "sessions", operation_id = "login",
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse),
        (status = 401, description = "Wrong e-mail address or password (one answer for both)", body = Problem, content_type = "application/problem+json")))]
pub async fn login(
    State(s): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let signed = s.registry.login(&req.email, &req.password, &origin).await?;
    let settings = s.registry.session_settings();
    let cookie = cookie_header(settings.cookie(signed.token.expose()))?;
    let body = LoginResponse {
        token: signed.token.expose().to_owned(),
        expires_at: signed.expires_at,
        idle_timeout_seconds: settings.idle_timeout().num_seconds(),
        user: signed.user.into(),
    };
    Ok(([NO_STORE], [(header::SET_COOKIE, cookie)], axum::Json(body)))
}

/// End the web session this request was made with.
#[utoipa::path(post, path = "/logout", tag = "sessions", operation_id = "logout",
    responses((status = 204, description = "Signed out"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not made with a web session", body = Problem, content_type = "application/problem+json")))]
pub async fn logout(
    State(s): State<AppState>,
    who: Principal,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    // The extractor above accepted this very token.
    let token = crate::auth::presented_token_of(&headers, &method)?;
    s.registry.logout(&who, token).await?;
    let cookie = cookie_header(s.registry.session_settings().clear_cookie())?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReauthRequest {
    /// The password of the session's user.
    pub password: String,
}

impl std::fmt::Debug for ReauthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReauthRequest").finish_non_exhaustive()
    }
}

/// Give the password again: the web session this request was made with may
/// then change and render restricted templates for
/// `auth.sessions.reauth_after_minutes` (5 by default).
#[utoipa::path(post, path = "/reauth", tag = "sessions", operation_id = "reauthenticate",
    request_body = ReauthRequest,
    responses((status = 204, description = "Re-authenticated"),
        (status = 401, description = "Wrong password, or no valid session", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not made with a web session", body = Problem, content_type = "application/problem+json")))]
pub async fn reauth(
    State(s): State<AppState>,
    who: Principal,
    method: axum::http::Method,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ReauthRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let token = crate::auth::presented_token_of(&headers, &method)?;
    s.registry.reauthenticate(&who, token, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a user's password: your own with your current one, anyone's with
/// `user:update`.
#[utoipa::path(put, path = "/users/{id}/password", tag = "users", operation_id = "set_password",
    params(("id" = String, Path)),
    request_body = PasswordRequest,
    responses((status = 204, description = "Password set"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Too weak", body = Problem, content_type = "application/problem+json")))]
pub async fn set_password(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<PasswordRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = user_id(&raw)?;
    s.registry.set_password(&who, id, &req.password, req.current_password.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
