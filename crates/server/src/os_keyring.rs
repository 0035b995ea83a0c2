//! The OS keyring as a place to keep the master key: the kernel's
//! key-management facility (keyutils) on Linux, the login keychain on
//! macOS, the Credential Manager on Windows.
//!
//! An entry is named `service/account`. The key is kept in its text form
//! (`MasterKey::encode`), so other tools can put one there too. Nothing here
//! makes a key on its own: an entry is written only by `promptvault
//! encryption keyring store`, and a start whose entry is missing fails.
//!
//! The platform store is built for each call (cheap: no connection is
//! kept) instead of being installed as keyring-core's process-wide default,
//! so no global state is involved.
//!
//! On Linux an entry is a `user` key described `keyring:<account>@<service>`,
//! added to the calling thread's session keyring (which child processes
//! inherit) and linked into the user's persistent keyring, which outlives
//! the session for `/proc/sys/kernel/keys/persistent_keyring_expiry` seconds
//! (three days by default) after its last use. The persistent keyring is
//! what processes of other sessions share: each links it into its own
//! session keyring before searching (see [`platform_store`]). Nothing
//! survives a reboot.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};
use promptvault_store::MasterKey;
use zeroize::Zeroizing;

/// Where a key is kept in the OS keyring: a service and an account, written
/// `service/account`. Each is 1–128 characters of ASCII letters, digits,
/// `.`, `_`, `-` and `:` (no `/`, and no `@`, which the Linux store uses to
/// join the two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringEntry {
    service: String,
    account: String,
}

impl KeyringEntry {
    /// Parses `service/account`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shape = "expected service/account, each 1-128 of A-Z a-z 0-9 . _ - :";
        let (service, account) = text.split_once('/').ok_or_else(|| shape.to_owned())?;
        let valid = |s: &str| {
            (1..=128).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        };
        if !valid(service) || !valid(account) {
            return Err(shape.to_owned());
        }
        Ok(Self { service: service.to_owned(), account: account.to_owned() })
    }

    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }

    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl fmt::Display for KeyringEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.account)
    }
}

impl FromStr for KeyringEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for KeyringEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What went wrong with an entry. Every message names the entry and never
/// the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "the OS keyring has no entry {0} (put a key there with `promptvault encryption keyring store --entry {0}`)"
    )]
    Missing(KeyringEntry),
    #[error("the OS keyring entry {0} does not hold a master key ({1})")]
    NotAKey(KeyringEntry, String),
    #[error("the OS keyring entry {0} already exists (give --replace to overwrite it)")]
    Exists(KeyringEntry),
    #[error("the OS keyring entry {0} cannot be used: {1}")]
    Unavailable(KeyringEntry, String),
}

/// Whether [`store`] may overwrite an existing entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    Refuse,
    Replace,
}

/// Reads the master key kept in `entry`.
pub fn read(entry: &KeyringEntry) -> Result<MasterKey, KeyringError> {
    let text = Zeroizing::new(open(entry)?.get_password().map_err(|e| failure(entry, e))?);
    MasterKey::parse(&text).map_err(|e| KeyringError::NotAKey(entry.clone(), e.to_string()))
}

/// Keeps `key` in `entry`.
pub fn store(entry: &KeyringEntry, key: &MasterKey, overwrite: Overwrite) -> Result<(), KeyringError> {
    let e = open(entry)?;
    // Without the persistent keyring an entry would live in this process's
    // session keyring only, and could vanish when the command ends.
    #[cfg(target_os = "linux")]
    linux_keyutils::KeyRing::get_persistent(linux_keyutils::KeyRingIdentifier::Session).map_err(|e| {
        KeyringError::Unavailable(
            entry.clone(),
            format!("the kernel offers no persistent keyring here ({e}), so the entry would not outlive this command"),
        )
    })?;
    if overwrite == Overwrite::Refuse {
        match e.get_secret() {
            Ok(old) => {
                drop(Zeroizing::new(old));
                return Err(KeyringError::Exists(entry.clone()));
            }
            Err(keyring_core::Error::NoEntry) => {}
            Err(err) => return Err(failure(entry, err)),
        }
    }
    e.set_password(&key.encode()).map_err(|err| failure(entry, err))
}

