//! The application layer: every operation of the registry, authorized,
//! validated and computed here, then persisted through the store.
//!
//! Handlers hold a [`Registry`], never the store: the only way to a write
//! passes an authorization decision (`authorize` is the first line of every
//! public method).

pub mod audit;
pub mod cache;
mod catalog;
mod content;
pub mod error;
pub mod explain;
pub mod governance;
pub mod identity;
pub mod keys;
mod labels;
pub mod lifecycle;
mod render;
mod scanning;
pub mod session;
pub mod trail;
pub mod usage;
mod versions;
pub mod workflows;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use promptvault_core::audit::AuditOutcome;
use promptvault_core::authz::{Action, Principal, Resource, Target, TemplateFacts, decide};
use promptvault_core::model::truncate_to_micros;
use promptvault_core::render::RenderLimits;
use promptvault_core::{LabelName, TemplateName};
use promptvault_store::{Store, VersionSelector, Write};
use serde_json::Value;

pub use catalog::{CreateTemplate, TemplateView, UpdateTemplate};
pub use content::ContentInput;
pub use error::{Missing, ServiceError};
pub use labels::{LabelView, Rollback, RolledBack};
pub use render::{RenderOutcome, RenderRequest};
pub use versions::{CreateVersion, VersionCreated, VersionRef};

