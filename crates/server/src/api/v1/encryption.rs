//! Encryption keys: status and data-key rotation (administrators).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use promptvault_core::authz::Principal;
use promptvault_store::EncryptionStatus;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// A data key and how many rows it seals.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataKeyDto {
    pub id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Set once no row is sealed with it any more.
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The key that seals new content.
    pub active: bool,
    pub rows: u64,
}

/// Encryption at rest: which master key, which data keys, what is left to
/// re-encrypt.
#[derive(Debug, Serialize, ToSchema)]
pub struct EncryptionStatusDto {
    pub enabled: bool,
    /// `classified` (confidential and restricted) or `all`.
    pub scope: String,
    /// `sha256:` and 32 hex digits; never the key.
    pub master_fingerprint: Option<String>,
    pub active_key: Option<String>,
    pub keys: Vec<DataKeyDto>,
    /// Rows still sealed with an older key, or not yet sealed though their
    /// template's classification asks for it.
    pub pending_rows: u64,
    pub sealed_rows: u64,
}

impl From<EncryptionStatus> for EncryptionStatusDto {
    fn from(s: EncryptionStatus) -> Self {
        Self {
            enabled: s.enabled,
            scope: s.scope.as_str().to_owned(),
            master_fingerprint: s.master_fingerprint,
            active_key: s.active_key,
            keys: s
                .keys
                .into_iter()
                .map(|k| DataKeyDto {
                    id: k.id,
                    created_at: k.created_at,
                    retired_at: k.retired_at,
                    active: k.active,
                    rows: k.rows,
                })
                .collect(),
            pending_rows: s.pending_rows,
            sealed_rows: s.sealed_rows,
        }
    }
}

/// Encryption keys and re-encryption progress.
#[utoipa::path(get, path = "/admin/encryption", tag = "encryption", operation_id = "encryption_status",
    responses(
        (status = 200, description = "Keys and progress", body = EncryptionStatusDto),
        (status = 403, description = "Needs encryption:read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn status(
    State(s): State<AppState>,
    who: Principal,
) -> Result<Json<EncryptionStatusDto>, ApiError> {
    Ok(Json(s.registry.encryption_status(&who).await?.into()))
}

/// Rotate the data key: new content is sealed with a new key at once, and a
/// background worker re-encrypts what older keys sealed (resumable; follow
/// `pending_rows`).
#[utoipa::path(post, path = "/admin/encryption/rotate", tag = "encryption", operation_id = "rotate_data_key",
    responses(
        (status = 202, description = "Rotated; re-encryption runs in the background", body = EncryptionStatusDto),
        (status = 403, description = "Needs encryption:update", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    State(s): State<AppState>,
    who: Principal,
) -> Result<(StatusCode, Json<EncryptionStatusDto>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(s.registry.rotate_data_key(&who).await?.into())))
}
