//! Where the master key comes from, the re-encryption worker, and the
//! instance's signing key.
//!
//! The master key is taken from, first match wins: `PROMPTVAULT_MASTER_KEY`
//! (the key itself), `PROMPTVAULT_MASTER_KEY_FILE`,
//! `PROMPTVAULT_MASTER_KEY_KEYRING` (an OS keyring entry), `[encryption]
//! master_key_file`, `[encryption] master_key_keyring`, and otherwise
//! `master.key` in the data directory, which is made (mode 0600) on the
//! first start of a database without keys. A key is never made into the
//! keyring: an entry that is missing or holds no key stops the start. A key
//! file readable by group or others is refused. The key never reaches the
//! database: only its fingerprint does, and a start with another key is
//! refused unless the previous key is given too (the same sources, named
//! `previous_master_key…`), in which case the data keys are re-wrapped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use promptvault_store::{EncryptionOptions, InstanceKey, MasterKey, SealScope, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::os_keyring::{self, KeyringEntry};

/// `[encryption]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionSettings {
    /// The master key file (0600). Default: `master.key` in the data
    /// directory, made on first start.
    pub master_key_file: Option<PathBuf>,
    /// An OS keyring entry holding the master key, `service/account`; used
    /// when no key or key file is given.
    pub master_key_keyring: Option<KeyringEntry>,
    /// The previous master key's file, given once to re-key.
    pub previous_master_key_file: Option<PathBuf>,
    /// The previous master key's OS keyring entry, `service/account`.
    pub previous_master_key_keyring: Option<KeyringEntry>,
    /// `classified` (confidential and restricted templates, the default) or
    /// `all`.
    pub scope: SealScope,
    /// Rows re-encrypted per transaction by the background worker.
    pub reencrypt_batch: u32,
    /// Seconds between checks for work when there was none.
    pub reencrypt_interval_seconds: u64,
}

impl Default for EncryptionSettings {
    fn default() -> Self {
        Self {
            master_key_file: None,
            master_key_keyring: None,
            previous_master_key_file: None,
            previous_master_key_keyring: None,
            scope: SealScope::Classified,
            reencrypt_batch: 200,
            reencrypt_interval_seconds: 30,
        }
    }
}

/// Where the master key came from.
#[derive(Debug)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Keyring(KeyringEntry),
    /// Made now; written to the path once the store accepted it.
    Generated(PathBuf),
}

/// The resolved keys, before the store is opened.
#[derive(Debug)]
pub struct ResolvedKeys {
    pub options: EncryptionOptions,
    pub source: KeySource,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Reads a key file, refusing one that group or others can read.
pub fn read_key_file(path: &Path, what: &str) -> Result<MasterKey, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{what} {} is readable by others (mode {mode:04o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?);
    MasterKey::parse(&text).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Writes a new key file with mode 0600; refuses to overwrite.
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), String> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| format!("cannot create key file {}: {e}", path.display()))?;
    let text = key.encode();
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write key file {}: {e}", path.display()))
}

/// Finds the master key (and the previous one) for `settings`.
pub fn resolve(settings: &crate::settings::Settings) -> Result<ResolvedKeys, String> {
    let enc = &settings.encryption;
    let given = explicit_key(
        "PROMPTVAULT_MASTER_KEY",
        enc.master_key_file.as_ref(),
        enc.master_key_keyring.as_ref(),
        "master key",
    )?;
    let (master, source) = match given {
        Some(found) => found,
        None => {
            let p = settings.data_dir.join("master.key");
            if p.exists() {
                (read_key_file(&p, "master key file")?, KeySource::File(p))
            } else {
                (MasterKey::generate(), KeySource::Generated(p))
            }
        }
    };
    let previous = explicit_key(
        "PROMPTVAULT_PREVIOUS_MASTER_KEY",
        enc.previous_master_key_file.as_ref(),
        enc.previous_master_key_keyring.as_ref(),
        "previous master key",
    )?
    .map(|(k, _)| k);
    Ok(ResolvedKeys {
        options: EncryptionOptions { master: Some(master), previous, scope: enc.scope },
        source,
    })
}

/// A key given explicitly, first match wins: the variable `var` (the key),
/// `{var}_FILE`, `{var}_KEYRING`, then the configured file and keyring
/// entry.
fn explicit_key(
    var: &str,
    file: Option<&PathBuf>,
    keyring: Option<&KeyringEntry>,
    what: &str,
) -> Result<Option<(MasterKey, KeySource)>, String> {
    if let Some(v) = env(var) {
        let k = MasterKey::parse(&Zeroizing::new(v)).map_err(|e| format!("{var}: {e}"))?;
        return Ok(Some((k, KeySource::Env)));
    }
    let from_file = |p: PathBuf| Ok(Some((read_key_file(&p, &format!("{what} file"))?, KeySource::File(p))));
    let from_keyring = |entry: KeyringEntry| match os_keyring::read(&entry) {
        Ok(k) => Ok(Some((k, KeySource::Keyring(entry)))),
        Err(e) => Err(format!("{what}: {e}")),
    };
    if let Some(p) = env(&format!("{var}_FILE")) {
        return from_file(PathBuf::from(p));
    }
    if let Some(v) = env(&format!("{var}_KEYRING")) {
        let entry = KeyringEntry::parse(v.trim()).map_err(|e| format!("{var}_KEYRING: {e}"))?;
        return from_keyring(entry);
    }
    if let Some(p) = file {
        return from_file(p.clone());
    }
    if let Some(entry) = keyring {
        return from_keyring(entry.clone());
    }
    Ok(None)
}

