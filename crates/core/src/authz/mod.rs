//! Authorization: pure decisions from (principal, action, resource, target)
//! to allow or deny, each with the reason that produced it.
//!
//! The model is role-based and deny-by-default:
//!
//! * A [`Permission`] is a [`Resource`] × [`Action`] pair with a [`Scope`]
//!   (global, one prompt type, one template, or a folder of templates) and an
//!   optional constraint (the highest security classification it reaches).
//! * A [`RoleDef`] carries permissions; users hold roles. The built-in roles
//!   are in [`builtin`]; custom roles are made of the same parts.
//! * Per-template [`TemplateAccess`] settings (owner-only, allowed roles,
//!   restricted deployments) and per-type [`TypePolicy`] settings (restricted
//!   creation, allowed roles) narrow what the roles grant. They never widen it.
//!
//! [`decide`] is the one entry point. The server asks it before every
//! operation; `promptvault authz explain` shows its [`Decision`].

pub mod builtin;
pub mod delivery;
pub mod lifecycle;
pub mod reauth;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::classification::{DeploymentModel, SecurityClassification, UnknownVariant, text_enum};
use crate::ids::{ApiKeyId, UserId};
use crate::names::{PromptTypeKey, TemplateName};

/// What is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    /// Render a template.
    Execute,
    /// Approve or reject a version under review.
    Approve,
    /// Move a protected label; deprecate, archive or restore a version.
    Publish,
}

impl Action {
    pub const ALL: [Self; 7] =
        [Self::Create, Self::Read, Self::Update, Self::Delete, Self::Execute, Self::Approve, Self::Publish];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Execute => "execute",
            Self::Approve => "approve",
            Self::Publish => "publish",
        }
    }
}
text_enum!(Action, "action");

/// What it is done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Templates and their versions.
    Template,
    /// Prompt types.
    Type,
    /// Render records, outcomes and usage metrics.
    Prompt,
    /// Labels (moving a protected one needs `publish`).
    Label,
    User,
    Role,
    /// API keys (a user may always manage their own).
    Key,
    Audit,
    Workflow,
    Check,
    Remote,
    Webhook,
    /// Encryption keys: the master key's fingerprint, data keys, rotation.
    Encryption,
}

impl Resource {
    pub const ALL: [Self; 13] = [
        Self::Template,
        Self::Type,
        Self::Prompt,
        Self::Label,
        Self::User,
        Self::Role,
        Self::Key,
        Self::Audit,
        Self::Workflow,
        Self::Check,
        Self::Remote,
        Self::Webhook,
        Self::Encryption,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Template => "template",
            Self::Type => "type",
            Self::Prompt => "prompt",
            Self::Label => "label",
            Self::User => "user",
            Self::Role => "role",
            Self::Key => "key",
            Self::Audit => "audit",
            Self::Workflow => "workflow",
            Self::Check => "check",
            Self::Remote => "remote",
            Self::Webhook => "webhook",
            Self::Encryption => "encryption",
        }
    }

    /// Whether a template can be the target (so scopes and template
    /// settings apply).
    #[must_use]
    pub const fn is_template_bound(self) -> bool {
        matches!(self, Self::Template | Self::Label | Self::Prompt)
    }
}
text_enum!(Resource, "resource");

/// Where a permission applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Scope {
    #[default]
    Global,
    /// Templates of one prompt type (and the type itself).
    Type(PromptTypeKey),
    /// One template.
    Template(TemplateName),
    /// Every template whose name starts with `<folder>/`.
    Folder(String),
}

impl Scope {
    /// Whether the scope covers the target. A scoped permission never
    /// covers an operation without a template or type (listing all users,
    /// say): only a global one does.
    #[must_use]
    pub fn covers(&self, target: &Target<'_>) -> bool {
        match self {
            Scope::Global => true,
            Scope::Type(key) => target.type_key.is_some_and(|k| k == key),
            Scope::Template(name) => target.template.as_ref().is_some_and(|t| t.name == name),
            Scope::Folder(folder) => target.template.as_ref().is_some_and(|t| {
                let n = t.name.as_str();
                n.len() > folder.len() && n.starts_with(folder.as_str()) && n.as_bytes()[folder.len()] == b'/'
            }),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Type(k) => write!(f, "type={k}"),
            Scope::Template(n) => write!(f, "template={n}"),
            Scope::Folder(p) => write!(f, "folder={p}"),
        }
    }
}

