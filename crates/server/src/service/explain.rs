//! Why a principal may or may not do something: the policy's own answer.

use promptvault_core::authz::{
    Action, Credential, Decision, Origin, Principal, Resource, RoleDef, Target, builtin, decide,
};
use promptvault_core::{DeploymentModel, PromptTypeKey, SecurityClassification, TemplateName, UserId};
use serde_json::json;

use super::{Missing, Registry, Result, ServiceError, template_target};

/// What to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// Whose decision (yourself when absent).
    pub user: Option<UserId>,
    pub action: Action,
    pub resource: Resource,
    pub template: Option<TemplateName>,
    pub type_key: Option<PromptTypeKey>,
    /// For a template not created yet: its classification.
    pub classification: Option<SecurityClassification>,
    /// The deployment to judge the request as coming from (the asker's,
    /// or the central web deployment for someone else, when absent).
    pub deployment: Option<DeploymentModel>,
}

/// The decision with who it is about.
#[derive(Debug, Clone)]
pub struct Explained {
    pub user: UserId,
    pub roles: Vec<String>,
    pub decision: Decision,
}

impl Registry {
    /// Anyone may ask about themselves; asking about someone else needs
    /// `role:read` (admins, auditors).
    pub async fn explain(&self, who: &Principal, req: ExplainRequest) -> Result<Explained> {
        let mut subject: Principal = match req.user {
            None => who.clone(),
            Some(id) if id == who.user_id => who.clone(),
            Some(id) => {
                self.authorize(who, Action::Read, Resource::Role, &Target::default(), Some(&id.to_string()))
                    .await?;
                let user =
                    self.store.get_user(id).await?.ok_or_else(|| {
                        ServiceError::not_found(Missing::User, format!("no user has id {id}"))
                    })?;
                let mut roles: Vec<RoleDef> = Vec::new();
                for name in &user.roles {
                    if let Some(r) = builtin::role_named(name) {
                        roles.push(r);
                    } else if let Some(r) = self.store.get_role(name).await? {
                        roles.push(r.def);
                    }
                }
                Principal {
                    user_id: id,
                    display: user.email.clone().unwrap_or_else(|| id.to_string()),
                    credential: Credential::Session,
                    roles,
                    deployment: None,
                    origin: Origin::default(),
                    authenticated_at: None,
                }
            }
        };
        if let Some(d) = req.deployment {
            subject.deployment = Some(d);
        }
        let template = match &req.template {
            Some(name) => Some(self.template_or_404(name).await?),
            None => None,
        };
        let prompt_type = match (&req.type_key, &template) {
            (Some(k), _) => Some(self.store.get_prompt_type(k).await?.ok_or_else(|| {
                ServiceError::not_found(
                    Missing::PromptType,
                    format!("prompt type {:?} does not exist", k.as_str()),
                )
            })?),
            (None, Some(t)) => self.store.get_prompt_type_by_id(t.prompt_type_id).await?,
            (None, None) => None,
        };
        let mut target = template.as_ref().map(template_target).unwrap_or_default();
        if let Some(t) = &prompt_type {
            target.type_key = Some(&t.key);
            target.type_policy = Some(&t.policy);
        }
        target.new_classification = req.classification;
        if matches!(req.resource, Resource::Key | Resource::User) && req.template.is_none() {
            target.owner = Some(subject.user_id);
        }
        let decision = decide(&subject, req.action, req.resource, &self.with_rules(&target));
        self.audit_ok(
            who,
            "role.explain",
            Resource::Role,
            Some(&subject.user_id.to_string()),
            json!({"action": req.action, "resource": req.resource, "allowed": decision.allowed}),
        )
        .await;
        Ok(Explained {
            user: subject.user_id,
            roles: subject.roles.iter().map(|r| r.name.clone()).collect(),
            decision,
        })
    }
}
