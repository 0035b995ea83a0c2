//! Semantic versions computed from the change.
//!
//! The rules (product.md): an incompatible parameter-schema change needs a
//! major bump; a new optional parameter or changed wording a minor bump; a
//! whitespace- or typo-level edit a patch. A caller may ask for a larger
//! bump, never a smaller one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use similar::{Algorithm, DiffTag, capture_diff_slices};
use thiserror::Error;

use crate::content::{ChatItem, TemplateBody, VersionContent};
use crate::schema_diff::diff_schemas;

/// How far a version moves. Ordered: `Patch < Minor < Major`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bump {
    Patch,
    Minor,
    Major,
}

impl Bump {
    pub const ALL: [Self; 3] = [Self::Patch, Self::Minor, Self::Major];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Patch => "patch",
            Self::Minor => "minor",
            Self::Major => "major",
        }
    }

    /// The version after `prev` moved by this bump.
    #[must_use]
    pub fn apply(self, prev: &semver::Version) -> semver::Version {
        match self {
            Bump::Major => semver::Version::new(prev.major + 1, 0, 0),
            Bump::Minor => semver::Version::new(prev.major, prev.minor + 1, 0),
            Bump::Patch => semver::Version::new(prev.major, prev.minor, prev.patch + 1),
        }
    }
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Bump {
    type Err = crate::classification::UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|b| b.as_str() == s).ok_or_else(|| crate::classification::UnknownVariant {
            what: "bump",
            value: s.chars().take(40).collect(),
            expected: "patch, minor, major".into(),
        })
    }
}

/// The semantic version of a template's first version.
#[must_use]
pub fn initial_version() -> semver::Version {
    semver::Version::new(1, 0, 0)
}

/// Which part of a version a change touches.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeArea {
    Kind,
    Text,
    Messages,
    Placeholders,
    ParameterSchema,
    Config,
}

/// One change with the least bump it needs and a sentence for people.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Change {
    pub area: ChangeArea,
    pub impact: Bump,
    pub summary: String,
}

/// Everything that changed between two versions.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ChangeSet {
    pub changes: Vec<Change>,
}

impl ChangeSet {
    /// The least bump that covers every change; `None` when nothing changed.
    #[must_use]
    pub fn required_bump(&self) -> Option<Bump> {
        self.changes.iter().map(|c| c.impact).max()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes that force `bump`, for error messages.
    #[must_use]
    pub fn reasons_for(&self, bump: Bump) -> Vec<String> {
        self.changes.iter().filter(|c| c.impact == bump).map(|c| c.summary.clone()).collect()
    }

    fn push(&mut self, area: ChangeArea, impact: Bump, summary: impl Into<String>) {
        self.changes.push(Change { area, impact, summary: summary.into() });
    }
}

/// Why a version could not be numbered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BumpError {
    #[error("nothing changed: the content is identical to version {previous}")]
    Unchanged { previous: semver::Version },
    #[error(
        "a {requested} bump is too small: this change needs at least {required} ({})",
        reasons.join("; ")
    )]
    TooSmall { requested: Bump, required: Bump, reasons: Vec<String> },
}

/// Compares two versions' content.
#[must_use]
pub fn analyze(prev: &VersionContent, next: &VersionContent) -> ChangeSet {
    let mut set = ChangeSet::default();
    match (&prev.body, &next.body) {
        (TemplateBody::Text(a), TemplateBody::Text(b)) => {
            if let Some((impact, summary)) = classify_text(a, b) {
                set.push(ChangeArea::Text, impact, summary);
            }
        }
        (TemplateBody::Chat(a), TemplateBody::Chat(b)) => analyze_chat(a, b, &mut set),
        (a, b) => set.push(
            ChangeArea::Kind,
            Bump::Major,
            format!("template kind changed from {} to {}", a.kind().as_str(), b.kind().as_str()),
        ),
    }
    for change in diff_schemas(prev.parameter_schema.as_value(), next.parameter_schema.as_value()) {
        set.push(ChangeArea::ParameterSchema, change.impact(), change.to_string());
    }
    let (a, b) = (prev.config.as_map(), next.config.as_map());
    if a != b {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).collect();
        keys.sort();
        keys.dedup();
        let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        set.push(ChangeArea::Config, Bump::Minor, format!("config changed: {}", keys.join(", ")));
    }
    set
}