/// One grant: `resource:action`, optionally `@scope`, optionally
/// `<=classification`. Its text form is what the CLI takes:
/// `template:read`, `template:update@type=support`,
/// `template:execute@folder=billing<=internal`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub resource: Resource,
    pub action: Action,
    #[serde(default, skip_serializing_if = "is_global")]
    pub scope: Scope,
    /// The highest classification this grant reaches (none: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_classification: Option<SecurityClassification>,
}

fn is_global(s: &Scope) -> bool {
    *s == Scope::Global
}

impl Permission {
    #[must_use]
    pub const fn global(resource: Resource, action: Action) -> Self {
        Self { resource, action, scope: Scope::Global, max_classification: None }
    }

    /// Whether this grant admits the classification of the target (a
    /// target without one, such as a user, is always admitted).
    fn admits(&self, target: &Target<'_>) -> bool {
        match (self.max_classification, target.classification()) {
            (Some(max), Some(c)) => c <= max,
            _ => true,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)?;
        if self.scope != Scope::Global {
            write!(f, "@{}", self.scope)?;
        }
        if let Some(c) = self.max_classification {
            write!(f, "<={c}")?;
        }
        Ok(())
    }
}

/// A permission that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission {input:?}: {reason}")]
pub struct PermissionError {
    pub input: String,
    pub reason: String,
}

impl FromStr for Permission {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| PermissionError { input: s.chars().take(120).collect(), reason };
        let (rest, max_classification) = match s.split_once("<=") {
            Some((r, c)) => (r, Some(c.parse::<SecurityClassification>().map_err(|e| err(e.to_string()))?)),
            None => (s, None),
        };
        let (head, scope) = match rest.split_once('@') {
            None => (rest, Scope::Global),
            Some((h, sc)) => {
                let scope = match sc.split_once('=') {
                    Some(("type", v)) => {
                        Scope::Type(PromptTypeKey::parse(v).map_err(|e| err(e.to_string()))?)
                    }
                    Some(("template", v)) => {
                        Scope::Template(TemplateName::parse(v).map_err(|e| err(e.to_string()))?)
                    }
                    Some(("folder", v)) => {
                        let v = v.trim_end_matches('/');
                        // A folder is a name prefix; it must itself be a valid name.
                        TemplateName::parse(v).map_err(|e| err(e.to_string()))?;
                        Scope::Folder(v.to_owned())
                    }
                    _ if sc == "global" => Scope::Global,
                    _ => {
                        return Err(err(
                            "the scope must be global, type=<key>, template=<name> or folder=<prefix>".into(),
                        ));
                    }
                };
                (h, scope)
            }
        };
        let (resource, action) =
            head.split_once(':').ok_or_else(|| err("expected resource:action, e.g. template:read".into()))?;
        Ok(Self {
            resource: resource.parse().map_err(|e: UnknownVariant| err(e.to_string()))?,
            action: action.parse().map_err(|e: UnknownVariant| err(e.to_string()))?,
            scope,
            max_classification,
        })
    }
}

/// A role: a name and what it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<Permission>,
    /// Built-in roles cannot be changed or deleted.
    #[serde(default)]
    pub builtin: bool,
}

impl RoleDef {
    /// The built-in `admin` role: every resource, every action. It alone
    /// passes per-template and per-type restrictions (the break-glass role,
    /// audited like everyone else).
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.builtin && self.name == builtin::ADMIN
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Credential {
    ApiKey(ApiKeyId),
    /// A web session (password login).
    Session,
    /// A bearer JWT from an external identity provider.
    Jwt,
}

/// Who is asking, with the roles (and so permissions) they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    /// How people know them (an e-mail, or a key name).
    pub display: String,
    pub credential: Credential,
    pub roles: Vec<RoleDef>,
    /// The deployment the request comes from (the key's binding, or the
    /// session's); `None` is the central web deployment.
    pub deployment: Option<DeploymentModel>,
    /// Where the request came from, for the audit trail.
    pub origin: Origin,
    /// For a web session: when it last proved its password (sign-in or
    /// re-authentication). `None` for API keys and JWTs.
    pub authenticated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The request a principal acts through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

impl Principal {
    #[must_use]
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.name.as_str()).collect()
    }

    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(RoleDef::is_admin)
    }

    #[must_use]
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r.name == name)
    }
}

