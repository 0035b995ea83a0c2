//! The port every backend implements.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promptvault_core::model::{Label, LabelMove, PromptRecord, PromptType, Template, Version};
use promptvault_core::{
    ApiKeyId, LabelName, PromptId, PromptTypeId, PromptTypeKey, TemplateId, TemplateName, UserId,
    VersionStatus,
};
use tokio::sync::broadcast;
use uuid::Uuid;

use promptvault_core::audit::{AuditEvent, NewAuditEvent};
use promptvault_core::authz::{Permission, RoleDef};

use crate::error::Result;
use crate::types::{
    ApiKeyRecord, AuditFilter, AuditHead, ChangeNotice, DecisionRecord, Expect, FileSync, InReview,
    NewApiKey, NewPromptType, NewTemplate, NewUser, NewVersion, OutcomeResult, Page, PageRequest,
    PromptTypePatch, PurgeReport, Put, ReviewInput, ReviewResult, SessionRecord, StatusChange, StoredCheck,
    StoredRole, StoredWorkflow, TemplateFilter, TemplateMetrics, TemplatePatch, UsageEvent, User, UserPatch,
    VersionSelector, Write,
};
use promptvault_core::compliance::CheckDefinition;
use promptvault_core::workflow::WorkflowDefinition;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Persistence for the registry. Every method that writes does so in one
/// transaction; conditional writes take an [`Expect`] and fail with
/// [`crate::StoreError::Stale`] rather than overwrite a newer row.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// Notices of committed changes, from this process and (PostgreSQL)
    /// from every other process sharing the database.
    fn subscribe(&self) -> broadcast::Receiver<ChangeNotice>;

    /// Closes connections after pending work.
    async fn close(&self);

    // --- encryption at rest ---------------------------------------------

    /// Keys, fingerprint, and rows left to re-encrypt.
    async fn encryption_status(&self) -> Result<crate::EncryptionStatus>;
    /// Makes a new data key the one that seals; rows sealed with older keys
    /// are re-encrypted by [`Store::reseal_batch`]. Returns its id.
    async fn rotate_data_key(&self) -> Result<String>;
    /// Re-wraps every data key with `new` (online: content is not touched).
    /// This process keeps its unwrapped keys; every process must be
    /// restarted with the new key before it rotates data keys again.
    async fn rewrap_master(&self, new: crate::MasterKey) -> Result<()>;
    /// One step of re-encryption (rows on older keys, renders of templates
    /// newly in scope); returns the rows rewritten, 0 when none are left.
    /// Each step is one transaction, so an interrupted rotation resumes.
    async fn reseal_batch(&self, limit: u32) -> Result<u64>;
    /// The instance's signing key: the stored one, or `candidate` stored
    /// (its secret wrapped by the master key) when there is none yet.
    async fn instance_key(&self, candidate: crate::InstanceKey) -> Result<crate::InstanceKey>;

    // --- users and keys -------------------------------------------------

    /// Creates the first user and key if no key exists yet; `false` when
    /// keys already exist (nothing is written then).
    async fn bootstrap_admin(&self, user: NewUser, key: NewApiKey) -> Result<bool>;
    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKeyRecord>>;
    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<()>;
    async fn get_user(&self, id: UserId) -> Result<Option<User>>;

    // --- identities -----------------------------------------------------
    //
    // Every write appends `w.audit` in its own transaction. Role names a
    // user holds must be built-in or stored custom roles
    // ([`crate::StoreError::NotFound`] otherwise).

    /// Refused with [`crate::Conflict::AlreadyExists`] when the e-mail
    /// (compared case-insensitively), the external user id or the Supabase
    /// user id is already someone's.
    async fn create_user(&self, new: NewUser, w: Write) -> Result<User>;
    /// By e-mail (users without one last), then id.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Compared case-insensitively.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn find_user_by_external_id(&self, external_id: &str) -> Result<Option<User>>;
    async fn find_user_by_supabase_id(&self, supabase_user_id: Uuid) -> Result<Option<User>>;
    /// `None` when the user has no password, or does not exist.
    async fn user_password_hash(&self, id: UserId) -> Result<Option<String>>;
    /// Same uniqueness rules as [`Store::create_user`]. Disabling a user
    /// ends their web sessions.
    async fn update_user(&self, id: UserId, patch: UserPatch, w: Write) -> Result<User>;
    /// Deletes the user with their keys, roles and sessions; what they
    /// created or own stays, without them.
    async fn delete_user(&self, id: UserId, w: Write) -> Result<()>;
    /// Replaces the user's roles with `roles` (sorted, deduplicated).
    async fn set_user_roles(&self, id: UserId, roles: Vec<String>, w: Write) -> Result<User>;

    /// Custom roles, by name.
    async fn list_roles(&self) -> Result<Vec<StoredRole>>;
    async fn get_role(&self, name: &str) -> Result<Option<StoredRole>>;
    /// Refused with [`crate::Conflict::AlreadyExists`] when a custom or a
    /// built-in role has this name.
    async fn create_role(&self, role: RoleDef, w: Write) -> Result<StoredRole>;
    async fn update_role(
        &self,
        name: &str,
        expect: Expect,
        description: String,
        permissions: Vec<Permission>,
        w: Write,
    ) -> Result<StoredRole>;
    /// Refused with [`crate::Conflict::InUse`] while users hold the role.
    async fn delete_role(&self, name: &str, w: Write) -> Result<()>;

    /// Refused with [`crate::Conflict::AlreadyExists`] when the prefix is
    /// taken.
    async fn create_api_key(&self, new: NewApiKey, w: Write) -> Result<ApiKeyRecord>;
    /// Of one user, or everyone's; newest first.
    async fn list_api_keys(&self, user: Option<UserId>) -> Result<Vec<ApiKeyRecord>>;
    async fn get_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>>;
    /// Marks the key revoked at `at`; a key already revoked keeps its first
    /// revocation time.
    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>, w: Write) -> Result<ApiKeyRecord>;

    /// Stores a web session by the SHA-256 of its token.
    async fn create_session(
        &self,
        token_hash: [u8; 32],
        user: UserId,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        w: Write,
    ) -> Result<SessionRecord>;
    async fn find_session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>>;
    /// Records activity (never moves `last_seen_at` back); not audited, and
    /// nothing happens for an unknown session.
    async fn touch_session(&self, token_hash: &[u8; 32], at: DateTime<Utc>) -> Result<()>;
    async fn delete_session(&self, token_hash: &[u8; 32], w: Write) -> Result<()>;
    /// Records that the session proved its password again at `at` (also
    /// activity); `NotFound` for an unknown session.
    async fn reauthenticate_session(&self, token_hash: &[u8; 32], at: DateTime<Utc>, w: Write) -> Result<()>;
    /// Deletes sessions that expired at or before `now`; how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64>;

    // --- prompt types ---------------------------------------------------

    async fn create_prompt_type(&self, new: NewPromptType, w: Write) -> Result<PromptType>;
    async fn get_prompt_type(&self, key: &PromptTypeKey) -> Result<Option<PromptType>>;
    async fn get_prompt_type_by_id(&self, id: PromptTypeId) -> Result<Option<PromptType>>;
    async fn list_prompt_types(&self) -> Result<Vec<PromptType>>;
    async fn update_prompt_type(
        &self,
        key: &PromptTypeKey,
        expect: Expect,
        patch: PromptTypePatch,
        w: Write,
    ) -> Result<PromptType>;
    /// Refused with [`crate::Conflict::InUse`] while templates have this type.
    async fn delete_prompt_type(&self, key: &PromptTypeKey, expect: Expect, w: Write) -> Result<()>;

    // --- templates ------------------------------------------------------

    /// Creates a template with its first version (sequence 1).
    async fn create_template(
        &self,
        new: NewTemplate,
        first: NewVersion,
        w: Write,
    ) -> Result<(Template, Version)>;
    async fn get_template(&self, name: &TemplateName) -> Result<Option<Template>>;
    /// The template with this id (renderings name their template by id).
    async fn get_template_by_id(&self, id: TemplateId) -> Result<Option<Template>>;
    async fn update_template(
        &self,
        name: &TemplateName,
        expect: Expect,
        patch: TemplatePatch,
        w: Write,
    ) -> Result<Template>;
    /// Deletes a template with its versions and labels; its renders stay,
    /// detached.
    async fn delete_template(&self, name: &TemplateName, expect: Expect, w: Write) -> Result<()>;
    /// Lists in name order, or by relevance when the filter has a query.
    async fn list_templates(&self, filter: &TemplateFilter, page: &PageRequest) -> Result<Page<Template>>;

    // --- versions -------------------------------------------------------

    /// Adds a version after `base_seq`, which must still be the newest
    /// ([`crate::Conflict::StaleBase`] otherwise).
    async fn create_version(
        &self,
        template: TemplateId,
        base_seq: u32,
        new: NewVersion,
        w: Write,
    ) -> Result<Version>;
    /// Replaces the content of a draft that is still the newest version.
    async fn update_draft(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        new: NewVersion,
        w: Write,
    ) -> Result<Version>;
    /// Deletes a draft that no label points at.
    async fn delete_draft(&self, template: TemplateId, seq: u32, expect: Expect, w: Write) -> Result<()>;
    /// Moves a version along the lifecycle; the caller checked the transition.
    async fn set_version_status(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        status: VersionStatus,
        w: Write,
    ) -> Result<Version>;
    async fn get_version(&self, template: TemplateId, selector: &VersionSelector) -> Result<Option<Version>>;
    /// Template and version in one round trip: the hot path of reads and renders.
    async fn resolve(
        &self,
        name: &TemplateName,
        selector: &VersionSelector,
    ) -> Result<Option<(Template, Version)>>;
    /// Newest first.
    async fn list_versions(&self, template: TemplateId, page: &PageRequest) -> Result<Page<Version>>;

    // --- lifecycle ------------------------------------------------------
    //
    // Each method runs in one transaction with the version row locked
    // (PostgreSQL: the template, then the version; SQLite: the single
    // writer), appends `w.audit`, and announces the change like every
    // version write. A refused write changes nothing and records nothing.

    /// Moves version `seq` along the lifecycle. Refused with
    /// [`crate::StoreError::Stale`] when `expect` names another revision and
    /// with [`crate::Conflict::InvalidTransition`] when the state machine has
    /// no such move. Sets `status_changed_at` and `updated_at` to `w.at`,
    /// starts a new review round when asked, applies the deprecation notice
    /// and check results when given, and records `change.decision` (in the
    /// round as it is after the move).
    ///
    /// This does not consult any approval workflow: approvals and
    /// rejections under one go through [`Store::review_decision`]; a caller
    /// may move `review → approved` here only where no approval is required.
    async fn transition_version(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        change: StatusChange,
        w: Write,
    ) -> Result<Version>;
    /// Records one approval or rejection of version `seq`, race-safely:
    /// with the version locked, it re-reads the current round's approvals
    /// and re-runs [`promptvault_core::workflow::check_approval`] (or
    /// `check_rejection`) against the version's author before writing.
    ///
    /// A rejection sends the version back to `draft`; the approval that
    /// completes the workflow moves it to `approved` (storing
    /// `decision.check_results` when given); any other approval only adds
    /// its decision (the version's revision stays).
    ///
    /// Refused with [`crate::Conflict::NotInReview`] when the version is not
    /// in review, and with [`crate::Conflict::ReviewRefused`] when the
    /// workflow refuses (code `workflow_complete` also when the version was
    /// already approved by this round's approvals).
    async fn review_decision(
        &self,
        template: TemplateId,
        seq: u32,
        decision: ReviewInput,
        workflow: &WorkflowDefinition,
        w: Write,
    ) -> Result<ReviewResult>;
    /// Every decision on version `seq`, all rounds, oldest first; empty when
    /// the version does not exist.
    async fn list_decisions(&self, template: TemplateId, seq: u32) -> Result<Vec<DecisionRecord>>;
    /// Every version in review with its current round's approvals, longest
    /// waiting first (for SLA and overdue listings).
    async fn list_in_review(&self) -> Result<Vec<InReview>>;

    // --- approval workflows and compliance checks ------------------------
    //
    // The caller validates definitions (core); the store keeps them
    // consistent with each other and with the versions in review. Every
    // write appends `w.audit` in its transaction and announces a change of
    // everything (`ChangeNotice { template: None }`, across processes on
    // PostgreSQL), which is how registries learn to reload them.

    /// Stored workflows, by name.
    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>>;
    async fn get_workflow(&self, name: &str) -> Result<Option<StoredWorkflow>>;
    /// Creates or replaces a workflow (source `api`). Refused with
    /// [`crate::Conflict::WorkflowSet`] when two stored workflows would claim
    /// one classification, and with [`crate::Conflict::InUse`] when a
    /// classification it governed would pass to another workflow (or none)
    /// while versions of that classification are in review.
    async fn put_workflow(&self, def: WorkflowDefinition, put: Put, w: Write) -> Result<StoredWorkflow>;
    /// Refused like [`Store::put_workflow`] while versions of its
    /// classifications are in review.
    async fn delete_workflow(&self, name: &str, expect: Expect, w: Write) -> Result<()>;
    /// Makes the workflows file's definitions the stored ones with source
    /// `file`: new ones created, changed ones (or ones since edited through
    /// the API) replaced, unchanged ones left alone, and those from the file
    /// that it no longer lists deleted; workflows created through the API
    /// under other names stay. All or nothing, with the refusals of
    /// [`Store::put_workflow`]. `w.audit` is appended only when something
    /// changed.
    async fn sync_file_workflows(&self, defs: Vec<WorkflowDefinition>, w: Write) -> Result<FileSync>;

    /// Stored custom checks, by key.
    async fn list_checks(&self) -> Result<Vec<StoredCheck>>;
    async fn get_check(&self, key: &str) -> Result<Option<StoredCheck>>;
    /// Creates or replaces a custom check (source `api`). A built-in
    /// check's key is refused with [`crate::Conflict::AlreadyExists`].
    async fn put_check(&self, def: CheckDefinition, put: Put, w: Write) -> Result<StoredCheck>;
    async fn delete_check(&self, key: &str, expect: Expect, w: Write) -> Result<()>;
    /// Like [`Store::sync_file_workflows`], for the checks file.
    async fn sync_file_checks(&self, defs: Vec<CheckDefinition>, w: Write) -> Result<FileSync>;

    // --- labels ---------------------------------------------------------

    /// Points `label` at version `seq`, creating the label if needed.
    async fn set_label(
        &self,
        template: TemplateId,
        label: &LabelName,
        seq: u32,
        expect: Expect,
        by: Option<UserId>,
        w: Write,
    ) -> Result<Label>;
    async fn delete_label(
        &self,
        template: TemplateId,
        label: &LabelName,
        expect: Expect,
        by: Option<UserId>,
        w: Write,
    ) -> Result<()>;
    /// Stored labels (not the automatic `latest`), by name.
    async fn list_labels(&self, template: TemplateId) -> Result<Vec<Label>>;
    /// Moves of one label (or all), newest first.
    async fn label_history(
        &self,
        template: TemplateId,
        label: Option<&LabelName>,
        limit: u32,
    ) -> Result<Vec<LabelMove>>;

    // --- usage ----------------------------------------------------------

    /// Applies renders and outcomes in order, in one transaction; one result
    /// per outcome, in order.
    async fn record_usage(&self, events: Vec<UsageEvent>) -> Result<Vec<OutcomeResult>>;
    async fn get_prompt(&self, id: PromptId) -> Result<Option<PromptRecord>>;
    async fn template_metrics(&self, template: TemplateId) -> Result<TemplateMetrics>;

    // --- audit trail ----------------------------------------------------

    /// Appends events (reads, renders, denials) in order, in one transaction.
    /// Changes append theirs through [`Write`], in their own transaction.
    async fn append_audit(&self, events: Vec<NewAuditEvent>) -> Result<Vec<AuditEvent>>;
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;
    /// Events after `after_seq` in sequence order, for verification.
    async fn audit_chain_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>>;
    async fn audit_head(&self) -> Result<AuditHead>;
    /// Deletes events older than `before` and records a checkpoint in their
    /// place, so the rest of the chain still verifies.
    async fn purge_audit(&self, before: DateTime<Utc>, at: DateTime<Utc>) -> Result<PurgeReport>;
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend().as_str())
    }
}
