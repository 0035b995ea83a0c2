//! The HTTP surface: `/api/v1` (authenticated), `/healthz`, `/readyz`,
//! `/metrics`, and the OpenAPI document generated from the handlers.

pub mod health;
pub mod v1;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use promptvault_core::authz::Principal;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("pv_…").build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "promptvault",
        description = "A self-hosted registry for the prompt templates of LLM applications and agents: versioned, validated, rendered, recorded.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "prompt types", description = "Categories of templates, with an optional parameter contract"),
        (name = "templates", description = "Named, owned, classified templates"),
        (name = "versions", description = "Immutable snapshots with computed semantic versions"),
        (name = "labels", description = "Movable pointers to versions, and rollback"),
        (name = "render", description = "Rendering with validated parameters, outcomes and usage"),
        (name = "sessions", description = "Password sign-in for the web UI"),
        (name = "health", description = "Liveness, readiness and Prometheus metrics"),
        (name = "encryption", description = "Encryption keys at rest and their rotation"),
    ),
)]
struct ApiDoc;

/// The routes and their OpenAPI description, from the same declarations.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1::router())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::signing_key))
        .split_for_parts()
}

/// The OpenAPI document (what `/api/v1/openapi.json` serves).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

/// The whole application, layers included; `rewrite_uri` must run before it.
pub fn app(state: AppState) -> Router {
    let (router, doc) = routes();
    let doc = std::sync::Arc::new(doc);
    let body_limit = state.body_limit;
    let request_id = HeaderName::from_static("x-request-id");
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move |_who: Principal| {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "an internal error occurred; it has been logged",
            )
            .into_response()
        }))
        .layer(middleware::from_fn_with_state(state.limiter.clone(), crate::ratelimit::limit_anonymous))
        .layer(middleware::from_fn(record_metrics))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        // Template content is confidential: no shared or browser cache keeps
        // an answer (handlers that may be cached set their own header).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        ))
        // Nothing served here is meant to be framed or to load anything.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Sub-resources that may follow a template name in a path.
const SUB_RESOURCES: &[&str] = promptvault_core::names::RESERVED_NAME_SEGMENTS;

/// Lets template names with a raw `/` work in URLs: the segments of
/// `/api/v1/templates/<name…>/<sub-resource…>` up to the first
/// sub-resource keyword are joined with `%2F`, so the router sees the name
/// as one segment (`%2F` in the request works as it is).
pub fn rewrite_uri(mut req: Request) -> Request {
    const PREFIX: &str = "/api/v1/templates/";
    let uri = req.uri();
    let Some(rest) = uri.path().strip_prefix(PREFIX) else { return req };
    let segments: Vec<&str> = rest.split('/').collect();
    let cut =
        segments.iter().skip(1).position(|s| SUB_RESOURCES.contains(s)).map_or(segments.len(), |p| p + 1);
    if cut <= 1 || segments[..cut].iter().any(|s| s.is_empty()) {
        return req;
    }
    let mut path = format!("{PREFIX}{}", segments[..cut].join("%2F"));
    for s in &segments[cut..] {
        path.push('/');
        path.push_str(s);
    }
    if let Some(q) = uri.query() {
        path.push('?');
        path.push_str(q);
    }
    if let Ok(new) = path.parse::<Uri>() {
        *req.uri_mut() = new;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(path: &str) -> String {
        let req = Request::builder().uri(path).body(axum::body::Body::empty()).unwrap();
        rewrite_uri(req).uri().to_string()
    }

    #[test]
    fn raw_slashes_in_names_become_one_segment() {
        assert_eq!(rewritten("/api/v1/templates/a/b/versions/3"), "/api/v1/templates/a%2Fb/versions/3");
        assert_eq!(rewritten("/api/v1/templates/a/b/c?label=x"), "/api/v1/templates/a%2Fb%2Fc?label=x");
        assert_eq!(
            rewritten("/api/v1/templates/a/b/labels/production"),
            "/api/v1/templates/a%2Fb/labels/production"
        );
        assert_eq!(rewritten("/api/v1/templates/a%2Fb/render"), "/api/v1/templates/a%2Fb/render");
        assert_eq!(rewritten("/api/v1/templates/plain"), "/api/v1/templates/plain");
        assert_eq!(rewritten("/api/v1/templates/a/diff"), "/api/v1/templates/a/diff");
        assert_eq!(rewritten("/healthz"), "/healthz");
        assert_eq!(rewritten("/api/v1/templates/a//b"), "/api/v1/templates/a//b");
    }
}
