//! Approval workflows and compliance checks through the API: read what is in
//! force, create, replace and delete the stored ones. Writes need
//! `workflow:*` / `check:*`, are audited in their transaction, and put the
//! change in force in this process before they return.

use chrono::{DateTime, Utc};
use promptvault_core::SecurityClassification;
use promptvault_core::authz::{Action, Principal, Resource, Target, builtin};
use promptvault_core::compliance::{
    BUILTIN_KEYS, BuiltinsConfig, CheckDefinition, Rule, Severity, builtin_name,
};
use promptvault_core::model::Revision;
use promptvault_core::workflow::{WorkflowDefinition, WorkflowSet};
use promptvault_store::{ConfigSource, Conflict, Expect, Put, StoreError, Stored};
use serde_json::{Value, json};

use super::{Missing, Registry, Result, ServiceError};

/// Where a workflow or check in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A default workflow or a built-in check: in code (and the settings).
    BuiltIn,
    Api,
    File,
}

impl Origin {
    fn of(source: ConfigSource) -> Self {
        match source {
            ConfigSource::Api => Self::Api,
            ConfigSource::File => Self::File,
        }
    }
}

/// A workflow in force (or stored).
#[derive(Debug, Clone)]
pub struct WorkflowView {
    pub def: WorkflowDefinition,
    pub origin: Origin,
    /// Stored workflows only.
    pub revision: Option<Revision>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Every workflow in force, and the classifications none governs.
#[derive(Debug, Clone)]
pub struct WorkflowListing {
    pub items: Vec<WorkflowView>,
    pub uncovered: Vec<SecurityClassification>,
}

/// A check: a built-in with its configuration, or a custom one.
#[derive(Debug, Clone)]
pub struct CheckView {
    pub key: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    pub applies_to: Vec<String>,
    pub enabled: bool,
    pub origin: Origin,
    /// Custom checks: the rule.
    pub rule: Option<Rule>,
    /// Built-ins: their parameters (`min_chars`, `phrases`, ...).
    pub config: Option<Value>,
    pub revision: Option<Revision>,
    pub updated_at: Option<DateTime<Utc>>,
}

fn stored_view(s: Stored<WorkflowDefinition>) -> WorkflowView {
    WorkflowView {
        def: s.def,
        origin: Origin::of(s.source),
        revision: Some(s.revision),
        updated_at: Some(s.updated_at),
    }
}

fn check_view(s: Stored<CheckDefinition>) -> CheckView {
    let d = s.def;
    CheckView {
        key: d.key,
        name: d.name,
        description: d.description,
        severity: d.severity,
        applies_to: d.applies_to,
        enabled: d.enabled,
        origin: Origin::of(s.source),
        rule: Some(d.rule),
        config: None,
        revision: Some(s.revision),
        updated_at: Some(s.updated_at),
    }
}

/// The built-in checks as configured, in the order they run.
fn builtin_views(config: &BuiltinsConfig) -> Vec<CheckView> {
    let all = serde_json::to_value(config).unwrap_or(Value::Null);
    BUILTIN_KEYS
        .iter()
        .map(|key| {
            let mut params = all[*key].as_object().cloned().unwrap_or_default();
            let enabled = params.remove("enabled").and_then(|v| v.as_bool()).unwrap_or(true);
            let severity = params
                .remove("severity")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or(Severity::Warning);
            let applies_to =
                params.remove("applies_to").and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
            CheckView {
                key: (*key).to_owned(),
                name: builtin_name(key).unwrap_or(key).to_owned(),
                description: String::new(),
                severity,
                applies_to,
                enabled,
                origin: Origin::BuiltIn,
                rule: None,
                config: Some(Value::Object(params)),
                revision: None,
                updated_at: None,
            }
        })
        .collect()
}

fn workflow_missing(name: &str) -> ServiceError {
    ServiceError::not_found(Missing::Workflow, format!("workflow {name:?} does not exist"))
}

fn check_missing(key: &str) -> ServiceError {
    ServiceError::not_found(Missing::Check, format!("check {key:?} does not exist"))
}

fn builtin_check(key: &str) -> ServiceError {
    ServiceError::conflict(
        "check_builtin",
        format!(
            "{key:?} is a built-in check; configure it in the [governance.checks.{key}] section of the \
             settings file"
        ),
    )
}

/// The code for a custom check refused by validation, from its field.
fn check_error_code(field: &str) -> &'static str {
    match field {
        "key" => "invalid_check_key",
        "rule.pattern" => "invalid_regex",
        "rule.schema" => "invalid_json_schema",
        f if f.starts_with("applies_to") => "invalid_prompt_type",
        _ => "invalid_check",
    }
}

