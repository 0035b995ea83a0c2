//! The approval workflows and compliance checks in force, held in memory.
//!
//! They are read from the store: the stored workflows, with the
//! [defaults](promptvault_core::workflow::default_workflows) for the
//! classifications no stored workflow covers
//! ([`WorkflowSet::with_defaults`]), and the built-in checks (configured in
//! the settings) followed by the stored custom checks.
//!
//! **Freshness.** A process that changes them reloads before it answers
//! (read-your-writes). Every change also announces "everything changed" on
//! the store's change notices — across processes by PostgreSQL
//! `LISTEN/NOTIFY` — and [`Governance::follow`] reloads on each such notice
//! (and after a listener gap, which announces the same). Reloads are
//! serialized, so a slow reload can never replace a newer one.
//!
//! **Files.** The workflows and checks files named in the settings are read
//! and validated before the store opens ([`read_files`]) and applied once it
//! has ([`apply_files`]): the file is authoritative for the names it lists
//! at each start.

use std::path::Path;
use std::sync::{Arc, RwLock, Weak};

use promptvault_core::audit::{AuditOutcome, NewAuditEvent};
use promptvault_core::compliance::{BuiltinsConfig, CheckDefinition, CheckSet, parse_checks_toml};
use promptvault_core::model::truncate_to_micros;
use promptvault_core::workflow::{WorkflowDefinition, WorkflowSet, parse_workflows_toml};
use promptvault_store::{ChangeNotice, FileSync, Store, StoredCheck, StoredWorkflow, Write};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::settings::{GovernanceSettings, SettingsError};

use super::ServiceError;

/// What is in force at one moment.
#[derive(Debug)]
pub struct Loaded {
    /// Stored workflows, by name.
    pub stored_workflows: Vec<StoredWorkflow>,
    /// The workflows in force: the stored ones and the defaults that still
    /// govern a classification.
    pub workflows: WorkflowSet,
    /// Stored custom checks, by key.
    pub custom_checks: Vec<StoredCheck>,
    /// The built-ins, then the enabled custom checks.
    pub checks: CheckSet,
}

/// The workflows and checks in force, and how to refresh them.
#[derive(Debug)]
pub struct Governance {
    builtins: BuiltinsConfig,
    current: RwLock<Arc<Loaded>>,
    reloading: tokio::sync::Mutex<()>,
}

impl Governance {
    /// The defaults and the configured built-ins, until the first reload.
    pub fn new(builtins: BuiltinsConfig) -> Result<Self, ServiceError> {
        let checks = CheckSet::new(builtins.clone(), Vec::new())
            .map_err(|e| ServiceError::Internal(format!("built-in checks: {e}")))?;
        let loaded = Loaded {
            stored_workflows: Vec::new(),
            workflows: WorkflowSet::default(),
            custom_checks: Vec::new(),
            checks,
        };
        Ok(Self { builtins, current: RwLock::new(Arc::new(loaded)), reloading: tokio::sync::Mutex::new(()) })
    }

    /// The configuration of the built-in checks.
    #[must_use]
    pub fn builtins(&self) -> &BuiltinsConfig {
        &self.builtins
    }

    /// What is in force now.
    #[must_use]
    pub fn current(&self) -> Arc<Loaded> {
        // A poisoned lock still holds a complete `Arc`: swapping it is the
        // only write, and it cannot panic halfway.
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Reads the stored workflows and checks and puts them in force.
    ///
    /// Stored definitions were validated when written; one that no longer
    /// compiles (say, after an upgrade) is an error here, and what was in
    /// force stays.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), ServiceError> {
        let _one_at_a_time = self.reloading.lock().await;
        let stored_workflows = store.list_workflows().await?;
        let workflows = WorkflowSet::with_defaults(stored_workflows.iter().map(|w| w.def.clone()).collect())
            .map_err(|e| ServiceError::Internal(format!("stored workflows: {e}")))?;
        let custom_checks = store.list_checks().await?;
        let checks =
            CheckSet::new(self.builtins.clone(), custom_checks.iter().map(|c| c.def.clone()).collect())
                .map_err(|e| ServiceError::Internal(format!("stored checks: {e}")))?;
        let loaded = Arc::new(Loaded { stored_workflows, workflows, custom_checks, checks });
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(())
    }

