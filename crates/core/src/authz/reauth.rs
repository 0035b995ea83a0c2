//! Re-authentication: a web session must have proved its password recently
//! before it changes or renders a restricted template.
//!
//! Only web sessions are concerned. A session lives in a browser, where a
//! person may walk away from an unlocked screen; the rule makes a fresh
//! password the price of touching the most sensitive templates. API keys
//! and JWTs belong to programs (or carry their own short lifetimes from the
//! identity provider) and have no password to prove again.

use chrono::{DateTime, Duration, Utc};

use crate::classification::SecurityClassification;

use super::{Action, Credential, Decision, Principal, Resource, Target};

/// A denial when `principal` must re-authenticate before `action` on
/// `resource` for `target` at `now`; `None` when it need not.
#[must_use]
pub fn required(
    principal: &Principal,
    action: Action,
    resource: Resource,
    target: &Target<'_>,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Option<Decision> {
    if principal.credential != Credential::Session
        || !resource.is_template_bound()
        || action == Action::Read
        || target.classification() != Some(SecurityClassification::Restricted)
    {
        return None;
    }
    let fresh = principal.authenticated_at.is_some_and(|at| now - at <= max_age);
    if fresh {
        return None;
    }
    let ago = principal
        .authenticated_at
        .map_or_else(|| "never".to_owned(), |at| format!("{} minutes ago", (now - at).num_minutes()));
    Some(Decision::deny(format!(
        "{resource}:{action} on a restricted template needs a password given in the last {} minutes; this \
         session last gave one {ago}: re-authenticate with POST /api/v1/reauth",
        max_age.num_minutes()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Origin, TemplateAccess, TemplateFacts, builtin};
    use crate::{ApiKeyId, TemplateName, UserId};

    fn session(authenticated_at: Option<DateTime<Utc>>, credential: Credential) -> Principal {
        Principal {
            user_id: UserId::new(),
            display: "ada".into(),
            credential,
            roles: vec![builtin::role_named("admin").unwrap()],
            deployment: None,
            origin: Origin::default(),
            authenticated_at,
        }
    }

    #[test]
    fn case_table() {
        let now = Utc::now();
        let five = Duration::minutes(5);
        let name = TemplateName::parse("vault/keys").unwrap();
        let access = TemplateAccess::default();
        let of = |c| Target {
            template: Some(TemplateFacts { name: &name, owner: None, classification: c, access: &access }),
            ..Target::default()
        };
        let restricted = of(SecurityClassification::Restricted);
        let confidential = of(SecurityClassification::Confidential);
        let creating =
            Target { new_classification: Some(SecurityClassification::Restricted), ..Target::default() };
        let fresh = session(Some(now - Duration::minutes(4)), Credential::Session);
        let stale = session(Some(now - Duration::minutes(6)), Credential::Session);
        let key = session(None, Credential::ApiKey(ApiKeyId::new()));
        let jwt = session(None, Credential::Jwt);
        let t = Resource::Template;
        // (who, action, resource, target, must re-authenticate)
        let cases: [(&Principal, Action, Resource, &Target<'_>, bool); 11] = [
            (&stale, Action::Update, t, &restricted, true),
            (&stale, Action::Execute, t, &restricted, true),
            (&stale, Action::Publish, Resource::Label, &restricted, true),
            (&stale, Action::Create, t, &creating, true),
            (&stale, Action::Read, t, &restricted, false),
            (&stale, Action::Update, t, &confidential, false),
            (&stale, Action::Update, Resource::User, &restricted, false),
            (&fresh, Action::Update, t, &restricted, false),
            (&fresh, Action::Execute, t, &restricted, false),
            (&key, Action::Execute, t, &restricted, false),
            (&jwt, Action::Delete, t, &restricted, false),
        ];
        for (i, (who, action, resource, target, expect)) in cases.into_iter().enumerate() {
            assert_eq!(required(who, action, resource, target, now, five).is_some(), expect, "case {i}");
        }
        let d = required(&stale, Action::Execute, t, &restricted, now, five).unwrap();
        assert!(!d.allowed);
        assert!(d.reason.contains("6 minutes ago") && d.reason.contains("/api/v1/reauth"), "{}", d.reason);
        let never = session(None, Credential::Session);
        assert!(
            required(&never, Action::Update, t, &restricted, now, five).unwrap().reason.contains("never")
        );
    }
}
