//! What can go wrong in the application layer, independent of HTTP.

use promptvault_core::render::RenderError;
use promptvault_store::{Conflict, StoreError};
use serde_json::Value;
use thiserror::Error;

/// Kinds of things that can be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Template,
    PromptType,
    Version,
    Label,
    Prompt,
    User,
    Role,
    Key,
    Workflow,
    Check,
}

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("{detail}")]
    NotFound { what: Missing, detail: String },
    /// The request is well-formed but its content is refused (422).
    #[error("{detail}")]
    Invalid {
        code: &'static str,
        detail: String,
        /// Structured details (e.g. each violation), merged into the problem.
        extra: Option<(&'static str, Value)>,
    },
    /// The request itself is malformed (400).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{detail}")]
    PreconditionFailed { detail: String, current_etag: Option<String> },
    #[error("{detail}")]
    PreconditionRequired { detail: String },
    #[error("{detail}")]
    Forbidden { detail: String },
    /// Allowed, but a web session must give its password again first (403).
    #[error("{detail}")]
    ReauthenticationRequired { detail: String },
    /// Who is asking could not be established (401).
    #[error("{detail}")]
    Unauthenticated { code: &'static str, detail: String },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{0}")]
    Unavailable(String),
    /// A fault of ours; the detail is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        ServiceError::Invalid { code, detail: detail.into(), extra: None }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ServiceError::Conflict { code, detail: detail.into() }
    }

    pub fn not_found(what: Missing, detail: impl Into<String>) -> Self {
        ServiceError::NotFound { what, detail: detail.into() }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                let kind = if what.starts_with("label") {
                    Missing::Label
                } else if what.starts_with("version") {
                    Missing::Version
                } else if what.starts_with("prompt type") {
                    Missing::PromptType
                } else {
                    Missing::Template
                };
                ServiceError::not_found(kind, format!("{what} not found"))
            }
            StoreError::Conflict(c) => {
                let code = match &c {
                    Conflict::AlreadyExists { .. } => "already_exists",
                    Conflict::StaleBase { .. } => "stale_base",
                    Conflict::NotEditable { .. } => "version_not_editable",
                    Conflict::Superseded { .. } => "version_superseded",
                    Conflict::InUse { .. } => "in_use",
                    Conflict::LastVersion => "last_version",
                    Conflict::Labelled { .. } => "version_labelled",
                    Conflict::InvalidTransition { .. } => "invalid_transition",
                    Conflict::NotInReview { .. } => "version_not_in_review",
                    Conflict::ReviewRefused { code, .. } => code,
                    Conflict::WorkflowSet { code, .. } => code,
                };
                ServiceError::conflict(code, c.to_string())
            }
            StoreError::Stale { what, current } => ServiceError::PreconditionFailed {
                detail: format!("the {what} has changed since you read it; read it again and retry"),
                current_etag: current.map(|r| r.etag(etag_kind(what))),
            },
            StoreError::InvalidCursor => ServiceError::BadRequest {
                code: "invalid_cursor",
                detail: "the page cursor is not valid; start again without one".into(),
            },
            StoreError::Database(db) if is_unavailable(&db) => {
                ServiceError::Unavailable(format!("the database is unavailable: {db}"))
            }
            other @ (StoreError::Corrupt(_)
            | StoreError::Database(_)
            | StoreError::Migration(_)
            | StoreError::UnsupportedUrl(_)
            | StoreError::Setup(_)) => ServiceError::Internal(other.to_string()),
        }
    }
}

/// The ETag prefix of each kind of row.
pub fn etag_kind(what: &str) -> &'static str {
    match what {
        "prompt type" => "type",
        "version" => "ver",
        "label" => "label",
        "workflow" => "wf",
        "check" => "chk",
        _ => "tpl",
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
}
