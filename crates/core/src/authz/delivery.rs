//! Which deployments may receive a template, by its security
//! classification: the deployment-wide rules that sit beside each
//! template's own `restricted_deployments`.
//!
//! By default public and internal templates go everywhere, confidential
//! templates reach the desktop deployments (`electron_local`,
//! `electron_remote`) only when the template is marked offline-allowed, and
//! restricted templates never leave the central web deployment. The rules
//! bind admins too: they say where content may travel, not who may see it.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::classification::{DeploymentModel, SecurityClassification};

use super::{Decision, Principal, Resource, TemplateFacts};

/// Where templates of one classification may be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    /// Deployments that always receive these templates.
    pub deployments: Vec<DeploymentModel>,
    /// Deployments that receive them only when the template is marked
    /// `offline_allowed`.
    #[serde(default)]
    pub when_offline_allowed: Vec<DeploymentModel>,
}

impl ClassRule {
    fn everywhere() -> Self {
        Self { deployments: DeploymentModel::ALL.to_vec(), when_offline_allowed: vec![] }
    }

    fn admits(&self, from: DeploymentModel, offline_allowed: bool) -> bool {
        self.deployments.contains(&from) || (offline_allowed && self.when_offline_allowed.contains(&from))
    }
}

/// The rule of each classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryRules {
    pub public: ClassRule,
    pub internal: ClassRule,
    pub confidential: ClassRule,
    pub restricted: ClassRule,
}

impl Default for DeliveryRules {
    fn default() -> Self {
        Self {
            public: ClassRule::everywhere(),
            internal: ClassRule::everywhere(),
            confidential: ClassRule {
                deployments: vec![DeploymentModel::WebApplication],
                when_offline_allowed: vec![DeploymentModel::ElectronLocal, DeploymentModel::ElectronRemote],
            },
            restricted: ClassRule {
                deployments: vec![DeploymentModel::WebApplication],
                when_offline_allowed: vec![],
            },
        }
    }
}

static DEFAULT_RULES: LazyLock<DeliveryRules> = LazyLock::new(DeliveryRules::default);

