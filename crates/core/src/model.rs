//! The records of the registry: prompt types, templates, versions, labels,
//! renders. Plain data, checked on the way in; no database derives.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::classification::{DeploymentModel, SecurityClassification};
use crate::content::VersionContent;
use crate::hash::ContentHash;
use crate::ids::{PromptId, PromptTypeId, TemplateId, UserId, VersionId};
use crate::names::{LabelName, PromptTypeKey, Tag, TemplateName};
use crate::status::VersionStatus;
use crate::versioning::Bump;

/// A row's revision: starts at 1 and grows by one with every change. It is
/// the ETag of the row, so a write that names an old revision is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Revision(pub i64);

impl Revision {
    pub const FIRST: Revision = Revision(1);

    #[must_use]
    pub fn next(self) -> Revision {
        Revision(self.0 + 1)
    }

    /// The entity tag for HTTP: `"<kind>-<revision>"`, quoted as RFC 9110 asks.
    #[must_use]
    pub fn etag(self, kind: &str) -> String {
        format!("\"{kind}-{}\"", self.0)
    }

    /// Reads an entity tag written by [`etag`](Self::etag) (weak tags too).
    #[must_use]
    pub fn from_etag(tag: &str, kind: &str) -> Option<Revision> {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
        let n = inner.strip_prefix(kind)?.strip_prefix('-')?;
        n.parse().ok().map(Revision)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromptType {
    pub id: PromptTypeId,
    pub key: PromptTypeKey,
    pub name: String,
    /// A parameter contract every template of this type must meet.
    pub schema: Option<Value>,
    /// Who may create templates of this type; whether approval is required.
    pub policy: crate::authz::TypePolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: Revision,
}

/// The named, owned, classified thing; its content lives in its versions.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub id: TemplateId,
    pub prompt_type_id: PromptTypeId,
    pub type_key: PromptTypeKey,
    pub name: TemplateName,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    pub creator_id: Option<UserId>,
    pub owner_id: Option<UserId>,
    /// Sorted and without duplicates.
    pub tags: Vec<Tag>,
    pub security_classification: SecurityClassification,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: Revision,
    /// Sequence number of the newest version (what `latest` points at).
    pub latest_seq: u32,
    pub latest_version: semver::Version,
    /// Owner-only, allowed roles, restricted deployments.
    pub access: crate::authz::TemplateAccess,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub id: VersionId,
    pub template_id: TemplateId,
    /// 1, 2, 3, … per template, never reused.
    pub seq: u32,
    pub version: semver::Version,
    pub status: VersionStatus,
    pub content: VersionContent,
    pub content_hash: ContentHash,
    pub author_id: Option<UserId>,
    pub change_description: Option<String>,
    /// The bump over the previous version; `None` for the first.
    pub bump: Option<Bump>,
    /// When this version restores an older one: that version's sequence number.
    pub restored_from: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub revision: Revision,
    // Lifecycle state. None of it is content: the content hash ignores it.
    /// How many times the version was submitted for review; 0 = never.
    /// Each submission starts a new round, and only the current round's
    /// approvals count.
    pub review_round: u32,
    /// When the status last changed (`None` if it never did through a
    /// lifecycle transition).
    pub status_changed_at: Option<DateTime<Utc>>,
    /// The notice of a deprecated version.
    pub deprecation: Option<Deprecation>,
    /// The compliance check results recorded at the last submission or
    /// approval, as the service stored them.
    pub check_results: Option<Value>,
}

/// What a deprecated version tells its users: what replaces it, until when
/// it may still be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Deprecation {
    /// The sequence number of the version to use instead.
    pub replacement_seq: Option<u32>,
    /// The end of the deprecation period.
    pub until: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// A named pointer to a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: LabelName,
    pub version_seq: u32,
    pub version_id: VersionId,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<UserId>,
    pub revision: Revision,
}

/// One move of a label, kept so that a rollback can say "back".
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMove {
    pub label: LabelName,
    pub from_seq: Option<u32>,
    pub to_seq: Option<u32>,
    pub at: DateTime<Utc>,
    pub by: Option<UserId>,
}

/// Request-scoped facts recorded with a render.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenderMetadata {
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub agent_id: Option<String>,
    pub deployment_model: DeploymentModel,
}

/// One rendering (a row of the `prompt` table).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRecord {
    pub id: PromptId,
    pub template_id: TemplateId,
    pub prompt_type_id: PromptTypeId,
    pub version_id: VersionId,
    pub version_seq: u32,
    /// The parameters as rendered.
    pub data: Value,
    pub prompt_text: String,
    pub sender_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub metadata: RenderMetadata,
    pub outcome: Option<OutcomeRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRecord {
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// Usage of a template or of one version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageMetrics {
    pub times_used: u64,
    pub last_used: Option<DateTime<Utc>>,
    pub successes: u64,
    pub failures: u64,
}

impl UsageMetrics {
    /// Successes over reported outcomes; `None` before any outcome.
    #[must_use]
    pub fn success_rate(&self) -> Option<f64> {
        let reported = self.successes + self.failures;
        (reported > 0).then(|| self.successes as f64 / reported as f64)
    }

    pub fn merge(&mut self, other: &UsageMetrics) {
        self.times_used += other.times_used;
        self.successes += other.successes;
        self.failures += other.failures;
        self.last_used = self.last_used.max(other.last_used);
    }
}

/// Timestamps are kept to the microsecond, the precision both backends store.
#[must_use]
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip() {
        let r = Revision(7);
        assert_eq!(r.etag("tpl"), "\"tpl-7\"");
        assert_eq!(Revision::from_etag("\"tpl-7\"", "tpl"), Some(r));
        assert_eq!(Revision::from_etag("W/\"tpl-7\"", "tpl"), Some(r));
        assert_eq!(Revision::from_etag("\"ver-7\"", "tpl"), None);
        assert_eq!(Revision::from_etag("tpl-7", "tpl"), None);
    }

    #[test]
    fn success_rate() {
        let mut m = UsageMetrics::default();
        assert_eq!(m.success_rate(), None);
        m.successes = 3;
        m.failures = 1;
        assert_eq!(m.success_rate(), Some(0.75));
    }
}
