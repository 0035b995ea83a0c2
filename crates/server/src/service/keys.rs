//! Encryption keys (status and rotation) and signed version manifests.

use promptvault_core::authz::{Action, Principal, Resource, Target};
use promptvault_core::model::{Template, Version};
use promptvault_store::EncryptionStatus;
use serde::Serialize;
use serde_json::json;

use super::{Registry, Result};
use crate::encryption::PublicSigningKey;

/// What a signature covers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub seq: u32,
    pub content_hash: String,
    pub classification: String,
}

impl Manifest {
    #[must_use]
    pub fn of(template: &Template, version: &Version) -> Self {
        Self {
            name: template.name.to_string(),
            version: version.version.to_string(),
            seq: version.seq,
            content_hash: version.content_hash.to_string(),
            classification: template.security_classification.as_str().to_owned(),
        }
    }

    /// The exact bytes signed: a version tag and the five fields, one per
    /// line (names and versions hold no line breaks).
    #[must_use]
    pub fn payload(&self) -> String {
        format!(
            "promptvault-manifest-v1\n{}\n{}\n{}\n{}\n{}",
            self.name, self.version, self.seq, self.content_hash, self.classification
        )
    }
}

/// A manifest and the instance's Ed25519 signature over its payload.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignedManifest {
    pub manifest: Manifest,
    /// The signed text (see docs/security.md); rebuild it from `manifest`
    /// rather than trusting it.
    pub payload: String,
    /// The signing key (`/.well-known/promptvault/signing-key`).
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// Base64 of the 64-byte signature.
    pub signature: String,
}

impl Registry {
    /// The signed manifest of a version, when the registry has a key.
    #[must_use]
    pub fn sign_manifest(&self, template: &Template, version: &Version) -> Option<SignedManifest> {
        let signer = self.signer.as_ref()?;
        let manifest = Manifest::of(template, version);
        let payload = manifest.payload();
        Some(SignedManifest {
            signature: signer.sign(payload.as_bytes()),
            key_id: signer.key_id().to_owned(),
            algorithm: "Ed25519",
            manifest,
            payload,
        })
    }

    /// The public signing key (published without authentication).
    #[must_use]
    pub fn signing_key(&self) -> Option<PublicSigningKey> {
        self.signer.as_ref().map(crate::encryption::InstanceSigner::public)
    }

    /// Keys, master key fingerprint and re-encryption progress.
    pub async fn encryption_status(&self, who: &Principal) -> Result<EncryptionStatus> {
        self.authorize(who, Action::Read, Resource::Encryption, &Target::default(), None).await?;
        let status = self.store.encryption_status().await?;
        self.audit_ok(who, "encryption.read", Resource::Encryption, None, json!({})).await;
        Ok(status)
    }

    /// Makes a new data key the sealing one; the background worker
    /// re-encrypts what older keys sealed.
    pub async fn rotate_data_key(&self, who: &Principal) -> Result<EncryptionStatus> {
        self.authorize(who, Action::Update, Resource::Encryption, &Target::default(), None).await?;
        let key = match self.store.rotate_data_key().await {
            Ok(k) => k,
            Err(e) => {
                let err = super::ServiceError::from(e);
                self.audit_failed(who, "encryption.update", Resource::Encryption, "", &err).await;
                return Err(err);
            }
        };
        self.reseal.notify_one();
        self.audit_ok(who, "encryption.update", Resource::Encryption, None, json!({"rotated_to": key})).await;
        Ok(self.store.encryption_status().await?)
    }
}