/// Per-template access settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateAccess {
    /// Only the owner (and admins) may change the template: new versions,
    /// edits, labels, lifecycle moves, deletion. Others keep what their
    /// roles give them to read and render.
    #[serde(default)]
    pub owner_only: bool,
    /// When not empty, only principals holding one of these roles (and
    /// admins) may do anything with the template, reading included.
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// When not empty, the deployments the template may be delivered to.
    #[serde(default)]
    pub restricted_deployments: Vec<DeploymentModel>,
    /// Whether the template may be delivered to the desktop deployments
    /// that keep content offline, where the classification rules ask for
    /// that mark (confidential templates, by default).
    #[serde(default)]
    pub offline_allowed: bool,
    /// The output filter chain for renders of this template, replacing the
    /// one configured for its classification (`[content.output]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_filters: Option<Vec<String>>,
}

impl TemplateAccess {
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Per-type settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypePolicy {
    /// Only holders of `allowed_roles` (and admins) may create templates of
    /// this type.
    #[serde(default)]
    pub restricted_creation: bool,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Versions of templates of this type must pass the approval workflow
    /// before they are approved (true by default). When false, a principal
    /// allowed to approve may approve a version directly, their own
    /// included.
    #[serde(default = "yes")]
    pub requires_approval: bool,
}

fn yes() -> bool {
    true
}

impl Default for TypePolicy {
    fn default() -> Self {
        Self { restricted_creation: false, allowed_roles: vec![], requires_approval: true }
    }
}

/// The facts about a template that decisions depend on.
#[derive(Debug, Clone, Copy)]
pub struct TemplateFacts<'a> {
    pub name: &'a TemplateName,
    pub owner: Option<UserId>,
    pub classification: SecurityClassification,
    pub access: &'a TemplateAccess,
}

/// What an operation is about. Empty for collection-wide operations
/// (listing users, say).
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub type_key: Option<&'a PromptTypeKey>,
    pub type_policy: Option<&'a TypePolicy>,
    pub template: Option<TemplateFacts<'a>>,
    /// For a template being created: its classification.
    pub new_classification: Option<SecurityClassification>,
    /// For users' own things (keys, their own user record): whose they are.
    pub owner: Option<UserId>,
    /// The delivery rules by classification in force; `None` judges by
    /// the built-in ones ([`delivery::DeliveryRules::builtin`]).
    pub delivery: Option<&'a delivery::DeliveryRules>,
}

impl Target<'_> {
    fn classification(&self) -> Option<SecurityClassification> {
        self.template.as_ref().map(|t| t.classification).or(self.new_classification)
    }
}

/// The answer, with the reason that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
    /// The role and permission that allowed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
}

impl Decision {
    pub(crate) fn deny(reason: impl Into<String>) -> Self {
        Self { allowed: false, reason: reason.into(), granted_by: None }
    }
}