/// Store errors of a workflow or check write, with this resource's words.
fn write_error(e: StoreError, missing: impl FnOnce() -> ServiceError) -> ServiceError {
    match e {
        StoreError::NotFound(_) => missing(),
        StoreError::Conflict(c @ Conflict::InUse { .. }) => ServiceError::conflict(
            "workflow_in_use",
            format!(
                "{c}: a workflow cannot give up a classification while versions of it are in review; \
                 approve, reject or withdraw them first"
            ),
        ),
        other => other.into(),
    }
}

impl Registry {
    async fn check_workflow(&self, def: &WorkflowDefinition) -> Result<()> {
        def.validate().map_err(|e| ServiceError::invalid(e.code(), e.to_string()))?;
        super::check_text("description", def.description.as_deref(), 2_000)?;
        for step in &def.steps {
            for role in &step.approver_roles {
                if builtin::role_named(role).is_none() && self.store.get_role(role).await?.is_none() {
                    return Err(ServiceError::invalid(
                        "unknown_role",
                        format!(
                            "step {:?} of workflow {:?} names the role {role:?}, which does not exist; \
                             use a built-in role ({}) or create the role first",
                            step.name,
                            def.name,
                            builtin::NAMES.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_check(def: &CheckDefinition) -> Result<()> {
        if BUILTIN_KEYS.contains(&def.key.as_str()) {
            return Err(builtin_check(&def.key));
        }
        def.validate().map_err(|e| ServiceError::Invalid {
            code: check_error_code(&e.field),
            detail: format!("custom check {:?}: {e}", def.key),
            extra: Some(("field", json!(e.field))),
        })
    }

    /// Puts a change in force here and now; other processes follow the
    /// change notice. The write is committed, so a failed reload is logged
    /// rather than reported as the write's failure.
    async fn governance_changed(&self) {
        if let Err(e) = self.governance.reload(self.store.as_ref()).await {
            tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "cannot reload approval workflows and compliance checks");
        }
    }

    /// Records a refused write (after authorization) as failed.
    async fn refuse<T>(
        &self,
        who: &Principal,
        action: &str,
        resource: Resource,
        name: &str,
        e: ServiceError,
    ) -> Result<T> {
        self.audit_failed(who, action, resource, name, &e).await;
        Err(e)
    }

    /// Runs an authorized write; a refusal is recorded as failed.
    async fn config_write<T>(
        &self,
        who: &Principal,
        action: &str,
        resource: Resource,
        name: &str,
        write: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match write.await {
            Ok(v) => {
                self.governance_changed().await;
                Ok(v)
            }
            Err(e) => {
                self.audit_failed(who, action, resource, name, &e).await;
                Err(e)
            }
        }
    }

    /// The policy's answer for a workflow or check request, asked by a
    /// handler before it reads the body's meaning, so a caller without the
    /// permission is refused (and audited) before learning anything else.
    /// The operations ask again.
    pub async fn require(
        &self,
        who: &Principal,
        action: Action,
        resource: Resource,
        name: Option<&str>,
    ) -> Result<()> {
        self.authorize(who, action, resource, &Target::default(), name).await
    }

    // --- workflows -------------------------------------------------------

    /// Every workflow in force: stored ones, then the defaults still in use.
    pub async fn list_workflows(&self, who: &Principal) -> Result<WorkflowListing> {
        self.authorize(who, Action::Read, Resource::Workflow, &Target::default(), None).await?;
        let stored = self.store.list_workflows().await?;
        let set = WorkflowSet::with_defaults(stored.iter().map(|s| s.def.clone()).collect())
            .map_err(|e| ServiceError::Internal(format!("stored workflows: {e}")))?;
        let mut items: Vec<WorkflowView> = stored.into_iter().map(stored_view).collect();
        let defaults: Vec<WorkflowView> = set
            .workflows()
            .iter()
            .filter(|d| !items.iter().any(|s| s.def.name == d.name))
            .map(|d| WorkflowView {
                def: d.clone(),
                origin: Origin::BuiltIn,
                revision: None,
                updated_at: None,
            })
            .collect();
        items.extend(defaults);
        self.audit_ok(who, "workflow.list", Resource::Workflow, None, json!({"count": items.len()})).await;
        Ok(WorkflowListing { items, uncovered: set.uncovered() })
    }

    pub async fn get_workflow(&self, who: &Principal, name: &str) -> Result<WorkflowView> {
        self.authorize(who, Action::Read, Resource::Workflow, &Target::default(), Some(name)).await?;
        let view = match self.store.get_workflow(name).await? {
            Some(s) => stored_view(s),
            None => {
                let listing = self.store.list_workflows().await?;
                let set = WorkflowSet::with_defaults(listing.into_iter().map(|s| s.def).collect())
                    .map_err(|e| ServiceError::Internal(format!("stored workflows: {e}")))?;
                let def = set.get(name).cloned().ok_or_else(|| workflow_missing(name))?;
                WorkflowView { def, origin: Origin::BuiltIn, revision: None, updated_at: None }
            }
        };
        self.audit_ok(who, "workflow.read", Resource::Workflow, Some(name), Value::Null).await;
        Ok(view)
    }

    /// Creates a workflow; one named like a default replaces that default.
    pub async fn create_workflow(&self, who: &Principal, def: WorkflowDefinition) -> Result<WorkflowView> {
        let name = def.name.clone();
        self.authorize(who, Action::Create, Resource::Workflow, &Target::default(), Some(&name)).await?;
        if let Err(e) = self.check_workflow(&def).await {
            return self.refuse(who, "workflow.create", Resource::Workflow, &name, e).await;
        }
        let w = self.audited(who, "workflow.create", Resource::Workflow, &name, json!({"definition": def}));
        let write = async {
            self.store
                .put_workflow(def, Put::Create, w)
                .await
                .map_err(|e| write_error(e, || workflow_missing(&name)))
        };
        let stored = self.config_write(who, "workflow.create", Resource::Workflow, &name, write).await?;
        Ok(stored_view(stored))
    }

    /// Replaces a stored workflow at revision `expect`.
    pub async fn replace_workflow(
        &self,
        who: &Principal,
        name: &str,
        expect: Revision,
        def: WorkflowDefinition,
    ) -> Result<WorkflowView> {
        self.authorize(who, Action::Update, Resource::Workflow, &Target::default(), Some(name)).await?;
        let checked = if def.name == name {
            self.check_workflow(&def).await
        } else {
            Err(ServiceError::invalid(
                "name_mismatch",
                format!(
                    "the body names workflow {:?}, the path {name:?}; a workflow cannot be renamed",
                    def.name
                ),
            ))
        };
        if let Err(e) = checked {
            return self.refuse(who, "workflow.update", Resource::Workflow, name, e).await;
        }
        let w = self.audited(who, "workflow.update", Resource::Workflow, name, json!({"definition": def}));
        let missing = || {
            let default = promptvault_core::workflow::default_workflows().iter().any(|d| d.name == name);
            if default {
                ServiceError::not_found(
                    Missing::Workflow,
                    format!(
                        "{name:?} is a default workflow, not a stored one; create it to replace the default"
                    ),
                )
            } else {
                workflow_missing(name)
            }
        };
        let write = async {
            self.store
                .put_workflow(def, Put::Replace(Expect::Revision(expect)), w)
                .await
                .map_err(|e| write_error(e, missing))
        };
        let stored = self.config_write(who, "workflow.update", Resource::Workflow, name, write).await?;
        Ok(stored_view(stored))
    }

    /// Deletes a stored workflow; the defaults take over what it governed.
    pub async fn delete_workflow(&self, who: &Principal, name: &str, expect: Option<Revision>) -> Result<()> {
        self.authorize(who, Action::Delete, Resource::Workflow, &Target::default(), Some(name)).await?;
        let w = self.audited(who, "workflow.delete", Resource::Workflow, name, Value::Null);
        let expect = expect.map_or(Expect::Any, Expect::Revision);
        let missing = || {
            if promptvault_core::workflow::default_workflows().iter().any(|d| d.name == name) {
                ServiceError::conflict(
                    "workflow_default",
                    format!(
                        "{name:?} is a default workflow; it cannot be deleted, only replaced by a stored one"
                    ),
                )
            } else {
                workflow_missing(name)
            }
        };
        let write =
            async { self.store.delete_workflow(name, expect, w).await.map_err(|e| write_error(e, missing)) };
        self.config_write(who, "workflow.delete", Resource::Workflow, name, write).await
    }

    // --- checks ----------------------------------------------------------

    /// The built-in checks as configured, then the custom ones.
    pub async fn list_checks(&self, who: &Principal) -> Result<Vec<CheckView>> {
        self.authorize(who, Action::Read, Resource::Check, &Target::default(), None).await?;
        let mut items = builtin_views(self.governance.builtins());
        items.extend(self.store.list_checks().await?.into_iter().map(check_view));
        self.audit_ok(who, "check.list", Resource::Check, None, json!({"count": items.len()})).await;
        Ok(items)
    }

    pub async fn get_check(&self, who: &Principal, key: &str) -> Result<CheckView> {
        self.authorize(who, Action::Read, Resource::Check, &Target::default(), Some(key)).await?;
        let view = match builtin_views(self.governance.builtins()).into_iter().find(|c| c.key == key) {
            Some(b) => b,
            None => self.store.get_check(key).await?.map(check_view).ok_or_else(|| check_missing(key))?,
        };
        self.audit_ok(who, "check.read", Resource::Check, Some(key), Value::Null).await;
        Ok(view)
    }

    pub async fn create_check(&self, who: &Principal, def: CheckDefinition) -> Result<CheckView> {
        let key = def.key.clone();
        self.authorize(who, Action::Create, Resource::Check, &Target::default(), Some(&key)).await?;
        if let Err(e) = Self::check_check(&def) {
            return self.refuse(who, "check.create", Resource::Check, &key, e).await;
        }
        let w = self.audited(who, "check.create", Resource::Check, &key, json!({"definition": def}));
        let write = async {
            self.store
                .put_check(def, Put::Create, w)
                .await
                .map_err(|e| write_error(e, || check_missing(&key)))
        };
        let stored = self.config_write(who, "check.create", Resource::Check, &key, write).await?;
        Ok(check_view(stored))
    }

    pub async fn replace_check(
        &self,
        who: &Principal,
        key: &str,
        expect: Revision,
        def: CheckDefinition,
    ) -> Result<CheckView> {
        self.authorize(who, Action::Update, Resource::Check, &Target::default(), Some(key)).await?;
        if BUILTIN_KEYS.contains(&key) {
            return self.refuse(who, "check.update", Resource::Check, key, builtin_check(key)).await;
        }
        let checked = if def.key == key {
            Self::check_check(&def)
        } else {
            Err(ServiceError::invalid(
                "name_mismatch",
                format!("the body names check {:?}, the path {key:?}; a check cannot be renamed", def.key),
            ))
        };
        if let Err(e) = checked {
            return self.refuse(who, "check.update", Resource::Check, key, e).await;
        }
        let w = self.audited(who, "check.update", Resource::Check, key, json!({"definition": def}));
        let write = async {
            self.store
                .put_check(def, Put::Replace(Expect::Revision(expect)), w)
                .await
                .map_err(|e| write_error(e, || check_missing(key)))
        };
        let stored = self.config_write(who, "check.update", Resource::Check, key, write).await?;
        Ok(check_view(stored))
    }

    pub async fn delete_check(&self, who: &Principal, key: &str, expect: Option<Revision>) -> Result<()> {
        self.authorize(who, Action::Delete, Resource::Check, &Target::default(), Some(key)).await?;
        if BUILTIN_KEYS.contains(&key) {
            return self.refuse(who, "check.delete", Resource::Check, key, builtin_check(key)).await;
        }
        let w = self.audited(who, "check.delete", Resource::Check, key, Value::Null);
        let expect = expect.map_or(Expect::Any, Expect::Revision);
        let write = async {
            self.store.delete_check(key, expect, w).await.map_err(|e| write_error(e, || check_missing(key)))
        };
        self.config_write(who, "check.delete", Resource::Check, key, write).await
    }
}
