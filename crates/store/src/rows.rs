//! Rows as both backends read them, and their decoding into domain records.
//!
//! Each backend reads columns with its own types (text on SQLite, native
//! uuid/timestamptz/jsonb on PostgreSQL) into these structs; decoding and the
//! integrity check are written once, here.

use chrono::{DateTime, Utc};
use promptvault_core::authz::{Permission, RoleDef};
use promptvault_core::model::{
    Deprecation, Label, LabelMove, OutcomeRecord, PromptRecord, PromptType, Revision, Template, UsageMetrics,
    Version,
};
use promptvault_core::{
    ChatItem, Config, ContentHash, DeploymentModel, LabelName, ParameterSchema, PromptTypeKey,
    SecurityClassification, Tag, TemplateBody, TemplateName, VersionContent, VersionStatus,
};
use serde_json::Value;
use uuid::Uuid;

use crate::crypt::{Keyring, Sealed, Vault};
use crate::error::{Result, StoreError};
use crate::types::{ApiKeyRecord, DecisionKind, DecisionRecord, InReview, SessionRecord, StoredRole, User};
use promptvault_core::workflow::Approval;

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| StoreError::corrupt(format!("{what} {s:?}: {e}")))
}

fn seq(what: &str, n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| StoreError::corrupt(format!("{what} {n} out of range")))
}

pub(crate) struct PromptTypeRow {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub schema: Option<Value>,
    pub policy: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: i64,
}

impl PromptTypeRow {
    pub fn decode(self) -> Result<PromptType> {
        Ok(PromptType {
            id: self.id.into(),
            key: PromptTypeKey::parse(&self.key).map_err(StoreError::corrupt)?,
            name: self.name,
            schema: self.schema,
            policy: serde_json::from_value(self.policy)
                .map_err(|e| StoreError::corrupt(format!("type policy: {e}")))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            revision: Revision(self.revision),
        })
    }
}

pub(crate) struct TemplateRow {
    pub access: serde_json::Value,
    pub id: Uuid,
    pub prompt_type_id: Uuid,
    pub type_key: String,
    pub name: String,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    pub creator_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub security_classification: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: i64,
    pub latest_seq: i64,
    pub latest_version: String,
}

impl TemplateRow {
    pub fn decode(self) -> Result<Template> {
        let mut tags = self
            .tags
            .iter()
            .map(|t| Tag::parse(t).map_err(StoreError::corrupt))
            .collect::<Result<Vec<_>>>()?;
        tags.sort();
        tags.dedup();
        Ok(Template {
            id: self.id.into(),
            prompt_type_id: self.prompt_type_id.into(),
            type_key: PromptTypeKey::parse(&self.type_key).map_err(StoreError::corrupt)?,
            name: TemplateName::parse(&self.name).map_err(StoreError::corrupt)?,
            description: self.description,
            long_description_markdown: self.long_description_markdown,
            creator_id: self.creator_id.map(Into::into),
            owner_id: self.owner_id.map(Into::into),
            tags,
            security_classification: parse::<SecurityClassification>(
                "classification",
                &self.security_classification,
            )?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            revision: Revision(self.revision),
            latest_seq: seq("latest_seq", self.latest_seq)?,
            access: serde_json::from_value(self.access)
                .map_err(|e| StoreError::corrupt(format!("template access: {e}")))?,
            latest_version: parse("latest_version", &self.latest_version)?,
        })
    }
}

pub(crate) struct VersionRow {
    pub id: Uuid,
    pub template_id: Uuid,
    pub seq: i64,
    pub version: String,
    pub status: String,
    pub kind: String,
    pub template_text: Option<String>,
    pub messages: Option<Value>,
    pub parameter_schema: Value,
    pub config: Value,
    pub content_hash: String,
    pub author_id: Option<Uuid>,
    pub change_description: Option<String>,
    pub bump: Option<String>,
    pub restored_from: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: i64,
    pub review_round: i64,
    pub status_changed_at: Option<DateTime<Utc>>,
    pub deprecation: Option<Value>,
    pub check_results: Option<Value>,
    pub sealed: Option<Vec<u8>>,
    pub sealed_key: Option<String>,
}

