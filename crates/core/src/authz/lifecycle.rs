//! What each lifecycle state allows: who may edit a version, who sees it,
//! which deployments may use it. Checked after the permission to read or
//! render the template was granted.

use crate::classification::DeploymentModel;
use crate::status::VersionStatus;

use super::{Action, Decision, Principal, Resource, Target, decide};

/// Who may see a version in some state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone allowed to read (or render) the template.
    Readers,
    /// Those working on the template: allowed to update, approve or
    /// publish it.
    Contributors,
}

/// The rules of one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRules {
    /// Changed in place (only drafts).
    pub editable: bool,
    pub audience: Audience,
    /// Deployments the version is delivered to (requests without a bound
    /// deployment come from the central web deployment).
    pub deployments: &'static [DeploymentModel],
    /// Renders at all (archived versions do not).
    pub renders: bool,
}

const WEB_ONLY: &[DeploymentModel] = &[DeploymentModel::WebApplication];

/// The rules of `status`.
#[must_use]
pub const fn state_rules(status: VersionStatus) -> StateRules {
    match status {
        VersionStatus::Draft => StateRules {
            editable: true,
            audience: Audience::Contributors,
            deployments: WEB_ONLY,
            renders: true,
        },
        VersionStatus::Review => StateRules {
            editable: false,
            audience: Audience::Contributors,
            deployments: WEB_ONLY,
            renders: true,
        },
        VersionStatus::Approved | VersionStatus::Deprecated => StateRules {
            editable: false,
            audience: Audience::Readers,
            deployments: &DeploymentModel::ALL,
            renders: true,
        },
        VersionStatus::Archived => StateRules {
            editable: false,
            audience: Audience::Readers,
            deployments: &DeploymentModel::ALL,
            renders: false,
        },
    }
}

/// May `principal` see (read or render) version `seq` in `status`? The
/// permission on the template itself is decided before, by [`decide`].
#[must_use]
pub fn decide_version(
    principal: &Principal,
    seq: u32,
    status: VersionStatus,
    target: &Target<'_>,
) -> Decision {
    let rules = state_rules(status);
    let from = principal.deployment.unwrap_or(DeploymentModel::WebApplication);
    if !rules.deployments.contains(&from) {
        let to: Vec<&str> = rules.deployments.iter().map(|d| d.as_str()).collect();
        return Decision::deny(format!(
            "version {seq} is {status}: {status} versions are delivered to {} only; this request comes from {}",
            to.join(", "),
            from.as_str()
        ));
    }
    if rules.audience == Audience::Contributors {
        for action in [Action::Update, Action::Approve, Action::Publish] {
            let d = decide(principal, action, Resource::Template, target);
            if d.allowed {
                return Decision {
                    allowed: true,
                    reason: format!("{status} versions are visible to those who may {action} the template"),
                    granted_by: d.granted_by,
                };
            }
        }
        return Decision::deny(format!(
            "version {seq} is {status}: {status} versions are visible only to those who may update, \
             approve or publish the template, and {} may not",
            principal.display
        ));
    }
    Decision { allowed: true, reason: format!("{status} versions are visible to readers"), granted_by: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Credential, Origin, builtin};
    use crate::{ApiKeyId, UserId};

    fn who(role: &str, deployment: Option<DeploymentModel>) -> Principal {
        Principal {
            user_id: UserId::new(),
            display: format!("{role} key"),
            credential: Credential::ApiKey(ApiKeyId::new()),
            roles: vec![builtin::role_named(role).unwrap()],
            deployment,
            origin: Origin::default(),
            authenticated_at: None,
        }
    }

    #[test]
    fn drafts_and_reviews_are_for_contributors_on_the_web() {
        let t = Target::default();
        for status in [VersionStatus::Draft, VersionStatus::Review] {
            for role in ["author", "reviewer", "publisher", "admin"] {
                assert!(decide_version(&who(role, None), 1, status, &t).allowed, "{role} {status}");
            }
            for role in ["consumer", "viewer", "auditor"] {
                let d = decide_version(&who(role, None), 1, status, &t);
                assert!(!d.allowed && d.reason.contains("visible only"), "{role} {status}: {}", d.reason);
            }
            let d = decide_version(&who("admin", Some(DeploymentModel::ElectronLocal)), 2, status, &t);
            assert!(!d.allowed && d.reason.contains("web_application only"), "{}", d.reason);
            assert!(
                decide_version(&who("author", Some(DeploymentModel::WebApplication)), 2, status, &t).allowed
            );
        }
    }

    #[test]
    fn released_versions_are_for_every_reader_everywhere() {
        let t = Target::default();
        for status in [VersionStatus::Approved, VersionStatus::Deprecated, VersionStatus::Archived] {
            for dep in [None, Some(DeploymentModel::ElectronLocal), Some(DeploymentModel::ElectronRemote)] {
                assert!(decide_version(&who("consumer", dep), 1, status, &t).allowed, "{status} {dep:?}");
            }
        }
        assert!(state_rules(VersionStatus::Draft).editable);
        assert!(!state_rules(VersionStatus::Approved).editable);
        assert!(!state_rules(VersionStatus::Archived).renders);
    }
}
