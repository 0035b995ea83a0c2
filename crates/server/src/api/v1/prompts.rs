//! Rendering, renderings (`/prompts`), outcomes and usage metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use promptvault_core::authz::Principal;
use promptvault_core::model::{Outcome, RenderMetadata};
use promptvault_core::render::RenderedBody;
use promptvault_core::{DeploymentModel, PromptId};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::dto::{
    MetricsDto, OutcomeRequest, PromptDto, RenderRequestDto, RenderResponse, RenderedMessageDto, UsageDto,
    VersionUsageDto,
};
use super::{NO_STORE, body_label, body_value, path_name, version_ref};
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::service::{ReadSelector, RenderRequest};
use crate::state::AppState;

fn short(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    crate::service::check_text(field, v.as_deref(), 200)?;
    Ok(v)
}

/// Render a template with parameters. Parameters are validated against the
/// version's schema first; every rendering is recorded (see `prompt_id`).
#[utoipa::path(post, path = "/templates/{name}/render", tag = "render", operation_id = "render",
    params(("name" = String, Path)),
    request_body = RenderRequestDto,
    responses(
        (status = 200, body = RenderResponse),
        (status = 404, description = "No such template, label or version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters (with each violation's JSON pointer), missing variables or placeholders, or a render limit hit", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn render(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<RenderRequestDto>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let sign = req.sign.unwrap_or(false);
    let unprocessable = |e: ApiError| ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, ..e };
    let selector = ReadSelector {
        label: req.label.as_deref().map(body_label).transpose()?,
        version: req.version.map(|v| version_ref(&v.as_text()).map_err(unprocessable)).transpose()?,
    };
    let metadata = RenderMetadata {
        session_id: short("session_id", req.session_id)?,
        request_id: short("request_id", req.request_id)?,
        agent_id: short("agent_id", req.agent_id)?,
        deployment_model: req
            .deployment_model
            .as_deref()
            .map(body_value::<DeploymentModel>)
            .transpose()?
            .unwrap_or_default(),
    };
    let out = s
        .registry
        .render(
            &who,
            &name,
            RenderRequest {
                selector,
                parameters: req.parameters.unwrap_or(Value::Object(Map::new())),
                placeholders: req.placeholders.unwrap_or_default(),
                metadata,
            },
        )
        .await?;
    let (template, version) = (&out.resolved.0, &out.resolved.1);
    let (text, messages) = match out.rendered.body {
        RenderedBody::Text(t) => (Some(t), None),
        RenderedBody::Chat(m) => (
            None,
            Some(m.into_iter().map(|m| RenderedMessageDto { role: m.role, content: m.content }).collect()),
        ),
    };
    // A deprecated version still renders, and says so in a header too.
    let deprecated = version.status == promptvault_core::VersionStatus::Deprecated;
    let deprecation = axum::http::HeaderValue::from_static(if deprecated { "true" } else { "false" });
    let mut headers = axum::http::HeaderMap::new();
    if deprecated {
        headers.insert(axum::http::HeaderName::from_static("deprecation"), deprecation);
    }
    Ok((
        [NO_STORE],
        headers,
        axum::Json(RenderResponse {
            prompt_id: *out.prompt_id.as_uuid(),
            template: template.name.to_string(),
            version_seq: version.seq,
            version: version.version.to_string(),
            status: version.status.to_string(),
            kind: version.content.body.kind().as_str().to_owned(),
            text,
            messages,
            config: version.content.config.to_value(),
            content_hash: version.content_hash.to_string(),
            warnings: out.rendered.warnings,
            signature: if sign { s.registry.sign_manifest(template, version) } else { None },
        }),
    ))
}

/// Usage of a template: times used, last used and success rate, overall and
/// per version.
#[utoipa::path(get, path = "/templates/{name}/metrics", tag = "render", operation_id = "template_metrics",
    params(("name" = String, Path)),
    responses(
        (status = 200, body = MetricsDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<MetricsDto>, ApiError> {
    let name = path_name(&raw)?;
    let (t, m) = s.registry.metrics(&who, &name).await?;
    Ok(axum::Json(MetricsDto {
        template: t.name.to_string(),
        total: UsageDto::from(&m.total),
        versions: m
            .versions
            .iter()
            .map(|(seq, u)| VersionUsageDto { version_seq: *seq, usage: UsageDto::from(u) })
            .collect(),
    }))
}

/// One recorded rendering.
#[utoipa::path(get, path = "/prompts/{id}", tag = "render", operation_id = "get_prompt",
    params(("id" = Uuid, Path, description = "The `prompt_id` a render returned")),
    responses(
        (status = 200, body = PromptDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let p = s.registry.get_prompt(&who, PromptId::from(id)).await?;
    Ok(([NO_STORE], axum::Json(PromptDto::from(p))))
}

/// Report whether a rendered prompt worked. The first report stands.
#[utoipa::path(post, path = "/prompts/{id}/outcome", tag = "render", operation_id = "report_outcome",
    params(("id" = Uuid, Path)),
    request_body = OutcomeRequest,
    responses(
        (status = 204, description = "Recorded"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already reported", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn outcome(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<OutcomeRequest>,
) -> Result<StatusCode, ApiError> {
    let outcome = if req.success { Outcome::Success } else { Outcome::Failure };
    s.registry.report_outcome(&who, PromptId::from(id), outcome, req.detail).await?;
    Ok(StatusCode::NO_CONTENT)
}
