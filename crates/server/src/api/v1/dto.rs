//! Wire types of the v1 API. Domain records are mapped into these, so the
//! public contract changes only on purpose.

use chrono::{DateTime, Utc};
use promptvault_core::authz::{TemplateAccess, TypePolicy};
use promptvault_core::model::{LabelMove, PromptRecord, PromptType, Template, UsageMetrics, Version};
use promptvault_core::versioning::Change;
use promptvault_core::{Bump, DeploymentModel, TemplateBody, TemplateKind};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::service::LabelView;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Who may create templates of a type, and whether its versions need the
/// approval workflow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypePolicyDto {
    /// Only holders of `allowed_roles` (and admins) create templates of this type.
    #[serde(default)]
    pub restricted_creation: bool,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Versions must pass the approval workflow (default true).
    #[serde(default = "yes")]
    pub requires_approval: bool,
}

fn yes() -> bool {
    true
}

impl From<TypePolicy> for TypePolicyDto {
    fn from(p: TypePolicy) -> Self {
        Self {
            restricted_creation: p.restricted_creation,
            allowed_roles: p.allowed_roles,
            requires_approval: p.requires_approval,
        }
    }
}

impl From<TypePolicyDto> for TypePolicy {
    fn from(p: TypePolicyDto) -> Self {
        Self {
            restricted_creation: p.restricted_creation,
            allowed_roles: p.allowed_roles,
            requires_approval: p.requires_approval,
        }
    }
}

/// Per-template access settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateAccessDto {
    /// Only the owner (and admins) may change the template.
    #[serde(default)]
    pub owner_only: bool,
    /// When not empty, only holders of one of these roles (and admins) may
    /// use the template at all.
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// When not empty, the deployments (`electron_local`, `electron_remote`,
    /// `web_application`) the template may be delivered to.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub restricted_deployments: Vec<DeploymentModel>,
    /// May be delivered to the desktop deployments (`electron_local`,
    /// `electron_remote`) where the classification rules ask for this mark
    /// (confidential templates, by default).
    #[serde(default)]
    pub offline_allowed: bool,
    /// The output filter chain for renders (`redact_sensitive`,
    /// `block_sensitive`, `pass`, …), replacing the one configured for the
    /// template's classification. Absent: the classification's chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_filters: Option<Vec<String>>,
}

impl From<TemplateAccess> for TemplateAccessDto {
    fn from(a: TemplateAccess) -> Self {
        Self {
            owner_only: a.owner_only,
            allowed_roles: a.allowed_roles,
            restricted_deployments: a.restricted_deployments,
            offline_allowed: a.offline_allowed,
            output_filters: a.output_filters,
        }
    }
}