/// The plaintext of a version's content columns (what a sealed row holds).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct PlainContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Value>,
    pub schema: Value,
    pub config: Value,
}

impl PlainContent {
    /// Decrypts the sealed content of version row `id`.
    pub fn open(vault: &Vault, id: &Uuid, key: &str, blob: &[u8]) -> Result<Self> {
        let plain = vault.open(Sealed::VersionContent, id, key, blob)?;
        serde_json::from_slice(&plain)
            .map_err(|e| StoreError::corrupt(format!("sealed content of version {id}: {e}")))
    }

    /// Seals this content for version row `id` with the active key.
    pub fn seal(self, ring: &Keyring, id: &Uuid, kind: &str) -> Result<ContentColumns> {
        let kind = match kind {
            "text" => "text",
            "chat" => "chat",
            other => return Err(StoreError::corrupt(format!("unknown kind {other:?}"))),
        };
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(&self)
                .map_err(|e| StoreError::corrupt(format!("sealing version content: {e}")))?,
        );
        let (key, blob) = ring.seal(Sealed::VersionContent, id, &bytes)?;
        Ok(ContentColumns {
            kind,
            template_text: None,
            messages: None,
            parameter_schema: Value::Object(serde_json::Map::new()),
            config: Value::Object(serde_json::Map::new()),
            sealed: Some(blob),
            sealed_key: Some(key),
        })
    }
}

/// Decrypts the sealed parameters and text of render row `id`.
pub(crate) fn open_prompt(
    vault: &Vault,
    id: &Uuid,
    key: &str,
    blob: &[u8],
) -> Result<(Option<Value>, Option<String>)> {
    let plain = vault.open(Sealed::PromptData, id, key, blob)?;
    let p: SealedPrompt = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::corrupt(format!("sealed render {id}: {e}")))?;
    Ok((p.data, p.text))
}

/// The plaintext of a sealed render record.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedPrompt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl VersionRow {
    /// Decrypts the content columns of a sealed row in place.
    fn unseal(&mut self, vault: &Vault) -> Result<()> {
        let (Some(blob), Some(key)) = (self.sealed.take(), self.sealed_key.take()) else {
            return Ok(());
        };
        let c = PlainContent::open(vault, &self.id, &key, &blob)?;
        self.template_text = c.text;
        self.messages = c.messages;
        self.parameter_schema = c.schema;
        self.config = c.config;
        Ok(())
    }

    /// Decrypts (when sealed), decodes and verifies the content hash: a row
    /// whose content does not decrypt or does not match its hash is
    /// corrupt, and is never served.
    pub fn decode(mut self, vault: &Vault) -> Result<Version> {
        self.unseal(vault)?;
        let seq_n = seq("seq", self.seq)?;
        let body = match self.kind.as_str() {
            "text" => TemplateBody::Text(
                self.template_text
                    .ok_or_else(|| StoreError::corrupt("text version without template_text"))?,
            ),
            "chat" => {
                let items: Vec<ChatItem> = serde_json::from_value(
                    self.messages.ok_or_else(|| StoreError::corrupt("chat version without messages"))?,
                )
                .map_err(StoreError::corrupt)?;
                TemplateBody::Chat(items)
            }
            other => return Err(StoreError::corrupt(format!("unknown kind {other:?}"))),
        };
        let content = VersionContent {
            body,
            parameter_schema: ParameterSchema::from_stored(self.parameter_schema),
            config: Config::parse(self.config).map_err(StoreError::corrupt)?,
        };
        let stored: ContentHash = parse("content_hash", &self.content_hash)?;
        if ContentHash::of(&content) != stored {
            return Err(StoreError::corrupt(format!(
                "version {} of template {} does not match its content hash",
                seq_n, self.template_id
            )));
        }
        Ok(Version {
            id: self.id.into(),
            template_id: self.template_id.into(),
            seq: seq_n,
            version: parse("version", &self.version)?,
            status: parse::<VersionStatus>("status", &self.status)?,
            content,
            content_hash: stored,
            author_id: self.author_id.map(Into::into),
            change_description: self.change_description,
            bump: self.bump.as_deref().map(|b| parse("bump", b)).transpose()?,
            restored_from: self.restored_from.map(|r| seq("restored_from", r)).transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            revision: Revision(self.revision),
            review_round: seq("review_round", self.review_round)?,
            status_changed_at: self.status_changed_at,
            deprecation: self
                .deprecation
                .map(|d| {
                    serde_json::from_value::<Deprecation>(d)
                        .map_err(|e| StoreError::corrupt(format!("deprecation of version {seq_n}: {e}")))
                })
                .transpose()?,
            check_results: self.check_results,
        })
    }
}

