//! Labels and rollback.

use chrono::{DateTime, Utc};
use promptvault_core::authz::{Action, Principal, Resource};
use promptvault_core::model::{LabelMove, Revision, Version};
use promptvault_core::{Bump, LabelName, TemplateName, UserId, VersionStatus};
use promptvault_store::{ChangeNotice, Expect};

use super::content::ContentInput;
use super::versions::{CreateVersion, VersionCreated, VersionRef};
use super::{Missing, Registry, Result, ServiceError, template_target};
use serde_json::{Value, json};

/// A label as shown to clients; `latest` is automatic and has no revision.
#[derive(Debug, Clone)]
pub struct LabelView {
    pub name: LabelName,
    pub version_seq: u32,
    pub version: semver::Version,
    pub automatic: bool,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<UserId>,
    pub revision: Option<Revision>,
}

/// Ways to make an earlier version current again.
#[derive(Debug, Clone)]
pub enum Rollback {
    /// Point a label at an earlier version (by default where it pointed before).
    MoveLabel { label: LabelName, to: Option<VersionRef> },
    /// Create a new version with an earlier version's content.
    NewVersion { from: VersionRef, bump: Option<Bump>, change_description: Option<String> },
}

/// What a rollback did.
#[derive(Debug, Clone)]
pub enum RolledBack {
    Label(LabelView),
    Version(Box<VersionCreated>),
}

fn reserved() -> ServiceError {
    ServiceError::invalid(
        "label_reserved",
        "`latest` always points at the newest version and cannot be set or removed",
    )
}

impl Registry {
    pub async fn list_labels(&self, who: &Principal, name: &TemplateName) -> Result<Vec<LabelView>> {
        self.gate(who, Action::Read, Resource::Label, Some(name.as_str())).await?;
        let t = self.template_or_404(name).await?;
        self.authorize(who, Action::Read, Resource::Label, &template_target(&t), Some(name.as_str())).await?;
        let mut views = vec![LabelView {
            name: LabelName::latest(),
            version_seq: t.latest_seq,
            version: t.latest_version.clone(),
            automatic: true,
            updated_at: None,
            updated_by: None,
            revision: None,
        }];
        let labels = self.store.list_labels(t.id).await?;
        for l in labels {
            let version =
                self.store.get_version(t.id, &promptvault_store::VersionSelector::Seq(l.version_seq)).await?;
            views.push(LabelView {
                name: l.name,
                version_seq: l.version_seq,
                version: version.map(|v| v.version).unwrap_or_else(|| semver::Version::new(0, 0, 0)),
                automatic: false,
                updated_at: Some(l.updated_at),
                updated_by: l.updated_by,
                revision: Some(l.revision),
            });
        }
        Ok(views)
    }

    /// One label and its history of moves, newest first.
    pub async fn get_label(
        &self,
        who: &Principal,
        name: &TemplateName,
        label: &LabelName,
    ) -> Result<(LabelView, Vec<LabelMove>)> {
        let views = self.list_labels(who, name).await?;
        let Some(view) = views.into_iter().find(|v| &v.name == label) else {
            return Err(ServiceError::not_found(
                Missing::Label,
                format!("template {:?} has no label {:?}", name.as_str(), label.as_str()),
            ));
        };
        let t = self.template_or_404(name).await?;
        let history =
            if label.is_latest() { vec![] } else { self.store.label_history(t.id, Some(label), 100).await? };
        Ok((view, history))
    }

    /// Points a label at a version. `expect` guards against moving a label
    /// someone else moved since it was read.
    pub async fn set_label(
        &self,
        who: &Principal,
        name: &TemplateName,
        label: &LabelName,
        to: &VersionRef,
        expect: Option<Revision>,
    ) -> Result<LabelView> {
        self.gate(who, Action::Update, Resource::Label, Some(name.as_str())).await?;
        if label.is_latest() {
            return Err(reserved());
        }
        let t = self.template_or_404(name).await?;
        self.authorize(who, Action::Update, Resource::Label, &template_target(&t), Some(name.as_str()))
            .await?;
        let what = format!("{name}|{label}");
        if self.is_protected(label) {
            self.authorize(who, Action::Publish, Resource::Label, &template_target(&t), Some(&what)).await?;
        }
        let target: Version = self.version_or_404(&t, to).await?;
        if self.is_protected(label) && target.status != VersionStatus::Approved {
            let e = ServiceError::conflict(
                "label_requires_approved",
                format!(
                    "label {:?} is protected: it may point only at an approved version, and version {} is {}",
                    label.as_str(),
                    target.seq,
                    target.status
                ),
            );
            self.audit_failed(who, "label.update", Resource::Label, &what, &e).await;
            return Err(e);
        }
        let expect = expect.map_or(Expect::Any, Expect::Revision);
        let w = self.audited(who, "label.update", Resource::Label, &what, json!({"to_seq": target.seq}));
        let l = match self.store.set_label(t.id, label, target.seq, expect, Some(who.user_id), w).await {
            Ok(l) => l,
            Err(e) => {
                let e = ServiceError::from(e);
                self.audit_failed(who, "label.update", Resource::Label, &what, &e).await;
                return Err(e);
            }
        };
        self.caches.invalidate(&ChangeNotice { template: Some(name.clone()) });
        Ok(LabelView {
            name: l.name,
            version_seq: l.version_seq,
            version: target.version,
            automatic: false,
            updated_at: Some(l.updated_at),
            updated_by: l.updated_by,
            revision: Some(l.revision),
        })
    }

