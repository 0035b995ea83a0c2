//! The identity provider's public keys (a JWKS), fetched over HTTP and cached.
//!
//! Keys are fetched on first use, again once they are older than the cache
//! time (in the background, while the old ones keep serving), and again when
//! a token names a key we do not have. Every fetch, whatever its reason,
//! waits at least the minimum refresh interval after the previous attempt,
//! so tokens with made-up key ids cannot make us hammer the provider.
//! Callers that need keys while a fetch runs wait for it rather than start
//! their own. When the provider is down the cached keys keep working;
//! [`JwtError::KeysUnavailable`] is reported only when none of them fits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::JwtError;

/// Longest a fetch may take, connection to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document read; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one document.
const MAX_KEYS: usize = 64;
/// Shortest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

pub(super) struct Jwks {
    url: Url,
    http: reqwest::Client,
    cache_for: Duration,
    min_refresh: Duration,
    clock: Clock,
    state: Mutex<State>,
    /// Held while a fetch runs, so concurrent callers share one fetch.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    /// Whether the last attempt failed.
    failing: bool,
    /// Bumped after every attempt, so a caller that waited knows one ended.
    generation: u64,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

impl Jwks {
    pub(super) fn new(url: Url, http: reqwest::Client, cache_for: Duration, min_refresh: Duration) -> Self {
        Self {
            url,
            http,
            cache_for,
            min_refresh,
            clock: Clock::default(),
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The key that verifies a token signed with `alg`, named `kid`.
    pub(super) async fn key_for(
        self: &Arc<Self>,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Arc<PublicKey>, JwtError> {
        let now = self.clock.now();
        let (keys, generation, stale) = {
            let state = self.state();
            let stale = state.fetched_at.is_none_or(|at| now.duration_since(at) >= self.cache_for);
            (state.keys.clone(), state.generation, stale)
        };
        if let Some(keys) = keys {
            let found = keys.find(alg, kid);
            if !matches!(found, Lookup::Missing) {
                if stale {
                    self.refresh_in_background(generation);
                }
                return found.into_result();
            }
        }
        self.refresh(generation).await;
        let (keys, failing) = {
            let state = self.state();
            (state.keys.clone(), state.failing)
        };
        match keys.map(|keys| keys.find(alg, kid)) {
            Some(Lookup::Missing) if !failing => Err(JwtError::UnknownKey),
            Some(Lookup::Missing) | None => Err(JwtError::KeysUnavailable),
            Some(found) => found.into_result(),
        }
    }

    #[cfg(test)]
    pub(super) fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches now unless a fetch ended while we waited for the lock or the
    /// rate limit forbids it.
    async fn refresh(&self, seen_generation: u64) {
        let _fetching = self.fetching.lock().await;
        if self.claim_attempt(seen_generation) {
            self.fetch_and_store().await;
        }
    }

    fn refresh_in_background(self: &Arc<Self>, seen_generation: u64) {
        if !self.claim_attempt(seen_generation) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _fetching = this.fetching.lock().await;
            this.fetch_and_store().await;
        });
    }

    /// Whether this caller may fetch now; if so the attempt is recorded.
    fn claim_attempt(&self, seen_generation: u64) -> bool {
        let now = self.clock.now();
        let mut state = self.state();
        let allowed = state.generation == seen_generation
            && state.attempted_at.is_none_or(|at| now.duration_since(at) >= self.min_refresh);
        if allowed {
            state.attempted_at = Some(now);
        }
        allowed
    }

    async fn fetch_and_store(&self) {
        let result = self.fetch().await;
        let now = self.clock.now();
        let mut state = self.state();
        state.generation += 1;
        match result {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.0.len(), "fetched the identity provider's keys");
                state.keys = Some(Arc::new(keys));
                state.fetched_at = Some(now);
                state.failing = false;
            }
            Err(error) => {
                state.failing = true;
                drop(state);
                tracing::warn!(
                    url = %self.url, %error,
                    "cannot fetch the identity provider's keys; the cached ones stay in use"
                );
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let mut response = self
            .http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("the provider answered {}", response.status()));
        }
        let too_large = || format!("the key set is larger than {MAX_JWKS_BYTES} bytes");
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body)
    }
}

/// Monotonic time that tests can move forward instead of sleeping.
#[derive(Debug, Default)]
struct Clock {
    ahead_ms: AtomicU64,
}

