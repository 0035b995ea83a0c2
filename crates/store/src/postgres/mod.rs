//! The PostgreSQL backend: the tables live in one schema
//! (`StoreOptions.pg_schema`), which every pooled connection has as its
//! `search_path`.
//!
//! Unlike SQLite there is no single writer, so writes that read then write
//! lock the row they depend on first (`SELECT … FOR NO KEY UPDATE` on the
//! template, `FOR UPDATE` on a type or a template being deleted) and
//! concurrent writers queue behind it. Every write that SQLite announces is
//! also announced with `pg_notify` inside its transaction, so other processes
//! sharing the database drop their cached rows (see `notify`).

mod audit;
mod catalog;
mod codec;
mod governance;
mod identity;
mod keys;
mod labels;
mod lifecycle;
mod notify;
mod prompt_types;
mod search;
mod setup;
mod usage;
mod versions;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promptvault_core::model::{Label, LabelMove, PromptRecord, PromptType, Template, Version};
use promptvault_core::{
    ApiKeyId, LabelName, PromptId, PromptTypeId, PromptTypeKey, TemplateId, TemplateName, UserId,
    VersionStatus,
};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::StoreOptions;
use crate::error::Result;
use crate::store::{Backend, Store};
use promptvault_core::audit::{AuditEvent, NewAuditEvent};
use promptvault_core::authz::{Permission, RoleDef};

use crate::governance as plans;
use crate::types::{
    ApiKeyRecord, AuditFilter, AuditHead, ChangeNotice, DecisionRecord, Expect, FileSync, InReview,
    NewApiKey, NewPromptType, NewTemplate, NewUser, NewVersion, OutcomeResult, Page, PageRequest,
    PromptTypePatch, PurgeReport, Put, ReviewInput, ReviewResult, SessionRecord, StatusChange, StoredCheck,
    StoredRole, StoredWorkflow, TemplateFilter, TemplateMetrics, TemplatePatch, UsageEvent, User, UserPatch,
    VersionSelector, Write,
};
use promptvault_core::compliance::CheckDefinition;
use promptvault_core::workflow::WorkflowDefinition;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A store in one schema of a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    changes: broadcast::Sender<ChangeNotice>,
    listener: Arc<notify::ListenerTask>,
    vault: crate::crypt::Vault,
}

impl PgStore {
    /// Creates the schema if missing, migrates it, and starts listening for
    /// other processes' change notices.
    pub async fn connect(options: &StoreOptions) -> Result<Self> {
        let schema = options.pg_schema.as_str();
        setup::check_schema_name(schema)?;
        let base = PgConnectOptions::from_str(&options.url)?;
        setup::create_schema(&base, schema).await?;
        // `options` escapes the value itself; the name is validated anyway.
        let connect = base.clone().application_name("promptvault").options([("search_path", schema)]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect.clone())
            .await?;
        // `_sqlx_migrations` is created unqualified, so it lands in the schema.
        MIGRATOR.run(&pool).await?;
        let vault = keys::open_vault(&pool, &options.encryption).await?;
        let (changes, _) = broadcast::channel(1024);
        // Listening starts before `connect` returns: a subscriber created
        // right after misses nothing another process commits later.
        let listener = notify::ListenerTask::start(connect, schema, changes.clone()).await?;
        Ok(Self { pool, changes, listener: Arc::new(listener), vault })
    }

    fn notify(&self, template: Option<&TemplateName>) {
        // No receivers is fine: nobody caches yet.
        let _ = self.changes.send(ChangeNotice { template: template.cloned() });
    }
}