    pub async fn delete_label(
        &self,
        who: &Principal,
        name: &TemplateName,
        label: &LabelName,
        expect: Option<Revision>,
    ) -> Result<()> {
        self.gate(who, Action::Delete, Resource::Label, Some(name.as_str())).await?;
        if label.is_latest() {
            return Err(reserved());
        }
        let t = self.template_or_404(name).await?;
        self.authorize(who, Action::Delete, Resource::Label, &template_target(&t), Some(name.as_str()))
            .await?;
        let what = format!("{name}|{label}");
        if self.is_protected(label) {
            self.authorize(who, Action::Publish, Resource::Label, &template_target(&t), Some(&what)).await?;
        }
        let expect = expect.map_or(Expect::Any, Expect::Revision);
        let w = self.audited(who, "label.delete", Resource::Label, &what, Value::Null);
        let deleted =
            self.store.delete_label(t.id, label, expect, Some(who.user_id), w).await.map_err(|e| match e {
                promptvault_store::StoreError::NotFound(_) => ServiceError::not_found(
                    Missing::Label,
                    format!("template {:?} has no label {:?}", name.as_str(), label.as_str()),
                ),
                other => other.into(),
            });
        if let Err(e) = deleted {
            self.audit_failed(who, "label.delete", Resource::Label, &what, &e).await;
            return Err(e);
        }
        self.caches.invalidate(&ChangeNotice { template: Some(name.clone()) });
        Ok(())
    }

    /// Makes an earlier version current again.
    pub async fn rollback(&self, who: &Principal, name: &TemplateName, how: Rollback) -> Result<RolledBack> {
        match how {
            Rollback::MoveLabel { label, to } => {
                if label.is_latest() {
                    return Err(reserved());
                }
                let t = self.template_or_404(name).await?;
                let current =
                    self.store.list_labels(t.id).await?.into_iter().find(|l| l.name == label).ok_or_else(
                        || {
                            ServiceError::not_found(
                                Missing::Label,
                                format!(
                                    "template {:?} has no label {:?} to roll back",
                                    name.as_str(),
                                    label.as_str()
                                ),
                            )
                        },
                    )?;
                let target = match to {
                    Some(v) => v,
                    None => {
                        let history = self.store.label_history(t.id, Some(&label), 100).await?;
                        let previous = history
                            .iter()
                            .find(|m| m.to_seq == Some(current.version_seq) && m.from_seq.is_some())
                            .and_then(|m| m.from_seq)
                            .ok_or_else(|| {
                                ServiceError::conflict(
                                    "no_previous_version",
                                    format!(
                                        "label {:?} has not pointed anywhere else before; name the version",
                                        label.as_str()
                                    ),
                                )
                            })?;
                        VersionRef::Seq(previous)
                    }
                };
                let view = self.set_label(who, name, &label, &target, Some(current.revision)).await?;
                Ok(RolledBack::Label(view))
            }
            Rollback::NewVersion { from, bump, change_description } => {
                self.gate(who, Action::Update, Resource::Template, Some(name.as_str())).await?;
                let t = self.template_or_404(name).await?;
                let source = self.version_or_404(&t, &from).await?;
                let description = change_description
                    .unwrap_or_else(|| format!("restore version {} ({})", source.seq, source.version));
                let created = self
                    .create_version(
                        who,
                        name,
                        CreateVersion {
                            content: ContentInput {
                                body: source.content.body.clone(),
                                parameter_schema: Some(source.content.parameter_schema.as_value().clone()),
                                config: Some(source.content.config.to_value()),
                            },
                            bump,
                            change_description: Some(description),
                            base_version: None,
                            restored_from: Some(source.seq),
                        },
                    )
                    .await?;
                Ok(RolledBack::Version(Box::new(created)))
            }
        }
    }
}