impl DeliveryRules {
    /// The built-in rules (what a `Target` without rules is judged by).
    #[must_use]
    pub fn builtin() -> &'static Self {
        &DEFAULT_RULES
    }

    #[must_use]
    pub fn rule(&self, c: SecurityClassification) -> &ClassRule {
        match c {
            SecurityClassification::Public => &self.public,
            SecurityClassification::Internal => &self.internal,
            SecurityClassification::Confidential => &self.confidential,
            SecurityClassification::Restricted => &self.restricted,
        }
    }

    /// The classifications whose templates the central web deployment
    /// could never receive: almost certainly a configuration mistake.
    #[must_use]
    pub fn web_excluded(&self) -> Vec<SecurityClassification> {
        SecurityClassification::ALL
            .into_iter()
            .filter(|c| !self.rule(*c).deployments.contains(&DeploymentModel::WebApplication))
            .collect()
    }

    /// A denial when `principal`'s deployment may not receive the template,
    /// with what would allow it; `None` when it may.
    #[must_use]
    pub fn check(
        &self,
        principal: &Principal,
        resource: Resource,
        t: &TemplateFacts<'_>,
    ) -> Option<Decision> {
        if !resource.is_template_bound() {
            return None;
        }
        let from = principal.deployment.unwrap_or(DeploymentModel::WebApplication);
        let offline = t.access.offline_allowed;
        let rule = self.rule(t.classification);
        if rule.admits(from, offline) {
            return None;
        }
        let c = t.classification;
        let list = |ds: &[DeploymentModel]| -> String {
            if ds.is_empty() {
                "no deployment".to_owned()
            } else {
                ds.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            }
        };
        let allow = if rule.when_offline_allowed.contains(&from) {
            // Only the missing mark stands in the way.
            format!(
                "{c} templates reach {} only when marked offline-allowed, and {} is not \
                 (set access.offline_allowed on the template to allow it)",
                from.as_str(),
                t.name
            )
        } else if rule.when_offline_allowed.is_empty() {
            format!("{c} templates are delivered to {} only", list(&rule.deployments))
        } else {
            format!(
                "{c} templates are delivered to {}, and to {} when marked offline-allowed",
                list(&rule.deployments),
                list(&rule.when_offline_allowed)
            )
        };
        Some(Decision::deny(format!(
            "template {} is {c} and this request comes from {}: {allow}",
            t.name,
            from.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Credential, Origin, TemplateAccess, builtin};
    use crate::{ApiKeyId, TemplateName, UserId};

    fn from(d: Option<DeploymentModel>) -> Principal {
        Principal {
            user_id: UserId::new(),
            display: "k".into(),
            credential: Credential::ApiKey(ApiKeyId::new()),
            roles: vec![builtin::role_named("admin").unwrap()],
            deployment: d,
            origin: Origin::default(),
            authenticated_at: None,
        }
    }

    fn verdict(
        rules: &DeliveryRules,
        c: SecurityClassification,
        offline: bool,
        d: Option<DeploymentModel>,
    ) -> bool {
        let name = TemplateName::parse("a/b").unwrap();
        let access = TemplateAccess { offline_allowed: offline, ..TemplateAccess::default() };
        let t = TemplateFacts { name: &name, owner: None, classification: c, access: &access };
        rules.check(&from(d), Resource::Template, &t).is_none()
    }

    #[test]
    fn default_rules_case_table() {
        use DeploymentModel::*;
        use SecurityClassification::*;
        let r = DeliveryRules::default();
        // (classification, offline_allowed, deployment, delivered)
        let cases = [
            (Public, false, Some(ElectronLocal), true),
            (Internal, false, Some(ElectronRemote), true),
            (Confidential, false, None, true),
            (Confidential, false, Some(WebApplication), true),
            (Confidential, false, Some(ElectronLocal), false),
            (Confidential, false, Some(ElectronRemote), false),
            (Confidential, true, Some(ElectronLocal), true),
            (Confidential, true, Some(ElectronRemote), true),
            (Restricted, false, None, true),
            (Restricted, true, Some(WebApplication), true),
            (Restricted, false, Some(ElectronLocal), false),
            (Restricted, true, Some(ElectronLocal), false),
            (Restricted, true, Some(ElectronRemote), false),
        ];
        for (c, offline, d, expect) in cases {
            assert_eq!(verdict(&r, c, offline, d), expect, "{c} offline={offline} from {d:?}");
        }
    }

    #[test]
    fn denial_says_classification_deployment_and_remedy() {
        let r = DeliveryRules::default();
        let name = TemplateName::parse("hr/salaries").unwrap();
        let access = TemplateAccess::default();
        let t = TemplateFacts {
            name: &name,
            owner: None,
            classification: SecurityClassification::Confidential,
            access: &access,
        };
        let d = r.check(&from(Some(DeploymentModel::ElectronLocal)), Resource::Template, &t).unwrap();
        assert!(!d.allowed);
        for part in ["hr/salaries", "confidential", "electron_local", "offline_allowed"] {
            assert!(d.reason.contains(part), "{part}: {}", d.reason);
        }
        let t = TemplateFacts { classification: SecurityClassification::Restricted, ..t };
        let d = r.check(&from(Some(DeploymentModel::ElectronRemote)), Resource::Prompt, &t).unwrap();
        assert!(
            d.reason.contains("restricted templates are delivered to web_application only"),
            "{}",
            d.reason
        );
        // Not about a template: no opinion.
        assert!(r.check(&from(Some(DeploymentModel::ElectronRemote)), Resource::User, &t).is_none());
    }

    #[test]
    fn rules_are_configurable_and_parse_from_toml_shaped_json() {
        let r: DeliveryRules = serde_json::from_value(serde_json::json!({
            "confidential": {"deployments": ["web_application", "electron_remote"]},
        }))
        .unwrap();
        assert!(verdict(
            &r,
            SecurityClassification::Confidential,
            false,
            Some(DeploymentModel::ElectronRemote)
        ));
        assert!(!verdict(
            &r,
            SecurityClassification::Confidential,
            true,
            Some(DeploymentModel::ElectronLocal)
        ));
        // Unset classifications keep their defaults.
        assert_eq!(r.restricted, DeliveryRules::default().restricted);
        assert!(r.web_excluded().is_empty());
        let bad: DeliveryRules =
            serde_json::from_value(serde_json::json!({"restricted": {"deployments": []}})).unwrap();
        assert_eq!(bad.web_excluded(), vec![SecurityClassification::Restricted]);
        assert!(serde_json::from_value::<DeliveryRules>(serde_json::json!({"secret": {}})).is_err());
    }
}
