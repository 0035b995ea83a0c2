//! What the store takes and returns besides the domain records.

use chrono::{DateTime, Utc};
use promptvault_core::authz::RoleDef;
use promptvault_core::model::{Deprecation, OutcomeRecord, PromptRecord, Revision, UsageMetrics, Version};
use promptvault_core::workflow::{Approval, ApprovalOutcome};
use promptvault_core::{
    ApiKeyId, Bump, ContentHash, LabelName, PromptId, PromptTypeId, PromptTypeKey, SecurityClassification,
    Tag, TemplateName, UserId, VersionContent, VersionStatus,
};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct NewPromptType {
    pub key: PromptTypeKey,
    pub name: String,
    pub schema: Option<Value>,
    pub policy: promptvault_core::authz::TypePolicy,
}

/// `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct PromptTypePatch {
    pub name: Option<String>,
    pub schema: Option<Option<Value>>,
    pub policy: Option<promptvault_core::authz::TypePolicy>,
}

#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub name: TemplateName,
    pub prompt_type_id: PromptTypeId,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    pub creator_id: Option<UserId>,
    pub owner_id: Option<UserId>,
    pub tags: Vec<Tag>,
    pub security_classification: SecurityClassification,
    pub access: promptvault_core::authz::TemplateAccess,
}

#[derive(Debug, Clone, Default)]
pub struct TemplatePatch {
    pub prompt_type_id: Option<PromptTypeId>,
    pub description: Option<Option<String>>,
    pub long_description_markdown: Option<Option<String>>,
    pub owner_id: Option<Option<UserId>>,
    pub tags: Option<Vec<Tag>>,
    pub security_classification: Option<SecurityClassification>,
    pub access: Option<promptvault_core::authz::TemplateAccess>,
}

/// A version as the service computed it; the store assigns id and sequence.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub content: VersionContent,
    pub content_hash: ContentHash,
    pub version: semver::Version,
    pub bump: Option<Bump>,
    pub author_id: Option<UserId>,
    pub change_description: Option<String>,
    pub restored_from: Option<u32>,
}

/// A move along the lifecycle ([`crate::Store::transition_version`]).
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// The status to move to; must be one of the current status's
    /// [`VersionStatus::allowed_transitions`].
    pub to: VersionStatus,
    /// Starts a new review round (a submission): the round counter grows by
    /// one and approvals of earlier rounds stop counting.
    pub new_round: bool,
    /// `None` leaves the deprecation notice alone; `Some(None)` clears it.
    pub deprecation: Option<Option<Deprecation>>,
    /// `None` leaves the stored check results alone.
    pub check_results: Option<Value>,
    /// A decision to record with the move (typically the submission), in
    /// the version's round as it is after the move.
    pub decision: Option<NewDecision>,
}

impl StatusChange {
    /// A plain move: no new round, nothing else changed, nothing recorded.
    #[must_use]
    pub fn to(status: VersionStatus) -> Self {
        Self { to: status, new_round: false, deprecation: None, check_results: None, decision: None }
    }
}

/// What a recorded decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionKind {
    Submit,
    Approve,
    Reject,
}

impl DecisionKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

impl std::fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DecisionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "submit" => Ok(Self::Submit),
            "approve" => Ok(Self::Approve),
            "reject" => Ok(Self::Reject),
            other => Err(format!("unknown decision {other:?}")),
        }
    }
}

/// A decision recorded by [`crate::Store::transition_version`]; it is
/// stamped with the write's time and the version's (new) round.
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// The workflow step it belongs to (for a submission, any name the
    /// caller chooses, e.g. `submit`).
    pub step: String,
    pub user_id: UserId,
    pub decision: DecisionKind,
    pub comment: Option<String>,
}

/// One reviewer's decision on a version in review
/// ([`crate::Store::review_decision`]).
#[derive(Debug, Clone)]
pub struct ReviewInput {
    pub user_id: UserId,
    /// The roles the reviewer holds (built-in and custom), as authorization
    /// resolved them.
    pub roles: Vec<String>,
    /// Required for a rejection.
    pub comment: Option<String>,
    /// `true` approves, `false` rejects.
    pub approve: bool,
    /// When the decision was taken; recorded on the decision.
    pub at: DateTime<Utc>,
    /// Stored on the version when this approval completes the workflow.
    pub check_results: Option<Value>,
}

