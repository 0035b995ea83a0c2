//! `encryption status`, `rotate`, `generate-key`, `rekey`, `keyring store |
//! delete`.

use std::path::PathBuf;

use clap::Subcommand;
use promptvault_server::os_keyring::{self, KeyringEntry, KeyringError, Overwrite};
use promptvault_server::settings::{Overrides, Settings};
use promptvault_store::MasterKey;
use serde_json::json;

use crate::client::{CliError, Client, Result, exit};
use crate::output::{Out, s};

#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    /// The master key's fingerprint, the data keys and re-encryption progress.
    Status,
    /// Make a new data key the sealing one; older content is re-encrypted in
    /// the background (watch `status`).
    Rotate,
    /// Write a new random master key to a file (mode 0600; never overwrites).
    GenerateKey {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-wrap the data keys with a new master key, directly in the
    /// database (the current key comes from the usual settings). Running
    /// servers keep serving; restart each with the new key.
    Rekey {
        /// The new master key file (make one with `generate-key`).
        #[arg(long)]
        new_key_file: PathBuf,
        /// TOML configuration file (also: PROMPTVAULT_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory of the SQLite database and the default key file.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// sqlite://PATH or postgres://…
        #[arg(long, hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Keep a master key in the OS keyring (the kernel keyring on Linux,
    /// the keychain on macOS, the Credential Manager on Windows), for
    /// `master_key_keyring` or PROMPTVAULT_MASTER_KEY_KEYRING.
    #[command(subcommand)]
    Keyring(KeyringCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyringCommand {
    /// Store the key of a file, or a new random one, in an entry; prints its
    /// fingerprint. Never overwrites an entry unless told to.
    Store {
        /// The entry, `service/account`.
        #[arg(long, value_name = "SERVICE/ACCOUNT")]
        entry: KeyringEntry,
        /// The key file to store (mode 0600); default: a new random key.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Overwrite an existing entry.
        #[arg(long)]
        replace: bool,
    },
    /// Remove an entry (the key is gone unless you kept a copy).
    Delete {
        /// The entry, `service/account`.
        #[arg(long, value_name = "SERVICE/ACCOUNT")]
        entry: KeyringEntry,
    },
}

fn show_status(out: Out, b: &serde_json::Value) {
    out.show(b, |b| {
        if b["enabled"].as_bool() != Some(true) {
            println!("encryption at rest: no keys yet");
            return;
        }
        println!("master key   {}", s(b, "master_fingerprint"));
        println!("scope        {}", s(b, "scope"));
        println!("active key   {}", s(b, "active_key"));
        println!("sealed rows  {}", s(b, "sealed_rows"));
        println!("pending rows {}", s(b, "pending_rows"));
        for k in b["keys"].as_array().into_iter().flatten() {
            let state = if k["active"].as_bool() == Some(true) {
                "active".to_owned()
            } else if k["retired_at"].is_string() {
                format!("retired {}", s(k, "retired_at"))
            } else {
                "retiring".to_owned()
            };
            println!("  {}  {} rows  {}", s(k, "id"), s(k, "rows"), state);
        }
    });
}

pub async fn run(client: impl FnOnce() -> Result<Client>, out: Out, c: EncryptionCommand) -> Result<()> {
    match c {
        EncryptionCommand::Status => {
            let r = client()?.get("/admin/encryption").await?;
            show_status(out, &r.body);
            Ok(())
        }
        EncryptionCommand::Rotate => {
            let r = client()?.post("/admin/encryption/rotate", &json!({})).await?;
            show_status(out, &r.body);
            Ok(())
        }
        EncryptionCommand::GenerateKey { out: path } => {
            let key = MasterKey::generate();
            promptvault_server::encryption::write_key_file(&path, &key)
                .map_err(|e| CliError::new(exit::FAILURE, e))?;
            out.show(&json!({"path": path, "fingerprint": key.fingerprint()}), |_| {
                println!("wrote master key {} to {}", key.fingerprint(), path.display());
            });
            Ok(())
        }
        EncryptionCommand::Keyring(c) => keyring(out, c),
        EncryptionCommand::Rekey { new_key_file, config, data_dir, database_url } => {
            let new = promptvault_server::encryption::read_key_file(&new_key_file, "new master key file")
                .map_err(CliError::invalid)?;
            let settings = Settings::load(
                config.as_deref(),
                &Overrides { listen: None, data_dir, database_url, ..Overrides::default() },
            )
            .map_err(|e| CliError::invalid(e.to_string()))?;
            let (old, new_fp) = promptvault_server::encryption::rekey(&settings, new)
                .await
                .map_err(|e| CliError::new(exit::FAILURE, e))?;
            out.show(&json!({"previous_fingerprint": old, "fingerprint": new_fp}), |_| {
                println!("data keys re-wrapped: {old} -> {new_fp}");
                println!(
                    "restart every server with the new key (PROMPTVAULT_MASTER_KEY_FILE={})",
                    new_key_file.display()
                );
            });
            Ok(())
        }
    }
}

fn keyring(out: Out, c: KeyringCommand) -> Result<()> {
    match c {
        KeyringCommand::Store { entry, from_file, replace } => {
            let key = match &from_file {
                Some(path) => promptvault_server::encryption::read_key_file(path, "master key file")
                    .map_err(CliError::invalid)?,
                None => MasterKey::generate(),
            };
            let overwrite = if replace { Overwrite::Replace } else { Overwrite::Refuse };
            os_keyring::store(&entry, &key, overwrite).map_err(keyring_error)?;
            let fingerprint = key.fingerprint();
            out.show(
                &json!({"entry": entry.to_string(), "fingerprint": fingerprint, "generated": from_file.is_none()}),
                |_| println!("stored master key {fingerprint} in the OS keyring entry {entry}"),
            );
            if from_file.is_none() {
                out.warn(
                    "this key exists only in the OS keyring (on Linux, until the next reboot): keep a copy \
                     elsewhere, or store one made with `generate-key --out FILE` instead",
                );
            }
            Ok(())
        }
        KeyringCommand::Delete { entry } => {
            os_keyring::delete(&entry).map_err(keyring_error)?;
            out.show(&json!({"entry": entry.to_string(), "deleted": true}), |_| {
                println!("deleted the OS keyring entry {entry}");
            });
            Ok(())
        }
    }
}

fn keyring_error(e: KeyringError) -> CliError {
    let code = match e {
        KeyringError::Missing(_) => exit::NOT_FOUND,
        KeyringError::Exists(_) => exit::CONFLICT,
        KeyringError::NotAKey(..) => exit::INVALID,
        KeyringError::Unavailable(..) => exit::FAILURE,
    };
    CliError::new(code, e.to_string())
}
