//! Liveness, readiness and Prometheus metrics: the endpoints that need no key.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz", security(()),
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz", security(()),
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(s): State<AppState>) -> Result<&'static str, ApiError> {
    match s.registry.ready().await {
        Ok(()) => Ok("ready\n"),
        Err(e) => {
            tracing::warn!(error = %crate::content::redact_secrets(&e.to_string()), "not ready");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the database does not answer"))
        }
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health", operation_id = "metrics", security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render())
}

/// The instance's public Ed25519 key, which signs version manifests
/// (`signature` in renders and version reads).
#[utoipa::path(get, path = "/.well-known/promptvault/signing-key", tag = "health", operation_id = "signing_key",
    security(()),
    responses(
        (status = 200, description = "The public key", body = crate::encryption::PublicSigningKey),
        (status = 404, description = "No signing key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn signing_key(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let key = s.registry.signing_key().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "this instance has no signing key")
    })?;
    // Public and stable: caches may keep it for an hour.
    Ok(([(header::CACHE_CONTROL, "public, max-age=3600")], axum::Json(key)))
}
