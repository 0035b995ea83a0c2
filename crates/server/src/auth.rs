//! Bearer tokens: API keys, and JWTs from an identity provider.
//!
//! A key looks like `pv_<10 hex>_<48 hex>`: the first part (the prefix) is
//! public and finds the key; the database keeps only SHA-256 of the whole
//! token, compared in constant time. A token of another shape (an admin
//! token chosen by the operator) is found by a prefix derived from its hash.
//!
//! When `[auth.jwt]` is enabled, a token shaped like a JWT (three base64url
//! parts joined by dots, which no key contains) is verified by
//! [`crate::jwt::JwtVerifier`] and mapped to a user instead ([`idp`]).
//!
//! Verified tokens are cached for a few seconds (never past a JWT's `exp`)
//! so a request does not cost a database round trip; a change to users,
//! keys or roles empties the cache (the auth epoch). Every refusal (401) is
//! audited as `auth.authenticate`, denied, without waiting
//! ([`crate::service::audit::AuditLog::try_record`]).

mod idp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::Utc;
use promptvault_core::audit::{AuditOutcome, NewAuditEvent};
use promptvault_core::authz::{Credential, Origin, Principal, RoleDef, builtin};
use promptvault_core::model::truncate_to_micros;
use promptvault_core::{ApiKeyId, UserId};
use promptvault_store::{NewApiKey, NewUser, Store};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use idp::IdentityProvider;

use crate::error::ApiError;
use crate::secret::Secret;
use crate::service::audit::AuditLog;
use crate::state::AppState;

/// The audit action of authentication attempts.
pub const AUTHENTICATE_ACTION: &str = "auth.authenticate";

/// How long a verified key is trusted without asking the database again.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// How often `last_used_at` is written per key at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Makes a new random token.
#[must_use]
pub fn generate_token() -> Secret {
    let prefix: [u8; 5] = rand::random();
    let secret: [u8; 24] = rand::random();
    Secret::new(format!("pv_{}_{}", hex::encode(prefix), hex::encode(secret)))
}

/// The public part that finds a token's key.
#[must_use]
pub fn token_prefix(token: &str) -> String {
    let b = token.as_bytes();
    let structured = b.len() > 15
        && token.starts_with("pv_")
        && b[13] == b'_'
        && b[3..13].iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    if structured { token[..13].to_owned() } else { format!("h_{}", &hex::encode(hash_token(token))[..16]) }
}

#[must_use]
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a token has the shape of a JWT: a header and a payload of
/// base64url characters, and a signature that may be empty (so that
/// unsigned tokens reach the verifier and are refused as such).
#[must_use]
pub fn looks_like_jwt(token: &str) -> bool {
    let b64url = |p: &str| p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => {
            !h.is_empty() && !p.is_empty() && [h, p, s].into_iter().all(b64url)
        }
        _ => false,
    }
}

struct Cached {
    principal: Principal,
    epoch: u64,
    via: Via,
    verified_at: Instant,
    expires_at: Option<chrono::DateTime<Utc>>,
}

/// What a cached principal came from.
enum Via {
    ApiKey { key: ApiKeyId, touched_at: Instant },
    Jwt,
}

/// Turns bearer tokens into principals.
pub struct Authenticator {
    store: Arc<dyn Store>,
    /// Bumped by the registry when users, keys or roles change.
    epoch: Arc<std::sync::atomic::AtomicU64>,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    sessions: crate::session::SessionSettings,
    audit: AuditLog,
    /// Set when `[auth.jwt]` is enabled.
    idp: Option<IdentityProvider>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    #[must_use]
    pub fn new(store: Arc<dyn Store>, epoch: Arc<std::sync::atomic::AtomicU64>, audit: AuditLog) -> Self {
        Self {
            store,
            epoch,
            cache: Mutex::new(HashMap::new()),
            audit,
            idp: None,
            sessions: crate::session::SessionSettings::default(),
        }
    }

    /// Accepts JWTs of this identity provider too.
    #[must_use]
    pub fn with_identity_provider(mut self, idp: IdentityProvider) -> Self {
        self.idp = Some(idp);
        self
    }

    /// Sets how long web sessions last.
    #[must_use]
    pub fn with_sessions(mut self, sessions: crate::session::SessionSettings) -> Self {
        self.sessions = sessions;
        self
    }