/// What a review decision did.
#[derive(Debug, Clone)]
pub struct ReviewResult {
    /// The version after the decision.
    pub version: Version,
    /// What the approval counted for; `None` for a rejection.
    pub outcome: Option<ApprovalOutcome>,
}

/// A recorded decision on a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    pub round: u32,
    pub step: String,
    pub user_id: UserId,
    pub decision: DecisionKind,
    pub comment: Option<String>,
    pub decided_at: DateTime<Utc>,
}

/// A version waiting in review, with its current round's approvals.
#[derive(Debug, Clone, PartialEq)]
pub struct InReview {
    pub template: TemplateName,
    pub seq: u32,
    pub classification: SecurityClassification,
    pub round: u32,
    /// When the version entered review (its last status change).
    pub submitted_at: DateTime<Utc>,
    /// The current round's approvals, oldest first.
    pub approvals: Vec<Approval>,
}

/// Which version of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    Seq(u32),
    Semver(semver::Version),
    Label(LabelName),
    Latest,
}

/// Filters for listing templates. All given filters must match.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub type_key: Option<PromptTypeKey>,
    pub tag: Option<Tag>,
    /// Templates that have at least one version in this status.
    pub status: Option<VersionStatus>,
    pub classification: Option<SecurityClassification>,
    pub owner_id: Option<UserId>,
    /// Templates under this folder (`support` matches `support/x` and `support/en/y`).
    pub folder: Option<String>,
    /// Full-text search over name, description, tags and text.
    pub query: Option<String>,
}

pub const MAX_PAGE: u32 = 200;

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: 50, cursor: None }
    }
}

impl PageRequest {
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE)
    }
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A user to create. `id` defaults to a fresh id; everything else to
/// nothing (no roles, no password).
#[derive(Clone, Default)]
pub struct NewUser {
    pub id: UserId,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Built-in or stored custom role names; stored sorted, without duplicates.
    pub roles: Vec<String>,
    pub supabase_user_id: Option<uuid::Uuid>,
    pub did: Option<String>,
    pub external_user_id: Option<String>,
    pub at_protocol_handle: Option<String>,
    pub data: Option<Value>,
    /// An argon2 PHC string; never the password itself.
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("roles", &self.roles)
            .field("supabase_user_id", &self.supabase_user_id)
            .field("did", &self.did)
            .field("external_user_id", &self.external_user_id)
            .field("at_protocol_handle", &self.at_protocol_handle)
            .field("data", &self.data)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Changes to a user. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Clone, Default)]
pub struct UserPatch {
    pub email: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub supabase_user_id: Option<Option<uuid::Uuid>>,
    pub did: Option<Option<String>>,
    pub external_user_id: Option<Option<String>>,
    pub at_protocol_handle: Option<Option<String>>,
    pub data: Option<Option<Value>>,
    pub password_hash: Option<Option<String>>,
    /// `Some(true)` disables the user (an already disabled user keeps the
    /// time it was first disabled) and ends their web sessions;
    /// `Some(false)` enables it again.
    pub disabled: Option<bool>,
}

impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPatch")
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("supabase_user_id", &self.supabase_user_id)
            .field("did", &self.did)
            .field("external_user_id", &self.external_user_id)
            .field("at_protocol_handle", &self.at_protocol_handle)
            .field("data", &self.data)
            .field("password_hash", &self.password_hash.as_ref().map(|h| h.as_ref().map(|_| "<redacted>")))
            .field("disabled", &self.disabled)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub supabase_user_id: Option<uuid::Uuid>,
    pub did: Option<String>,
    pub external_user_id: Option<String>,
    pub email: Option<String>,
    pub at_protocol_handle: Option<String>,
    pub data: Option<Value>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    /// When the user was disabled; a disabled user cannot authenticate.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Sorted, without duplicates.
    pub roles: Vec<String>,
}

/// A custom role as stored (built-in roles live in `promptvault-core` and
/// are never stored). `def.builtin` is always false.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRole {
    pub def: RoleDef,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: Revision,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: String,
    /// The public part of the token, unique; used to find the key.
    pub prefix: String,
    /// SHA-256 of the whole token.
    pub secret_hash: [u8; 32],
    pub expires_at: Option<DateTime<Utc>>,
    /// The deployment requests made with this key come from
    /// (`electron_local`, ...); `None` for the central web deployment.
    pub deployment: Option<String>,
}

