//! Prompt types and templates.

use std::sync::Arc;

use promptvault_core::authz::{Action, Principal, Resource, Target, TemplateAccess, TypePolicy};
use promptvault_core::model::{Label, PromptType, Revision, Template, Version};
use promptvault_core::versioning::initial_version;
use promptvault_core::{ContentHash, PromptTypeKey, SecurityClassification, Tag, TemplateName, UserId};
use promptvault_store::{
    Expect, NewPromptType, NewTemplate, NewVersion, Page, PageRequest, PromptTypePatch, TemplateFilter,
    TemplatePatch,
};
use serde_json::Value;

use super::cache::SelectorKey;
use super::content::{self, ContentInput};
use super::{Missing, ReadSelector, Registry, Result, ServiceError, check_text, template_target};
use promptvault_store::ChangeNotice;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct CreateTemplate {
    pub name: TemplateName,
    pub type_key: PromptTypeKey,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    pub owner_id: Option<UserId>,
    pub tags: Vec<Tag>,
    pub security_classification: SecurityClassification,
    pub access: TemplateAccess,
    pub content: ContentInput,
    pub change_description: Option<String>,
}

/// `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UpdateTemplate {
    pub type_key: Option<PromptTypeKey>,
    pub description: Option<Option<String>>,
    pub long_description_markdown: Option<Option<String>>,
    pub owner_id: Option<Option<UserId>>,
    pub tags: Option<Vec<Tag>>,
    pub security_classification: Option<SecurityClassification>,
    pub access: Option<TemplateAccess>,
}

/// A template read with one of its versions and its labels.
#[derive(Debug, Clone)]
pub struct TemplateView {
    pub template: Template,
    pub version: Version,
    pub labels: Vec<Label>,
}

fn check_tags(tags: &[Tag]) -> Result<()> {
    if tags.len() > 50 {
        return Err(ServiceError::invalid("invalid_request", "a template may have at most 50 tags"));
    }
    Ok(())
}

impl Registry {
    pub async fn list_prompt_types(&self, who: &Principal) -> Result<Vec<PromptType>> {
        self.authorize(who, Action::Read, Resource::Type, &Target::default(), None).await?;
        let types = self.store.list_prompt_types().await?;
        self.audit_ok(who, "type.list", Resource::Type, None, json!({"count": types.len()})).await;
        Ok(types)
    }

    pub async fn get_prompt_type(&self, who: &Principal, key: &PromptTypeKey) -> Result<PromptType> {
        self.gate(who, Action::Read, Resource::Type, Some(key.as_str())).await?;
        let t = self.store.get_prompt_type(key).await?.ok_or_else(|| type_missing(key))?;
        self.authorize(who, Action::Read, Resource::Type, &type_target(&t), Some(key.as_str())).await?;
        self.audit_ok(who, "type.read", Resource::Type, Some(key.as_str()), Value::Null).await;
        Ok(t)
    }

    pub async fn create_prompt_type(
        &self,
        who: &Principal,
        key: PromptTypeKey,
        name: String,
        schema: Option<Value>,
        policy: TypePolicy,
    ) -> Result<PromptType> {
        self.authorize(who, Action::Create, Resource::Type, &Target::default(), Some(key.as_str())).await?;
        check_type_name(&name)?;
        check_contract(schema.as_ref())?;
        let w = self.audited(
            who,
            "type.create",
            Resource::Type,
            key.as_str(),
            json!({"name": name, "policy": policy}),
        );
        let k = key.clone();
        match self.store.create_prompt_type(NewPromptType { key, name, schema, policy }, w).await {
            Ok(t) => Ok(t),
            Err(e) => {
                let e = ServiceError::from(e);
                self.audit_failed(who, "type.create", Resource::Type, k.as_str(), &e).await;
                Err(e)
            }
        }
    }

