//! Envelope encryption of stored content.
//!
//! A 256-bit **master key** (from a key file, an environment variable or a
//! `*_FILE` path; never stored in the database) wraps 256-bit **data keys**
//! with XChaCha20-Poly1305. The wrapped data keys live in the
//! `encryption_key` table with the master key's fingerprint beside them in
//! `encryption_state`; a store opened with another master key refuses to
//! start unless it is also given the previous key to re-wrap from.
//!
//! Content is sealed with the active data key, XChaCha20-Poly1305 with a
//! random 192-bit nonce, and associated data that names the table, the
//! column and the row id and the data key: a ciphertext copied into another
//! row (or column) does not decrypt, and reading it is a corrupt-data error,
//! never someone else's prompt.
//!
//! Sealed blob: `PV1` ‖ nonce (24 bytes) ‖ ciphertext and tag. The data
//! key's id sits in a column of its own (`sealed_key`) so rotation can find
//! the rows still sealed with an older key.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use promptvault_core::SecurityClassification;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

const BLOB_MAGIC: &[u8; 3] = b"PV1";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why a master key was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "a master key is 32 bytes, written as 64 hex digits or in base64 (44 characters); this one is {0}"
    )]
    Malformed(String),
}

/// The key that wraps the data keys. Zeroed when dropped; its `Debug`
/// shows only the fingerprint.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// A new random key.
    #[must_use]
    pub fn generate() -> Self {
        Self(Zeroizing::new(rand::random()))
    }

    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Reads the text form: 64 hex digits, or base64 (standard or URL-safe,
    /// padded or not) of 32 bytes. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> std::result::Result<Self, KeyError> {
        use base64::Engine as _;
        let t = text.trim();
        let decoded: Zeroizing<Vec<u8>> = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            Zeroizing::new(hex::decode(t).map_err(|_| KeyError::Malformed("not hex".into()))?)
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            let found = engines.iter().find_map(|e| e.decode(t).ok());
            match found {
                Some(d) => Zeroizing::new(d),
                None if t.is_empty() => return Err(KeyError::Malformed("empty".into())),
                None => return Err(KeyError::Malformed("neither hex nor base64".into())),
            }
        };
        let bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Malformed(format!("{} bytes long", decoded.len())))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The text form written to key files (base64).
    #[must_use]
    pub fn encode(&self) -> Zeroizing<String> {
        use base64::Engine as _;
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0.as_slice()))
    }

    /// Names the key without revealing it: `sha256:` and the first 16 bytes
    /// of a domain-separated SHA-256 of the key, in hex.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"promptvault master key fingerprint v1\0");
        h.update(self.0.as_slice());
        let d = h.finalize();
        format!("sha256:{}", hex::encode(&d[..16]))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.0))
    }

    /// Wraps a data key; the key id is bound as associated data.
    pub(crate) fn wrap(&self, key_id: &str, data_key: &[u8; KEY_LEN]) -> Vec<u8> {
        seal_with(&self.cipher(), &wrap_aad(key_id), data_key)
    }

    pub(crate) fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let plain = open_with(&self.cipher(), &wrap_aad(key_id), wrapped).map_err(|()| {
            StoreError::Setup(format!(
                "data key {key_id} does not unwrap with master key {}: wrong key, or the key row was altered",
                self.fingerprint()
            ))
        })?;
        let bytes: [u8; KEY_LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::corrupt(format!("data key {key_id} has the wrong length")))?;
        Ok(Zeroizing::new(bytes))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint())
    }
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    format!("promptvault/v1/data-key/{key_id}").into_bytes()
}

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let ct = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad })
        // Encryption fails only for inputs beyond 256 GiB.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(BLOB_MAGIC.len() + NONCE_LEN + ct.len());
    out.extend_from_slice(BLOB_MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(
    cipher: &XChaCha20Poly1305,
    aad: &[u8],
    blob: &[u8],
) -> std::result::Result<Zeroizing<Vec<u8>>, ()> {
    let rest = blob.strip_prefix(BLOB_MAGIC.as_slice()).ok_or(())?;
    if rest.len() < NONCE_LEN + 16 {
        return Err(());
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| ())?;
    cipher.decrypt(&XNonce::from(nonce), Payload { msg: ct, aad }).map(Zeroizing::new).map_err(|_| ())
}

/// Which templates' content is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealScope {
    /// Confidential and restricted templates (the default).
    #[default]
    Classified,
    /// Every template.
    All,
}

