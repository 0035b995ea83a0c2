//! The lifecycle of a version: a state machine.
//!
//! The transitions are product.md's. Who may take a transition (approvals,
//! roles) is policy, decided elsewhere; this module only knows which moves
//! exist at all.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::classification::{UnknownVariant, text_enum};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    #[default]
    Draft,
    Review,
    Approved,
    Deprecated,
    Archived,
}

text_enum!(VersionStatus, "version status");

/// A move the state machine does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a version cannot go from {from} to {to}; from {from} it can go to: {allowed}")]
pub struct TransitionError {
    pub from: VersionStatus,
    pub to: VersionStatus,
    allowed: AllowedList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AllowedList(VersionStatus);

impl fmt::Display for AllowedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let next = self.0.allowed_transitions();
        if next.is_empty() {
            return f.write_str("nothing");
        }
        let names: Vec<&str> = next.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(", "))
    }
}

impl VersionStatus {
    pub const ALL: [Self; 5] = [Self::Draft, Self::Review, Self::Approved, Self::Deprecated, Self::Archived];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Review => "review",
            Self::Approved => "approved",
            Self::Deprecated => "deprecated",
            Self::Archived => "archived",
        }
    }

    /// The states reachable in one step.
    #[must_use]
    pub const fn allowed_transitions(self) -> &'static [VersionStatus] {
        use VersionStatus::*;
        match self {
            Draft => &[Review],
            Review => &[Approved, Draft],
            Approved => &[Deprecated],
            Deprecated => &[Archived, Approved],
            Archived => &[],
        }
    }

    pub fn transition(self, to: VersionStatus) -> Result<VersionStatus, TransitionError> {
        if self.allowed_transitions().contains(&to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to, allowed: AllowedList(self) })
        }
    }

    /// Only a draft may be changed in place; every other state is immutable.
    #[must_use]
    pub const fn is_editable(self) -> bool {
        matches!(self, Self::Draft)
    }
}

#[cfg(test)]
mod tests {
    use super::VersionStatus::*;
    use super::*;

    #[test]
    fn the_documented_paths_exist() {
        assert_eq!(Draft.transition(Review), Ok(Review));
        assert_eq!(Review.transition(Approved), Ok(Approved));
        assert_eq!(Review.transition(Draft), Ok(Draft));
        assert_eq!(Approved.transition(Deprecated), Ok(Deprecated));
        assert_eq!(Deprecated.transition(Approved), Ok(Approved));
        assert_eq!(Deprecated.transition(Archived), Ok(Archived));
    }

    #[test]
    fn shortcuts_are_refused_with_the_alternatives() {
        let err = Draft.transition(Approved).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a version cannot go from draft to approved; from draft it can go to: review"
        );
        let err = Archived.transition(Draft).unwrap_err();
        assert!(err.to_string().ends_with("it can go to: nothing"));
    }

    #[test]
    fn only_drafts_are_editable() {
        for s in VersionStatus::ALL {
            assert_eq!(s.is_editable(), s == Draft);
        }
    }
}