use audit::AuditLog;
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
    audit: AuditLog,
    default_label: LabelName,
    limits: RenderLimits,
    /// Bumped when users, keys or roles change, so the authenticator drops
    /// what it cached.
    auth_epoch: Arc<std::sync::atomic::AtomicU64>,
    /// Approval workflows by classification and the compliance checks run
    /// on submission and approval, as stored (refreshed on change).
    governance: Arc<governance::Governance>,
    /// Labels that point only at approved versions and move only with
    /// `label:publish`.
    protected_labels: Vec<LabelName>,
    /// Web session lifetimes.
    sessions: crate::session::SessionSettings,
    /// Which deployments receive templates of each classification.
    delivery: promptvault_core::authz::delivery::DeliveryRules,
    /// The instance's signing key (none in registries built without one).
    signer: Option<crate::encryption::InstanceSigner>,
    /// Wakes the re-encryption worker.
    reseal: Arc<tokio::sync::Notify>,
    /// Scanning on save, render-input and output policy, output filters.
    content: Arc<crate::content::ContentPolicy>,
    /// Where templates render: worker processes or this one.
    engine: Arc<crate::isolation::Engine>,
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
        audit: AuditLog,
        default_label: LabelName,
        limits: RenderLimits,
    ) -> Self {
        Self {
            store,
            caches,
            usage,
            audit,
            default_label,
            limits,
            auth_epoch: Arc::default(),
            governance: Arc::new(
                governance::Governance::new(promptvault_core::compliance::BuiltinsConfig::default())
                    .expect("the default built-in checks are valid"),
            ),
            protected_labels: vec![LabelName::parse("production").expect("a valid label")],
            sessions: crate::session::SessionSettings::default(),
            delivery: promptvault_core::authz::delivery::DeliveryRules::default(),
            signer: None,
            reseal: Arc::default(),
            content: Arc::new(crate::content::ContentPolicy::default()),
            engine: Arc::new(crate::isolation::Engine::InProcess),
        }
    }

    /// Renders with `engine` (worker processes) instead of in process.
    #[must_use]
    pub fn with_engine(mut self, engine: crate::isolation::Engine) -> Self {
        self.engine = Arc::new(engine);
        self
    }

    /// Uses these delivery rules by classification instead of the built-in
    /// ones.
    #[must_use]
    pub fn with_delivery(mut self, rules: promptvault_core::authz::delivery::DeliveryRules) -> Self {
        self.delivery = rules;
        self
    }

    /// `target` judged by the delivery rules in force.
    fn with_rules<'a>(&'a self, target: &Target<'a>) -> Target<'a> {
        Target { delivery: Some(&self.delivery), ..*target }
    }

    /// Signs manifests with `signer` and wakes `reseal` after key changes.
    #[must_use]
    pub fn with_encryption(
        mut self,
        signer: crate::encryption::InstanceSigner,
        reseal: Arc<tokio::sync::Notify>,
    ) -> Self {
        self.signer = Some(signer);
        self.reseal = reseal;
        self
    }

    /// Uses this content policy (and its output filters) instead of the
    /// defaults.
    #[must_use]
    pub fn with_content(mut self, content: Arc<crate::content::ContentPolicy>) -> Self {
        self.content = content;
        self
    }

    /// Uses these workflows and checks (configured built-ins) instead of
    /// the defaults.
    #[must_use]
    pub fn with_governance(mut self, governance: Arc<governance::Governance>) -> Self {
        self.governance = governance;
        self
    }

    /// The workflows and checks in force.
    #[must_use]
    pub fn governance(&self) -> &Arc<governance::Governance> {
        &self.governance
    }

    /// Sets how long web sessions last.
    #[must_use]
    pub fn with_sessions(mut self, sessions: crate::session::SessionSettings) -> Self {
        self.sessions = sessions;
        self
    }

    /// Replaces the protected labels (`production` by default).
    #[must_use]
    pub fn with_protected_labels(mut self, labels: Vec<LabelName>) -> Self {
        self.protected_labels = labels;
        self
    }

    #[must_use]
    pub fn is_protected(&self, label: &LabelName) -> bool {
        self.protected_labels.contains(label)
    }

    /// The counter the authenticator watches.
    #[must_use]
    pub fn auth_epoch(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.auth_epoch.clone()
    }

    fn auth_changed(&self) {
        self.auth_epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    #[must_use]
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    #[must_use]
    pub fn default_label(&self) -> &LabelName {
        &self.default_label
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await.map_err(ServiceError::from)
    }

    /// Asks the policy; a denial is audited and answered with 403.
    async fn authorize(
        &self,
        who: &Principal,
        action: Action,
        resource: Resource,
        target: &Target<'_>,
        name: Option<&str>,
    ) -> Result<()> {
        let decision = decide(who, action, resource, &self.with_rules(target));
        if !decision.allowed {
            return self.deny(who, action, resource, name, decision.reason).await;
        }
        let max_age = self.sessions.reauth_after();
        if let Some(stale) =
            promptvault_core::authz::reauth::required(who, action, resource, target, Utc::now(), max_age)
        {
            // Audited like a denial, answered with its own code.
            let _ = self.deny(who, action, resource, name, stale.reason.clone()).await;
            return Err(ServiceError::ReauthenticationRequired { detail: stale.reason });
        }
        Ok(())
    }

    /// The rules of the version's lifecycle state: drafts and versions in
    /// review are for those working on the template, from the web
    /// deployment. A refusal is audited and answered with 403.
    async fn authorize_version(
        &self,
        who: &Principal,
        template: &promptvault_core::model::Template,
        version: &promptvault_core::model::Version,
        action: Action,
    ) -> Result<()> {
        let target = self.with_rules(&template_target(template));
        let decision =
            promptvault_core::authz::lifecycle::decide_version(who, version.seq, version.status, &target);
        if decision.allowed {
            return Ok(());
        }
        self.deny(who, action, Resource::Template, Some(template.name.as_str()), decision.reason).await
    }

    /// Refuses early, before anything is loaded, when no role of the
    /// principal grants the action on the resource in any scope: a denied
    /// caller learns nothing about what exists.
    async fn gate(
        &self,
        who: &Principal,
        action: Action,
        resource: Resource,
        name: Option<&str>,
    ) -> Result<()> {
        let any = who
            .roles
            .iter()
            .flat_map(|r| r.permissions.iter())
            .any(|p| p.resource == resource && p.action == action);
        if any {
            return Ok(());
        }
        let decision = decide(who, action, resource, &Target::default());
        if decision.allowed {
            return Ok(());
        }
        self.deny(who, action, resource, name, decision.reason).await
    }

    async fn deny(
        &self,
        who: &Principal,
        action: Action,
        resource: Resource,
        name: Option<&str>,
        reason: String,
    ) -> Result<()> {
        metrics::counter!("promptvault_authz_denied_total").increment(1);
        let ev = self.audit.event(
            who,
            &format!("{resource}.{action}"),
            resource.as_str(),
            name.map(str::to_owned),
            AuditOutcome::Denied,
            Some(reason.clone()),
            Value::Null,
        );
        self.audit.record(ev).await;
        Err(ServiceError::Forbidden { detail: reason })
    }

    /// The write context of a change: its audit event rides in the store's
    /// transaction.
    fn audited(
        &self,
        who: &Principal,
        action: &str,
        resource: Resource,
        name: &str,
        details: Value,
    ) -> Write {
        let ev = self.audit.event(
            who,
            action,
            resource.as_str(),
            Some(name.to_owned()),
            AuditOutcome::Success,
            None,
            details,
        );
        Write::audited(ev.at, ev)
    }

    /// Records a successful read or render (off the request path).
    async fn audit_ok(
        &self,
        who: &Principal,
        action: &str,
        resource: Resource,
        name: Option<&str>,
        details: Value,
    ) {
        let ev = self.audit.event(
            who,
            action,
            resource.as_str(),
            name.map(str::to_owned),
            AuditOutcome::Success,
            None,
            details,
        );
        self.audit.record(ev).await;
    }

    /// Records a change that failed after it was allowed (a stale write, a
    /// conflict): its own event, since its transaction rolled back.
    async fn audit_failed(
        &self,
        who: &Principal,
        action: &str,
        resource: Resource,
        name: &str,
        err: &ServiceError,
    ) {
        let ev = self.audit.event(
            who,
            action,
            resource.as_str(),
            Some(name.to_owned()),
            AuditOutcome::Failed,
            Some(err.to_string()),
            Value::Null,
        );
        self.audit.record(ev).await;
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

/// What decisions about a template depend on.
pub(crate) fn template_target(t: &promptvault_core::model::Template) -> Target<'_> {
    Target {
        type_key: Some(&t.type_key),
        type_policy: None,
        template: Some(TemplateFacts {
            name: &t.name,
            owner: t.owner_id,
            classification: t.security_classification,
            access: &t.access,
        }),
        new_classification: None,
        owner: None,
        delivery: None,
    }
}
