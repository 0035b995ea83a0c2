//! The audit trail: list, export as JSON Lines, verify the hash chain, purge.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use promptvault_core::audit::{AuditEvent, AuditOutcome};
use promptvault_core::authz::Principal;
use promptvault_store::AuditFilter;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{NO_STORE, query_value};
use crate::error::{ApiError, ApiJson, ApiQuery, Problem};
use crate::service::trail::PAGE;
use crate::state::AppState;

/// One event of the trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventDto {
    /// Position in the chain: 1, 2, 3, …
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The user id of the actor, when known.
    pub actor_id: Option<String>,
    /// How the actor is known: an e-mail, or a key's prefix and name.
    pub actor: String,
    /// `<resource>.<action>`, e.g. `template.update`, `label.update`.
    #[schema(example = "template.update")]
    pub action: String,
    pub resource_kind: String,
    pub resource: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
    /// Hash of the event before (hex SHA-256).
    pub prev_hash: String,
    /// Hash of this event over its content and `prev_hash`.
    pub hash: String,
}

impl From<AuditEvent> for AuditEventDto {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            id: e.id,
            at: e.at,
            actor_id: e.actor_id,
            actor: e.actor,
            action: e.action,
            resource_kind: e.resource_kind,
            resource: e.resource,
            outcome: e.outcome.as_str().to_owned(),
            reason: e.reason,
            request_id: e.request_id,
            client_addr: e.client_addr,
            details: e.details,
            prev_hash: e.prev_hash.to_string(),
            hash: e.hash.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventDto>,
    /// Pass as `after_seq` (oldest first) or `before_seq` (newest first)
    /// for the next page; absent on the last page.
    pub next: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events of this user id.
    pub actor_id: Option<String>,
    /// Events whose action starts with this, e.g. `template.` or `label.update`.
    pub action: Option<String>,
    pub resource_kind: Option<String>,
    pub resource: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// RFC 3339; events at or after.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339; events before.
    pub until: Option<DateTime<Utc>>,
    pub after_seq: Option<i64>,
    pub before_seq: Option<i64>,
    /// `asc` (oldest first, the default) or `desc`.
    pub order: Option<String>,
    /// 1-1000, default 100.
    pub limit: Option<u32>,
}

impl AuditQuery {
    fn filter(self, default_limit: u32) -> Result<AuditFilter, ApiError> {
        let newest_first = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("order must be asc or desc, not {other:?}"),
                ));
            }
        };
        let limit = self.limit.unwrap_or(default_limit);
        if !(1..=PAGE).contains(&limit) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("limit must be 1-{PAGE}"),
            ));
        }
        Ok(AuditFilter {
            after_seq: self.after_seq,
            before_seq: self.before_seq,
            actor_id: self.actor_id,
            action_prefix: self.action,
            resource_kind: self.resource_kind,
            resource: self.resource,
            outcome: self.outcome.as_deref().map(query_value::<AuditOutcome>).transpose()?,
            since: self.since,
            until: self.until,
            newest_first,
            limit,
        })
    }
}

/// List audit events, oldest first unless `order=desc`.
#[utoipa::path(get, path = "/audit/events", tag = "audit", operation_id = "list_audit_events",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs audit:read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = q.filter(100)?;
    let limit = filter.limit as usize;
    let events = s.registry.list_audit(&who, &filter).await?;
    let next = (events.len() == limit).then(|| events.last().map(|e| e.seq)).flatten();
    Ok(([NO_STORE], axum::Json(AuditPage { items: events.into_iter().map(Into::into).collect(), next })))
}