impl SealScope {
    #[must_use]
    pub fn covers(self, class: SecurityClassification) -> bool {
        match self {
            SealScope::All => true,
            SealScope::Classified => {
                matches!(class, SecurityClassification::Confidential | SecurityClassification::Restricted)
            }
        }
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SealScope::Classified => "classified",
            SealScope::All => "all",
        }
    }
}

/// Encryption settings handed to a backend when it opens.
#[derive(Debug, Clone, Default)]
pub struct EncryptionOptions {
    /// The master key. Without one, the store refuses to write content that
    /// must be sealed, and refuses to open a database that has keys.
    pub master: Option<MasterKey>,
    /// The master key the database was last opened with, when `master` is
    /// a new one: the data keys are re-wrapped from it at open.
    pub previous: Option<MasterKey>,
    pub scope: SealScope,
}

/// Tables and their sealed columns. Part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sealed {
    /// `prompt_template_version.sealed`: text, messages, schema, config.
    VersionContent,
    /// `prompt.sealed`: render parameters and rendered text.
    PromptData,
}

impl Sealed {
    const fn path(self) -> &'static str {
        match self {
            Sealed::VersionContent => "prompt_template_version/sealed",
            Sealed::PromptData => "prompt/sealed",
        }
    }
}

fn content_aad(what: Sealed, row: &uuid::Uuid, key_id: &str) -> Vec<u8> {
    format!("promptvault/v1/{}/{row}/{key_id}", what.path()).into_bytes()
}

struct DataKey {
    cipher: XChaCha20Poly1305,
}

/// A data key as stored: id and wrapped form.
#[derive(Debug, Clone)]
pub(crate) struct WrappedKey {
    pub id: String,
    pub wrapped: Vec<u8>,
}

/// The unwrapped data keys of one store, and which one seals new content.
pub(crate) struct Keyring {
    master: MasterKey,
    scope: SealScope,
    active: RwLock<String>,
    keys: RwLock<HashMap<String, Arc<DataKey>>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("master", &self.master)
            .field("scope", &self.scope)
            .field("active", &self.active_id())
            .finish_non_exhaustive()
    }
}

/// A new data key id: `dk-` and 12 random hex digits.
pub(crate) fn new_key_id() -> String {
    let r: [u8; 6] = rand::random();
    format!("dk-{}", hex::encode(r))
}

impl Keyring {
    /// A keyring holding `keys` (unwrapped with `master`), `active` sealing.
    pub(crate) fn open(
        master: MasterKey,
        scope: SealScope,
        active: &str,
        keys: &[WrappedKey],
    ) -> Result<Self> {
        let ring =
            Self { master, scope, active: RwLock::new(active.to_owned()), keys: RwLock::new(HashMap::new()) };
        for k in keys {
            ring.add(k)?;
        }
        if !ring.has(active) {
            return Err(StoreError::corrupt(format!("the active data key {active} is not stored")));
        }
        Ok(ring)
    }

    /// A fresh data key, wrapped with the master key (not yet added).
    pub(crate) fn mint(&self) -> WrappedKey {
        mint(&self.master)
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.master
    }

    pub(crate) fn scope(&self) -> SealScope {
        self.scope
    }

