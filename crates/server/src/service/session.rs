//! Password sign-in, sign-out, and setting passwords.

use chrono::{DateTime, Utc};
use promptvault_core::audit::AuditOutcome;
use promptvault_core::audit::NewAuditEvent;
use promptvault_core::authz::{Action, Credential, Origin, Principal, Resource, Target};
use promptvault_core::model::truncate_to_micros;
use promptvault_core::{DeploymentModel, UserId};
use promptvault_store::{User, UserPatch};
use serde_json::{Value, json};

use super::identity::{not_found_as, user_missing};
use super::{Registry, Result, ServiceError};
use crate::auth::hash_token;
use crate::secret::Secret;
use crate::{password, session};

/// A session just opened: the token is shown this once.
#[derive(Debug)]
pub struct SignedIn {
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

/// One answer for every failed sign-in, so it tells nothing about which
/// users exist or have a password.
fn bad_credentials() -> ServiceError {
    ServiceError::Unauthenticated {
        code: "invalid_credentials",
        detail: "the e-mail address or the password is not right".into(),
    }
}

impl Registry {
    #[must_use]
    pub fn session_settings(&self) -> &session::SessionSettings {
        &self.sessions
    }

    /// An event about a sign-in attempt (the caller is not known yet).
    fn sign_in_event(
        &self,
        user: Option<UserId>,
        email: &str,
        origin: &Origin,
        outcome: AuditOutcome,
        reason: Option<String>,
    ) -> NewAuditEvent {
        let mut ev = NewAuditEvent::new(
            truncate_to_micros(Utc::now()),
            format!("sign-in as {email}"),
            "auth.login",
            Resource::User.as_str(),
            outcome,
        );
        ev.actor_id = user.map(|u| u.to_string());
        ev.resource = user.map(|u| u.to_string());
        ev.reason = reason;
        ev.request_id = origin.request_id.clone();
        ev.client_addr = origin.client_addr.clone();
        ev
    }

    /// Checks an e-mail address and password and opens a web session.
    pub async fn login(&self, email: &str, secret: &str, origin: &Origin) -> Result<SignedIn> {
        let email = email.trim();
        if email.is_empty() || email.len() > 320 || secret.is_empty() || secret.len() > password::MAX_BYTES {
            let ev = self.sign_in_event(None, email, origin, AuditOutcome::Denied, Some("malformed".into()));
            self.audit.record(ev).await;
            return Err(bad_credentials());
        }
        let user = self.store.find_user_by_email(email).await?;
        let hash = match &user {
            Some(u) => self.store.user_password_hash(u.id).await?,
            None => None,
        };
        let ok = verify_off_thread(secret, hash).await;
        let user_id = user.as_ref().map(|u| u.id);
        let refuse = |reason: &str| {
            self.sign_in_event(user_id, email, origin, AuditOutcome::Denied, Some(reason.into()))
        };
        let Some(user) = user.filter(|_| ok) else {
            self.audit.record(refuse("unknown user, no password, or a wrong password")).await;
            return Err(bad_credentials());
        };
        if user.disabled_at.is_some() {
            self.audit.record(refuse("the user is disabled")).await;
            return Err(bad_credentials());
        }
        let token = session::generate_token();
        let now = Self::now();
        let expires_at = now + self.sessions.max_age();
        let mut ev = self.sign_in_event(Some(user.id), email, origin, AuditOutcome::Success, None);
        ev.details = self.audit.level().details(json!({"expires_at": expires_at}));
        let w = promptvault_store::Write { at: now, audit: Some(ev) };
        self.store.create_session(hash_token(token.expose()), user.id, now, expires_at, w).await?;
        Ok(SignedIn { token, expires_at, user })
    }

    /// Ends the session `token` (the caller's own).
    pub async fn logout(&self, who: &Principal, token: &str) -> Result<()> {
        if who.credential != Credential::Session || !token.starts_with(session::TOKEN_PREFIX) {
            return Err(ServiceError::conflict(
                "not_a_session",
                "sign-out ends a web session; this request was authenticated otherwise (revoke API keys instead)",
            ));
        }
        let name = who.user_id.to_string();
        let w = self.audited(who, "auth.logout", Resource::User, &name, Value::Null);
        self.store.delete_session(&hash_token(token), w).await?;
        Ok(())
    }