/// Export matching events as JSON Lines (`application/x-ndjson`), one
/// event per line, oldest first.
#[utoipa::path(get, path = "/audit/export", tag = "audit", operation_id = "export_audit_events",
    params(AuditQuery),
    responses(
        (status = 200, description = "One JSON event per line", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs audit:read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let mut filter = q.filter(PAGE)?;
    filter.newest_first = false;
    filter.limit = PAGE;
    // The first page is read now, so a refusal is a proper problem response.
    let first = s.registry.list_audit(&who, &filter).await?;
    let registry = s.registry.clone();
    let stream = futures::stream::unfold(Some((first, filter)), move |state| {
        let registry = registry.clone();
        let who = who.clone();
        async move {
            let (page, mut filter) = state?;
            if page.is_empty() {
                return None;
            }
            let mut chunk = String::new();
            for ev in &page {
                if let Ok(line) = serde_json::to_string(&AuditEventDto::from(ev.clone())) {
                    chunk.push_str(&line);
                    chunk.push('\n');
                }
            }
            let next = if page.len() < PAGE as usize {
                Some((Vec::new(), filter))
            } else {
                filter.after_seq = page.last().map(|e| e.seq);
                match registry.list_audit(&who, &filter).await {
                    Ok(p) => Some((p, filter)),
                    Err(e) => {
                        tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "audit export stopped");
                        None
                    }
                }
            };
            Some((Ok::<_, std::convert::Infallible>(chunk), next))
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    response.headers_mut().insert(NO_STORE.0, NO_STORE.1);
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainBreakDto {
    /// The first event where the chain breaks.
    pub seq: i64,
    /// `edited`, `missing`, `reordered` or `relinked`.
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether the whole chain verified.
    pub ok: bool,
    /// Events checked (up to the break).
    pub checked: u64,
    /// Sequence number of the newest event.
    pub head_seq: i64,
    /// Where verification started: the newest retention checkpoint.
    pub checkpoint_seq: Option<i64>,
    /// The checkpoint's Ed25519 signature by the instance key: `valid`,
    /// `invalid` (a forged or altered checkpoint: `ok` is false) or
    /// `unsigned`; absent without a checkpoint.
    pub checkpoint_signature: Option<String>,
    pub broken: Option<ChainBreakDto>,
}

/// Verify the hash chain of the audit trail; names the first broken event.
#[utoipa::path(get, path = "/audit/verify", tag = "audit", operation_id = "verify_audit",
    responses(
        (status = 200, description = "The verdict (`ok` false names the first broken event)", body = VerifyResponse),
        (status = 403, description = "Needs audit:read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(State(s): State<AppState>, who: Principal) -> Result<impl IntoResponse, ApiError> {
    let v = s.registry.verify_audit(&who).await?;
    let checkpoint_seq = v.checkpoint.as_ref().map(|c| c.through_seq);
    let checkpoint_signature = v.checkpoint_signature.map(str::to_owned);
    let forged = v.checkpoint_signature == Some("invalid");
    let body = match v.result {
        Ok(r) if forged => VerifyResponse {
            ok: false,
            checked: r.checked,
            head_seq: v.head_seq,
            checkpoint_seq,
            checkpoint_signature,
            broken: Some(ChainBreakDto {
                seq: checkpoint_seq.unwrap_or_default(),
                kind: "checkpoint_signature".to_owned(),
                message: "the retention checkpoint's signature does not verify with the instance key: \
                          it was forged or altered"
                    .to_owned(),
            }),
        },
        Ok(r) => VerifyResponse {
            ok: true,
            checked: r.checked,
            head_seq: v.head_seq,
            checkpoint_seq,
            checkpoint_signature,
            broken: None,
        },
        Err(b) => VerifyResponse {
            ok: false,
            checked: 0,
            head_seq: v.head_seq,
            checkpoint_seq,
            checkpoint_signature,
            broken: Some(ChainBreakDto {
                seq: b.seq,
                kind: b.kind.as_str().to_owned(),
                message: b.message.clone(),
            }),
        },
    };
    Ok(([NO_STORE], axum::Json(body)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Purge events older than this many days (at least 1).
    pub older_than_days: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeResponse {
    pub purged: u64,
    /// The checkpoint that replaces the purged events.
    pub checkpoint_seq: Option<i64>,
    pub checkpoint_hash: Option<String>,
}

/// Purge old events; a checkpoint keeps the rest of the chain verifiable.
#[utoipa::path(post, path = "/audit/purge", tag = "audit", operation_id = "purge_audit",
    request_body = PurgeRequest,
    responses(
        (status = 200, body = PurgeResponse),
        (status = 403, description = "Needs audit:delete", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn purge(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<PurgeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if req.older_than_days == 0 {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "older_than_days must be at least 1",
        ));
    }
    let before = Utc::now() - chrono::Duration::days(i64::from(req.older_than_days));
    let r = s.registry.purge_audit(&who, before).await?;
    Ok(axum::Json(PurgeResponse {
        purged: r.purged,
        checkpoint_seq: r.checkpoint.as_ref().map(|c| c.through_seq),
        checkpoint_hash: r.checkpoint.as_ref().map(|c| c.last_hash.to_string()),
    }))
}
