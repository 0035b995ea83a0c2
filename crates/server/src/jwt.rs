//! Bearer JWTs from an external identity provider.
//!
//! Keys come from two places: a shared secret for HS256/HS384/HS512 (for
//! instance a Supabase project's JWT secret) and a JWKS URL for RSA and EC
//! keys (RS*, PS*, ES256, ES384), fetched and cached by [`jwks`].
//!
//! The rules, enforced here whatever the configuration says:
//! - `alg: none` is never accepted, and the header's `alg` must be on the
//!   allowlist;
//! - an algorithm is verified only with its own kind of key: HS* with the
//!   shared secret, RS*/PS* with JWKS keys of type RSA, ES* with EC keys on
//!   the matching curve. A JWKS never supplies HMAC keys, so a token "signed"
//!   with a public key used as an HMAC secret cannot pass;
//! - keys named by the token itself (`jku`, `x5u`, an embedded `jwk`) are
//!   ignored, and a `crit` header (extensions we do not implement) is refused;
//! - the signature is checked before any claim; `exp` is required; `exp`,
//!   `nbf` and `iat` are checked with the configured leeway; `iss` and `aud`
//!   when configured; the subject claim must be a non-empty string;
//! - error messages are safe to show and never echo the token.

mod jwks;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use thiserror::Error;

use crate::error::ApiError;
use crate::secret::Secret;

/// Longest token accepted; real ones are well under 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Shortest shared secret accepted: HS256 wants at least 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;
/// Largest clock leeway accepted; more hides a broken clock.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// `[auth.jwt]`: accept JWTs issued by an identity provider.
///
/// Supabase with its legacy shared secret: `hs256_secret` = the project's JWT
/// secret, `audience = "authenticated"`; `sub` is the Supabase user id. With
/// its asymmetric signing keys: `jwks_url =
/// "https://<project>.supabase.co/auth/v1/.well-known/jwks.json"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// Accept JWTs as bearer tokens. Build a [`JwtVerifier`] only when set.
    pub enabled: bool,
    /// Shared secret for HS256/HS384/HS512, used as its UTF-8 bytes.
    pub hs256_secret: Option<Secret>,
    /// A file holding the shared secret (instead of `hs256_secret`).
    pub hs256_secret_file: Option<PathBuf>,
    /// Where the identity provider publishes its public keys.
    pub jwks_url: Option<String>,
    /// The `iss` every token must carry, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must match), when set; a string or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Option<Vec<String>>,
    /// Allowed signing algorithms. Empty: HS256 when a secret is set, RS256
    /// and ES256 when a JWKS URL is set.
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_seconds: u64,
    /// How long fetched keys are used before they are fetched again.
    pub jwks_cache_seconds: u64,
    /// Fewest seconds between two fetches, whatever tokens arrive.
    pub jwks_min_refresh_seconds: u64,
    /// The claim naming the user. Names starting with `/` are JSON pointers
    /// into the claims (`/app_metadata/user_id`); others are top-level keys.
    pub user_claim: String,
    /// The claim holding the user's email address, if any.
    pub email_claim: String,
    /// The claim holding a role or a list of roles, if any. Read into
    /// [`VerifiedClaims::roles`] only: a principal's roles are its user's
    /// roles in promptvault, whatever the token says.
    pub role_claim: Option<String>,
    /// Create a user on the first valid token of an unknown subject.
    pub auto_provision: bool,
    /// Role given to users created that way.
    pub default_role: Option<String>,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            hs256_secret: None,
            hs256_secret_file: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            algorithms: Vec::new(),
            leeway_seconds: 30,
            jwks_cache_seconds: 600,
            jwks_min_refresh_seconds: 30,
            user_claim: "sub".into(),
            email_claim: "email".into(),
            role_claim: None,
            auto_provision: false,
            default_role: None,
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

/// Settings a verifier cannot work with, with what to change.
#[derive(Debug, Error)]
pub enum JwtConfigError {
    #[error("auth.jwt: set hs256_secret (or hs256_secret_file) or jwks_url")]
    NoKeySource,
    #[error("auth.jwt.algorithms: \"none\" (unsigned tokens) is never accepted; remove it")]
    NoneAlgorithm,
    #[error(
        "auth.jwt.algorithms: unknown algorithm {0:?}; use HS256, HS384, HS512, RS256, RS384, RS512, \
         PS256, PS384, PS512, ES256 or ES384"
    )]
    UnknownAlgorithm(String),
    #[error("auth.jwt.algorithms: {0} needs a shared secret; set hs256_secret or remove {0}")]
    HmacWithoutSecret(String),
    #[error("auth.jwt.algorithms: {0} needs public keys; set jwks_url or remove {0}")]
    AsymmetricWithoutJwks(String),
    #[error("auth.jwt.hs256_secret must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    #[error("auth.jwt.hs256_secret_file {path}: {error}")]
    SecretFile { path: PathBuf, error: String },
    #[error("auth.jwt.jwks_url: {0}")]
    JwksUrl(String),
    #[error("auth.jwt: {0}")]
    Invalid(String),
}

