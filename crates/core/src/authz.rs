//! Authorization decisions: pure functions from (principal, action,
//! resource) to allow or deny, each with its reason.
//!
//! For now one role exists, `admin`, held by the bootstrap key. Roles,
//! permissions and scopes come with governance; the shape is already the
//! one they need: every handler asks [`decide`] before it acts.

use std::fmt;

use serde::Serialize;

use crate::ids::{ApiKeyId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Execute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Type,
    Template,
    Version,
    Label,
    Prompt,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Execute => "execute",
        })
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Type => "prompt type",
            Resource::Template => "template",
            Resource::Version => "version",
            Resource::Label => "label",
            Resource::Prompt => "prompt",
        })
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    ApiKey(ApiKeyId),
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub credential: Credential,
    pub roles: Vec<String>,
}

/// The answer, with the reason that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Deny by default; allow what a role grants.
#[must_use]
pub fn decide(principal: &Principal, action: Action, resource: Resource) -> Decision {
    if principal.roles.iter().any(|r| r == "admin") {
        return Decision { allowed: true, reason: format!("role admin may {action} any {resource}") };
    }
    Decision { allowed: false, reason: format!("no role of this principal grants {action} on {resource}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[&str]) -> Principal {
        Principal {
            user_id: UserId::new(),
            credential: Credential::ApiKey(ApiKeyId::new()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn admin_may_do_everything_and_others_nothing() {
        let actions = [Action::Create, Action::Read, Action::Update, Action::Delete, Action::Execute];
        let resources =
            [Resource::Type, Resource::Template, Resource::Version, Resource::Label, Resource::Prompt];
        for a in actions {
            for r in resources {
                assert!(decide(&principal(&["admin"]), a, r).allowed);
                let d = decide(&principal(&[]), a, r);
                assert!(!d.allowed);
                assert!(d.reason.contains(&a.to_string()));
            }
        }
    }
}