/// The optimistic-concurrency check shared by every conditional write.

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
        self.changes.subscribe()
    }

    async fn close(&self) {
        self.listener.stop().await;
        self.pool.close().await;
    }

    async fn encryption_status(&self) -> Result<crate::EncryptionStatus> {
        self.encryption_status_impl().await
    }

    async fn rotate_data_key(&self) -> Result<String> {
        self.rotate_data_key_impl().await
    }

    async fn rewrap_master(&self, new: crate::MasterKey) -> Result<()> {
        self.rewrap_master_impl(new).await
    }

    async fn reseal_batch(&self, limit: u32) -> Result<u64> {
        self.reseal_batch_impl(limit).await
    }

    async fn instance_key(&self, candidate: crate::InstanceKey) -> Result<crate::InstanceKey> {
        self.instance_key_impl(candidate).await
    }

    async fn bootstrap_admin(&self, user: NewUser, key: NewApiKey) -> Result<bool> {
        self.bootstrap_admin_impl(user, key).await
    }

    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
        self.find_api_key_impl(prefix).await
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<()> {
        self.touch_api_key_impl(id, at).await
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        self.get_user_impl(id).await
    }

    async fn create_user(&self, new: NewUser, w: Write) -> Result<User> {
        self.create_user_impl(new, w).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.list_users_impl().await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.find_user_by_email_impl(email).await
    }

    async fn find_user_by_external_id(&self, external_id: &str) -> Result<Option<User>> {
        self.find_user_by_external_id_impl(external_id).await
    }

    async fn find_user_by_supabase_id(&self, supabase_user_id: Uuid) -> Result<Option<User>> {
        self.find_user_by_supabase_id_impl(supabase_user_id).await
    }

    async fn user_password_hash(&self, id: UserId) -> Result<Option<String>> {
        self.user_password_hash_impl(id).await
    }

    async fn update_user(&self, id: UserId, patch: UserPatch, w: Write) -> Result<User> {
        self.update_user_impl(id, patch, w).await
    }

    async fn delete_user(&self, id: UserId, w: Write) -> Result<()> {
        self.delete_user_impl(id, w).await?;
        // Templates they created or owned lost that reference.
        self.notify(None);
        Ok(())
    }

    async fn set_user_roles(&self, id: UserId, roles: Vec<String>, w: Write) -> Result<User> {
        self.set_user_roles_impl(id, roles, w).await
    }

    async fn list_roles(&self) -> Result<Vec<StoredRole>> {
        self.list_roles_impl().await
    }

    async fn get_role(&self, name: &str) -> Result<Option<StoredRole>> {
        self.get_role_impl(name).await
    }

    async fn create_role(&self, role: RoleDef, w: Write) -> Result<StoredRole> {
        self.create_role_impl(role, w).await
    }

    async fn update_role(
        &self,
        name: &str,
        expect: Expect,
        description: String,
        permissions: Vec<Permission>,
        w: Write,
    ) -> Result<StoredRole> {
        self.update_role_impl(name, expect, description, permissions, w).await
    }

    async fn delete_role(&self, name: &str, w: Write) -> Result<()> {
        self.delete_role_impl(name, w).await
    }

    async fn create_api_key(&self, new: NewApiKey, w: Write) -> Result<ApiKeyRecord> {
        self.create_api_key_impl(new, w).await
    }

    async fn list_api_keys(&self, user: Option<UserId>) -> Result<Vec<ApiKeyRecord>> {
        self.list_api_keys_impl(user).await
    }

    async fn get_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>> {
        self.get_api_key_impl(id).await
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>, w: Write) -> Result<ApiKeyRecord> {
        self.revoke_api_key_impl(id, at, w).await
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        user: UserId,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        w: Write,
    ) -> Result<SessionRecord> {
        self.create_session_impl(token_hash, user, at, expires_at, w).await
    }

    async fn find_session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        self.find_session_impl(token_hash).await
    }

    async fn touch_session(&self, token_hash: &[u8; 32], at: DateTime<Utc>) -> Result<()> {
        self.touch_session_impl(token_hash, at).await
    }

    async fn delete_session(&self, token_hash: &[u8; 32], w: Write) -> Result<()> {
        self.delete_session_impl(token_hash, w).await
    }

    async fn reauthenticate_session(&self, token_hash: &[u8; 32], at: DateTime<Utc>, w: Write) -> Result<()> {
        self.reauthenticate_session_impl(token_hash, at, w).await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        self.delete_expired_sessions_impl(now).await
    }

    async fn create_prompt_type(&self, new: NewPromptType, w: Write) -> Result<PromptType> {
        let t = self.create_prompt_type_impl(new, w).await?;
        self.notify(None);
        Ok(t)
    }

    async fn get_prompt_type(&self, key: &PromptTypeKey) -> Result<Option<PromptType>> {
        self.get_prompt_type_by_key_impl(key).await
    }

    async fn get_prompt_type_by_id(&self, id: PromptTypeId) -> Result<Option<PromptType>> {
        self.get_prompt_type_by_id_impl(id).await
    }

    async fn list_prompt_types(&self) -> Result<Vec<PromptType>> {
        self.list_prompt_types_impl().await
    }

    async fn update_prompt_type(
        &self,
        key: &PromptTypeKey,
        expect: Expect,
        patch: PromptTypePatch,
        w: Write,
    ) -> Result<PromptType> {
        let t = self.update_prompt_type_impl(key, expect, patch, w).await?;
        self.notify(None);
        Ok(t)
    }

    async fn delete_prompt_type(&self, key: &PromptTypeKey, expect: Expect, w: Write) -> Result<()> {
        self.delete_prompt_type_impl(key, expect, w).await?;
        self.notify(None);
        Ok(())
    }

    async fn create_template(
        &self,
        new: NewTemplate,
        first: NewVersion,
        w: Write,
    ) -> Result<(Template, Version)> {
        let created = self.create_template_impl(new, first, w).await?;
        self.notify(Some(&created.0.name));
        Ok(created)
    }

    async fn get_template(&self, name: &TemplateName) -> Result<Option<Template>> {
        self.get_template_impl(name).await
    }

    async fn get_template_by_id(&self, id: promptvault_core::TemplateId) -> Result<Option<Template>> {
        let mut conn = self.pool.acquire().await?;
        match catalog::template_by_id(&mut conn, id).await {
            Ok(t) => Ok(Some(t)),
            Err(crate::StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn update_template(
        &self,
        name: &TemplateName,
        expect: Expect,
        patch: TemplatePatch,
        w: Write,
    ) -> Result<Template> {
        let t = self.update_template_impl(name, expect, patch, w).await?;
        self.notify(Some(name));
        Ok(t)
    }

    async fn delete_template(&self, name: &TemplateName, expect: Expect, w: Write) -> Result<()> {
        self.delete_template_impl(name, expect, w).await?;
        self.notify(Some(name));
        Ok(())
    }

    async fn list_templates(&self, filter: &TemplateFilter, page: &PageRequest) -> Result<Page<Template>> {
        self.list_templates_impl(filter, page).await
    }

    async fn create_version(
        &self,
        template: TemplateId,
        base_seq: u32,
        new: NewVersion,
        w: Write,
    ) -> Result<Version> {
        let (name, v) = self.create_version_impl(template, base_seq, new, w).await?;
        self.notify(Some(&name));
        Ok(v)
    }

    async fn update_draft(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        new: NewVersion,
        w: Write,
    ) -> Result<Version> {
        let (name, v) = self.update_draft_impl(template, seq, expect, new, w).await?;
        self.notify(Some(&name));
        Ok(v)
    }

    async fn delete_draft(&self, template: TemplateId, seq: u32, expect: Expect, w: Write) -> Result<()> {
        let name = self.delete_draft_impl(template, seq, expect, w).await?;
        self.notify(Some(&name));
        Ok(())
    }

    async fn set_version_status(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        status: VersionStatus,
        w: Write,
    ) -> Result<Version> {
        let (name, v) = self.set_version_status_impl(template, seq, expect, status, w).await?;
        self.notify(Some(&name));
        Ok(v)
    }

    async fn get_version(&self, template: TemplateId, selector: &VersionSelector) -> Result<Option<Version>> {
        self.get_version_impl(template, selector).await
    }

    async fn resolve(
        &self,
        name: &TemplateName,
        selector: &VersionSelector,
    ) -> Result<Option<(Template, Version)>> {
        self.resolve_impl(name, selector).await
    }

    async fn list_versions(&self, template: TemplateId, page: &PageRequest) -> Result<Page<Version>> {
        self.list_versions_impl(template, page).await
    }

    async fn transition_version(
        &self,
        template: TemplateId,
        seq: u32,
        expect: Expect,
        change: StatusChange,
        w: Write,
    ) -> Result<Version> {
        let (name, v) = self.transition_version_impl(template, seq, expect, change, w).await?;
        self.notify(Some(&name));
        Ok(v)
    }

    async fn review_decision(
        &self,
        template: TemplateId,
        seq: u32,
        decision: ReviewInput,
        workflow: &WorkflowDefinition,
        w: Write,
    ) -> Result<ReviewResult> {
        let (name, r) = self.review_decision_impl(template, seq, decision, workflow, w).await?;
        self.notify(Some(&name));
        Ok(r)
    }

    async fn list_decisions(&self, template: TemplateId, seq: u32) -> Result<Vec<DecisionRecord>> {
        self.list_decisions_impl(template, seq).await
    }

    async fn list_in_review(&self) -> Result<Vec<InReview>> {
        self.list_in_review_impl().await
    }

    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>> {
        self.list_config().await
    }

    async fn get_workflow(&self, name: &str) -> Result<Option<StoredWorkflow>> {
        self.get_config(name).await
    }

    async fn put_workflow(&self, def: WorkflowDefinition, put: Put, w: Write) -> Result<StoredWorkflow> {
        let at = w.at;
        self.write_config::<WorkflowDefinition, _>(|rows| plans::plan_workflow_put(rows, def, put, at), w)
            .await
    }

    async fn delete_workflow(&self, name: &str, expect: Expect, w: Write) -> Result<()> {
        self.write_config::<WorkflowDefinition, _>(|rows| plans::plan_workflow_delete(rows, name, expect), w)
            .await
    }

    async fn sync_file_workflows(&self, defs: Vec<WorkflowDefinition>, w: Write) -> Result<FileSync> {
        self.write_config::<WorkflowDefinition, _>(|rows| plans::plan_workflow_sync(rows, &defs), w).await
    }

    async fn list_checks(&self) -> Result<Vec<StoredCheck>> {
        self.list_config().await
    }

    async fn get_check(&self, key: &str) -> Result<Option<StoredCheck>> {
        self.get_config(key).await
    }

    async fn put_check(&self, def: CheckDefinition, put: Put, w: Write) -> Result<StoredCheck> {
        let at = w.at;
        self.write_config::<CheckDefinition, _>(|rows| plans::plan_check_put(rows, def, put, at), w).await
    }

    async fn delete_check(&self, key: &str, expect: Expect, w: Write) -> Result<()> {
        self.write_config::<CheckDefinition, _>(|rows| plans::plan_check_delete(rows, key, expect), w).await
    }

    async fn sync_file_checks(&self, defs: Vec<CheckDefinition>, w: Write) -> Result<FileSync> {
        self.write_config::<CheckDefinition, _>(|rows| plans::plan_check_sync(rows, &defs), w).await
    }

    async fn set_label(
        &self,
        template: TemplateId,
        label: &LabelName,
        seq: u32,
        expect: Expect,
        by: Option<UserId>,
        w: Write,
    ) -> Result<Label> {
        let (name, l) = self.set_label_impl(template, label, seq, expect, by, w).await?;
        self.notify(Some(&name));
        Ok(l)
    }

    async fn delete_label(
        &self,
        template: TemplateId,
        label: &LabelName,
        expect: Expect,
        by: Option<UserId>,
        w: Write,
    ) -> Result<()> {
        let name = self.delete_label_impl(template, label, expect, by, w).await?;
        self.notify(Some(&name));
        Ok(())
    }

    async fn list_labels(&self, template: TemplateId) -> Result<Vec<Label>> {
        self.list_labels_impl(template).await
    }

    async fn label_history(
        &self,
        template: TemplateId,
        label: Option<&LabelName>,
        limit: u32,
    ) -> Result<Vec<LabelMove>> {
        self.label_history_impl(template, label, limit).await
    }

    async fn record_usage(&self, events: Vec<UsageEvent>) -> Result<Vec<OutcomeResult>> {
        self.record_usage_impl(events).await
    }

    async fn get_prompt(&self, id: PromptId) -> Result<Option<PromptRecord>> {
        self.get_prompt_impl(id).await
    }

    async fn template_metrics(&self, template: TemplateId) -> Result<TemplateMetrics> {
        self.template_metrics_impl(template).await
    }

    async fn append_audit(&self, events: Vec<NewAuditEvent>) -> Result<Vec<AuditEvent>> {
        self.append_audit_impl(events).await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        self.list_audit_impl(filter).await
    }

    async fn audit_chain_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        self.audit_chain_page_impl(after_seq, limit).await
    }

    async fn audit_head(&self) -> Result<AuditHead> {
        self.audit_head_impl().await
    }

    async fn purge_audit(&self, before: DateTime<Utc>, at: DateTime<Utc>) -> Result<PurgeReport> {
        self.purge_audit_impl(before, at).await
    }
}
