//! The application layer: every operation of the registry, authorized,
//! validated and computed here, then persisted through the store.
//!
//! Handlers hold a [`Registry`], never the store: the only way to a write
//! passes an authorization decision (`authorize` is the first line of every
//! public method).

pub mod cache;
mod catalog;
mod content;
pub mod error;
mod labels;
mod render;
pub mod usage;
mod versions;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use promptvault_core::authz::{Action, Principal, Resource, decide};
use promptvault_core::model::truncate_to_micros;
use promptvault_core::render::RenderLimits;
use promptvault_core::{LabelName, TemplateName};
use promptvault_store::{Store, VersionSelector};

pub use catalog::{CreateTemplate, TemplateView, UpdateTemplate};
pub use content::ContentInput;
pub use error::{Missing, ServiceError};
pub use labels::{LabelView, Rollback, RolledBack};
pub use render::{RenderOutcome, RenderRequest};
pub use versions::{CreateVersion, VersionCreated, VersionRef};

use cache::Caches;
use usage::UsageRecorder;

/// Which version a read wants: a label, a version, or neither (the default
/// label).
#[derive(Debug, Clone, Default)]
pub struct ReadSelector {
    pub label: Option<LabelName>,
    pub version: Option<VersionRef>,
}

pub struct Registry {
    store: Arc<dyn Store>,
    caches: Arc<Caches>,
    usage: UsageRecorder,
    default_label: LabelName,
    limits: RenderLimits,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.store.backend())
            .field("default_label", &self.default_label)
            .finish_non_exhaustive()
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl Registry {
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        caches: Arc<Caches>,
        usage: UsageRecorder,
        default_label: LabelName,
        limits: RenderLimits,
    ) -> Self {
        Self { store, caches, usage, default_label, limits }
    }

    #[must_use]
    pub fn default_label(&self) -> &LabelName {
        &self.default_label
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await.map_err(ServiceError::from)
    }

    fn authorize(&self, who: &Principal, action: Action, resource: Resource) -> Result<()> {
        let decision = decide(who, action, resource);
        if decision.allowed { Ok(()) } else { Err(ServiceError::Forbidden { detail: decision.reason }) }
    }

    fn now() -> DateTime<Utc> {
        truncate_to_micros(Utc::now())
    }

    /// Turns a read selector into a store selector; `latest` and the
    /// default label are resolved here.
    fn selector(&self, read: &ReadSelector) -> Result<VersionSelector> {
        match (&read.label, &read.version) {
            (Some(_), Some(_)) => Err(ServiceError::BadRequest {
                code: "invalid_selector",
                detail: "give a label or a version, not both".into(),
            }),
            (None, Some(v)) => Ok(v.selector()),
            (Some(l), None) if l.is_latest() => Ok(VersionSelector::Latest),
            (Some(l), None) => Ok(VersionSelector::Label(l.clone())),
            (None, None) if self.default_label.is_latest() => Ok(VersionSelector::Latest),
            (None, None) => Ok(VersionSelector::Label(self.default_label.clone())),
        }
    }

    async fn template_or_404(&self, name: &TemplateName) -> Result<promptvault_core::model::Template> {
        self.store.get_template(name).await?.ok_or_else(|| template_missing(name))
    }
}

fn template_missing(name: &TemplateName) -> ServiceError {
    ServiceError::not_found(Missing::Template, format!("template {name:?} does not exist"))
}

/// Free text from a client: bounded, and without NUL (which PostgreSQL
/// cannot store and no prompt needs).
pub fn check_text(what: &str, value: Option<&str>, max: usize) -> Result<()> {
    let Some(v) = value else { return Ok(()) };
    if v.contains('\0') {
        return Err(ServiceError::invalid(
            "invalid_text",
            format!("{what} contains a NUL character, which is not accepted"),
        ));
    }
    if v.chars().count() > max {
        return Err(ServiceError::invalid(
            "invalid_request",
            format!("{what} may be at most {max} characters"),
        ));
    }
    Ok(())
}