    /// Checks a web session token: known, not past its maximum age, used
    /// within the idle timeout, its user enabled. Activity extends it
    /// (recorded at most once a minute).
    pub async fn authenticate_session(&self, token: &str) -> Result<Principal, ApiError> {
        let hash = hash_token(token);
        let unavailable = |e: promptvault_store::StoreError| {
            tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "session lookup failed");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "authentication is temporarily unavailable",
            )
        };
        let Some(record) = self.store.find_session(&hash).await.map_err(unavailable)? else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "session_invalid",
                "the session is not valid (signed out, or never existed); sign in again",
            ));
        };
        let now = Utc::now();
        if record.expires_at <= now {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "session_expired",
                "the session has reached its maximum age; sign in again",
            ));
        }
        if record.last_seen_at + self.sessions.idle_timeout() <= now {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "session_expired",
                format!(
                    "the session ended after {} minutes without activity; sign in again",
                    self.sessions.idle_timeout_minutes
                ),
            ));
        }
        let user = self.store.get_user(record.user_id).await.map_err(unavailable)?;
        let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "session_invalid",
                "the user of this session is disabled or deleted",
            ));
        };
        if now - record.last_seen_at >= chrono::Duration::seconds(60) {
            let store = self.store.clone();
            let at = truncate_to_micros(now);
            tokio::spawn(async move {
                if let Err(e) = store.touch_session(&hash, at).await {
                    tracing::warn!(error = %crate::content::redact_secrets(&e.to_string()), "could not record session activity");
                }
            });
        }
        let roles = self.resolve_roles(&user.roles).await;
        Ok(crate::service::session::session_principal(&user, roles, record.authenticated_at))
    }

    /// Checks a bearer token; `origin` is the request's, for the principal
    /// and the audit trail. Every failure of a kind reads the same to the
    /// caller.
    pub async fn authenticate(&self, token: &str, origin: &Origin) -> Result<Principal, ApiError> {
        if token.starts_with(crate::session::TOKEN_PREFIX) {
            return self.authenticate_session(token).await.map(|p| Principal { origin: origin.clone(), ..p });
        }
        let hash = hash_token(token);
        let epoch = self.epoch.load(std::sync::atomic::Ordering::SeqCst);
        if let Some(hit) = self.cached(&hash, epoch) {
            return hit.map(|p| Principal { origin: origin.clone(), ..p });
        }
        let principal = match &self.idp {
            Some(idp) if looks_like_jwt(token) => {
                let (principal, expires_at) = self.jwt_principal(idp, token, origin).await?;
                self.remember(hash, &principal, epoch, Via::Jwt, Some(expires_at));
                principal
            }
            _ => self.key_principal(token, &hash, epoch).await?,
        };
        Ok(Principal { origin: origin.clone(), ..principal })
    }

    /// Records a refused authentication (any 401), without waiting: see
    /// [`AuditLog::try_record`]. The actor is `anonymous (<address>)`, so
    /// alert thresholds count refusals per client address.
    pub fn record_refusal(&self, error: &ApiError, origin: &Origin, token: Option<&str>) {
        // 401s, and the 403 of a cookie request without the CSRF header.
        if error.status != StatusCode::UNAUTHORIZED && error.status != StatusCode::FORBIDDEN {
            return;
        }
        metrics::counter!("promptvault_auth_refused_total").increment(1);
        let actor = match &origin.client_addr {
            Some(addr) => format!("anonymous ({addr})"),
            None => "anonymous".to_owned(),
        };
        let credential = match token {
            None => "none",
            Some(t) if t.starts_with(crate::session::TOKEN_PREFIX) => "session",
            Some(t) if self.idp.is_some() && looks_like_jwt(t) => "jwt",
            Some(_) => "api_key",
        };
        // The public part of one of our keys, never anything else of a token.
        let key_prefix = token.map(token_prefix).filter(|p| p.starts_with("pv_"));
        let mut ev = NewAuditEvent::new(
            truncate_to_micros(Utc::now()),
            actor,
            AUTHENTICATE_ACTION,
            "auth",
            AuditOutcome::Denied,
        );
        ev.reason = Some(error.detail.clone());
        ev.request_id = origin.request_id.clone();
        ev.client_addr = origin.client_addr.clone();
        ev.details = self.audit.level().details(json!({
            "credential": credential,
            "code": error.extra.get("reason").cloned().unwrap_or_else(|| json!(error.code)),
            "key_prefix": key_prefix,
        }));
        self.audit.try_record(ev);
    }

    /// A cached verification still good for this epoch, if any.
    fn cached(&self, hash: &[u8; 32], epoch: u64) -> Option<Result<Principal, ApiError>> {
        let now = Instant::now();
        let mut touch = None;
        let hit = {
            let mut cache = self.cache.lock().ok()?;
            let c = cache.get_mut(hash)?;
            if now.duration_since(c.verified_at) >= CACHE_TTL || c.epoch != epoch {
                return None;
            }
            let expired = c.expires_at.is_some_and(|e| e <= Utc::now());
            match &mut c.via {
                // Verified again, so that the refusal says why.
                Via::Jwt if expired => return None,
                Via::Jwt => Ok(c.principal.clone()),
                Via::ApiKey { .. } if expired => Err(ApiError::unauthorized("the API key has expired")),
                Via::ApiKey { key, touched_at } => {
                    if now.duration_since(*touched_at) >= TOUCH_EVERY {
                        *touched_at = now;
                        touch = Some(*key);
                    }
                    Ok(c.principal.clone())
                }
            }
        };
        if let Some(key) = touch {
            self.touch(key);
        }
        Some(hit)
    }

    fn remember(
        &self,
        hash: [u8; 32],
        principal: &Principal,
        epoch: u64,
        via: Via,
        expires_at: Option<chrono::DateTime<Utc>>,
    ) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            let principal = Principal { origin: Origin::default(), ..principal.clone() };
            cache.insert(hash, Cached { principal, epoch, via, verified_at: Instant::now(), expires_at });
        }
    }

    async fn key_principal(&self, token: &str, hash: &[u8; 32], epoch: u64) -> Result<Principal, ApiError> {
        let record = self.store.find_api_key(&token_prefix(token)).await.map_err(|e| {
            tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "key lookup failed");
            unavailable()
        })?;
        let Some(record) = record else {
            return Err(ApiError::unauthorized("the API key is not valid"));
        };
        if !bool::from(record.secret_hash.ct_eq(hash)) {
            return Err(ApiError::unauthorized("the API key is not valid"));
        }
        if record.revoked_at.is_some() {
            return Err(ApiError::unauthorized("the API key has been revoked"));
        }
        if record.expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(ApiError::unauthorized("the API key has expired"));
        }
        if record.user_disabled {
            return Err(ApiError::unauthorized("the user of this API key is disabled"));
        }
        let roles = self.resolve_roles(&record.roles).await;
        let principal = Principal {
            user_id: record.user_id,
            display: format!("key {} ({})", record.prefix, record.name),
            credential: Credential::ApiKey(record.id),
            roles,
            deployment: record.deployment.as_deref().and_then(|d| d.parse().ok()),
            origin: Origin::default(),
            authenticated_at: None,
        };
        let via = Via::ApiKey { key: record.id, touched_at: Instant::now() };
        self.remember(*hash, &principal, epoch, via, record.expires_at);
        self.touch(record.id);
        Ok(principal)
    }

    /// The definitions of the roles a user holds: built-in roles from code,
    /// custom roles from the database. A name that is neither grants nothing.
    async fn resolve_roles(&self, names: &[String]) -> Vec<RoleDef> {
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(r) = builtin::role_named(n) {
                out.push(r);
                continue;
            }
            match self.store.get_role(n).await {
                Ok(Some(r)) => out.push(r.def),
                Ok(None) => tracing::warn!(role = %n, "unknown role ignored"),
                Err(e) => {
                    tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), role = %n, "could not read a role")
                }
            }
        }
        out
    }

    fn touch(&self, key: ApiKeyId) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(key, truncate_to_micros(Utc::now())).await {
                tracing::warn!(error = %crate::content::redact_secrets(&e.to_string()), "could not record key use");
            }
        });
    }
}