    /// Unwraps and adds a stored key.
    pub(crate) fn add(&self, k: &WrappedKey) -> Result<()> {
        let raw = self.master.unwrap(&k.id, &k.wrapped)?;
        let key = DataKey { cipher: XChaCha20Poly1305::new(&Key::from(*raw)) };
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(k.id.clone(), Arc::new(key));
        Ok(())
    }

    pub(crate) fn has(&self, id: &str) -> bool {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(id)
    }

    pub(crate) fn active_id(&self) -> String {
        self.active.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(crate) fn set_active(&self, id: &str) {
        *self.active.write().unwrap_or_else(std::sync::PoisonError::into_inner) = id.to_owned();
    }

    fn key(&self, id: &str) -> Option<Arc<DataKey>> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned()
    }

    /// Seals `plain` for `row` of `what` with the active key: (key id, blob).
    pub(crate) fn seal(&self, what: Sealed, row: &uuid::Uuid, plain: &[u8]) -> Result<(String, Vec<u8>)> {
        let id = self.active_id();
        let key = self
            .key(&id)
            .ok_or_else(|| StoreError::corrupt(format!("the active data key {id} is not loaded")))?;
        Ok((id.clone(), seal_with(&key.cipher, &content_aad(what, row, &id), plain)))
    }

    /// Opens a blob sealed for `row` of `what` with key `key_id`.
    pub(crate) fn open_sealed(
        &self,
        what: Sealed,
        row: &uuid::Uuid,
        key_id: &str,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let key = self.key(key_id).ok_or_else(|| {
            StoreError::corrupt(format!(
                "{} of row {row} names data key {key_id}, which is not stored",
                what.path()
            ))
        })?;
        open_with(&key.cipher, &content_aad(what, row, key_id), blob).map_err(|()| {
            StoreError::corrupt(format!(
                "{} of row {row} does not decrypt: it was altered or belongs to another row",
                what.path()
            ))
        })
    }
}

pub(crate) fn mint(master: &MasterKey) -> WrappedKey {
    let id = new_key_id();
    let raw: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(rand::random());
    WrappedKey { wrapped: master.wrap(&id, &raw), id }
}

/// What the store tells about its keys (`GET /admin/encryption`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EncryptionStatus {
    pub enabled: bool,
    pub scope: SealScope,
    pub master_fingerprint: Option<String>,
    pub active_key: Option<String>,
    pub keys: Vec<DataKeyStatus>,
    /// Rows still to re-encrypt (sealed with a retiring key, or not sealed
    /// though their template's classification asks for it).
    pub pending_rows: u64,
    /// Rows sealed in all.
    pub sealed_rows: u64,
}

impl EncryptionStatus {
    /// Without keys yet.
    pub(crate) fn disabled(scope: SealScope) -> Self {
        Self {
            enabled: false,
            scope,
            master_fingerprint: None,
            active_key: None,
            keys: vec![],
            pending_rows: 0,
            sealed_rows: 0,
        }
    }

    /// From the stored state, each key with its row count, and the rows of
    /// queued templates not sealed yet.
    pub(crate) fn of(scope: SealScope, state: StoredState, keys: Vec<KeyRows>, unsealed: u64) -> Self {
        let sealed_rows = keys.iter().map(|k| k.rows).sum();
        let on_old_keys: u64 = keys.iter().filter(|k| k.id != state.active).map(|k| k.rows).sum();
        Self {
            enabled: true,
            scope,
            keys: keys
                .into_iter()
                .map(|k| DataKeyStatus {
                    active: k.id == state.active,
                    id: k.id,
                    created_at: k.created_at,
                    retired_at: k.retired_at,
                    rows: k.rows,
                })
                .collect(),
            master_fingerprint: Some(state.fingerprint),
            active_key: Some(state.active),
            pending_rows: on_old_keys + unsealed,
            sealed_rows,
        }
    }
}