pub(crate) struct LabelRow {
    pub name: String,
    pub version_seq: i64,
    pub version_id: Uuid,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
    pub revision: i64,
}

impl LabelRow {
    pub fn decode(self) -> Result<Label> {
        Ok(Label {
            name: LabelName::parse(&self.name).map_err(StoreError::corrupt)?,
            version_seq: seq("label seq", self.version_seq)?,
            version_id: self.version_id.into(),
            updated_at: self.updated_at,
            updated_by: self.updated_by.map(Into::into),
            revision: Revision(self.revision),
        })
    }
}

pub(crate) struct LabelMoveRow {
    pub label: String,
    pub from_seq: Option<i64>,
    pub to_seq: Option<i64>,
    pub at: DateTime<Utc>,
    pub by: Option<Uuid>,
}

impl LabelMoveRow {
    pub fn decode(self) -> Result<LabelMove> {
        Ok(LabelMove {
            label: LabelName::parse(&self.label).map_err(StoreError::corrupt)?,
            from_seq: self.from_seq.map(|s| seq("from_seq", s)).transpose()?,
            to_seq: self.to_seq.map(|s| seq("to_seq", s)).transpose()?,
            at: self.at,
            by: self.by.map(Into::into),
        })
    }
}

pub(crate) struct PromptRow {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub prompt_type_id: Option<Uuid>,
    pub version_id: Option<Uuid>,
    pub version_seq: Option<i64>,
    pub data: Option<Value>,
    pub prompt_text: Option<String>,
    pub sender_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub agent_id: Option<String>,
    pub deployment_model: String,
    pub outcome: Option<String>,
    pub outcome_detail: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
    pub sealed: Option<Vec<u8>>,
    pub sealed_key: Option<String>,
}

/// A render as read back. Its template, type or version may have been
/// deleted since, so those ids are optional here.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPrompt {
    pub record: PromptRecord,
    pub template_deleted: bool,
}

impl PromptRow {
    pub fn decode(mut self, vault: &Vault) -> Result<StoredPrompt> {
        if let (Some(blob), Some(key)) = (self.sealed.take(), self.sealed_key.take()) {
            (self.data, self.prompt_text) = open_prompt(vault, &self.id, &key, &blob)?;
        }
        let outcome = match (self.outcome.as_deref(), self.outcome_at) {
            (Some(o), Some(at)) => Some(OutcomeRecord {
                outcome: serde_json::from_value(Value::String(o.to_owned())).map_err(StoreError::corrupt)?,
                detail: self.outcome_detail,
                at,
            }),
            _ => None,
        };
        let deleted = self.template_id.is_none() || self.version_id.is_none();
        Ok(StoredPrompt {
            template_deleted: deleted,
            record: PromptRecord {
                id: self.id.into(),
                template_id: self.template_id.unwrap_or_default().into(),
                prompt_type_id: self.prompt_type_id.unwrap_or_default().into(),
                version_id: self.version_id.unwrap_or_default().into(),
                version_seq: self.version_seq.map(|s| seq("version_seq", s)).transpose()?.unwrap_or(0),
                data: self.data.unwrap_or(Value::Null),
                prompt_text: self.prompt_text.unwrap_or_default(),
                sender_id: self.sender_id.map(Into::into),
                created_at: self.created_at,
                metadata: promptvault_core::model::RenderMetadata {
                    session_id: self.session_id,
                    request_id: self.request_id,
                    agent_id: self.agent_id,
                    deployment_model: parse::<DeploymentModel>("deployment_model", &self.deployment_model)?,
                },
                outcome,
            },
        })
    }
}

pub(crate) struct UsageRow {
    pub seq: i64,
    pub times_used: i64,
    pub last_used: Option<DateTime<Utc>>,
    pub successes: i64,
    pub failures: i64,
}