/// Picks the bump for a new version: the required one, or a larger one asked for.
pub fn choose_bump(
    previous: &semver::Version,
    changes: &ChangeSet,
    requested: Option<Bump>,
) -> Result<Bump, BumpError> {
    let Some(required) = changes.required_bump() else {
        return Err(BumpError::Unchanged { previous: previous.clone() });
    };
    match requested {
        Some(r) if r < required => {
            Err(BumpError::TooSmall { requested: r, required, reasons: changes.reasons_for(required) })
        }
        Some(r) => Ok(r),
        None => Ok(required),
    }
}

fn analyze_chat(a: &[ChatItem], b: &[ChatItem], set: &mut ChangeSet) {
    let names = |items: &[ChatItem]| -> Vec<String> {
        items
            .iter()
            .filter_map(|i| match i {
                ChatItem::Placeholder { name } => Some(name.to_string()),
                ChatItem::Message(_) => None,
            })
            .collect()
    };
    let (pa, pb) = (names(a), names(b));
    for added in pb.iter().filter(|n| !pa.contains(n)) {
        set.push(
            ChangeArea::Placeholders,
            Bump::Major,
            format!("placeholder `{added}` added: callers must now fill it"),
        );
    }
    for removed in pa.iter().filter(|n| !pb.contains(n)) {
        set.push(ChangeArea::Placeholders, Bump::Minor, format!("placeholder `{removed}` removed"));
    }
    let same_shape = a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (ChatItem::Message(x), ChatItem::Message(y)) => x.role == y.role,
            (ChatItem::Placeholder { name: x }, ChatItem::Placeholder { name: y }) => x == y,
            _ => false,
        });
    if !same_shape {
        if a.iter().zip(b).any(|(x, y)| x != y) || a.len() != b.len() {
            set.push(
                ChangeArea::Messages,
                Bump::Minor,
                "messages added, removed, reordered or given other roles",
            );
        }
        return;
    }
    for (i, pair) in a.iter().zip(b).enumerate() {
        if let (ChatItem::Message(x), ChatItem::Message(y)) = pair
            && let Some((impact, summary)) = classify_text(&x.content, &y.content)
        {
            set.push(ChangeArea::Messages, impact, format!("message {} ({}): {summary}", i + 1, x.role));
        }
    }
}

/// At most this many typo-level word fixes still count as a patch.
const MAX_TYPO_FIXES: usize = 3;

/// Classifies an edit of template text, or `None` when there is none.
#[must_use]
pub fn classify_text(old: &str, new: &str) -> Option<(Bump, String)> {
    if old == new {
        return None;
    }
    let ow: Vec<&str> = old.split_whitespace().collect();
    let nw: Vec<&str> = new.split_whitespace().collect();
    if ow == nw {
        return Some((Bump::Patch, "whitespace-only change".to_owned()));
    }
    let wording = || Some((Bump::Minor, "wording changed".to_owned()));
    let mut fixes = Vec::new();
    let ops = capture_diff_slices(Algorithm::Myers, &ow, &nw);
    let mut deleted: Vec<&str> = Vec::new();
    let mut inserted: Vec<&str> = Vec::new();
    let mut flush = |deleted: &mut Vec<&str>, inserted: &mut Vec<&str>| -> bool {
        if deleted.len() != inserted.len() {
            return false;
        }
        for (a, b) in deleted.drain(..).zip(inserted.drain(..)) {
            if !is_typo_fix(a, b) {
                return false;
            }
            fixes.push(format!("'{a}' → '{b}'"));
        }
        true
    };
    for op in ops {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => {
                if !flush(&mut deleted, &mut inserted) {
                    return wording();
                }
            }
            DiffTag::Delete => deleted.extend(&ow[old_range]),
            DiffTag::Insert => inserted.extend(&nw[new_range]),
            DiffTag::Replace => {
                deleted.extend(&ow[old_range]);
                inserted.extend(&nw[new_range]);
            }
        }
    }
    if !flush(&mut deleted, &mut inserted) || fixes.len() > MAX_TYPO_FIXES {
        return wording();
    }
    Some((Bump::Patch, format!("typo-level edit: {}", fixes.join(", "))))
}