    /// Reloads whenever the store announces that everything may have
    /// changed (which workflow and check writes do, in every process).
    /// Holds the store weakly, so the task ends when the store is dropped.
    pub async fn follow(
        self: Arc<Self>,
        store: Weak<dyn Store>,
        mut changes: broadcast::Receiver<ChangeNotice>,
    ) {
        loop {
            match changes.recv().await {
                Ok(ChangeNotice { template: Some(_) }) => continue,
                Ok(ChangeNotice { template: None }) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
            let Some(store) = store.upgrade() else { return };
            if let Err(e) = self.reload(store.as_ref()).await {
                tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "cannot reload approval workflows and compliance checks");
            }
        }
    }
}

/// The definitions read from the files named in the settings.
#[derive(Debug, Default)]
pub struct Files {
    pub workflows: Option<Vec<WorkflowDefinition>>,
    pub checks: Option<Vec<CheckDefinition>>,
}

fn invalid(setting: &str, path: &Path, problem: impl std::fmt::Display) -> SettingsError {
    SettingsError::Invalid(format!("governance.{setting} {}: {problem}", path.display()))
}

/// Reads and validates the workflows and checks files, and the built-in
/// checks' configuration. Every error names the setting, the file and the
/// problem.
pub fn read_files(settings: &GovernanceSettings) -> Result<Files, SettingsError> {
    CheckSet::new(settings.checks.clone(), Vec::new())
        .map_err(|e| SettingsError::Invalid(format!("governance.checks: {e}")))?;
    let mut files = Files::default();
    if let Some(path) = &settings.workflows_file {
        let text = std::fs::read_to_string(path).map_err(|e| invalid("workflows_file", path, e))?;
        let defs = parse_workflows_toml(&text).map_err(|e| invalid("workflows_file", path, e))?;
        // Conflicts within the file (a classification claimed twice).
        WorkflowSet::new(defs.clone()).map_err(|e| invalid("workflows_file", path, e))?;
        files.workflows = Some(defs);
    }
    if let Some(path) = &settings.checks_file {
        let text = std::fs::read_to_string(path).map_err(|e| invalid("checks_file", path, e))?;
        files.checks = Some(parse_checks_toml(&text).map_err(|e| invalid("checks_file", path, e))?);
    }
    Ok(files)
}

/// Makes the files' definitions the stored ones (see
/// [`Store::sync_file_workflows`]), each file in one transaction recorded
/// as one audit event by `system` when it changed something.
pub async fn apply_files(
    store: &dyn Store,
    settings: &GovernanceSettings,
    files: Files,
) -> Result<(), SettingsError> {
    let event = |action: &str, kind: &str, path: &Path| {
        let at = truncate_to_micros(chrono::Utc::now());
        let mut ev = NewAuditEvent::new(at, "system", action, kind, AuditOutcome::Success);
        ev.reason = Some(format!("applied {} at start", path.display()));
        Write::audited(at, ev)
    };
    let report = |what: &str, path: &Path, sync: &FileSync| {
        if !sync.is_empty() {
            tracing::info!(
                file = %path.display(), created = ?sync.created, updated = ?sync.updated,
                removed = ?sync.removed, "applied the {what} file"
            );
        }
    };
    if let (Some(defs), Some(path)) = (files.workflows, &settings.workflows_file) {
        let mut w = event("workflow.update", "workflow", path);
        if let Some(ev) = &mut w.audit {
            ev.details = json!({"workflows": defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>()});
        }
        let sync =
            store.sync_file_workflows(defs, w).await.map_err(|e| invalid("workflows_file", path, e))?;
        report("workflows", path, &sync);
    }
    if let (Some(defs), Some(path)) = (files.checks, &settings.checks_file) {
        let mut w = event("check.update", "check", path);
        if let Some(ev) = &mut w.audit {
            ev.details = json!({"checks": defs.iter().map(|d| d.key.as_str()).collect::<Vec<_>>()});
        }
        let sync = store.sync_file_checks(defs, w).await.map_err(|e| invalid("checks_file", path, e))?;
        report("checks", path, &sync);
    }
    Ok(())
}
