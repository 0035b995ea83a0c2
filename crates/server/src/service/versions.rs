//! Versions: creation with computed semantic versions, draft edits, diffs.

use promptvault_core::authz::{Action, Principal, Resource};
use promptvault_core::diff::{VersionDiff, diff_versions};
use promptvault_core::model::{Revision, Template, Version};
use promptvault_core::refs::{Selector, TemplateRef};
use promptvault_core::versioning::{BumpError, Change, analyze, choose_bump};
use promptvault_core::{Bump, ContentHash, TemplateName};
use promptvault_store::{
    ChangeNotice, Conflict, Expect, NewVersion, Page, PageRequest, StoreError, VersionSelector,
};

use super::content::{self, ContentInput};
use super::{Missing, ReadSelector, Registry, Result, ServiceError, template_target};
use serde_json::{Value, json};

/// A version as named in a URL or a request: its sequence number (`3`) or
/// its semantic version (`1.2.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    Seq(u32),
    Semver(semver::Version),
}

impl VersionRef {
    pub fn parse(s: &str) -> Result<Self> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok().filter(|n| *n > 0).map(VersionRef::Seq).ok_or_else(|| bad_version_ref(s));
        }
        semver::Version::parse(s).map(VersionRef::Semver).map_err(|_| bad_version_ref(s))
    }

    #[must_use]
    pub fn selector(&self) -> VersionSelector {
        match self {
            VersionRef::Seq(n) => VersionSelector::Seq(*n),
            VersionRef::Semver(v) => VersionSelector::Semver(v.clone()),
        }
    }
}

fn bad_version_ref(s: &str) -> ServiceError {
    ServiceError::BadRequest {
        code: "invalid_version",
        detail: format!(
            "{:?} is not a version: use its number (3) or its semantic version (1.2.0)",
            s.chars().take(40).collect::<String>()
        ),
    }
}

#[derive(Debug, Clone)]
pub struct CreateVersion {
    pub content: ContentInput,
    /// A larger bump than the change needs; never a smaller one.
    pub bump: Option<Bump>,
    pub change_description: Option<String>,
    /// The newest version the author built on; refused if another came since.
    pub base_version: Option<u32>,
    /// The version this one restores, for rollbacks.
    pub restored_from: Option<u32>,
}

/// A new (or edited) version with what changed and warnings.
#[derive(Debug, Clone)]
pub struct VersionCreated {
    pub version: Version,
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    /// What the template scanner found (none of it blocked the save).
    pub findings: Vec<promptvault_core::scan::ScanFinding>,
}

fn bump_error(e: BumpError) -> ServiceError {
    let code = match e {
        BumpError::Unchanged { .. } => "version_unchanged",
        BumpError::TooSmall { .. } => "bump_too_small",
    };
    ServiceError::invalid(code, e.to_string())
}

impl Registry {
    pub async fn list_versions(
        &self,
        who: &Principal,
        name: &TemplateName,
        page: &PageRequest,
    ) -> Result<(Template, Page<Version>)> {
        self.gate(who, Action::Read, Resource::Template, Some(name.as_str())).await?;
        let t = self.template_or_404(name).await?;
        self.authorize(who, Action::Read, Resource::Template, &template_target(&t), Some(name.as_str()))
            .await?;
        let mut versions = self.store.list_versions(t.id, page).await?;
        // What the caller may not see by the state rules is left out (a
        // page may come back shorter; the cursor still goes on).
        let target = template_target(&t);
        versions.items.retain(|v| {
            promptvault_core::authz::lifecycle::decide_version(who, v.seq, v.status, &target).allowed
        });
        self.audit_ok(who, "version.list", Resource::Template, Some(name.as_str()), Value::Null).await;
        Ok((t, versions))
    }

    pub async fn get_version(
        &self,
        who: &Principal,
        name: &TemplateName,
        v: &VersionRef,
    ) -> Result<(Template, Version)> {
        self.gate(who, Action::Read, Resource::Template, Some(name.as_str())).await?;
        let found =
            self.resolve_cached(name, &ReadSelector { label: None, version: Some(v.clone()) }).await?;
        self.authorize(
            who,
            Action::Read,
            Resource::Template,
            &template_target(&found.0),
            Some(name.as_str()),
        )
        .await?;
        self.authorize_version(who, &found.0, &found.1, Action::Read).await?;
        self.audit_ok(
            who,
            "version.read",
            Resource::Template,
            Some(name.as_str()),
            json!({"seq": found.1.seq}),
        )
        .await;
        Ok((found.0.clone(), found.1.clone()))
    }

