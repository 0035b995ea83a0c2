//! Bearer JWTs of an identity provider, mapped to users.
//!
//! A verified token names its user by the configured user claim (`sub` by
//! default). That subject is looked up as a user's `external_user_id`, and,
//! when it is a UUID (Supabase's user ids are), as a `supabase_user_id`.
//! An unknown subject is refused, or with `auto_provision` becomes a new user
//! (external id = the subject, e-mail from the token, the default role when
//! it exists), written with its audit event in one transaction. Two first
//! requests racing to create the same user both end up with the one that
//! won: the loser's insert hits the unique external id and reads it back.
//!
//! The roles of the principal are the user's roles in promptvault; a role
//! claim in the token grants nothing.

use chrono::{DateTime, Utc};
use promptvault_core::UserId;
use promptvault_core::audit::{AuditOutcome, NewAuditEvent};
use promptvault_core::authz::{Credential, Origin, Principal, builtin};
use promptvault_core::model::truncate_to_micros;
use promptvault_store::{NewUser, StoreError, User, Write};
use serde_json::json;
use uuid::Uuid;

use super::{Authenticator, unavailable};
use crate::error::ApiError;
use crate::jwt::{JwtConfigError, JwtSettings, JwtVerifier, VerifiedClaims};

/// Longest subject kept as an external user id (the users API's limit).
const MAX_SUBJECT_CHARS: usize = 320;

/// An identity provider whose JWTs are accepted, and what to do with
/// subjects seen for the first time.
pub struct IdentityProvider {
    verifier: JwtVerifier,
    auto_provision: bool,
    default_role: Option<String>,
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("verifier", &self.verifier)
            .field("auto_provision", &self.auto_provision)
            .field("default_role", &self.default_role)
            .finish()
    }
}

impl IdentityProvider {
    /// Checks `[auth.jwt]` and prepares the verifier. `http` fetches the
    /// JWKS, if one is configured.
    pub fn new(settings: &JwtSettings, http: reqwest::Client) -> Result<Self, JwtConfigError> {
        Ok(Self {
            verifier: JwtVerifier::new(settings, http)?,
            auto_provision: settings.auto_provision,
            default_role: settings.default_role.clone(),
        })
    }

    /// The role given to provisioned users, when configured.
    #[must_use]
    pub fn default_role(&self) -> Option<&str> {
        self.default_role.as_deref()
    }
}

impl Authenticator {
    /// Verifies a JWT and finds (or creates) its user; the principal and
    /// when the token expires.
    pub(super) async fn jwt_principal(
        &self,
        idp: &IdentityProvider,
        token: &str,
        origin: &Origin,
    ) -> Result<(Principal, DateTime<Utc>), ApiError> {
        let claims = idp.verifier.verify(token).await?;
        let user = match self.linked_user(&claims.subject).await? {
            Some(user) => user,
            None if idp.auto_provision => self.provision(idp, &claims, origin).await?,
            None => {
                return Err(ApiError::unauthorized(
                    "the token is valid but no user is linked to its subject; an administrator can \
                     create one with the subject as external_user_id (or enable auth.jwt.auto_provision)",
                ));
            }
        };
        if user.disabled_at.is_some() {
            return Err(ApiError::unauthorized("the user of this token is disabled"));
        }
        let roles = self.resolve_roles(&user.roles).await;
        let subject: String = claims.subject.chars().take(80).collect();
        let display = match &user.email {
            Some(email) => format!("jwt {subject} ({email})"),
            None => format!("jwt {subject}"),
        };
        let principal = Principal {
            user_id: user.id,
            display,
            credential: Credential::Jwt,
            roles,
            deployment: None,
            origin: Origin::default(),
            authenticated_at: None,
        };
        Ok((principal, claims.expires_at))
    }

    /// The user whose external id, or Supabase user id, is `subject`.
    async fn linked_user(&self, subject: &str) -> Result<Option<User>, ApiError> {
        let failed = |e: StoreError| {
            tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "user lookup failed");
            unavailable()
        };
        if let Some(user) = self.store.find_user_by_external_id(subject).await.map_err(failed)? {
            return Ok(Some(user));
        }
        match subject.parse::<Uuid>() {
            Ok(id) => self.store.find_user_by_supabase_id(id).await.map_err(failed),
            Err(_) => Ok(None),
        }
    }

    /// Creates the user of a subject seen for the first time.
    async fn provision(
        &self,
        idp: &IdentityProvider,
        claims: &VerifiedClaims,
        origin: &Origin,
    ) -> Result<User, ApiError> {
        let subject = &claims.subject;
        if subject.chars().count() > MAX_SUBJECT_CHARS || subject.trim() != subject {
            return Err(ApiError::unauthorized(
                "the token's subject cannot name a user (longer than 320 characters, or padded with spaces)",
            ));
        }
        let roles = match idp.default_role() {
            Some(role) if self.role_exists(role).await? => vec![role.to_owned()],
            Some(role) => {
                tracing::warn!(role, "auth.jwt.default_role does not exist; the new user gets no role");
                Vec::new()
            }
            None => Vec::new(),
        };
        let email = claims
            .email
            .clone()
            .filter(|e| e.contains('@') && e.trim() == e && e.chars().count() <= MAX_SUBJECT_CHARS);
        let id = UserId::new();
        let at = truncate_to_micros(Utc::now());
        let mut ev =
            NewAuditEvent::new(at, format!("jwt {subject}"), "user.create", "user", AuditOutcome::Success);
        ev.actor_id = Some(id.to_string());
        ev.resource = Some(id.to_string());
        ev.reason = Some("provisioned on the first request with a valid JWT".into());
        ev.request_id = origin.request_id.clone();
        ev.client_addr = origin.client_addr.clone();
        ev.details = self.audit.level().details(json!({
            "email": email,
            "roles": roles,
            "external_user_id": subject,
            "issuer": claims.issuer,
        }));
        let new = NewUser { id, email, roles, external_user_id: Some(subject.clone()), ..NewUser::default() };
        match self.store.create_user(new, Write::audited(at, ev)).await {
            Ok(user) => {
                tracing::info!(user = %user.id, subject = %subject, "provisioned a user from a JWT");
                Ok(user)
            }
            // Someone else took the subject or the e-mail meanwhile: the
            // subject's user if a concurrent first request created it.
            Err(StoreError::Conflict(_)) => self.linked_user(subject).await?.ok_or_else(|| {
                ApiError::unauthorized(
                    "the token's e-mail address belongs to a user not linked to its subject; an \
                     administrator can set that user's external_user_id to the subject",
                )
            }),
            Err(e) => {
                tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "could not provision a user from a JWT");
                Err(unavailable())
            }
        }
    }

    async fn role_exists(&self, name: &str) -> Result<bool, ApiError> {
        if builtin::role_named(name).is_some() {
            return Ok(true);
        }
        self.store.get_role(name).await.map(|r| r.is_some()).map_err(|e| {
            tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "role lookup failed");
            unavailable()
        })
    }
}