/// Decides whether `principal` may take `action` on `resource` for `target`.
///
/// Order: (1) a user may manage their own API keys and read their own user
/// record; (2) some role of the principal must hold a permission for the
/// resource and action whose scope covers the target and whose
/// classification limit admits it; (3) the template's settings and the
/// type's creation rule may still deny (admins pass them); (4) the
/// deployment restriction denies delivery to a deployment not listed, and
/// the delivery rules of the template's classification deny delivery to a
/// deployment they do not admit, for everyone.
#[must_use]
pub fn decide(principal: &Principal, action: Action, resource: Resource, target: &Target<'_>) -> Decision {
    let what = format!("{resource}:{action}");

    // (4) first: it binds admins too.
    if let Some(denied) = delivery_denied(principal, resource, target) {
        return denied;
    }

    // (1) self-service.
    if let Some(owner) = target.owner
        && owner == principal.user_id
        && (resource == Resource::Key || (resource == Resource::User && action == Action::Read))
    {
        return Decision {
            allowed: true,
            reason: format!("anyone may {action} their own {resource}"),
            granted_by: Some("self".into()),
        };
    }

    // (2) the roles.
    let mut scoped_miss: Option<String> = None;
    let mut class_miss: Option<String> = None;
    let mut grant: Option<(&RoleDef, &Permission)> = None;
    for role in &principal.roles {
        for p in role.permissions.iter().filter(|p| p.resource == resource && p.action == action) {
            if !p.scope.covers(target) {
                scoped_miss.get_or_insert_with(|| {
                    format!("role {} grants {p}, which does not cover this", role.name)
                });
                continue;
            }
            if !p.admits(target) {
                class_miss.get_or_insert_with(|| {
                    format!(
                        "role {} grants {p}, but the template is {}",
                        role.name,
                        target.classification().map_or("unclassified", SecurityClassification::as_str)
                    )
                });
                continue;
            }
            grant = Some((role, p));
            break;
        }
        if grant.is_some() {
            break;
        }
    }
    let Some((role, perm)) = grant else {
        let roles = principal.role_names();
        let held =
            if roles.is_empty() { "no roles".to_owned() } else { format!("roles {}", roles.join(", ")) };
        let why = class_miss.or(scoped_miss).unwrap_or_else(|| format!("none of them grants {what}"));
        return Decision::deny(format!("denied {what}: {} holds {held}; {why}", principal.display));
    };
    let granted_by = format!("{}: {perm}", role.name);
    let admin = principal.is_admin();

    // (3) template settings.
    if let Some(t) = target.template.as_ref()
        && resource.is_template_bound()
        && !admin
    {
        let a = t.access;
        if !a.allowed_roles.is_empty() && !a.allowed_roles.iter().any(|r| principal.has_role(r)) {
            return Decision::deny(format!(
                "template {} is restricted to the roles {}; {} holds none of them",
                t.name,
                a.allowed_roles.join(", "),
                principal.display
            ));
        }
        let changes = !matches!(action, Action::Read | Action::Execute);
        let owner = t.owner == Some(principal.user_id);
        // Outcomes of one's own renders are not a change to the template.
        if a.owner_only && changes && resource != Resource::Prompt && !owner {
            return Decision::deny(format!(
                "template {} is owner-only: only its owner (or an admin) may {action} it",
                t.name
            ));
        }
    }

    // (3) type creation rule.
    if resource == Resource::Template
        && action == Action::Create
        && let Some(policy) = target.type_policy
        && policy.restricted_creation
        && !admin
        && !policy.allowed_roles.iter().any(|r| principal.has_role(r))
    {
        let key = target.type_key.map_or("this type", PromptTypeKey::as_str);
        let roles = if policy.allowed_roles.is_empty() {
            "no role (admins only)".to_owned()
        } else {
            policy.allowed_roles.join(", ")
        };
        return Decision::deny(format!("creating templates of type {key} is restricted to {roles}"));
    }

    Decision {
        allowed: true,
        reason: format!("role {} grants {perm}", role.name),
        granted_by: Some(granted_by),
    }
}

/// Step (4) of [`decide`] alone: whether the template may be delivered to
/// the deployment the request comes from (its own `restricted_deployments`,
/// then the delivery rules of its classification). A denial, or `None`.
/// Renders check it for every template they include, too.
#[must_use]
pub fn delivery_denied(principal: &Principal, resource: Resource, target: &Target<'_>) -> Option<Decision> {
    if let (Some(t), Some(dep)) = (target.template.as_ref(), principal.deployment)
        && resource.is_template_bound()
        && !t.access.restricted_deployments.is_empty()
        && !t.access.restricted_deployments.contains(&dep)
    {
        let allowed: Vec<&str> = t.access.restricted_deployments.iter().map(|d| d.as_str()).collect();
        return Some(Decision::deny(format!(
            "template {} may only be delivered to {}; this request comes from {}",
            t.name,
            allowed.join(", "),
            dep.as_str()
        )));
    }
    let rules = target.delivery.unwrap_or_else(|| delivery::DeliveryRules::builtin());
    target.template.as_ref().and_then(|t| rules.check(principal, resource, t))
}

#[cfg(test)]
mod tests;