/// A data key row with the number of rows it seals.
#[derive(Debug)]
pub(crate) struct KeyRows {
    pub id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DataKeyStatus {
    pub id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
    pub active: bool,
    /// Rows sealed with this key.
    pub rows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_text_forms_round_trip() {
        let k = MasterKey::generate();
        let again = MasterKey::parse(&k.encode()).unwrap();
        assert_eq!(k.fingerprint(), again.fingerprint());
        let hexed = hex::encode(k.0.as_slice());
        assert_eq!(MasterKey::parse(&format!("  {hexed}\n")).unwrap().fingerprint(), k.fingerprint());
        assert!(MasterKey::parse("").is_err());
        assert!(MasterKey::parse("c2hvcnQ=").unwrap_err().to_string().contains("5 bytes"));
        assert!(MasterKey::parse("not a key!").is_err());
        assert_ne!(MasterKey::generate().fingerprint(), k.fingerprint());
        assert!(!format!("{k:?}").contains(k.encode().as_str()));
    }

    #[test]
    fn wrapped_keys_unwrap_only_with_their_master_and_id() {
        let m = MasterKey::generate();
        let w = mint(&m);
        assert!(m.unwrap(&w.id, &w.wrapped).is_ok());
        assert!(MasterKey::generate().unwrap(&w.id, &w.wrapped).is_err());
        assert!(m.unwrap("dk-other", &w.wrapped).is_err());
    }

    #[test]
    fn sealed_content_is_bound_to_row_table_and_key() {
        let m = MasterKey::generate();
        let w = mint(&m);
        let ring = Keyring::open(m, SealScope::Classified, &w.id, std::slice::from_ref(&w)).unwrap();
        let row = uuid::Uuid::new_v4();
        let (kid, blob) = ring.seal(Sealed::VersionContent, &row, b"the marker PV-SECRET").unwrap();
        assert_eq!(kid, w.id);
        assert!(!blob.windows(9).any(|win| win == b"PV-SECRET"));
        assert_eq!(
            ring.open_sealed(Sealed::VersionContent, &row, &kid, &blob).unwrap().as_slice(),
            b"the marker PV-SECRET"
        );
        // Another row, another column, a flipped bit: refused.
        let other = uuid::Uuid::new_v4();
        assert!(ring.open_sealed(Sealed::VersionContent, &other, &kid, &blob).is_err());
        assert!(ring.open_sealed(Sealed::PromptData, &row, &kid, &blob).is_err());
        let mut bad = blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(ring.open_sealed(Sealed::VersionContent, &row, &kid, &bad).is_err());
        // Two seals of the same text differ (random nonces).
        let (_, again) = ring.seal(Sealed::VersionContent, &row, b"the marker PV-SECRET").unwrap();
        assert_ne!(again, blob);
    }

    #[test]
    fn scope_covers_classifications() {
        use SecurityClassification as C;
        assert!(!SealScope::Classified.covers(C::Public));
        assert!(!SealScope::Classified.covers(C::Internal));
        assert!(SealScope::Classified.covers(C::Confidential));
        assert!(SealScope::Classified.covers(C::Restricted));
        assert!(SealScope::All.covers(C::Public));
    }
}

/// A backend's view of encryption: its keyring, if it has a master key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vault {
    ring: Option<Arc<Keyring>>,
    scope: SealScope,
}

impl Vault {
    pub(crate) fn new(ring: Option<Arc<Keyring>>, scope: SealScope) -> Self {
        Self { ring, scope }
    }

    pub(crate) fn ring(&self) -> Option<&Arc<Keyring>> {
        self.ring.as_ref()
    }

    pub(crate) fn scope(&self) -> SealScope {
        self.scope
    }

    /// The keyring to seal content of a `class` template with; `None` when
    /// it stays plain. Without a master key, content that must be sealed is
    /// refused rather than written in the clear.
    pub(crate) fn sealer(&self, class: SecurityClassification) -> Result<Option<&Arc<Keyring>>> {
        if !self.scope.covers(class) {
            return Ok(None);
        }
        match &self.ring {
            Some(r) => Ok(Some(r)),
            None => Err(StoreError::Setup(format!(
                "no master key is configured, so {class} content cannot be stored encrypted"
            ))),
        }
    }