impl From<TemplateAccessDto> for TemplateAccess {
    fn from(a: TemplateAccessDto) -> Self {
        Self {
            owner_only: a.owner_only,
            allowed_roles: a.allowed_roles,
            restricted_deployments: a.restricted_deployments,
            offline_allowed: a.offline_allowed,
            output_filters: a.output_filters,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromptTypeDto {
    pub id: Uuid,
    /// Stable key used in URLs and filters.
    pub key: String,
    pub name: String,
    /// Parameter contract every template of this type must meet.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    pub policy: TypePolicyDto,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Row revision; the ETag is `"type-<revision>"`.
    pub revision: i64,
}

impl From<PromptType> for PromptTypeDto {
    fn from(t: PromptType) -> Self {
        Self {
            id: *t.id.as_uuid(),
            key: t.key.into_string(),
            name: t.name,
            schema: t.schema,
            policy: t.policy.into(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            revision: t.revision.0,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePromptTypeRequest {
    #[schema(example = "agent-system")]
    pub key: String,
    #[schema(example = "Agent system prompts")]
    pub name: String,
    /// A parameter contract: `{"properties": {...}, "required": [...]}`.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    pub policy: Option<TypePolicyDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePromptTypeRequest {
    pub name: Option<String>,
    /// `null` removes the contract.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Option<Value>>,
    pub policy: Option<TypePolicyDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListPromptTypes {
    pub items: Vec<PromptTypeDto>,
}

/// Where a version stands among the template's versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionPointer {
    /// Sequence number: 1, 2, 3, … per template.
    pub seq: u32,
    /// Semantic version.
    #[schema(example = "1.2.0")]
    pub version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateSummary {
    pub id: Uuid,
    #[schema(example = "support/greeting")]
    pub name: String,
    /// Key of the prompt type.
    #[serde(rename = "type")]
    pub type_key: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    #[schema(example = "internal")]
    pub security_classification: String,
    pub owner_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub latest: VersionPointer,
    pub access: TemplateAccessDto,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Row revision; the ETag is `"tpl-<revision>"`.
    pub revision: i64,
}

impl From<&Template> for TemplateSummary {
    fn from(t: &Template) -> Self {
        Self {
            id: *t.id.as_uuid(),
            name: t.name.to_string(),
            type_key: t.type_key.to_string(),
            description: t.description.clone(),
            tags: t.tags.iter().map(ToString::to_string).collect(),
            security_classification: t.security_classification.to_string(),
            owner_id: t.owner_id.map(|u| *u.as_uuid()),
            creator_id: t.creator_id.map(|u| *u.as_uuid()),
            latest: VersionPointer { seq: t.latest_seq, version: t.latest_version.to_string() },
            access: t.access.clone().into(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            revision: t.revision.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplatePage {
    pub items: Vec<TemplateSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A chat message or placeholder, as stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatItemDto {
    /// `placeholder` for placeholders; absent (or `message`) for messages.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub role: Option<String>,
    pub content: Option<String>,
    /// The placeholder's name.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDto {
    pub seq: u32,
    #[schema(example = "1.2.0")]
    pub version: String,
    #[schema(example = "draft")]
    pub status: String,
    /// `text` or `chat`.
    pub kind: String,
    /// The template, for text templates.
    pub template_text: Option<String>,
    /// The messages, for chat templates.
    #[schema(value_type = Option<Vec<Object>>)]
    pub messages: Option<Value>,
    #[schema(value_type = Object)]
    pub parameter_schema: Value,
    #[schema(value_type = Object)]
    pub config: Value,
    /// SHA-256 over the canonical content.
    pub content_hash: String,
    pub author_id: Option<Uuid>,
    pub change_description: Option<String>,
    /// The bump over the previous version (absent for the first).
    pub bump: Option<String>,
    /// The version this one restored, if it was a rollback.
    pub restored_from: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Row revision; the ETag is `"ver-<revision>"`.
    pub revision: i64,
    /// The compliance check results recorded at the last submission or
    /// approval (for reviewers); absent before the first submission.
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_results: Option<Value>,
}

impl From<&Version> for VersionDto {
    fn from(v: &Version) -> Self {
        let (template_text, messages) = match &v.content.body {
            TemplateBody::Text(t) => (Some(t.clone()), None),
            TemplateBody::Chat(items) => (None, serde_json::to_value(items).ok()),
        };
        Self {
            seq: v.seq,
            version: v.version.to_string(),
            status: v.status.to_string(),
            kind: v.content.body.kind().as_str().to_owned(),
            template_text,
            messages,
            parameter_schema: v.content.parameter_schema.as_value().clone(),
            config: v.content.config.to_value(),
            content_hash: v.content_hash.to_string(),
            author_id: v.author_id.map(|u| *u.as_uuid()),
            change_description: v.change_description.clone(),
            bump: v.bump.map(|b| b.as_str().to_owned()),
            restored_from: v.restored_from,
            created_at: v.created_at,
            updated_at: v.updated_at,
            revision: v.revision.0,
            check_results: v.check_results.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelRef {
    pub name: String,
    pub version_seq: u32,
}

/// A template with the version the request resolved.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateDto {
    #[serde(flatten)]
    pub summary: TemplateSummary,
    pub long_description_markdown: Option<String>,
    /// Every label, `latest` included.
    pub labels: Vec<LabelRef>,
    /// The version resolved by `label`/`version` (default label otherwise).
    pub version: VersionDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeDto {
    /// `kind`, `text`, `messages`, `placeholders`, `parameter_schema` or `config`.
    pub area: String,
    /// The least bump this change needs.
    pub impact: String,
    pub summary: String,
}

impl From<&Change> for ChangeDto {
    fn from(c: &Change) -> Self {
        Self {
            area: serde_json::to_value(c.area)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            impact: c.impact.as_str().to_owned(),
            summary: c.summary.clone(),
        }
    }
}

/// What the template scanner found in saved content. Never quotes a
/// secret: sensitive data is named by kind and place.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanFindingDto {
    /// `injection_marker`, `hidden_injection_marker`, `role_token`,
    /// `invisible_character`, `bidi_control`, `parameter_in_system_message`,
    /// `include_higher_classification`, `sensitive_data`, `truncated`.
    pub rule: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    pub message: String,
    /// 1-based index of the chat item, for chat templates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_index: Option<usize>,
    /// 1-based line and column (characters) in the text or message.
    pub line: usize,
    pub column: usize,
    /// For `sensitive_data`: `credential`, `private_key`, `email`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl From<&promptvault_core::scan::ScanFinding> for ScanFindingDto {
    fn from(f: &promptvault_core::scan::ScanFinding) -> Self {
        Self {
            rule: f.rule.as_str().to_owned(),
            severity: f.severity.as_str().to_owned(),
            message: f.message.clone(),
            message_index: f.message_index,
            line: f.line,
            column: f.column,
            kind: f.kind.map(|k| k.as_str().to_owned()),
        }
    }
}

/// A created or edited version, with what changed, warnings and what the
/// template scanner found.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionWritten {
    pub template: String,
    pub version: VersionDto,
    pub changes: Vec<ChangeDto>,
    pub warnings: Vec<String>,
    pub findings: Vec<ScanFindingDto>,
}

/// A created template with its first version.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateCreated {
    pub template: TemplateDto,
    pub warnings: Vec<String>,
    /// What the template scanner found in the first version.
    pub findings: Vec<ScanFindingDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateRequest {
    /// Unique; `/` makes folders.
    #[schema(example = "support/greeting")]
    pub name: String,
    /// Prompt type key (default `general`).
    #[serde(rename = "type")]
    pub type_key: Option<String>,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    /// Defaults to the creator.
    pub owner_id: Option<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `public`, `internal` (default), `confidential` or `restricted`.
    pub security_classification: Option<String>,
    /// The template, for a text template.
    #[schema(example = "Hello {{ name }}!")]
    pub template_text: Option<String>,
    /// The messages, for a chat template.
    #[schema(value_type = Option<Vec<Object>>)]
    pub messages: Option<Value>,
    /// JSON Schema 2020-12 declaring every variable the template uses.
    #[schema(value_type = Option<Object>)]
    pub parameter_schema: Option<Value>,
    /// Model name, temperature, tools: whatever callers need beside the text.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    pub change_description: Option<String>,
    pub access: Option<TemplateAccessDto>,
}

/// A new version. Omitted content fields are taken from the newest version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersionRequest {
    pub template_text: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub messages: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub parameter_schema: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Ask for a larger bump than the change needs: `patch`, `minor`, `major`.
    pub bump: Option<String>,
    pub change_description: Option<String>,
    /// The newest version you built on; refused with 409 if another came since.
    pub base_version: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplateRequest {
    /// Prompt type key.
    #[serde(rename = "type")]
    pub type_key: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub long_description_markdown: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub owner_id: Option<Option<Uuid>>,
    pub tags: Option<Vec<String>>,
    pub security_classification: Option<String>,
    pub access: Option<TemplateAccessDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTemplatesQuery {
    /// Prompt type key.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub type_key: Option<String>,
    pub tag: Option<String>,
    /// Templates with at least one version in this status.
    pub status: Option<String>,
    pub classification: Option<String>,
    /// Owner user id.
    pub owner: Option<Uuid>,
    /// Templates under this folder (`support` matches `support/…`).
    pub folder: Option<String>,
    /// Full-text search over name, description, tags and text.
    pub q: Option<String>,
    /// Items per page (1-200, default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// A label (`production`, `staging`, `latest`, …).
    pub label: Option<String>,
    /// A version number (3) or semantic version (1.2.0).
    pub version: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1-200, default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionPage {
    pub template: String,
    pub items: Vec<VersionDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelDto {
    pub name: String,
    pub version_seq: u32,
    pub version: String,
    /// `latest` moves by itself and cannot be set.
    pub automatic: bool,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<Uuid>,
    /// Row revision; the ETag is `"label-<revision>"` (absent for `latest`).
    pub revision: Option<i64>,
}

impl From<LabelView> for LabelDto {
    fn from(l: LabelView) -> Self {
        Self {
            name: l.name.into_string(),
            version_seq: l.version_seq,
            version: l.version.to_string(),
            automatic: l.automatic,
            updated_at: l.updated_at,
            updated_by: l.updated_by.map(|u| *u.as_uuid()),
            revision: l.revision.map(|r| r.0),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelList {
    pub template: String,
    pub items: Vec<LabelDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelMoveDto {
    pub from_version: Option<u32>,
    pub to_version: Option<u32>,
    pub at: DateTime<Utc>,
    pub by: Option<Uuid>,
}

impl From<LabelMove> for LabelMoveDto {
    fn from(m: LabelMove) -> Self {
        Self { from_version: m.from_seq, to_version: m.to_seq, at: m.at, by: m.by.map(|u| *u.as_uuid()) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelDetail {
    pub label: LabelDto,
    /// Moves of this label, newest first.
    pub history: Vec<LabelMoveDto>,
}

/// A version: its number (`3`) or its semantic version (`"1.2.0"`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum VersionArg {
    Seq(u32),
    Text(String),
}

impl VersionArg {
    pub fn as_text(&self) -> String {
        match self {
            VersionArg::Seq(n) => n.to_string(),
            VersionArg::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLabelRequest {
    #[schema(value_type = Object, example = 3)]
    pub version: VersionArg,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum RollbackRequest {
    /// Point a label at an earlier version (by default where it pointed before).
    MoveLabel {
        label: String,
        #[schema(value_type = Option<Object>)]
        to_version: Option<VersionArg>,
    },
    /// Create a new version with an earlier version's content.
    NewVersion {
        #[schema(value_type = Object)]
        from_version: VersionArg,
        bump: Option<String>,
        change_description: Option<String>,
    },
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum RollbackResponse {
    MoveLabel { label: LabelDto },
    NewVersion { version: Box<VersionWritten> },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequestDto {
    /// A label; without label and version the default label is used.
    pub label: Option<String>,
    /// A version number or semantic version.
    #[schema(value_type = Option<Object>)]
    pub version: Option<VersionArg>,
    /// Values for the template's variables (validated against its schema).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Option<Value>,
    /// Lists of messages for chat placeholders, by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub placeholders: Option<Map<String, Value>>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub agent_id: Option<String>,
    /// `electron_local`, `electron_remote` or `web_application` (default).
    pub deployment_model: Option<String>,
    /// Return the instance's signature over the version's manifest (name,
    /// version, content hash, classification) in `signature`.
    pub sign: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenderedMessageDto {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenderResponse {
    /// Id of the recorded rendering; report its outcome with it.
    pub prompt_id: Uuid,
    pub template: String,
    pub version_seq: u32,
    pub version: String,
    pub status: String,
    pub kind: String,
    /// The rendered text (text templates).
    pub text: Option<String>,
    /// The rendered messages (chat templates).
    pub messages: Option<Vec<RenderedMessageDto>>,
    #[schema(value_type = Object)]
    pub config: Value,
    pub content_hash: String,
    pub warnings: Vec<String>,
    /// The signed manifest of the rendered version, when asked for with
    /// `sign`; verify it with `/.well-known/promptvault/signing-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::service::keys::SignedManifest>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// Whether the rendered prompt did its job.
    pub success: bool,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeDto {
    pub success: bool,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromptDto {
    pub id: Uuid,
    pub template_id: Uuid,
    pub prompt_type_id: Uuid,
    pub version_id: Uuid,
    pub version_seq: u32,
    /// The parameters as rendered.
    #[schema(value_type = Object)]
    pub data: Value,
    pub prompt_text: String,
    pub sender_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub agent_id: Option<String>,
    pub deployment_model: String,
    pub outcome: Option<OutcomeDto>,
}

impl From<PromptRecord> for PromptDto {
    fn from(p: PromptRecord) -> Self {
        Self {
            id: *p.id.as_uuid(),
            template_id: *p.template_id.as_uuid(),
            prompt_type_id: *p.prompt_type_id.as_uuid(),
            version_id: *p.version_id.as_uuid(),
            version_seq: p.version_seq,
            data: p.data,
            prompt_text: p.prompt_text,
            sender_id: p.sender_id.map(|u| *u.as_uuid()),
            created_at: p.created_at,
            session_id: p.metadata.session_id,
            request_id: p.metadata.request_id,
            agent_id: p.metadata.agent_id,
            deployment_model: p.metadata.deployment_model.to_string(),
            outcome: p.outcome.map(|o| OutcomeDto {
                success: o.outcome == promptvault_core::model::Outcome::Success,
                detail: o.detail,
                at: o.at,
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDto {
    pub times_used: u64,
    pub last_used: Option<DateTime<Utc>>,
    pub successes: u64,
    pub failures: u64,
    /// Successes over reported outcomes; null before any outcome.
    pub success_rate: Option<f64>,
}

impl From<&UsageMetrics> for UsageDto {
    fn from(m: &UsageMetrics) -> Self {
        Self {
            times_used: m.times_used,
            last_used: m.last_used,
            successes: m.successes,
            failures: m.failures,
            success_rate: m.success_rate(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionUsageDto {
    pub version_seq: u32,
    #[serde(flatten)]
    pub usage: UsageDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsDto {
    pub template: String,
    pub total: UsageDto,
    /// Newest version first; versions never rendered are absent.
    pub versions: Vec<VersionUsageDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// Older side (default: the version before `to`).
    pub from: Option<String>,
    /// Newer side (default: the newest version).
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiffDto {
    pub template: String,
    pub from: VersionPointer,
    pub to: VersionPointer,
    /// Unified diff of the template text.
    pub text_diff: String,
    /// Unified diff of the config.
    pub config_diff: String,
    /// Every change, parameter-schema changes included.
    pub changes: Vec<ChangeDto>,
    /// The least bump covering the changes; null when identical.
    pub required_bump: Option<String>,
}

pub fn kind_name(k: TemplateKind) -> String {
    k.as_str().to_owned()
}

pub fn bump_name(b: Option<Bump>) -> Option<String> {
    b.map(|b| b.as_str().to_owned())
}