/// Is replacing word `a` by `b` a typo fix (not a change of meaning)?
fn is_typo_fix(a: &str, b: &str) -> bool {
    let syntax = |w: &str| ["{{", "}}", "{%", "%}", "{#", "#}"].iter().any(|t| w.contains(t));
    if syntax(a) || syntax(b) {
        return false;
    }
    if a.to_lowercase() == b.to_lowercase() {
        return true;
    }
    let letters = |w: &str| -> String { w.chars().filter(|c| c.is_alphanumeric()).collect() };
    if !letters(a).is_empty() && letters(a).to_lowercase() == letters(b).to_lowercase() {
        return true;
    }
    // A changed number changes meaning ("at most 5 items" → "6").
    if a.chars().any(|c| c.is_ascii_digit()) || b.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    let longest = a.chars().count().max(b.chars().count());
    let allowed = if longest <= 4 { 1 } else { 2 };
    strsim::osa_distance(&a.to_lowercase(), &b.to_lowercase()) <= allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("Hello {{ name }}", "Hello  {{ name }}\n", Bump::Patch, "whitespace-only")]
    #[case("Say teh truth", "Say the truth", Bump::Patch, "'teh' → 'the'")]
    #[case("Be concise", "be concise.", Bump::Patch, "typo-level")]
    #[case("Recieve the parcel", "Receive the parcel", Bump::Patch, "typo-level")]
    #[case("Be concise", "Be thorough", Bump::Minor, "wording")]
    #[case("List 5 items", "List 6 items", Bump::Minor, "wording")]
    #[case("Hello {{ name }}", "Hello {{ user }}", Bump::Minor, "wording")]
    #[case("Be brief", "Be brief and kind", Bump::Minor, "wording")]
    #[case("a b c d e", "A. B. C. D. E.", Bump::Minor, "wording")]
    fn text_classification(#[case] old: &str, #[case] new: &str, #[case] bump: Bump, #[case] text: &str) {
        let (b, summary) = classify_text(old, new).unwrap();
        assert_eq!(b, bump, "{summary}");
        assert!(summary.contains(text), "{summary}");
    }

    #[test]
    fn identical_text_is_no_change() {
        assert_eq!(classify_text("same", "same"), None);
    }

    #[rstest]
    #[case(Bump::Patch, "1.2.3", "1.2.4")]
    #[case(Bump::Minor, "1.2.3", "1.3.0")]
    #[case(Bump::Major, "1.2.3", "2.0.0")]
    #[case(Bump::Patch, "1.2.3-rc.1+build", "1.2.4")]
    fn applying_bumps(#[case] bump: Bump, #[case] from: &str, #[case] to: &str) {
        let from = semver::Version::parse(from).unwrap();
        assert_eq!(bump.apply(&from).to_string(), to);
    }

    #[test]
    fn requested_bumps() {
        let v = semver::Version::new(1, 0, 0);
        let mut set = ChangeSet::default();
        assert!(matches!(choose_bump(&v, &set, None), Err(BumpError::Unchanged { .. })));
        set.push(ChangeArea::Text, Bump::Minor, "wording changed");
        assert_eq!(choose_bump(&v, &set, None), Ok(Bump::Minor));
        assert_eq!(choose_bump(&v, &set, Some(Bump::Major)), Ok(Bump::Major));
        let err = choose_bump(&v, &set, Some(Bump::Patch)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a patch bump is too small: this change needs at least minor (wording changed)"
        );
    }
}