    /// Opens sealed content of `row`.
    pub(crate) fn open(
        &self,
        what: Sealed,
        row: &uuid::Uuid,
        key_id: &str,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        match &self.ring {
            Some(r) => r.open_sealed(what, row, key_id, blob),
            None => Err(StoreError::Setup(format!(
                "{} of row {row} is encrypted and no master key is configured",
                what.path()
            ))),
        }
    }
}

/// The encryption rows of a database, as read at open.
#[derive(Debug, Clone)]
pub(crate) struct StoredState {
    pub fingerprint: String,
    pub active: String,
    pub scope: String,
    pub keys: Vec<WrappedKey>,
}

/// What opening a store must write before it can seal and open content.
#[derive(Debug)]
pub(crate) enum OpenPlan {
    /// No master key and no keys: content that must be sealed is refused.
    Plain,
    /// First key of this database: store `key` and the fingerprint, and
    /// queue every template in scope (it may predate encryption).
    Create { key: WrappedKey },
    /// The stored keys open with the master key as they are.
    Load,
    /// The master key is new and `previous` opened the stored keys: store
    /// these re-wrapped keys and the new fingerprint.
    Rewrap { keys: Vec<WrappedKey> },
}

/// Decides how to open a database whose encryption rows are `state`.
pub(crate) fn plan_open(options: &EncryptionOptions, state: Option<&StoredState>) -> Result<OpenPlan> {
    let Some(master) = &options.master else {
        return match state {
            None => Ok(OpenPlan::Plain),
            Some(s) => Err(StoreError::Setup(format!(
                "the database's content is encrypted under master key {}, and no master key is configured \
                 (set master_key_file, master_key_keyring or PROMPTVAULT_MASTER_KEY[_FILE|_KEYRING])",
                s.fingerprint
            ))),
        };
    };
    let Some(state) = state else {
        return Ok(OpenPlan::Create { key: mint(master) });
    };
    if state.fingerprint == master.fingerprint() {
        return Ok(OpenPlan::Load);
    }
    match &options.previous {
        Some(prev) if prev.fingerprint() == state.fingerprint => {
            let mut keys = Vec::with_capacity(state.keys.len());
            for k in &state.keys {
                let raw = prev.unwrap(&k.id, &k.wrapped)?;
                keys.push(WrappedKey { id: k.id.clone(), wrapped: master.wrap(&k.id, &raw) });
            }
            Ok(OpenPlan::Rewrap { keys })
        }
        Some(prev) => Err(StoreError::Setup(format!(
            "neither the master key ({}) nor the previous master key ({}) is the one the database's keys \
             are wrapped with ({})",
            master.fingerprint(),
            prev.fingerprint(),
            state.fingerprint
        ))),
        None => Err(StoreError::Setup(format!(
            "the master key given ({}) is not the one the database's keys are wrapped with ({}); \
             start with that key, or re-key by giving it as the previous master key \
             (previous_master_key_file, previous_master_key_keyring or PROMPTVAULT_PREVIOUS_MASTER_KEY[_FILE|_KEYRING])",
            master.fingerprint(),
            state.fingerprint
        ))),
    }
}

/// Builds the keyring after `plan` was carried out.
pub(crate) fn keyring_after(
    options: &EncryptionOptions,
    state: Option<&StoredState>,
    plan: &OpenPlan,
) -> Result<Option<Arc<Keyring>>> {
    let Some(master) = options.master.clone() else { return Ok(None) };
    let ring = match (plan, state) {
        (OpenPlan::Create { key }, _) => {
            Keyring::open(master, options.scope, &key.id, std::slice::from_ref(key))?
        }
        (OpenPlan::Load, Some(s)) => Keyring::open(master, options.scope, &s.active, &s.keys)?,
        (OpenPlan::Rewrap { keys }, Some(s)) => Keyring::open(master, options.scope, &s.active, keys)?,
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(ring)))
}

