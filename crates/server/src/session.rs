//! Web sessions: a password sign-in gives a random token (`pvs_…`), kept
//! by the database as its SHA-256 only. The browser holds it in an
//! HttpOnly, SameSite=Strict cookie; other clients send it as a bearer
//! token. A session ends after `idle_timeout_minutes` without a request, at
//! `max_age_hours` whatever happens, on sign-out, and when its user is
//! disabled.

use serde::Deserialize;

use crate::secret::Secret;

/// The cookie holding the session token.
pub const COOKIE: &str = "pv_session";
/// What every session token starts with (API keys start with `pv_`).
pub const TOKEN_PREFIX: &str = "pvs_";
/// A request authenticated by the cookie that changes something must carry
/// this header (any value): a cross-site form cannot set it, so a forged
/// request is refused (CSRF).
pub const CSRF_HEADER: &str = "x-promptvault-csrf";

/// `[auth.sessions]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle_timeout_minutes: u32,
    /// A session ends this long after sign-in, however active.
    pub max_age_hours: u32,
    /// Mark the cookie `Secure` (send it over HTTPS only). Set it whenever
    /// browsers reach the server through TLS.
    pub secure_cookie: bool,
    /// Changing or rendering a restricted template needs a password given
    /// (at sign-in or `POST /api/v1/reauth`) within this many minutes.
    pub reauth_after_minutes: u32,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self { idle_timeout_minutes: 30, max_age_hours: 12, secure_cookie: false, reauth_after_minutes: 5 }
    }
}

impl SessionSettings {
    #[must_use]
    pub fn idle_timeout(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.idle_timeout_minutes))
    }

    #[must_use]
    pub fn reauth_after(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.reauth_after_minutes))
    }

    #[must_use]
    pub fn max_age(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.max_age_hours))
    }

    /// The `Set-Cookie` value that hands `token` to a browser.
    #[must_use]
    pub fn cookie(&self, token: &str) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.max_age().num_seconds()
        )
    }

    /// The `Set-Cookie` value that makes a browser forget the session.
    #[must_use]
    pub fn clear_cookie(&self) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }
}

/// A new random session token.
#[must_use]
pub fn generate_token() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// The session token in a `Cookie` header, if any.
#[must_use]
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == COOKIE && !v.trim().is_empty()).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = generate_token();
        assert!(a.expose().starts_with(TOKEN_PREFIX) && a.expose().len() == 4 + 64);
        assert_ne!(a.expose(), generate_token().expose());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(from_cookie_header("a=1; pv_session=pvs_x; b=2"), Some("pvs_x"));
        assert_eq!(from_cookie_header("pv_session="), None);
        assert_eq!(from_cookie_header("other=pv_session"), None);
        let s = SessionSettings::default();
        assert_eq!(s.cookie("t"), "pv_session=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
        let s = SessionSettings { secure_cookie: true, ..s };
        assert!(s.cookie("t").ends_with("; Secure") && s.clear_cookie().contains("Max-Age=0"));
    }
}