/// Why a token was refused. Messages are safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtError {
    #[error("the token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    #[error("unsigned tokens (alg \"none\") are not accepted")]
    Unsigned,
    #[error("the token's signing algorithm is not accepted")]
    AlgorithmNotAllowed,
    #[error("the token's signing algorithm does not match the type of its key")]
    KeyTypeMismatch,
    #[error("no signing key of the identity provider matches the token")]
    UnknownKey,
    #[error("the token names no key and more than one key could have signed it")]
    AmbiguousKey,
    #[error("the identity provider's signing keys are unavailable; retry shortly")]
    KeysUnavailable,
    #[error("the identity provider's signing key cannot be used")]
    UnusableKey,
    #[error("the token's signature is not valid")]
    InvalidSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token claims to be issued in the future")]
    IssuedInFuture,
    #[error("the token was not issued by the expected issuer")]
    WrongIssuer,
    #[error("the token is not meant for this service (audience)")]
    WrongAudience,
    #[error("the token lacks the {0:?} claim")]
    MissingClaim(String),
    #[error("the token's {0:?} claim has the wrong type")]
    InvalidClaim(String),
}

impl JwtError {
    /// A stable machine code for the failure.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            JwtError::TooLarge => "token_too_large",
            JwtError::Malformed => "token_malformed",
            JwtError::Unsigned => "token_unsigned",
            JwtError::AlgorithmNotAllowed => "algorithm_not_allowed",
            JwtError::KeyTypeMismatch => "key_type_mismatch",
            JwtError::UnknownKey => "unknown_key",
            JwtError::AmbiguousKey => "ambiguous_key",
            JwtError::KeysUnavailable => "keys_unavailable",
            JwtError::UnusableKey => "unusable_key",
            JwtError::InvalidSignature => "invalid_signature",
            JwtError::Expired => "token_expired",
            JwtError::NotYetValid => "token_not_yet_valid",
            JwtError::IssuedInFuture => "token_issued_in_future",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::MissingClaim(_) => "missing_claim",
            JwtError::InvalidClaim(_) => "invalid_claim",
        }
    }
}

impl From<JwtError> for ApiError {
    fn from(e: JwtError) -> Self {
        match e {
            // The provider's fault, not the client's: retrying may help.
            JwtError::KeysUnavailable => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", e.to_string())
            }
            _ => ApiError::unauthorized(e.to_string()).with("reason", json!(e.code())),
        }
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedClaims {
    /// The user, from the configured user claim.
    pub subject: String,
    pub email: Option<String>,
    /// From the configured role claim (a string or a list); empty without one.
    pub roles: Vec<String>,
    pub issuer: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// Every claim, as signed.
    pub raw: Value,
}

/// Checks bearer JWTs against the configured keys and rules.
pub struct JwtVerifier {
    algorithms: Vec<Algorithm>,
    secret: Option<DecodingKey>,
    jwks: Option<Arc<jwks::Jwks>>,
    /// Everything but the algorithm, which is set per token.
    validation: Validation,
    /// For `iat`; the library applies it to `exp` and `nbf`.
    leeway: chrono::TimeDelta,
    user_claim: String,
    email_claim: String,
    role_claim: Option<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.algorithms)
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Checks the settings and prepares the keys; JWKS keys are fetched on
    /// first use. `http` should have TLS set up; a 10-second timeout is
    /// applied to each fetch.
    pub fn new(settings: &JwtSettings, http: reqwest::Client) -> Result<Self, JwtConfigError> {
        // Chosen explicitly: if another crate compiled in a second backend,
        // jsonwebtoken could not pick one and would panic on first use.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let secret = shared_secret(settings)?;
        let jwks_url = settings.jwks_url.as_deref().map(jwks_url).transpose()?;
        if secret.is_none() && jwks_url.is_none() {
            return Err(JwtConfigError::NoKeySource);
        }
        let algorithms = allowed_algorithms(settings, secret.is_some(), jwks_url.is_some())?;
        check_ranges(settings)?;
        let jwks = jwks_url.map(|url| {
            Arc::new(jwks::Jwks::new(
                url,
                http,
                Duration::from_secs(settings.jwks_cache_seconds),
                Duration::from_secs(settings.jwks_min_refresh_seconds),
            ))
        });
        Ok(Self {
            algorithms,
            secret: secret.map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            jwks,
            validation: validation(settings),
            // At most MAX_LEEWAY_SECONDS: checked above.
            leeway: chrono::TimeDelta::seconds(settings.leeway_seconds.min(MAX_LEEWAY_SECONDS) as i64),
            user_claim: settings.user_claim.clone(),
            email_claim: settings.email_claim.clone(),
            role_claim: settings.role_claim.clone(),
        })
    }

