//! Passwords for the web UI: argon2id hashes in PHC form, verified in
//! constant time by the argon2 crate. Hashing costs ~19 MiB and a few tens
//! of milliseconds by design, so callers run it on the blocking pool.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most bytes a password may have (argon2 accepts more; nobody needs it).
pub const MAX_BYTES: usize = 1024;

fn hasher() -> Argon2<'static> {
    // OWASP's first recommended argon2id setting: m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a password cannot be used.
pub fn check_policy(password: &str) -> Result<(), String> {
    if password.len() > MAX_BYTES {
        return Err(format!("a password has at most {MAX_BYTES} bytes"));
    }
    if password.chars().count() < MIN_CHARS {
        return Err(format!("a password has at least {MIN_CHARS} characters"));
    }
    if password.trim().is_empty() || password.chars().any(char::is_control) {
        return Err("a password cannot be blank or contain control characters".into());
    }
    Ok(())
}

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    hasher().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
#[must_use]
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the time a real verification takes, for sign-ins of unknown
/// users or users without a password, so timing does not tell them apart.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("promptvault-dummy-password").unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert_ne!(hash("correct horse battery").unwrap(), h, "salts differ");
        assert!(!verify("anything", "not a phc string"));
    }

    #[test]
    fn the_policy_names_what_is_wrong() {
        assert!(check_policy("short").unwrap_err().contains("at least 12"));
        assert!(check_policy(&"x".repeat(2000)).unwrap_err().contains("at most"));
        assert!(check_policy("            ").is_err());
        assert!(check_policy("twelve chars\u{0}ok").is_err());
        assert!(check_policy("a long enough passphrase").is_ok());
    }
}