impl Clock {
    fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.ahead_ms.load(Ordering::Relaxed))
    }

    #[cfg(test)]
    fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.ahead_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// A usable signing key from the set.
pub(super) struct PublicKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The one algorithm the key is for, when the set says so.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

impl PublicKey {
    pub(super) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    fn fits(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|a| a == alg) && self.kind.fits(alg)
    }

    /// Reads one JWK, refusing what we must not or cannot verify with.
    fn from_jwk(value: Value) -> Result<Self, &'static str> {
        let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a JWK")?;
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err("not a signing key");
        }
        if jwk.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|op| op == "verify")) {
            return Err("not a verification key");
        }
        let alg = match jwk.alg.as_deref() {
            Some(name) => Some(name.parse::<Algorithm>().map_err(|_| "an algorithm we do not verify")?),
            None => None,
        };
        let (kind, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => {
                let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else { return Err("an RSA key without n or e") };
                let key = DecodingKey::from_rsa_components(n, e).map_err(|_| "an RSA key with bad n or e")?;
                let DecodingKeyKind::RsaModulusExponent { n, .. } = key.kind() else {
                    return Err("an RSA key with bad n or e");
                };
                let significant = n.iter().skip_while(|b| **b == 0).count();
                if significant < MIN_RSA_MODULUS_BYTES {
                    return Err("an RSA key shorter than 2048 bits");
                }
                (KeyKind::Rsa, key)
            }
            ("EC", Some(curve @ ("P-256" | "P-384"))) => {
                let (kind, point_len) =
                    if curve == "P-256" { (KeyKind::P256, 65) } else { (KeyKind::P384, 97) };
                let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else { return Err("an EC key without x or y") };
                let key = DecodingKey::from_ec_components(x, y).map_err(|_| "an EC key with bad x or y")?;
                if key.try_get_as_bytes().map_or(true, |point| point.len() != point_len) {
                    return Err("an EC key with bad x or y");
                }
                (kind, key)
            }
            ("EC", _) => return Err("an EC key on a curve we do not verify"),
            // Symmetric ("oct") keys never come from a JWKS: HS* tokens are
            // verified with the configured secret only.
            _ => return Err("not an RSA or EC public key"),
        };
        if alg.is_some_and(|alg| !kind.fits(alg)) {
            return Err("a key whose algorithm does not match its type");
        }
        Ok(Self { kid: jwk.kid, kind, alg, key })
    }
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyKind::Rsa => alg.family() == AlgorithmFamily::Rsa,
            KeyKind::P256 => alg == Algorithm::ES256,
            KeyKind::P384 => alg == Algorithm::ES384,
        }
    }
}

/// The members of a JWK we read.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

pub(super) struct KeySet(Vec<Arc<PublicKey>>);

enum Lookup {
    Found(Arc<PublicKey>),
    Missing,
    /// Keys with the token's `kid` exist, but none of the type its `alg` needs.
    Mismatch,
    /// The token has no `kid` and several keys fit.
    Ambiguous,
}

impl Lookup {
    fn into_result(self) -> Result<Arc<PublicKey>, JwtError> {
        match self {
            Lookup::Found(key) => Ok(key),
            Lookup::Missing => Err(JwtError::UnknownKey),
            Lookup::Mismatch => Err(JwtError::KeyTypeMismatch),
            Lookup::Ambiguous => Err(JwtError::AmbiguousKey),
        }
    }
}

impl KeySet {
    fn parse(body: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document =
            serde_json::from_slice(body).map_err(|e| format!("the answer is not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for value in document.keys.into_iter().take(MAX_KEYS) {
            match PublicKey::from_jwk(value) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(why) => tracing::debug!(why, "skipping a key of the identity provider's set"),
            }
        }
        if keys.is_empty() {
            return Err("the key set has no usable signing key".into());
        }
        Ok(Self(keys))
    }

    fn find(&self, alg: Algorithm, kid: Option<&str>) -> Lookup {
        match kid {
            Some(kid) => {
                let mut named = self.0.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
                if named.peek().is_none() {
                    return Lookup::Missing;
                }
                named.find(|k| k.fits(alg)).map_or(Lookup::Mismatch, |k| Lookup::Found(Arc::clone(k)))
            }
            // Without a `kid`, only a key that is the one of its kind will do.
            None => {
                let mut fitting = self.0.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Found(Arc::clone(key)),
                    (None, _) => Lookup::Missing,
                    (Some(_), Some(_)) => Lookup::Ambiguous,
                }
            }
        }
    }
}