    pub async fn update_prompt_type(
        &self,
        who: &Principal,
        key: &PromptTypeKey,
        expect: Revision,
        name: Option<String>,
        schema: Option<Option<Value>>,
        policy: Option<TypePolicy>,
    ) -> Result<PromptType> {
        self.gate(who, Action::Update, Resource::Type, Some(key.as_str())).await?;
        let current = self.store.get_prompt_type(key).await?.ok_or_else(|| type_missing(key))?;
        self.authorize(who, Action::Update, Resource::Type, &type_target(&current), Some(key.as_str()))
            .await?;
        if name.is_none() && schema.is_none() && policy.is_none() {
            return Err(ServiceError::invalid(
                "invalid_request",
                "nothing to change: give `name`, `schema` or `policy`",
            ));
        }
        if let Some(n) = &name {
            check_type_name(n)?;
        }
        if let Some(s) = &schema {
            check_contract(s.as_ref())?;
        }
        let w = self.audited(
            who,
            "type.update",
            Resource::Type,
            key.as_str(),
            json!({"name": name, "schema_changed": schema.is_some(), "policy": policy}),
        );
        let t = match self
            .store
            .update_prompt_type(key, Expect::Revision(expect), PromptTypePatch { name, schema, policy }, w)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let e = ServiceError::from(e);
                self.audit_failed(who, "type.update", Resource::Type, key.as_str(), &e).await;
                return Err(e);
            }
        };
        self.caches.invalidate(&ChangeNotice { template: None });
        Ok(t)
    }

    pub async fn delete_prompt_type(
        &self,
        who: &Principal,
        key: &PromptTypeKey,
        expect: Revision,
    ) -> Result<()> {
        self.gate(who, Action::Delete, Resource::Type, Some(key.as_str())).await?;
        let current = self.store.get_prompt_type(key).await?.ok_or_else(|| type_missing(key))?;
        self.authorize(who, Action::Delete, Resource::Type, &type_target(&current), Some(key.as_str()))
            .await?;
        let w = self.audited(who, "type.delete", Resource::Type, key.as_str(), Value::Null);
        if let Err(e) = self.store.delete_prompt_type(key, Expect::Revision(expect), w).await {
            let e = ServiceError::from(e);
            self.audit_failed(who, "type.delete", Resource::Type, key.as_str(), &e).await;
            return Err(e);
        }
        Ok(())
    }

    pub async fn list_templates(
        &self,
        who: &Principal,
        filter: &TemplateFilter,
        page: &PageRequest,
    ) -> Result<Page<Template>> {
        self.gate(who, Action::Read, Resource::Template, None).await?;
        let mut page = self.store.list_templates(filter, page).await?;
        // Only what this principal may read (scoped roles, allowed roles,
        // deployments); the cursor still walks the whole listing.
        page.items.retain(|t| {
            let target = self.with_rules(&template_target(t));
            promptvault_core::authz::decide(who, Action::Read, Resource::Template, &target).allowed
        });
        self.audit_ok(who, "template.list", Resource::Template, None, json!({"count": page.items.len()}))
            .await;
        Ok(page)
    }

    /// Creates a template with its first version (1.0.0, a draft).
    pub async fn create_template(
        &self,
        who: &Principal,
        input: CreateTemplate,
    ) -> Result<(TemplateView, Vec<String>, Vec<promptvault_core::scan::ScanFinding>)> {
        self.gate(who, Action::Create, Resource::Template, Some(input.name.as_str())).await?;
        check_text("description", input.description.as_deref(), 2_000)?;
        check_text("long_description_markdown", input.long_description_markdown.as_deref(), 100_000)?;
        check_text("change_description", input.change_description.as_deref(), 2_000)?;
        check_tags(&input.tags)?;
        let prompt_type = self
            .store
            .get_prompt_type(&input.type_key)
            .await?
            .ok_or_else(|| type_missing(&input.type_key))?;
        let target = Target {
            type_key: Some(&prompt_type.key),
            type_policy: Some(&prompt_type.policy),
            new_classification: Some(input.security_classification),
            ..Target::default()
        };
        self.authorize(who, Action::Create, Resource::Template, &target, Some(input.name.as_str())).await?;
        let checked = content::check(input.content)?;
        check_type_contract(&prompt_type, &checked.content.parameter_schema)?;
        self.check_output_filters(input.access.output_filters.as_deref())?;
        let findings = match self
            .scan_for_save(&checked.content, &checked.analysis.references, input.security_classification)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                self.audit_failed(who, "template.create", Resource::Template, input.name.as_str(), &e).await;
                return Err(e);
            }
        };
        let owner = input.owner_id.or(Some(who.user_id));
        if let Some(o) = input.owner_id
            && self.store.get_user(o).await?.is_none()
        {
            return Err(ServiceError::invalid("invalid_owner", format!("user {o} does not exist")));
        }
        let mut warnings = checked.warnings;
        warnings.extend(self.unresolvable_references(&checked.analysis.references).await?);
        let first = NewVersion {
            content_hash: ContentHash::of(&checked.content),
            content: checked.content,
            version: initial_version(),
            bump: None,
            author_id: Some(who.user_id),
            change_description: input.change_description,
            restored_from: None,
        };
        let name = input.name.clone();
        let w = self.audited(
            who,
            "template.create",
            Resource::Template,
            name.as_str(),
            json!({"version": first.version.to_string(), "content_hash": first.content_hash.to_string(),
                   "classification": input.security_classification.as_str(),
                   "findings": super::scanning::audit_findings(&findings)}),
        );
        let created = self
            .store
            .create_template(
                NewTemplate {
                    name: input.name,
                    prompt_type_id: prompt_type.id,
                    description: input.description,
                    long_description_markdown: input.long_description_markdown,
                    creator_id: Some(who.user_id),
                    owner_id: owner,
                    tags: input.tags,
                    security_classification: input.security_classification,
                    access: input.access,
                },
                first,
                w,
            )
            .await;
        let (template, version) = match created {
            Ok(c) => c,
            Err(e) => {
                let e = ServiceError::from(e);
                self.audit_failed(who, "template.create", Resource::Template, name.as_str(), &e).await;
                return Err(e);
            }
        };
        self.caches.invalidate(&ChangeNotice { template: Some(template.name.clone()) });
        Ok((TemplateView { template, version, labels: vec![] }, warnings, findings))
    }

    /// Reads a template with the version a selector picks (the default
    /// label when it names none) and its labels.
    pub async fn read_template(
        &self,
        who: &Principal,
        name: &TemplateName,
        read: &ReadSelector,
    ) -> Result<TemplateView> {
        self.gate(who, Action::Read, Resource::Template, Some(name.as_str())).await?;
        let resolved = self.resolve_cached(name, read).await?;
        self.authorize(
            who,
            Action::Read,
            Resource::Template,
            &template_target(&resolved.0),
            Some(name.as_str()),
        )
        .await?;
        self.authorize_version(who, &resolved.0, &resolved.1, Action::Read).await?;
        self.audit_ok(
            who,
            "template.read",
            Resource::Template,
            Some(name.as_str()),
            json!({"seq": resolved.1.seq}),
        )
        .await;
        let labels = match self.caches.get_labels(name) {
            Some(hit) => hit,
            None => {
                let generation = self.caches.generation();
                let labels = Arc::new(self.store.list_labels(resolved.0.id).await?);
                self.caches.insert_labels(generation, name.clone(), labels.clone());
                labels
            }
        };
        Ok(TemplateView {
            template: resolved.0.clone(),
            version: resolved.1.clone(),
            labels: labels.to_vec(),
        })
    }

    /// Resolves through the cache; a miss explains what is missing.
    pub(super) async fn resolve_cached(
        &self,
        name: &TemplateName,
        read: &ReadSelector,
    ) -> Result<Arc<(Template, Version)>> {
        let selector = self.selector(read)?;
        let key = SelectorKey::from(&selector);
        if let Some(hit) = self.caches.get_resolved(name, &key) {
            return Ok(hit);
        }
        let generation = self.caches.generation();
        match self.store.resolve(name, &selector).await? {
            Some(found) => {
                let found = Arc::new(found);
                self.caches.insert_resolved(generation, name.clone(), key, found.clone());
                Ok(found)
            }
            None => Err(self.explain_missing(name, &selector).await),
        }
    }

    /// Says whether the template, the label or the version is what is missing.
    async fn explain_missing(
        &self,
        name: &TemplateName,
        selector: &promptvault_store::VersionSelector,
    ) -> ServiceError {
        use promptvault_store::VersionSelector as S;
        let template = match self.store.get_template(name).await {
            Ok(Some(t)) => t,
            Ok(None) => return super::template_missing(name),
            Err(e) => return e.into(),
        };
        match selector {
            S::Label(label) => {
                let mut names = vec!["latest".to_owned()];
                if let Ok(labels) = self.store.list_labels(template.id).await {
                    names.extend(labels.into_iter().map(|l| l.name.to_string()));
                }
                let default = if *label == self.default_label { " (the default label)" } else { "" };
                ServiceError::not_found(
                    Missing::Label,
                    format!(
                        "template {name:?} has no label {:?}{default}; its labels are: {}",
                        label.as_str(),
                        names.join(", ")
                    ),
                )
            }
            S::Seq(n) => ServiceError::not_found(
                Missing::Version,
                format!("template {name:?} has no version {n} (the newest is {})", template.latest_seq),
            ),
            S::Semver(v) => ServiceError::not_found(
                Missing::Version,
                format!("template {name:?} has no version {v} (the newest is {})", template.latest_version),
            ),
            S::Latest => super::template_missing(name),
        }
    }

    pub async fn update_template(
        &self,
        who: &Principal,
        name: &TemplateName,
        expect: Revision,
        patch: UpdateTemplate,
    ) -> Result<Template> {
        self.gate(who, Action::Update, Resource::Template, Some(name.as_str())).await?;
        let current = self.template_or_404(name).await?;
        self.authorize(
            who,
            Action::Update,
            Resource::Template,
            &template_target(&current),
            Some(name.as_str()),
        )
        .await?;
        let empty = patch.type_key.is_none()
            && patch.access.is_none()
            && patch.description.is_none()
            && patch.long_description_markdown.is_none()
            && patch.owner_id.is_none()
            && patch.tags.is_none()
            && patch.security_classification.is_none();
        if empty {
            return Err(ServiceError::invalid(
                "invalid_request",
                "nothing to change: the body names no field",
            ));
        }
        if let Some(access) = &patch.access {
            self.check_output_filters(access.output_filters.as_deref())?;
        }
        check_text("description", patch.description.as_ref().and_then(Option::as_deref), 2_000)?;
        check_text(
            "long_description_markdown",
            patch.long_description_markdown.as_ref().and_then(Option::as_deref),
            100_000,
        )?;
        if let Some(tags) = &patch.tags {
            check_tags(tags)?;
        }
        let prompt_type_id = match &patch.type_key {
            None => None,
            Some(k) => {
                let t = self.store.get_prompt_type(k).await?.ok_or_else(|| type_missing(k))?;
                let latest = self
                    .store
                    .get_version(current.id, &promptvault_store::VersionSelector::Latest)
                    .await?
                    .ok_or_else(|| ServiceError::Internal("template without versions".into()))?;
                check_type_contract(&t, &latest.content.parameter_schema)?;
                Some(t.id)
            }
        };
        if let Some(Some(o)) = patch.owner_id
            && self.store.get_user(o).await?.is_none()
        {
            return Err(ServiceError::invalid("invalid_owner", format!("user {o} does not exist")));
        }
        let w = self.audited(
            who,
            "template.update",
            Resource::Template,
            name.as_str(),
            json!({
                "type": patch.type_key.as_ref().map(|k| k.as_str()),
                "owner_id": patch.owner_id.map(|o| o.map(|u| u.to_string())),
                "classification": patch.security_classification.map(SecurityClassification::as_str),
                "access": patch.access,
                "tags": patch.tags.as_ref().map(|t| t.iter().map(|t| t.as_str()).collect::<Vec<_>>()),
            }),
        );
        let updated = self
            .store
            .update_template(
                name,
                Expect::Revision(expect),
                TemplatePatch {
                    prompt_type_id,
                    description: patch.description,
                    long_description_markdown: patch.long_description_markdown,
                    owner_id: patch.owner_id,
                    tags: patch.tags,
                    security_classification: patch.security_classification,
                    access: patch.access,
                },
                w,
            )
            .await;
        let updated = match updated {
            Ok(u) => u,
            Err(e) => {
                let e = ServiceError::from(e);
                self.audit_failed(who, "template.update", Resource::Template, name.as_str(), &e).await;
                return Err(e);
            }
        };
        self.caches.invalidate(&ChangeNotice { template: Some(name.clone()) });
        Ok(updated)
    }

    pub async fn delete_template(
        &self,
        who: &Principal,
        name: &TemplateName,
        expect: Revision,
    ) -> Result<()> {
        self.gate(who, Action::Delete, Resource::Template, Some(name.as_str())).await?;
        let current = self.template_or_404(name).await?;
        self.authorize(
            who,
            Action::Delete,
            Resource::Template,
            &template_target(&current),
            Some(name.as_str()),
        )
        .await?;
        let w = self.audited(who, "template.delete", Resource::Template, name.as_str(), Value::Null);
        if let Err(e) = self.store.delete_template(name, Expect::Revision(expect), w).await {
            let e = ServiceError::from(e);
            self.audit_failed(who, "template.delete", Resource::Template, name.as_str(), &e).await;
            return Err(e);
        }
        self.caches.invalidate(&ChangeNotice { template: Some(name.clone()) });
        Ok(())
    }
}

