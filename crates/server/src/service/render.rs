//! Rendering, outcomes and usage metrics.

use std::sync::Arc;

use promptvault_core::authz::{Action, Principal, Resource};
use promptvault_core::model::{Outcome, OutcomeRecord, PromptRecord, RenderMetadata, Template, Version};
use promptvault_core::refs::{Fetched, IncludePlan, Selector};
use promptvault_core::render::Rendered;
use promptvault_core::{LabelName, PromptId, TemplateName, VersionId};
use promptvault_store::{OutcomeResult, TemplateMetrics};
use serde_json::{Map, Value};

use super::cache::CompiledKey;
use super::{Missing, ReadSelector, Registry, Result, ServiceError, template_target};
use promptvault_core::authz::Target;
use serde_json::json;

#[derive(Debug, Clone, Default)]
pub struct RenderRequest {
    pub selector: ReadSelector,
    pub parameters: Value,
    pub placeholders: Map<String, Value>,
    pub metadata: RenderMetadata,
}

#[derive(Debug, Clone)]
pub struct RenderOutcome {
    pub prompt_id: PromptId,
    pub resolved: Arc<(Template, Version)>,
    pub rendered: Rendered,
}

impl Registry {
    /// Renders a template and records the rendering.
    pub async fn render(
        &self,
        who: &Principal,
        name: &TemplateName,
        req: RenderRequest,
    ) -> Result<RenderOutcome> {
        self.gate(who, Action::Execute, Resource::Template, Some(name.as_str())).await?;
        let resolved = self.resolve_cached(name, &req.selector).await?;
        self.authorize(
            who,
            Action::Execute,
            Resource::Template,
            &template_target(&resolved.0),
            Some(name.as_str()),
        )
        .await?;
        self.authorize_version(who, &resolved.0, &resolved.1, Action::Execute).await?;
        let status = resolved.1.status;
        if status == promptvault_core::VersionStatus::Archived {
            return Err(ServiceError::conflict(
                "version_archived",
                format!("version {} of {name:?} is archived and no longer renders", resolved.1.seq),
            ));
        }
        let compiled = self.compiled(who, &resolved).await?;
        let class = resolved.0.security_classification;
        let schema = &resolved.1.content.parameter_schema;
        let mut parameters = req.parameters;
        let mut input_warnings = match self.check_render_inputs(schema, class, &mut parameters) {
            Ok(w) => w,
            Err(e) => return Err(self.refused(who, name, e).await),
        };
        // Placeholders (e.g. the chat history) come from the caller too; no
        // parameter annotates them, so the classification's default applies.
        let mut placeholders = Value::Object(req.placeholders);
        match self.check_render_inputs(
            &promptvault_core::ParameterSchema::default(),
            class,
            &mut placeholders,
        ) {
            Ok(w) => input_warnings.extend(w),
            Err(e) => return Err(self.refused(who, name, e).await),
        }
        let placeholders = match placeholders {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut rendered = match self.engine.render(compiled, parameters, placeholders).await {
            Ok(r) => r,
            Err(e) => return Err(self.refused(who, name, e).await),
        };
        if let Err(e) = self.filter_output(resolved.0.access.output_filters.as_deref(), class, &mut rendered)
        {
            return Err(self.refused(who, name, e).await);
        }
        rendered.warnings.extend(input_warnings);
        if status == promptvault_core::VersionStatus::Deprecated {
            let d = resolved.1.deprecation.as_ref();
            let mut w = format!("version {} is deprecated", resolved.1.seq);
            if let Some(r) = d.and_then(|d| d.replacement_seq) {
                w.push_str(&format!("; use version {r}"));
            }
            if let Some(u) = d.and_then(|d| d.until) {
                w.push_str(&format!("; supported until {}", u.to_rfc3339()));
            }
            if let Some(r) = d.and_then(|d| d.reason.as_deref()) {
                w.push_str(&format!(" ({r})"));
            }
            rendered.warnings.insert(0, w);
        }
        let parameters = std::mem::take(&mut rendered.parameters);
        let (template, version) = (&resolved.0, &resolved.1);
        let prompt_id = PromptId::new();
        self.usage
            .record(PromptRecord {
                id: prompt_id,
                template_id: template.id,
                prompt_type_id: template.prompt_type_id,
                version_id: version.id,
                version_seq: version.seq,
                data: Value::Object(parameters),
                prompt_text: rendered.body.to_text(),
                sender_id: Some(who.user_id),
                created_at: Self::now(),
                metadata: req.metadata,
                outcome: None,
            })
            .await?;
        metrics::counter!("promptvault_renders_total").increment(1);
        self.audit_ok(
            who,
            "template.execute",
            Resource::Template,
            Some(name.as_str()),
            json!({"seq": version.seq, "prompt_id": prompt_id.to_string()}),
        )
        .await;
        Ok(RenderOutcome { prompt_id, resolved, rendered })
    }

    /// A render refused by the content policy, or stopped by its worker's
    /// memory cap or time limit, is a security event: it is audited (failed
    /// `template.execute`, with the reason) before the error is returned.
    /// Other render errors (a missing parameter, a template error) are the
    /// caller's mistakes and are not.
    async fn refused(&self, who: &Principal, name: &TemplateName, e: ServiceError) -> ServiceError {
        let audited = match &e {
            ServiceError::Invalid { code, .. } => {
                matches!(*code, "sensitive_parameter" | "injected_parameter" | "output_blocked")
            }
            ServiceError::Render(r) => matches!(
                r,
                promptvault_core::render::RenderError::TimedOut { .. }
                    | promptvault_core::render::RenderError::MemoryExceeded { .. }
            ),
            _ => false,
        };
        if audited {
            self.audit_failed(who, "template.execute", Resource::Template, name.as_str(), &e).await;
        }
        e
    }

    /// The compiled template for a version, with its includes resolved now.
    /// Every included template must be deliverable to `who`'s deployment
    /// too: an include never carries content where it may not go.
    async fn compiled(
        &self,
        who: &Principal,
        resolved: &Arc<(Template, Version)>,
    ) -> Result<Arc<crate::isolation::Prepared>> {
        let (template, version) = (&resolved.0, &resolved.1);
        let references = self.caches.references(version).map_err(|e| ServiceError::Render(e.into()))?;
        let mut plan: IncludePlan<(VersionId, [u8; 32])> =
            IncludePlan::with_references(&template.name, references.to_vec())
                .map_err(|e| ServiceError::Render(e.into()))?;
        while let Some(reference) = plan.next() {
            let read = match &reference.selector {
                Selector::Default => ReadSelector::default(),
                Selector::Label(l) => ReadSelector { label: Some(l.clone()), version: None },
                Selector::Version(n) => {
                    ReadSelector { label: None, version: Some(super::VersionRef::Seq(*n)) }
                }
            };
            let fetched = match self.resolve_cached(&reference.name.clone(), &read).await {
                Ok(found) => {
                    let target = self.with_rules(&super::template_target(&found.0));
                    if let Some(d) =
                        promptvault_core::authz::delivery_denied(who, Resource::Template, &target)
                    {
                        let reason = format!("{} includes {}: {}", template.name, found.0.name, d.reason);
                        self.deny(
                            who,
                            Action::Execute,
                            Resource::Template,
                            Some(template.name.as_str()),
                            reason,
                        )
                        .await?;
                    }
                    Some(Fetched {
                        name: found.0.name.clone(),
                        body: found.1.content.body.clone(),
                        tag: (found.1.id, *found.1.content_hash.as_bytes()),
                    })
                }
                Err(ServiceError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            plan.provide(fetched).map_err(|e| ServiceError::Render(e.into()))?;
        }
        let includes = plan.finish();
        let key = CompiledKey {
            version: version.id,
            hash: *version.content_hash.as_bytes(),
            includes: includes.iter().map(|i| (i.literal.clone(), i.tag.0, i.tag.1)).collect(),
        };
        if let Some(hit) = self.caches.get_compiled(&key) {
            return Ok(hit);
        }
        let compiled = Arc::new(self.engine.prepare(
            template.name.as_str(),
            &version.content.body,
            &version.content.parameter_schema,
            includes.into_iter().map(|i| (i.literal, i.source)).collect(),
            self.limits,
        )?);
        self.caches.insert_compiled(key, compiled.clone());
        Ok(compiled)
    }

    /// Records whether a rendering worked; the first report stands.
    pub async fn report_outcome(
        &self,
        who: &Principal,
        prompt: PromptId,
        outcome: Outcome,
        detail: Option<String>,
    ) -> Result<()> {
        self.authorize(who, Action::Update, Resource::Prompt, &Target::default(), None).await?;
        super::check_text("detail", detail.as_deref(), 2_000)?;
        let result = self.usage.outcome(prompt, OutcomeRecord { outcome, detail, at: Self::now() }).await?;
        match result {
            OutcomeResult::Recorded => {
                let id = prompt.to_string();
                self.audit_ok(who, "prompt.update", Resource::Prompt, Some(&id), json!({"outcome": outcome}))
                    .await;
                Ok(())
            }
            OutcomeResult::UnknownPrompt => {
                Err(ServiceError::not_found(Missing::Prompt, format!("no rendering has id {prompt}")))
            }
            OutcomeResult::AlreadyReported => Err(ServiceError::conflict(
                "outcome_already_reported",
                format!("the outcome of rendering {prompt} was already reported"),
            )),
        }
    }

    pub async fn get_prompt(&self, who: &Principal, id: PromptId) -> Result<PromptRecord> {
        self.authorize(who, Action::Read, Resource::Prompt, &Target::default(), None).await?;
        self.audit_ok(who, "prompt.read", Resource::Prompt, Some(&id.to_string()), Value::Null).await;
        // A rendering may still be queued: write the queue first.
        self.usage.flush().await?;
        let record =
            self.store.get_prompt(id).await?.ok_or_else(|| {
                ServiceError::not_found(Missing::Prompt, format!("no rendering has id {id}"))
            })?;
        // The rendered text is the template's content: it goes only where
        // the template may (its scope, allowed roles and deployments).
        if let Some(t) = self.store.get_template_by_id(record.template_id).await? {
            self.authorize(who, Action::Read, Resource::Prompt, &template_target(&t), Some(t.name.as_str()))
                .await?;
        }
        Ok(record)
    }

    pub async fn metrics(&self, who: &Principal, name: &TemplateName) -> Result<(Template, TemplateMetrics)> {
        self.gate(who, Action::Read, Resource::Prompt, Some(name.as_str())).await?;
        let t = self.template_or_404(name).await?;
        self.authorize(who, Action::Read, Resource::Prompt, &template_target(&t), Some(name.as_str()))
            .await?;
        self.audit_ok(who, "prompt.metrics", Resource::Prompt, Some(name.as_str()), Value::Null).await;
        self.usage.flush().await?;
        let m = self.store.template_metrics(t.id).await?;
        Ok((t, m))
    }

    /// The label a read resolves when it names none.
    #[must_use]
    pub fn default_label_name(&self) -> &LabelName {
        &self.default_label
    }
}
