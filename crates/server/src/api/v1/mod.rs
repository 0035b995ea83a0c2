//! The v1 REST API: one module per resource, all under `/api/v1`.

mod audit;
pub mod dto;
mod encryption;
mod governance;
mod identity;
mod labels;
mod lifecycle;
mod prompt_types;
mod prompts;
mod session;
mod templates;
mod versions;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use promptvault_core::model::Revision;
use promptvault_core::{LabelName, NameError, TemplateName};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::service::VersionRef;
use crate::state::AppState;

/// Every v1 route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(prompt_types::list, prompt_types::create))
        .routes(routes!(prompt_types::get, prompt_types::update, prompt_types::delete))
        .routes(routes!(templates::list, templates::create))
        .routes(routes!(templates::get, templates::update, templates::delete))
        .routes(routes!(versions::list, versions::create))
        .routes(routes!(versions::get, versions::update, versions::delete))
        .routes(routes!(versions::diff))
        .routes(routes!(lifecycle::submit))
        .routes(routes!(lifecycle::approve))
        .routes(routes!(lifecycle::reject))
        .routes(routes!(lifecycle::deprecate))
        .routes(routes!(lifecycle::archive))
        .routes(routes!(lifecycle::restore))
        .routes(routes!(lifecycle::decisions))
        .routes(routes!(lifecycle::reviews))
        .routes(routes!(labels::list))
        .routes(routes!(labels::get, labels::set, labels::delete))
        .routes(routes!(labels::rollback))
        .routes(routes!(prompts::render))
        .routes(routes!(prompts::metrics))
        .routes(routes!(prompts::get))
        .routes(routes!(prompts::outcome))
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::reauth))
        .routes(routes!(session::set_password))
        .routes(routes!(identity::me))
        .routes(routes!(identity::explain))
        .routes(routes!(identity::list_users, identity::create_user))
        .routes(routes!(identity::get_user, identity::update_user, identity::delete_user))
        .routes(routes!(identity::set_roles))
        .routes(routes!(identity::list_keys, identity::create_key))
        .routes(routes!(identity::revoke_key))
        .routes(routes!(identity::list_roles, identity::create_role))
        .routes(routes!(identity::get_role, identity::update_role, identity::delete_role))
        .routes(routes!(governance::list_workflows, governance::create_workflow))
        .routes(routes!(governance::get_workflow, governance::update_workflow, governance::delete_workflow))
        .routes(routes!(governance::list_checks, governance::create_check))
        .routes(routes!(governance::get_check, governance::update_check, governance::delete_check))
        .routes(routes!(audit::list))
        .routes(routes!(audit::export))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::purge))
        .routes(routes!(encryption::status))
        .routes(routes!(encryption::rotate))
}

fn name_error(status: StatusCode, e: &NameError) -> ApiError {
    ApiError::new(status, "invalid_name", e.to_string())
}

/// A template name from the path.
pub(crate) fn path_name(raw: &str) -> Result<TemplateName, ApiError> {
    TemplateName::parse(raw).map_err(|e| name_error(StatusCode::BAD_REQUEST, &e))
}

pub(crate) fn path_label(raw: &str) -> Result<LabelName, ApiError> {
    LabelName::parse(raw).map_err(|e| name_error(StatusCode::BAD_REQUEST, &e))
}

pub(crate) fn body_label(raw: &str) -> Result<LabelName, ApiError> {
    LabelName::parse(raw).map_err(|e| name_error(StatusCode::UNPROCESSABLE_ENTITY, &e))
}

pub(crate) fn version_ref(raw: &str) -> Result<VersionRef, ApiError> {
    VersionRef::parse(raw).map_err(ApiError::from)
}

/// A value from the body parsed with `FromStr`, refused with 422.
pub(crate) fn body_value<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    raw.parse().map_err(|e: T::Err| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.to_string())
    })
}

/// Like [`body_value`] for query parameters (400).
pub(crate) fn query_value<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    raw.parse().map_err(|e: T::Err| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string()))
}

/// The revision named by `If-Match`, if the header is present.
///
/// A tag for another kind of resource, or a malformed one, can never match:
/// 412. `*` matches any current revision.
pub(crate) fn if_match(headers: &HeaderMap, kind: &str) -> Result<Option<Option<Revision>>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(Some(None));
    }
    Revision::from_etag(text, kind).map(|r| Some(Some(r))).ok_or_else(|| {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!("If-Match {text:?} is not a current entity tag of this resource"),
        )
    })
}

/// `If-Match` that must be present: a write without it could overwrite a
/// change the writer never saw.
pub(crate) fn required_if_match(
    headers: &HeaderMap,
    kind: &str,
    current: impl FnOnce() -> Option<Revision>,
) -> Result<Revision, ApiError> {
    match if_match(headers, kind)? {
        Some(Some(r)) => Ok(r),
        // `*`: the caller accepts whatever is current, where that is allowed.
        Some(None) => current().ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "If-Match: * is not accepted here; send the ETag you read",
            )
        }),
        None => Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
            "send If-Match with the ETag you read, so a concurrent change is not overwritten",
        )),
    }
}

pub(crate) fn etag(kind: &str, revision: Revision) -> [(header::HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(&revision.etag(kind)).unwrap_or(HeaderValue::from_static("\"0\""));
    [(header::ETAG, value)]
}

/// Template content is private: never stored by shared caches.
pub(crate) const NO_STORE: (header::HeaderName, HeaderValue) =
    (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
