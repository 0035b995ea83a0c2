//! Rate limits: a token bucket per credential (API key, the user of a web
//! session, the user of a JWT) and, for requests without credentials or
//! with ones that fail, per client address. In-process: each server process
//! keeps its own buckets, so N processes behind a balancer admit up to N
//! times the configured rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use promptvault_core::authz::{Credential, Principal};
use promptvault_core::{ApiKeyId, UserId};
use serde::Deserialize;

use crate::error::ApiError;

/// `[rate_limit]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Off by default: limits are a deployment decision (and a proxy in
    /// front may already apply them).
    pub enabled: bool,
    /// Sustained requests per second per credential (or client address);
    /// fractions are fine (0.5 is one request every two seconds).
    pub requests_per_second: f64,
    /// Requests allowed in a burst above the sustained rate (the bucket's
    /// size).
    pub burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self { enabled: false, requests_per_second: 50.0, burst: 100 }
    }
}

impl RateLimitSettings {
    /// The limiter, when enabled; an error naming the setting when the
    /// numbers cannot work.
    pub fn limiter(&self) -> Result<Option<Arc<RateLimiter>>, String> {
        if !self.enabled {
            return Ok(None);
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) || self.burst == 0 {
            return Err("rate_limit.requests_per_second and rate_limit.burst must be positive".into());
        }
        Ok(Some(Arc::new(RateLimiter::new(self.requests_per_second, f64::from(self.burst)))))
    }
}

/// Whose bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    ApiKey(ApiKeyId),
    Session(UserId),
    Jwt(UserId),
    Addr(IpAddr),
}

impl Key {
    #[must_use]
    pub fn of(p: &Principal) -> Self {
        match p.credential {
            Credential::ApiKey(id) => Self::ApiKey(id),
            Credential::Session => Self::Session(p.user_id),
            Credential::Jwt => Self::Jwt(p.user_id),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

/// Buckets kept before full ones (idle long enough to refill) are dropped.
const PRUNE_ABOVE: usize = 10_000;

impl RateLimiter {
    #[must_use]
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `key`, or says how long until one is there.
    pub fn check(&self, key: Key) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: Key, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(key).or_insert(Bucket { tokens: self.burst, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
    }

    /// [`check`](Self::check) as an API answer: 429 `rate_limited` with
    /// `Retry-After`.
    pub fn admit(&self, key: Key) -> Result<(), ApiError> {
        self.check(key).map_err(|wait| {
            metrics::counter!("promptvault_rate_limited_total").increment(1);
            let secs = wait.as_secs_f64().ceil().max(1.0);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let secs = secs as u64;
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {secs} s"),
            )
            .with("retry_after_seconds", serde_json::json!(secs))
        })
    }
}

/// Whether a request presents anything that may be a credential (it is
/// then limited by the extractor, per credential or, when it fails, per
/// address).
#[must_use]
pub fn carries_credentials(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(axum::http::header::AUTHORIZATION)
        || headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| crate::session::from_cookie_header(c).is_some())
}

/// The client address of a request (its peer).
#[must_use]
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

/// Middleware: requests without credentials draw from their address's
/// bucket (sign-in attempts, unauthenticated probing). Health probes and
/// metrics scrapes are not limited.
pub async fn limit_anonymous(
    State(limiter): State<Option<Arc<RateLimiter>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(l) = &limiter
        && !matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics")
        && !carries_credentials(req.headers())
        && let Some(ip) = client_ip(req.extensions())
        && let Err(e) = l.admit(Key::Addr(ip))
    {
        return e.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let l = RateLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        let k = Key::ApiKey(ApiKeyId::new());
        for _ in 0..3 {
            assert!(l.check_at(k, t0).is_ok());
        }
        let wait = l.check_at(k, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        // Another key is unaffected.
        assert!(l.check_at(Key::Addr("10.0.0.1".parse().unwrap()), t0).is_ok());
        // Half a second later one token is back, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.check_at(k, t1).is_ok());
        assert!(l.check_at(k, t1).is_err());
        // Long idle refills only up to the burst.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.check_at(k, t2).is_ok());
        }
        assert!(l.check_at(k, t2).is_err());
    }

    #[test]
    fn answers_are_429_with_retry_after_at_least_one_second() {
        let l = RateLimiter::new(1000.0, 1.0);
        let k = Key::Addr("127.0.0.1".parse().unwrap());
        assert!(l.admit(k).is_ok());
        let e = l.admit(k).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
        assert_eq!(e.extra["retry_after_seconds"], 1);
        let r = e.into_response();
        assert_eq!(r.headers()["retry-after"], "1");
    }

    #[test]
    fn idle_full_buckets_are_pruned() {
        let l = RateLimiter::new(1000.0, 1.0);
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE as u32 {
            let _ = l.check_at(Key::Addr(IpAddr::from(i.to_be_bytes())), t0);
        }
        let _ = l.check_at(Key::Addr("10.9.9.9".parse().unwrap()), t0 + Duration::from_secs(1));
        assert!(l.buckets.lock().unwrap().len() < 10, "refilled buckets are dropped");
    }

    #[test]
    fn settings_say_what_is_wrong() {
        assert!(RateLimitSettings::default().limiter().unwrap().is_none());
        let bad = RateLimitSettings { enabled: true, requests_per_second: 0.0, burst: 1 };
        assert!(bad.limiter().unwrap_err().contains("requests_per_second"));
    }
}