/// The service is fine but cannot check credentials right now.
fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "authentication is temporarily unavailable",
    )
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let origin = origin_of(parts);
        let limiter = state.limiter.as_deref();
        // Failed credentials draw from the address's bucket (requests with
        // none were limited by the middleware already).
        let limit_addr = || match (limiter, crate::ratelimit::client_ip(&parts.extensions)) {
            (Some(l), Some(ip)) if crate::ratelimit::carries_credentials(&parts.headers) => {
                l.admit(crate::ratelimit::Key::Addr(ip))
            }
            _ => Ok(()),
        };
        match presented_token(parts) {
            Ok(token) => match state.auth.authenticate(token, &origin).await {
                Ok(principal) => {
                    if let Some(l) = limiter {
                        l.admit(crate::ratelimit::Key::of(&principal))?;
                    }
                    Ok(principal)
                }
                Err(e) => {
                    state.auth.record_refusal(&e, &origin, Some(token));
                    limit_addr()?;
                    Err(e)
                }
            },
            Err(e) => {
                state.auth.record_refusal(&e, &origin, None);
                limit_addr()?;
                Err(e)
            }
        }
    }
}

/// The token a request presents: a bearer token, or else the web session
/// cookie. A request that changes something on the strength of the cookie
/// must carry the CSRF header.
pub fn presented_token(parts: &Parts) -> Result<&str, ApiError> {
    presented_token_of(&parts.headers, &parts.method)
}