/// Does opening with `options` widen what is sealed, so that existing
/// templates must be queued for sealing?
pub(crate) fn widens(options: &EncryptionOptions, state: Option<&StoredState>, plan: &OpenPlan) -> bool {
    match plan {
        OpenPlan::Create { .. } => true,
        OpenPlan::Plain => false,
        _ => state.is_some_and(|s| s.scope != options.scope.as_str() && options.scope == SealScope::All),
    }
}

/// Classification names (as stored) whose content `scope` seals.
pub(crate) fn scope_classes(scope: SealScope) -> &'static [&'static str] {
    match scope {
        SealScope::Classified => &["confidential", "restricted"],
        SealScope::All => &["public", "internal", "confidential", "restricted"],
    }
}

/// An instance signing key as stored: the private half wrapped by the
/// master key like a data key.
#[derive(Clone)]
pub struct InstanceKey {
    pub id: String,
    pub public_key: Vec<u8>,
    pub secret: Zeroizing<Vec<u8>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl fmt::Debug for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceKey")
            .field("id", &self.id)
            .field("public_key", &hex::encode(&self.public_key))
            .finish_non_exhaustive()
    }
}

pub(crate) fn wrap_instance_secret(ring: &Keyring, id: &str, secret: &[u8]) -> Vec<u8> {
    seal_with(&ring.master.cipher(), format!("promptvault/v1/instance-key/{id}").as_bytes(), secret)
}

pub(crate) fn unwrap_instance_secret(ring: &Keyring, id: &str, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    open_with(&ring.master.cipher(), format!("promptvault/v1/instance-key/{id}").as_bytes(), wrapped)
        .map_err(|()| StoreError::corrupt(format!("instance key {id} does not unwrap with the master key")))
}

/// The instance key wrapped by `from`, re-wrapped by `to`.
pub(crate) fn rewrap_instance(from: &MasterKey, to: &MasterKey, id: &str, wrapped: &[u8]) -> Result<Vec<u8>> {
    let aad = format!("promptvault/v1/instance-key/{id}");
    let secret = open_with(&from.cipher(), aad.as_bytes(), wrapped).map_err(|()| {
        StoreError::corrupt(format!("instance key {id} does not unwrap with the previous master key"))
    })?;
    Ok(seal_with(&to.cipher(), aad.as_bytes(), &secret))
}

/// The stored instance key's id and wrapped secret (the oldest, if several).
pub(crate) const INSTANCE_KEY_ROW: &str = "SELECT id, wrapped FROM instance_key ORDER BY created_at LIMIT 1";

/// The signature of a retention checkpoint by the stored instance key
/// (`key`, a row of [`INSTANCE_KEY_ROW`]); `None` without a master key or
/// without an instance key.
pub(crate) fn checkpoint_signature(
    vault: &Vault,
    key: Option<(String, Vec<u8>)>,
    cp: &promptvault_core::audit::Checkpoint,
) -> Result<Option<promptvault_core::audit::CheckpointSignature>> {
    let (Some(ring), Some((id, wrapped))) = (vault.ring(), key) else { return Ok(None) };
    let (key_id, signature) = sign_with_instance(ring, &id, &wrapped, &cp.payload())?;
    Ok(Some(promptvault_core::audit::CheckpointSignature { key_id, signature }))
}

/// Signs `payload` with the instance key wrapped as `wrapped` (id `id`):
/// (key id, base64 signature).
fn sign_with_instance(ring: &Keyring, id: &str, wrapped: &[u8], payload: &str) -> Result<(String, String)> {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let secret = unwrap_instance_secret(ring, id, wrapped)?;
    let bytes: [u8; 32] = secret
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::corrupt(format!("instance key {id} has the wrong length")))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&bytes);
    let sig = key.sign(payload.as_bytes());
    Ok((id.to_owned(), base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())))
}