/// Removes `entry`.
pub fn delete(entry: &KeyringEntry) -> Result<(), KeyringError> {
    open(entry)?.delete_credential().map_err(|e| failure(entry, e))
}

fn open(entry: &KeyringEntry) -> Result<Entry, KeyringError> {
    let store = platform_store().map_err(|e| failure(entry, e))?;
    Entry::new_in_store(&store, &entry.service, &entry.account).map_err(|e| failure(entry, e))
}

/// Maps a keyring error to ours. Only the variants' own text is used: some
/// carry the bytes read, which must never reach a message.
fn failure(entry: &KeyringEntry, e: keyring_core::Error) -> KeyringError {
    use keyring_core::Error as E;
    let unavailable = |m: String| KeyringError::Unavailable(entry.clone(), m);
    match e {
        E::NoEntry => KeyringError::Missing(entry.clone()),
        E::BadEncoding(_) | E::BadDataFormat(..) => {
            KeyringError::NotAKey(entry.clone(), "not a text key".into())
        }
        E::NoStorageAccess(p) => unavailable(format!("no access to the keyring: {p}")),
        E::PlatformFailure(p) => unavailable(p.to_string()),
        E::Invalid(what, why) => unavailable(format!("{what} {why}")),
        E::TooLong(what, max) => unavailable(format!("{what} is longer than {max}")),
        E::NotSupportedByStore(m) => unavailable(m),
        other => unavailable(other.to_string()),
    }
}

/// The native store of this platform.
fn platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    #[cfg(target_os = "linux")]
    {
        // A process started outside a login session (a container, a service
        // or `cargo test` run there) has only the user's default session
        // keyring. The store would add entries to that one while the kernel,
        // asked for the persistent keyring, quietly makes a new session
        // keyring to link it into; the entry could then be neither linked
        // nor read (EACCES). Taking a session keyring of our own first (a
        // no-op when there is one) keeps both on one keyring. Session
        // keyrings belong to a thread: the calls of one operation below run
        // on the calling thread, without awaiting in between.
        linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true)
            .map_err(|e| keyring_core::Error::NoStorageAccess(Box::new(e)))?;
        let store: Arc<CredentialStore> = linux_keyutils_keyring_store::Store::new()?;
        Ok(store)
    }
    #[cfg(target_os = "macos")]
    {
        let store: Arc<CredentialStore> = apple_native_keyring_store::keychain::Store::new()?;
        Ok(store)
    }
    #[cfg(target_os = "windows")]
    {
        let store: Arc<CredentialStore> = windows_native_keyring_store::Store::new()?;
        Ok(store)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    {
        Err(keyring_core::Error::NotSupportedByStore(
            "promptvault knows no OS keyring on this platform; use a key file".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_service_slash_account() {
        let e = KeyringEntry::parse("promptvault/prod-master").unwrap();
        assert_eq!((e.service(), e.account()), ("promptvault", "prod-master"));
        assert_eq!(e.to_string(), "promptvault/prod-master");
        assert_eq!("a.b:c_d-1/x".parse::<KeyringEntry>().unwrap().account(), "x");
        for bad in ["", "promptvault", "/master", "promptvault/", "a/b/c", "a b/c", "a/b@c", "ä/b", "a/\n"] {
            let err = KeyringEntry::parse(bad).unwrap_err();
            assert!(err.contains("service/account"), "{bad:?}: {err}");
        }
        assert!(KeyringEntry::parse(&format!("{}/a", "s".repeat(129))).is_err());
        assert!(KeyringEntry::parse(&format!("{}/a", "s".repeat(128))).is_ok());
    }

    #[test]
    fn errors_name_the_entry_and_never_the_bytes() {
        let entry = KeyringEntry::parse("svc/acct").unwrap();
        let secret = b"0123456789abcdef-not-a-key".to_vec();
        let e = failure(&entry, keyring_core::Error::BadEncoding(secret.clone()));
        let text = e.to_string();
        assert!(text.contains("svc/acct") && !text.contains("0123456789abcdef"), "{text}");
        assert!(failure(&entry, keyring_core::Error::NoEntry).to_string().contains("has no entry svc/acct"));
    }
}