impl UsageRow {
    pub fn decode(self) -> Result<(u32, UsageMetrics)> {
        let n = |v: i64| u64::try_from(v).map_err(|_| StoreError::corrupt("negative counter"));
        Ok((
            seq("seq", self.seq)?,
            UsageMetrics {
                times_used: n(self.times_used)?,
                last_used: self.last_used,
                successes: n(self.successes)?,
                failures: n(self.failures)?,
            },
        ))
    }
}

pub(crate) struct ApiKeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub deployment: Option<String>,
    pub roles: Vec<String>,
    pub user_disabled: bool,
}

impl ApiKeyRow {
    pub fn decode(self) -> Result<ApiKeyRecord> {
        Ok(ApiKeyRecord {
            id: self.id.into(),
            user_id: self.user_id.into(),
            name: self.name,
            prefix: self.prefix,
            secret_hash: hash32("api key hash", self.secret_hash)?,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
            deployment: self.deployment,
            roles: role_set(self.roles),
            user_disabled: self.user_disabled,
        })
    }
}

pub(crate) struct UserRow {
    pub id: Uuid,
    pub supabase_user_id: Option<Uuid>,
    pub did: Option<String>,
    pub external_user_id: Option<String>,
    pub email: Option<String>,
    pub at_protocol_handle: Option<String>,
    pub data: Option<Value>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub roles: Vec<String>,
}

impl UserRow {
    pub fn decode(self) -> User {
        User {
            id: self.id.into(),
            supabase_user_id: self.supabase_user_id,
            did: self.did,
            external_user_id: self.external_user_id,
            email: self.email,
            at_protocol_handle: self.at_protocol_handle,
            data: self.data,
            first_name: self.first_name,
            last_name: self.last_name,
            created_at: self.created_at,
            updated_at: self.updated_at,
            disabled_at: self.disabled_at,
            roles: role_set(self.roles),
        }
    }
}

/// Role names sorted and without duplicates, as users hold them.
pub(crate) fn role_set(mut roles: Vec<String>) -> Vec<String> {
    roles.sort();
    roles.dedup();
    roles
}

fn hash32(what: &str, bytes: Vec<u8>) -> Result<[u8; 32]> {
    bytes.try_into().map_err(|_| StoreError::corrupt(format!("{what} is not 32 bytes")))
}

pub(crate) struct RoleRow {
    pub name: String,
    pub description: String,
    pub permissions: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: i64,
}

impl RoleRow {
    pub fn decode(self) -> Result<StoredRole> {
        let permissions: Vec<Permission> = serde_json::from_value(self.permissions)
            .map_err(|e| StoreError::corrupt(format!("permissions of role {:?}: {e}", self.name)))?;
        Ok(StoredRole {
            def: RoleDef { name: self.name, description: self.description, permissions, builtin: false },
            created_at: self.created_at,
            updated_at: self.updated_at,
            revision: Revision(self.revision),
        })
    }
}

/// The stored form of a role's permissions.
pub(crate) fn permissions_json(permissions: &[Permission]) -> Result<Value> {
    serde_json::to_value(permissions).map_err(|e| StoreError::corrupt(format!("permissions: {e}")))
}

pub(crate) struct SessionRow {
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub authenticated_at: DateTime<Utc>,
}

impl SessionRow {
    pub fn decode(self) -> SessionRecord {
        SessionRecord {
            user_id: self.user_id.into(),
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            authenticated_at: self.authenticated_at,
        }
    }
}

/// Columns both backends store for a version's content.
pub(crate) struct ContentColumns {
    pub kind: &'static str,
    pub template_text: Option<String>,
    pub messages: Option<Value>,
    pub parameter_schema: Value,
    pub config: Value,
    pub sealed: Option<Vec<u8>>,
    pub sealed_key: Option<String>,
}

impl ContentColumns {
    pub fn of(content: &VersionContent) -> Self {
        let (template_text, messages) = match &content.body {
            TemplateBody::Text(t) => (Some(t.clone()), None),
            TemplateBody::Chat(items) => (None, serde_json::to_value(items).ok()),
        };
        Self {
            kind: content.body.kind().as_str(),
            template_text,
            messages,
            parameter_schema: content.parameter_schema.as_value().clone(),
            config: content.config.to_value(),
            sealed: None,
            sealed_key: None,
        }
    }