    /// Verifies a token (without the `Bearer ` prefix) and reads its claims.
    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::TooLarge);
        }
        let header = TokenHeader::parse(token)?;
        let alg = self.algorithm(&header.alg)?;
        let fetched;
        let key = match alg.family() {
            AlgorithmFamily::Hmac => self.secret.as_ref().ok_or(JwtError::KeyTypeMismatch)?,
            AlgorithmFamily::Rsa | AlgorithmFamily::Ec => {
                let jwks = self.jwks.as_ref().ok_or(JwtError::KeyTypeMismatch)?;
                fetched = jwks.key_for(alg, header.kid.as_deref()).await?;
                fetched.decoding_key()
            }
            AlgorithmFamily::Ed => return Err(JwtError::AlgorithmNotAllowed),
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let data = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(refusal)?;
        self.claims(data.claims)
    }

    /// The algorithms tokens may use.
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    fn algorithm(&self, name: &str) -> Result<Algorithm, JwtError> {
        if name.eq_ignore_ascii_case("none") {
            return Err(JwtError::Unsigned);
        }
        Algorithm::from_str(name)
            .ok()
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or(JwtError::AlgorithmNotAllowed)
    }

    fn claims(&self, raw: Value) -> Result<VerifiedClaims, JwtError> {
        if !raw.is_object() {
            return Err(JwtError::Malformed);
        }
        let expires_at =
            claim(&raw, "exp").and_then(numeric_date).ok_or_else(|| JwtError::InvalidClaim("exp".into()))?;
        if let Some(iat) = claim(&raw, "iat") {
            let iat = numeric_date(iat).ok_or_else(|| JwtError::InvalidClaim("iat".into()))?;
            if iat > Utc::now() + self.leeway {
                return Err(JwtError::IssuedInFuture);
            }
        }
        let subject = match claim(&raw, &self.user_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(JwtError::MissingClaim(self.user_claim.clone()));
            }
            Some(_) => return Err(JwtError::InvalidClaim(self.user_claim.clone())),
        };
        let email = claim(&raw, &self.email_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let roles =
            self.role_claim.as_deref().and_then(|name| claim(&raw, name)).map_or_else(Vec::new, roles);
        let issuer = claim(&raw, "iss").and_then(Value::as_str).map(str::to_owned);
        Ok(VerifiedClaims { subject, email, roles, issuer, expires_at, raw })
    }

    /// Moves the key cache's clock forward, so tests need not sleep.
    #[cfg(test)]
    fn advance_clock(&self, by: Duration) {
        if let Some(jwks) = &self.jwks {
            jwks.advance_clock(by);
        }
    }
}

/// The parts of the header we read before choosing a key.
#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

impl TokenHeader {
    fn parse(token: &str) -> Result<Self, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| JwtError::Malformed)?;
        let header: TokenHeader = serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
        // RFC 7515 §4.1.11: extensions named in `crit` must be understood,
        // and we implement none.
        if header.crit.is_some() {
            return Err(JwtError::Malformed);
        }
        Ok(header)
    }
}

/// Maps the library's refusals onto ours.
fn refusal(e: jsonwebtoken::errors::Error) -> JwtError {
    match e.into_kind() {
        ErrorKind::InvalidSignature => JwtError::InvalidSignature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "iss" => JwtError::WrongIssuer,
            "aud" => JwtError::WrongAudience,
            _ => JwtError::MissingClaim(c),
        },
        ErrorKind::InvalidClaimFormat(c) => JwtError::InvalidClaim(c),
        ErrorKind::InvalidAlgorithm => JwtError::KeyTypeMismatch,
        kind @ (ErrorKind::InvalidKeyFormat | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey) => {
            tracing::warn!(error = ?kind, "a signing key from the identity provider cannot be used");
            JwtError::UnusableKey
        }
        _ => JwtError::Malformed,
    }
}

/// A top-level claim, or a nested one when `name` is a JSON pointer.
fn claim<'a>(raw: &'a Value, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') { raw.pointer(name) } else { raw.get(name) }
}