fn type_missing(key: &PromptTypeKey) -> ServiceError {
    ServiceError::not_found(Missing::PromptType, format!("prompt type {:?} does not exist", key.as_str()))
}

fn check_type_name(name: &str) -> Result<()> {
    check_text("name", Some(name), 200)?;
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "invalid_request",
            "a prompt type name must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// A type's schema is a parameter contract: an object schema whose
/// `properties` and `required` templates must match.
fn check_contract(schema: Option<&Value>) -> Result<()> {
    let Some(schema) = schema else { return Ok(()) };
    if let Some(at) = promptvault_core::text::find_nul(schema) {
        return Err(ServiceError::invalid(
            "invalid_type_schema",
            format!("the schema contains a NUL character at {at}"),
        ));
    }
    let obj = schema.as_object().ok_or_else(|| {
        ServiceError::invalid("invalid_type_schema", "a prompt type schema must be a JSON object")
    })?;
    if let Some(p) = obj.get("properties")
        && !p.is_object()
    {
        return Err(ServiceError::invalid("invalid_type_schema", "`properties` must be an object"));
    }
    if let Some(r) = obj.get("required")
        && !r.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        return Err(ServiceError::invalid("invalid_type_schema", "`required` must be a list of names"));
    }
    jsonschema::draft202012::meta::validate(schema).map_err(|e| {
        ServiceError::invalid("invalid_type_schema", format!("not valid JSON Schema 2020-12: {}", e.masked()))
    })?;
    Ok(())
}

pub(super) fn check_type_contract(t: &PromptType, schema: &promptvault_core::ParameterSchema) -> Result<()> {
    let Some(contract) = &t.schema else { return Ok(()) };
    let violations = schema.contract_violations(contract);
    if violations.is_empty() {
        return Ok(());
    }
    Err(ServiceError::Invalid {
        code: "type_contract_violated",
        detail: format!(
            "templates of type {:?} must meet its parameter contract: {}",
            t.key.as_str(),
            violations.join("; ")
        ),
        extra: Some(("violations", serde_json::json!(violations))),
    })
}

fn type_target(t: &PromptType) -> Target<'_> {
    Target { type_key: Some(&t.key), type_policy: Some(&t.policy), ..Target::default() }
}