    /// The columns of `content` for version row `id`, sealed with `ring`
    /// when given: the plain columns then hold placeholders.
    pub fn for_row(content: &VersionContent, id: &Uuid, ring: Option<&Keyring>) -> Result<Self> {
        let plain = Self::of(content);
        let Some(ring) = ring else { return Ok(plain) };
        PlainContent {
            text: plain.template_text,
            messages: plain.messages,
            schema: plain.parameter_schema,
            config: plain.config,
        }
        .seal(ring, id, plain.kind)
    }
}

/// The sealed form of a render record's parameters and text for row `id`:
/// (key id, blob).
pub(crate) fn seal_prompt(
    ring: &Keyring,
    id: &Uuid,
    data: Option<&Value>,
    text: Option<&str>,
) -> Result<(String, Vec<u8>)> {
    let bytes = zeroize::Zeroizing::new(
        serde_json::to_vec(&SealedPrompt { data: data.cloned(), text: text.map(str::to_owned) })
            .map_err(|e| StoreError::corrupt(format!("sealing a render: {e}")))?,
    );
    ring.seal(Sealed::PromptData, id, &bytes)
}

/// Words of a search query, stripped of every operator character, so no
/// input can change the query's structure on either backend.
pub(crate) fn search_terms(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(16)
        .map(str::to_lowercase)
        .collect()
}

/// The name as indexed for search: its parts as words, then itself, so
/// `support/en/greeting` is found by `greeting` and by `support`.
pub(crate) fn search_name(name: &str) -> String {
    name.replace(['/', '-', '_', '.'], " ") + " " + name
}

/// Upper bound (exclusive) of the names under `folder/`: '/' + 1 is '0'.
pub(crate) fn folder_range(folder: &str) -> (String, String) {
    let folder = folder.trim_end_matches('/');
    (format!("{folder}/"), format!("{folder}0"))
}

pub(crate) struct DecisionRow {
    pub round: i64,
    pub step: String,
    pub user_id: Uuid,
    pub decision: String,
    pub comment: Option<String>,
    pub decided_at: DateTime<Utc>,
}

impl DecisionRow {
    pub fn decode(self) -> Result<DecisionRecord> {
        Ok(DecisionRecord {
            round: seq("round", self.round)?,
            decision: parse::<DecisionKind>("decision", &self.decision)?,
            step: self.step,
            user_id: self.user_id.into(),
            comment: self.comment,
            decided_at: self.decided_at,
        })
    }

    /// The decision as the workflow counts it (approvals only).
    pub fn approval(self) -> Approval {
        Approval {
            step: self.step,
            user_id: self.user_id.to_string(),
            decided_at: self.decided_at,
            comment: self.comment,
        }
    }
}

/// A version in review joined with one approval of its current round (none:
/// the decision columns are null).
pub(crate) struct InReviewRow {
    pub version_id: Uuid,
    pub template: String,
    pub seq: i64,
    pub classification: String,
    pub round: i64,
    pub submitted_at: DateTime<Utc>,
    pub step: Option<String>,
    pub user_id: Option<Uuid>,
    pub comment: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// Groups rows ordered by version (then approval) into one entry per version.
pub(crate) fn group_in_review(rows: Vec<InReviewRow>) -> Result<Vec<InReview>> {
    let mut out: Vec<InReview> = Vec::new();
    let mut last: Option<Uuid> = None;
    for r in rows {
        if last != Some(r.version_id) {
            last = Some(r.version_id);
            out.push(InReview {
                template: TemplateName::parse(&r.template).map_err(StoreError::corrupt)?,
                seq: seq("seq", r.seq)?,
                classification: parse::<SecurityClassification>("classification", &r.classification)?,
                round: seq("review_round", r.round)?,
                submitted_at: r.submitted_at,
                approvals: Vec::new(),
            });
        }
        if let (Some(step), Some(user_id), Some(decided_at), Some(entry)) =
            (r.step, r.user_id, r.decided_at, out.last_mut())
        {
            entry.approvals.push(Approval {
                step,
                user_id: user_id.to_string(),
                decided_at,
                comment: r.comment,
            });
        }
    }
    Ok(out)
}