/// A JWT NumericDate (seconds since the epoch, possibly fractional).
fn numeric_date(v: &Value) -> Option<DateTime<Utc>> {
    let secs = match v.as_i64() {
        Some(s) => s,
        None => v.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f.floor() as i64)?,
    };
    DateTime::from_timestamp(secs, 0)
}

fn roles(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        Value::Array(items) => {
            items.iter().filter_map(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

fn shared_secret(settings: &JwtSettings) -> Result<Option<Secret>, JwtConfigError> {
    let secret = match (&settings.hs256_secret, &settings.hs256_secret_file) {
        (Some(_), Some(_)) => {
            return Err(JwtConfigError::Invalid("set hs256_secret or hs256_secret_file, not both".into()));
        }
        (Some(s), None) => s.clone(),
        (None, Some(path)) => read_secret(path)?,
        (None, None) => return Ok(None),
    };
    if secret.expose().len() < MIN_SECRET_BYTES {
        return Err(JwtConfigError::WeakSecret);
    }
    Ok(Some(secret))
}

fn read_secret(path: &Path) -> Result<Secret, JwtConfigError> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim().to_owned()))
        .map_err(|e| JwtConfigError::SecretFile { path: path.to_path_buf(), error: e.to_string() })
}

fn jwks_url(raw: &str) -> Result<reqwest::Url, JwtConfigError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| JwtConfigError::JwksUrl(format!("{raw:?} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let loopback =
                host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                // Allowed for identity providers on a private network, but
                // anyone on the path could substitute keys.
                tracing::warn!(url = %url, "the JWKS URL is plain HTTP; use HTTPS unless the network is trusted");
            }
        }
        other => return Err(JwtConfigError::JwksUrl(format!("use https:// (or http://), not {other}://"))),
    }
    Ok(url)
}

fn allowed_algorithms(
    settings: &JwtSettings,
    has_secret: bool,
    has_jwks: bool,
) -> Result<Vec<Algorithm>, JwtConfigError> {
    let mut names: Vec<&str> = settings.algorithms.iter().map(String::as_str).collect();
    if names.is_empty() {
        if has_secret {
            names.push("HS256");
        }
        if has_jwks {
            names.extend(["RS256", "ES256"]);
        }
    }
    let mut algorithms = Vec::with_capacity(names.len());
    for name in names {
        if name.trim().eq_ignore_ascii_case("none") {
            return Err(JwtConfigError::NoneAlgorithm);
        }
        let alg = Algorithm::from_str(name).map_err(|_| JwtConfigError::UnknownAlgorithm(name.to_owned()))?;
        match alg.family() {
            AlgorithmFamily::Hmac if !has_secret => {
                return Err(JwtConfigError::HmacWithoutSecret(name.to_owned()));
            }
            AlgorithmFamily::Rsa | AlgorithmFamily::Ec if !has_jwks => {
                return Err(JwtConfigError::AsymmetricWithoutJwks(name.to_owned()));
            }
            // Known to the library, but we take no OKP keys from a JWKS yet.
            AlgorithmFamily::Ed => return Err(JwtConfigError::UnknownAlgorithm(name.to_owned())),
            _ => {}
        }
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    Ok(algorithms)
}

fn check_ranges(s: &JwtSettings) -> Result<(), JwtConfigError> {
    let invalid = |m: &str| Err(JwtConfigError::Invalid(m.to_owned()));
    if s.leeway_seconds > MAX_LEEWAY_SECONDS {
        return invalid(&format!("leeway_seconds must be at most {MAX_LEEWAY_SECONDS}"));
    }
    if s.jwks_cache_seconds == 0 || s.jwks_min_refresh_seconds == 0 {
        return invalid("jwks_cache_seconds and jwks_min_refresh_seconds must be at least 1");
    }
    let blank = |v: Option<&str>| v.is_some_and(|v| v.trim().is_empty());
    if s.user_claim.trim().is_empty() || s.email_claim.trim().is_empty() || blank(s.role_claim.as_deref()) {
        return invalid("user_claim, email_claim and role_claim must name a claim");
    }
    if blank(s.issuer.as_deref()) {
        return invalid("issuer must not be empty; leave it out to accept any issuer");
    }
    if s.audience.as_ref().is_some_and(|a| a.is_empty() || a.iter().any(|v| v.trim().is_empty())) {
        return invalid("audience must list non-empty values; leave it out to accept any audience");
    }
    if blank(s.default_role.as_deref()) {
        return invalid("default_role must not be empty");
    }
    Ok(())
}

fn validation(s: &JwtSettings) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = s.leeway_seconds;
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(issuer) = &s.issuer {
        v.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &s.audience {
        Some(audience) => {
            v.set_audience(audience);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

#[cfg(test)]
mod tests;