/// A key with what authentication needs of its user: roles and whether the
/// user is disabled.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: String,
    pub prefix: String,
    pub secret_hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub deployment: Option<String>,
    /// The user's roles, sorted.
    pub roles: Vec<String>,
    pub user_disabled: bool,
}

/// A web session, found by the SHA-256 of its token. Expired sessions are
/// still found (the caller compares `expires_at`) until
/// [`crate::Store::delete_expired_sessions`] removes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the session last proved its password: sign-in, or
    /// re-authentication.
    pub authenticated_at: DateTime<Utc>,
}

/// Work for the usage writer, applied in order within one transaction.
#[derive(Debug, Clone)]
pub enum UsageEvent {
    Render(Box<PromptRecord>),
    Outcome { prompt_id: PromptId, outcome: OutcomeRecord },
}

/// What became of one outcome report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeResult {
    Recorded,
    UnknownPrompt,
    AlreadyReported,
}

/// Usage of one template, overall and per version.
#[derive(Debug, Clone, Default)]
pub struct TemplateMetrics {
    pub total: UsageMetrics,
    /// `(sequence number, metrics)`, newest version first.
    pub versions: Vec<(u32, UsageMetrics)>,
}

/// A row changed; caches holding it must drop it. `None` means everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotice {
    pub template: Option<TemplateName>,
}

/// The expected state for a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever the current state.
    Any,
    /// Write only if the row is at this revision.
    Revision(Revision),
}

impl Expect {
    /// Refuses the write when the row moved past the expected revision.
    pub(crate) fn check(self, what: &'static str, current: Revision) -> Result<(), crate::StoreError> {
        match self {
            Expect::Revision(r) if r != current => {
                Err(crate::StoreError::Stale { what, current: Some(current) })
            }
            _ => Ok(()),
        }
    }
}

/// The context of a write: when it happens, and the audit event that the
/// store appends to the audit trail in the same transaction (so a change
/// and its record commit or roll back together).
#[derive(Debug, Clone)]
pub struct Write {
    pub at: DateTime<Utc>,
    pub audit: Option<promptvault_core::audit::NewAuditEvent>,
}

impl Write {
    #[must_use]
    pub fn audited(at: DateTime<Utc>, event: promptvault_core::audit::NewAuditEvent) -> Self {
        Self { at, audit: Some(event) }
    }
}

impl From<DateTime<Utc>> for Write {
    fn from(at: DateTime<Utc>) -> Self {
        Self { at, audit: None }
    }
}

/// Which audit events to list. All given filters must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub after_seq: Option<i64>,
    pub before_seq: Option<i64>,
    pub actor_id: Option<String>,
    /// `template.` matches every template action.
    pub action_prefix: Option<String>,
    pub resource_kind: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<promptvault_core::audit::AuditOutcome>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub newest_first: bool,
    pub limit: u32,
}

/// What a retention purge removed, and the checkpoint that replaces it.
#[derive(Debug, Clone)]
pub struct PurgeReport {
    pub purged: u64,
    pub checkpoint: Option<promptvault_core::audit::Checkpoint>,
}

/// The chain's head and the newest checkpoint.
#[derive(Debug, Clone)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: promptvault_core::audit::ChainHash,
    pub checkpoint: Option<promptvault_core::audit::Checkpoint>,
}

/// Where an approval workflow or a custom compliance check was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// Through the API (or the CLI).
    Api,
    /// From a file named in the settings, applied at start.
    File,
}

impl ConfigSource {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::File => "file",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(Self::Api),
            "file" => Some(Self::File),
            _ => None,
        }
    }
}

/// A stored definition (a workflow or a custom check) with its row facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<D> {
    pub def: D,
    pub source: ConfigSource,
    pub updated_at: DateTime<Utc>,
    pub revision: Revision,
}

/// An approval workflow as stored.
pub type StoredWorkflow = Stored<promptvault_core::workflow::WorkflowDefinition>;
/// A custom compliance check as stored.
pub type StoredCheck = Stored<promptvault_core::compliance::CheckDefinition>;

/// How a put treats a stored row of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Only when no row has the name ([`crate::Conflict::AlreadyExists`]).
    Create,
    /// Only an existing row ([`crate::StoreError::NotFound`]), at the
    /// expected revision ([`crate::StoreError::Stale`]).
    Replace(Expect),
}

/// What applying a configuration file changed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSync {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
}

impl FileSync {
    /// Whether the file matched what was stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}