/// [`presented_token`] from the headers and method alone (for handlers).
pub fn presented_token_of<'a>(
    headers: &'a axum::http::HeaderMap,
    method: &axum::http::Method,
) -> Result<&'a str, ApiError> {
    let Some(header) = headers.get(AUTHORIZATION) else {
        let cookie = headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(crate::session::from_cookie_header);
        let Some(token) = cookie else {
            return Err(ApiError::unauthorized("send a token: Authorization: Bearer <token>"));
        };
        if !method.is_safe() && !headers.contains_key(crate::session::CSRF_HEADER) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf_header_missing",
                format!(
                    "a change made with the session cookie needs the {} header",
                    crate::session::CSRF_HEADER
                ),
            ));
        }
        return Ok(token);
    };
    let value =
        header.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("use the Bearer scheme: Authorization: Bearer <token>"))
}

/// Where a request comes from, for the audit trail.
#[must_use]
pub fn origin_of(parts: &Parts) -> Origin {
    Origin {
        request_id: parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
        client_addr: parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
    }
}

/// What the first start created.
#[derive(Debug)]
pub struct Bootstrap {
    /// The token, when it was generated (to print once).
    pub generated_token: Option<Secret>,
    /// Where the generated token was written.
    pub token_file: Option<PathBuf>,
}

/// Creates the admin user and key on the first start (no key exists).
pub async fn bootstrap(
    store: &Arc<dyn Store>,
    configured: Option<&Secret>,
    data_dir: &Path,
) -> Result<Option<Bootstrap>, crate::StartError> {
    let (token, generated) = match configured {
        Some(t) => (t.clone(), false),
        None => (generate_token(), true),
    };
    let user = UserId::new();
    let created = store
        .bootstrap_admin(
            NewUser {
                id: user,
                first_name: Some("Admin".into()),
                roles: vec!["admin".into()],
                ..NewUser::default()
            },
            NewApiKey {
                id: ApiKeyId::new(),
                user_id: user,
                name: "bootstrap admin".into(),
                prefix: token_prefix(token.expose()),
                secret_hash: hash_token(token.expose()),
                expires_at: None,
                deployment: None,
            },
        )
        .await
        .map_err(crate::StartError::Store)?;
    if !created {
        return Ok(None);
    }
    if !generated {
        return Ok(Some(Bootstrap { generated_token: None, token_file: None }));
    }
    let path = data_dir.join("admin-token");
    write_private(&path, token.expose()).map_err(|e| {
        crate::StartError::Io(format!("cannot write the admin token to {}: {e}", path.display()))
    })?;
    Ok(Some(Bootstrap { generated_token: Some(token), token_file: Some(path) }))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_a_findable_prefix() {
        let t = generate_token();
        let t = t.expose();
        assert_eq!(t.len(), 3 + 10 + 1 + 48);
        assert_eq!(token_prefix(t), &t[..13]);
        assert_ne!(generate_token().expose(), t);
    }

    #[test]
    fn other_tokens_get_a_hash_prefix() {
        let p = token_prefix("an-operator-chosen-admin-token-of-32+chars");
        assert!(p.starts_with("h_") && p.len() == 18, "{p}");
        assert_eq!(p, token_prefix("an-operator-chosen-admin-token-of-32+chars"));
        // Upper-case hex is not our format, so it gets a derived prefix.
        assert!(token_prefix("pv_ABCDEF0123_xxxxxxxxxxxxxxxx").starts_with("h_"));
    }

    #[test]
    fn only_jwt_shaped_tokens_go_to_the_verifier() {
        assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"));
        // Unsigned tokens too, so that they are refused as such.
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."));
        assert!(!looks_like_jwt(generate_token().expose()));
        assert!(!looks_like_jwt("an-operator-chosen-admin-token-of-32+chars"));
        for other in ["a.b", "a.b.c.d", ".b.c", "a..c", "a.b+.c", "a.b.c=", "a b.c.d"] {
            assert!(!looks_like_jwt(other), "{other}");
        }
    }
}