/// Writes a generated key before the store sees it (so no database is ever
/// keyed with a key that was not saved).
pub fn save_generated(keys: &ResolvedKeys) -> Result<(), String> {
    if let (KeySource::Generated(path), Some(k)) = (&keys.source, &keys.options.master) {
        write_key_file(path, k)?;
    }
    Ok(())
}

/// After the store opened (`ok`) or refused: a generated key is announced,
/// or removed again when the store did not take it.
pub fn settle_generated(keys: &ResolvedKeys, ok: bool) {
    if let (KeySource::Generated(path), Some(k)) = (&keys.source, &keys.options.master) {
        if ok {
            tracing::warn!(
                path = %path.display(),
                fingerprint = %k.fingerprint(),
                "made a new master key next to the data; keep a copy elsewhere, or set PROMPTVAULT_MASTER_KEY_FILE"
            );
        } else if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove the unused generated key");
        }
    }
}

/// Runs re-encryption steps until none is left, then waits for a nudge or
/// the interval. Errors are logged and retried later: the work is resumable
/// at every step.
pub async fn reencrypt_worker(
    store: Arc<dyn Store>,
    nudge: Arc<Notify>,
    batch: u32,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let mut total = 0u64;
        loop {
            if stop.is_cancelled() {
                return;
            }
            match store.reseal_batch(batch).await {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    metrics::counter!("promptvault_reencrypted_rows_total").increment(n);
                }
                Err(e) => {
                    tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "re-encryption step failed; retrying later");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(rows = total, "re-encrypted rows with the active data key");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = nudge.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// The instance's Ed25519 key: signs version manifests (and exports).
#[derive(Clone)]
pub struct InstanceSigner {
    id: String,
    key: Arc<SigningKey>,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for InstanceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceSigner").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The public half, as published at `/.well-known/promptvault/signing-key`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicSigningKey {
    /// Names the key in signatures.
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte public key, base64 (standard, padded).
    pub public_key: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl InstanceSigner {
    /// Loads the stored key, or makes and stores one.
    pub async fn load(store: &dyn Store) -> Result<Self, promptvault_store::StoreError> {
        let secret: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        let candidate_key = SigningKey::from_bytes(&secret);
        let candidate = InstanceKey {
            id: format!("pvk-{}", &hex::encode(candidate_key.verifying_key().to_bytes())[..16]),
            public_key: candidate_key.verifying_key().to_bytes().to_vec(),
            secret: Zeroizing::new(secret.to_vec()),
            created_at: promptvault_core::model::truncate_to_micros(chrono::Utc::now()),
        };
        let stored = store.instance_key(candidate).await?;
        let bytes: [u8; 32] = stored.secret.as_slice().try_into().map_err(|_| {
            promptvault_store::StoreError::Corrupt("instance key has the wrong length".into())
        })?;
        let key = SigningKey::from_bytes(&bytes);
        if key.verifying_key().to_bytes().as_slice() != stored.public_key.as_slice() {
            return Err(promptvault_store::StoreError::Corrupt(
                "the stored instance public key does not match its private key".into(),
            ));
        }
        Ok(Self { id: stored.id, key: Arc::new(key), created_at: stored.created_at })
    }

    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// Signs `message`; base64 of the 64-byte signature.
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.key.sign(message).to_bytes())
    }

    /// Whether `signature` (base64) by key `key_id` is this key's over
    /// `message`.
    #[must_use]
    pub fn verify(&self, key_id: &str, message: &[u8], signature: &str) -> bool {
        use base64::Engine as _;
        if key_id != self.id {
            return false;
        }
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature) else { return false };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else { return false };
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key.verifying_key().verify_strict(message, &sig).is_ok()
    }

    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    #[must_use]
    pub fn public(&self) -> PublicSigningKey {
        use base64::Engine as _;
        PublicSigningKey {
            key_id: self.id.clone(),
            algorithm: "Ed25519",
            public_key: base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().to_bytes()),
            created_at: self.created_at,
        }
    }
}

/// Re-wraps the data keys of the database named by `settings` with `new`
/// (`promptvault encryption rekey`). Servers running meanwhile keep
/// serving with the data keys they hold; each must be restarted with the
/// new key. Returns the old and new fingerprints.
pub async fn rekey(settings: &crate::settings::Settings, new: MasterKey) -> Result<(String, String), String> {
    let keys = resolve(settings)?;
    if matches!(keys.source, KeySource::Generated(_)) {
        return Err(format!(
            "no master key found (looked for {}); give the current one with PROMPTVAULT_MASTER_KEY_FILE",
            settings.data_dir.join("master.key").display()
        ));
    }
    let old = keys.options.master.as_ref().map(MasterKey::fingerprint).unwrap_or_default();
    let mut options = promptvault_store::StoreOptions::new(settings.database_url().expose());
    options.pg_schema = settings.pg_schema.clone();
    options.max_connections = 2;
    options.encryption = keys.options;
    let store = promptvault_store::connect(&options).await.map_err(|e| e.to_string())?;
    let result = store.rewrap_master(new.clone()).await.map_err(|e| e.to_string());
    store.close().await;
    result.map(|()| (old, new.fingerprint()))
}
