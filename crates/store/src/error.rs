//! The store's error. Absence is `Ok(None)` on reads; an error is always a
//! real failure or a refused write, never a disguised "not found".

use promptvault_core::VersionStatus;
use promptvault_core::model::Revision;
use thiserror::Error;

/// A write refused because of the data's current state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Conflict {
    #[error("a {what} named {name:?} already exists")]
    AlreadyExists { what: &'static str, name: String },
    #[error("the newest version is {current}, not {expected}: someone else created a version")]
    StaleBase { expected: u32, current: u32 },
    #[error("version {seq} is {status}; only drafts can be changed")]
    NotEditable { seq: u32, status: VersionStatus },
    #[error("version {seq} is no longer the newest (version {latest} is); create a new version instead")]
    Superseded { seq: u32, latest: u32 },
    #[error("the {what} is used by {count} {by}")]
    InUse { what: &'static str, count: u64, by: &'static str },
    #[error("a template must keep at least one version")]
    LastVersion,
    #[error("version {seq} carries label(s) {labels}; move or remove them first")]
    Labelled { seq: u32, labels: String },
    /// A lifecycle move the state machine does not have.
    #[error("a version cannot go from {from} to {to}; from {from} it can go to: {}", StatusList(allowed))]
    InvalidTransition { from: VersionStatus, to: VersionStatus, allowed: &'static [VersionStatus] },
    /// An approval or rejection of a version that is not in review.
    #[error("version {seq} is {status}; only a version in review can be approved or rejected")]
    NotInReview { seq: u32, status: VersionStatus },
    /// The workflows would not form a valid set after the write (a
    /// classification claimed by two workflows); `code` is
    /// [`promptvault_core::workflow::WorkflowError::code`].
    #[error("{message}")]
    WorkflowSet { code: &'static str, message: String },
    /// The approval workflow refused the decision; `code` is
    /// [`promptvault_core::workflow::ApprovalRefused::code`].
    #[error("{message}")]
    ReviewRefused { code: &'static str, message: String },
}

/// "review, draft", or "nothing" for a final state.
struct StatusList<'a>(&'a [VersionStatus]);

impl std::fmt::Display for StatusList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        let names: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(", "))
    }
}

impl From<promptvault_core::status::TransitionError> for Conflict {
    fn from(e: promptvault_core::status::TransitionError) -> Self {
        Conflict::InvalidTransition { from: e.from, to: e.to, allowed: e.from.allowed_transitions() }
    }
}

impl From<promptvault_core::workflow::ApprovalRefused> for Conflict {
    fn from(e: promptvault_core::workflow::ApprovalRefused) -> Self {
        Conflict::ReviewRefused { code: e.code(), message: e.to_string() }
    }
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// A write named a row that does not exist.
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// An optimistic-concurrency check failed: the row changed since it was read.
    #[error("the {what} has changed since it was read (current revision {current:?})")]
    Stale { what: &'static str, current: Option<Revision> },
    #[error("invalid page cursor")]
    InvalidCursor,
    /// Stored data that does not decode: never shown as a wrong answer.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Setup(String),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