    /// Proves the password of a web session's user again, so it may act on
    /// restricted templates for `reauth_after_minutes` more (audited, a
    /// wrong password too).
    pub async fn reauthenticate(&self, who: &Principal, token: &str, secret: &str) -> Result<()> {
        if who.credential != Credential::Session || !token.starts_with(session::TOKEN_PREFIX) {
            return Err(ServiceError::conflict(
                "not_a_session",
                "re-authentication is for web sessions; API keys and JWTs are not asked for it",
            ));
        }
        let name = who.user_id.to_string();
        let stored = if secret.is_empty() || secret.len() > password::MAX_BYTES {
            None
        } else {
            self.store.user_password_hash(who.user_id).await?
        };
        let ok = verify_off_thread(secret, stored).await;
        if !ok {
            let ev = self.audit.event(
                who,
                "auth.reauth",
                Resource::User.as_str(),
                Some(name),
                AuditOutcome::Denied,
                Some("wrong password".into()),
                Value::Null,
            );
            self.audit.record(ev).await;
            return Err(ServiceError::Unauthenticated {
                code: "invalid_credentials",
                detail: "the password is not right".into(),
            });
        }
        let w = self.audited(who, "auth.reauth", Resource::User, &name, Value::Null);
        self.store.reauthenticate_session(&hash_token(token), Self::now(), w).await?;
        Ok(())
    }

    /// Sets a user's password. Your own needs your current one (when you
    /// have one); someone else's needs `user:update`.
    pub async fn set_password(
        &self,
        who: &Principal,
        id: UserId,
        new: &str,
        current: Option<&str>,
    ) -> Result<()> {
        let name = id.to_string();
        if id == who.user_id {
            let stored = self.store.user_password_hash(id).await?;
            if let Some(stored) = stored {
                let ok = verify_off_thread(current.unwrap_or_default(), Some(stored)).await;
                if !ok {
                    return self
                        .deny(
                            who,
                            Action::Update,
                            Resource::User,
                            Some(&name),
                            "changing your own password needs your current password".into(),
                        )
                        .await;
                }
            }
        } else {
            self.authorize(who, Action::Update, Resource::User, &Target::default(), Some(&name)).await?;
        }
        password::check_policy(new).map_err(|m| ServiceError::invalid("weak_password", m))?;
        let given = new.to_owned();
        let hash = tokio::task::spawn_blocking(move || password::hash(&given))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(ServiceError::Internal)?;
        let w = self.audited(who, "user.password", Resource::User, &name, Value::Null);
        let patch = UserPatch { password_hash: Some(Some(hash)), ..UserPatch::default() };
        match self.store.update_user(id, patch, w).await {
            Ok(_) => {
                self.auth_changed();
                Ok(())
            }
            Err(e) => {
                let e = not_found_as(e, || user_missing(id));
                self.audit_failed(who, "user.password", Resource::User, &name, &e).await;
                Err(e)
            }
        }
    }
}

/// The principal of a web session: the user's roles, the web deployment.
#[must_use]
pub fn session_principal(
    user: &User,
    roles: Vec<promptvault_core::authz::RoleDef>,
    authenticated_at: DateTime<Utc>,
) -> Principal {
    Principal {
        user_id: user.id,
        display: user.email.clone().unwrap_or_else(|| format!("user {}", user.id)),
        credential: Credential::Session,
        roles,
        deployment: Some(DeploymentModel::WebApplication),
        origin: Origin::default(),
        authenticated_at: Some(authenticated_at),
    }
}

/// Checks `secret` against a stored hash on a blocking thread (argon2 is
/// slow on purpose); without a hash it spends the same time and fails, so
/// timing does not tell whether the user or password exists.
async fn verify_off_thread(secret: &str, hash: Option<String>) -> bool {
    let given = secret.to_owned();
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => password::verify(&given, &h),
        None => {
            password::verify_nothing(&given);
            false
        }
    })
    .await
    .unwrap_or(false)
}