    /// Adds a version; its semantic version is computed from the change
    /// against the newest version.
    pub async fn create_version(
        &self,
        who: &Principal,
        name: &TemplateName,
        input: CreateVersion,
    ) -> Result<VersionCreated> {
        self.gate(who, Action::Update, Resource::Template, Some(name.as_str())).await?;
        super::check_text("change_description", input.change_description.as_deref(), 2_000)?;
        let checked = content::check(input.content)?;
        let mut warnings = checked.warnings;
        warnings.extend(self.unresolvable_references(&checked.analysis.references).await?);
        // Someone may add a version between our read and our write; then we
        // compute again, unless the caller pinned the base.
        for _attempt in 0..5 {
            let template = self.template_or_404(name).await?;
            self.authorize(
                who,
                Action::Update,
                Resource::Template,
                &template_target(&template),
                Some(name.as_str()),
            )
            .await?;
            let prompt_type = self
                .store
                .get_prompt_type_by_id(template.prompt_type_id)
                .await?
                .ok_or_else(|| ServiceError::Internal("template without type".into()))?;
            super::catalog::check_type_contract(&prompt_type, &checked.content.parameter_schema)?;
            let findings = match self
                .scan_for_save(
                    &checked.content,
                    &checked.analysis.references,
                    template.security_classification,
                )
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    self.audit_failed(who, "version.create", Resource::Template, name.as_str(), &e).await;
                    return Err(e);
                }
            };
            if let Some(base) = input.base_version
                && base != template.latest_seq
            {
                return Err(ServiceError::conflict(
                    "stale_base",
                    format!(
                        "you built on version {base} but the newest is now {}; look at the difference and retry",
                        template.latest_seq
                    ),
                ));
            }
            let base = self.latest_version(&template).await?;
            let changes = analyze(&base.content, &checked.content);
            let bump = choose_bump(&base.version, &changes, input.bump).map_err(bump_error)?;
            let new = NewVersion {
                content_hash: ContentHash::of(&checked.content),
                content: checked.content.clone(),
                version: bump.apply(&base.version),
                bump: Some(bump),
                author_id: Some(who.user_id),
                change_description: input.change_description.clone(),
                restored_from: input.restored_from,
            };
            let w = self.audited(
                who,
                "version.create",
                Resource::Template,
                name.as_str(),
                json!({"version": new.version.to_string(), "content_hash": new.content_hash.to_string(),
                       "findings": super::scanning::audit_findings(&findings)}),
            );
            match self.store.create_version(template.id, base.seq, new, w).await {
                Ok(version) => {
                    self.caches.invalidate(&ChangeNotice { template: Some(name.clone()) });
                    return Ok(VersionCreated { version, changes: changes.changes, warnings, findings });
                }
                Err(StoreError::Conflict(Conflict::StaleBase { .. })) if input.base_version.is_none() => {}
                Err(e) => {
                    let e = ServiceError::from(e);
                    self.audit_failed(who, "version.create", Resource::Template, name.as_str(), &e).await;
                    return Err(e);
                }
            }
        }
        Err(ServiceError::conflict("stale_base", "versions are being added too quickly; retry"))
    }

    /// Edits a draft in place (it must still be the newest version); its
    /// semantic version is computed again against the version before it.
    pub async fn update_draft(
        &self,
        who: &Principal,
        name: &TemplateName,
        v: &VersionRef,
        expect: Revision,
        input: CreateVersion,
    ) -> Result<VersionCreated> {
        self.gate(who, Action::Update, Resource::Template, Some(name.as_str())).await?;
        super::check_text("change_description", input.change_description.as_deref(), 2_000)?;
        let checked = content::check(input.content)?;
        let mut warnings = checked.warnings;
        warnings.extend(self.unresolvable_references(&checked.analysis.references).await?);
        let template = self.template_or_404(name).await?;
        self.authorize(
            who,
            Action::Update,
            Resource::Template,
            &template_target(&template),
            Some(name.as_str()),
        )
        .await?;
        let current = self.version_or_404(&template, v).await?;
        let prompt_type = self
            .store
            .get_prompt_type_by_id(template.prompt_type_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("template without type".into()))?;
        super::catalog::check_type_contract(&prompt_type, &checked.content.parameter_schema)?;
        let findings = match self
            .scan_for_save(&checked.content, &checked.analysis.references, template.security_classification)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                self.audit_failed(who, "version.update", Resource::Template, name.as_str(), &e).await;
                return Err(e);
            }
        };
        let previous = self.version_before(&template, current.seq).await?;
        let (version, bump, changes) = match &previous {
            None => (current.version.clone(), None, Vec::new()),
            Some(prev) => {
                let changes = analyze(&prev.content, &checked.content);
                let bump = choose_bump(&prev.version, &changes, input.bump).map_err(bump_error)?;
                (bump.apply(&prev.version), Some(bump), changes.changes)
            }
        };
        let new = NewVersion {
            content_hash: ContentHash::of(&checked.content),
            content: checked.content,
            version,
            bump,
            author_id: current.author_id,
            change_description: input.change_description.or(current.change_description),
            restored_from: current.restored_from,
        };
        let w = self.audited(
            who,
            "version.update",
            Resource::Template,
            name.as_str(),
            json!({"seq": current.seq, "content_hash": new.content_hash.to_string(),
                   "findings": super::scanning::audit_findings(&findings)}),
        );
        let version =
            match self.store.update_draft(template.id, current.seq, Expect::Revision(expect), new, w).await {
                Ok(v) => v,
                Err(e) => {
                    let e = ServiceError::from(e);
                    self.audit_failed(who, "version.update", Resource::Template, name.as_str(), &e).await;
                    return Err(e);
                }
            };
        self.caches.invalidate(&ChangeNotice { template: Some(name.clone()) });
        Ok(VersionCreated { version, changes, warnings, findings })
    }

    pub async fn delete_draft(
        &self,
        who: &Principal,
        name: &TemplateName,
        v: &VersionRef,
        expect: Revision,
    ) -> Result<()> {
        self.gate(who, Action::Update, Resource::Template, Some(name.as_str())).await?;
        let template = self.template_or_404(name).await?;
        self.authorize(
            who,
            Action::Update,
            Resource::Template,
            &template_target(&template),
            Some(name.as_str()),
        )
        .await?;
        let current = self.version_or_404(&template, v).await?;
        let w = self.audited(
            who,
            "version.delete",
            Resource::Template,
            name.as_str(),
            json!({"seq": current.seq}),
        );
        if let Err(e) = self.store.delete_draft(template.id, current.seq, Expect::Revision(expect), w).await {
            let e = ServiceError::from(e);
            self.audit_failed(who, "version.delete", Resource::Template, name.as_str(), &e).await;
            return Err(e);
        }
        self.caches.invalidate(&ChangeNotice { template: Some(name.clone()) });
        Ok(())
    }

    /// Diff between two versions; by default the newest against the one before.
    pub async fn diff(
        &self,
        who: &Principal,
        name: &TemplateName,
        from: Option<&VersionRef>,
        to: Option<&VersionRef>,
    ) -> Result<(Version, Version, VersionDiff)> {
        self.gate(who, Action::Read, Resource::Template, Some(name.as_str())).await?;
        let template = self.template_or_404(name).await?;
        self.authorize(
            who,
            Action::Read,
            Resource::Template,
            &template_target(&template),
            Some(name.as_str()),
        )
        .await?;
        let to = match to {
            Some(v) => self.version_or_404(&template, v).await?,
            None => self.latest_version(&template).await?,
        };
        let from = match from {
            Some(v) => self.version_or_404(&template, v).await?,
            None => self.version_before(&template, to.seq).await?.unwrap_or_else(|| to.clone()),
        };
        self.authorize_version(who, &template, &from, Action::Read).await?;
        self.authorize_version(who, &template, &to, Action::Read).await?;
        let labels = (
            format!("{name} v{} ({})", from.seq, from.version),
            format!("{name} v{} ({})", to.seq, to.version),
        );
        let diff = diff_versions(&from.content, &to.content, (&labels.0, &labels.1));
        Ok((from, to, diff))
    }

    pub(super) async fn version_or_404(&self, template: &Template, v: &VersionRef) -> Result<Version> {
        self.store.get_version(template.id, &v.selector()).await?.ok_or_else(|| {
            let shown = match v {
                VersionRef::Seq(n) => n.to_string(),
                VersionRef::Semver(s) => s.to_string(),
            };
            ServiceError::not_found(
                Missing::Version,
                format!(
                    "template {:?} has no version {shown} (the newest is {}, {})",
                    template.name.as_str(),
                    template.latest_seq,
                    template.latest_version
                ),
            )
        })
    }

    pub(super) async fn latest_version(&self, template: &Template) -> Result<Version> {
        self.store.get_version(template.id, &VersionSelector::Latest).await?.ok_or_else(|| {
            ServiceError::Internal(format!("template {} has no newest version", template.name))
        })
    }

    /// The existing version with the highest sequence number below `seq`.
    async fn version_before(&self, template: &Template, seq: u32) -> Result<Option<Version>> {
        let page = PageRequest {
            limit: 1,
            cursor: Some(promptvault_store::cursor::encode(&promptvault_store::cursor::Position::BeforeSeq(
                seq,
            ))),
        };
        Ok(self.store.list_versions(template.id, &page).await?.items.into_iter().next())
    }

    /// Warnings for references that do not resolve now (they may later).
    pub(super) async fn unresolvable_references(&self, refs: &[TemplateRef]) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        for r in refs {
            let selector = match &r.selector {
                Selector::Default => self.selector(&ReadSelector::default())?,
                Selector::Label(l) if l.is_latest() => VersionSelector::Latest,
                Selector::Label(l) => VersionSelector::Label(l.clone()),
                Selector::Version(n) => VersionSelector::Seq(*n),
            };
            if self.store.resolve(&r.name, &selector).await?.is_none() {
                warnings.push(format!(
                    "included template {:?} ({}) does not resolve yet; rendering will fail until it does",
                    r.name.as_str(),
                    r.selector
                ));
            }
        }
        Ok(warnings)
    }
}
