//! Compliance checks: rules run on a version before it goes to review
//! (submission) and before it is approved. A failed check of severity
//! `error` blocks the transition; `warning` and `info` results are shown to
//! the author and the reviewers.
//!
//! A [`CheckSet`] holds the built-in checks, configured by a
//! [`BuiltinsConfig`], and the administrator's declarative
//! [`CheckDefinition`]s. [`CheckSet::run`] evaluates every enabled check that
//! applies to the subject's prompt type and returns one [`CheckResult`] per
//! check, passed or not; [`blocking`] picks the results that stop a
//! transition.
//!
//! # Built-in checks
//!
//! | key | default severity | what it checks |
//! | --- | --- | --- |
//! | `description_present` | warning | the template has a description that is not blank (and at least `min_chars` characters long) |
//! | `declared_variables` | error | every variable the template uses is declared in the parameter schema (the analysis that saving a version runs) |
//! | `length_limit` | warning | the text has at most `max_chars` characters (default 32,000) and at most `max_tokens` estimated tokens (default 8,000) |
//! | `forbidden_phrases` | error | none of the configured `phrases` occurs in the text (default: no phrases, so the check passes) |
//! | `classification_tags` | warning | the security classification is consistent with the tags: a tag listed in `minimums` needs at least that classification, and a tag listed in `public_tags` needs `public` |
//!
//! # What "the text" is
//!
//! For a text template, its text. For a chat template, the contents of its
//! messages joined by a blank line (`"\n\n"`); placeholders contribute
//! nothing, since they are only filled when rendering. Lengths count Unicode
//! scalar values (`char`s), not bytes.
//!
//! # Token estimate
//!
//! Tokens are estimated as `ceil(characters / 4)` ([`estimate_tokens`]):
//! about four characters per token is the usual figure for English text with
//! the common BPE tokenizers. It is deliberately model-independent; it
//! over-counts code and under-counts some scripts, so leave headroom in
//! `max_tokens`.
//!
//! # Phrases
//!
//! Forbidden phrases match case-insensitively (Unicode simple case folding),
//! as whole phrases: a phrase that starts or ends with a letter, digit or `_`
//! only matches at a Unicode word boundary there (`pass` does not match
//! `password`), and any run of whitespace in the phrase matches any run of
//! whitespace in the text (`guaranteed returns` matches across a line break).
//!
//! # Locations
//!
//! A [`Location`] gives the 1-based line and column (counted in `char`s) of
//! the first finding; for a chat template, `message_index` is the 0-based
//! index of the item in the template's list (placeholders count), and
//! messages in prose say "message N" with N 1-based. Messages never quote
//! what a pattern matched: checks often hunt for secrets.

mod builtin;
mod custom;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::classification::{SecurityClassification, UnknownVariant, text_enum};
use crate::content::VersionContent;
use crate::model::Template;
use crate::names::{PromptTypeKey, Tag, TemplateName};

pub use builtin::{
    BUILTIN_KEYS, BuiltinsConfig, ClassificationTagsConfig, DeclaredVariablesConfig,
    DescriptionPresentConfig, ForbiddenPhrasesConfig, LengthLimitConfig, builtin_name,
};
pub use custom::{CheckDefinition, CheckDefinitionError, RegexTarget, Rule};
pub use scan::estimate_tokens;

/// How much a failed check matters. Ordered: `Info < Warning < Error`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Shown, never blocks.
    Info,
    /// Shown prominently, never blocks.
    Warning,
    /// Blocks submission and approval while it fails.
    Error,
}

impl Severity {
    pub const ALL: [Self; 3] = [Self::Info, Self::Warning, Self::Error];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

text_enum!(Severity, "severity");

/// What a check sees: the template's metadata and the version's content.
#[derive(Debug, Clone, Copy)]
pub struct CheckSubject<'a> {
    pub name: &'a TemplateName,
    pub description: Option<&'a str>,
    pub tags: &'a [Tag],
    pub classification: SecurityClassification,
    pub prompt_type: &'a PromptTypeKey,
    pub content: &'a VersionContent,
}

impl<'a> CheckSubject<'a> {
    #[must_use]
    pub fn new(
        name: &'a TemplateName,
        description: Option<&'a str>,
        tags: &'a [Tag],
        classification: SecurityClassification,
        prompt_type: &'a PromptTypeKey,
        content: &'a VersionContent,
    ) -> Self {
        Self { name, description, tags, classification, prompt_type, content }
    }

    /// A version of a stored template.
    #[must_use]
    pub fn of(template: &'a Template, content: &'a VersionContent) -> Self {
        Self::new(
            &template.name,
            template.description.as_deref(),
            &template.tags,
            template.security_classification,
            &template.type_key,
            content,
        )
    }
}

/// Where in the checked text a finding is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
    /// For chat templates: the 0-based index of the item in the template.
    pub message_index: Option<usize>,
}

/// The outcome of one check on one version.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's key (`length_limit`, or a custom check's key).
    pub check: String,
    /// The check's human name.
    pub name: String,
    pub severity: Severity,
    pub passed: bool,
    /// What the check found, in a sentence; says exactly what is wrong when
    /// the check failed.
    pub message: String,
    /// Where the first finding is, when the check can tell.
    pub location: Option<Location>,
}

impl CheckResult {
    /// Whether this result stops a submission or an approval.
    #[must_use]
    pub fn is_blocking(&self) -> bool {
        !self.passed && self.severity == Severity::Error
    }
}

/// The results that block the transition: failed, with severity `error`.
#[must_use]
pub fn blocking(results: &[CheckResult]) -> Vec<&CheckResult> {
    results.iter().filter(|r| r.is_blocking()).collect()
}

/// Why a set of checks could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckSetError {
    #[error("built-in check `{check}`: {error}")]
    Builtin { check: &'static str, error: CheckDefinitionError },
    #[error("custom check `{key}` (at index {index}): {error}")]
    Definition { index: usize, key: String, error: CheckDefinitionError },
    #[error("two custom checks have the key `{0}`; keys must be unique")]
    DuplicateKey(String),
    #[error("`{0}` is the key of a built-in check; choose another key for the custom check")]
    BuiltinKey(String),
    #[error("cannot read checks from TOML: {0}")]
    Parse(String),
}

/// The checks file: `[[check]]` tables, each a [`CheckDefinition`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksFile {
    #[serde(default)]
    check: Vec<CheckDefinition>,
}

/// Reads a checks file (TOML) and validates every definition in it, as
/// [`CheckSet::new`] would (keys unique, none a built-in's).
///
/// ```toml
/// [[check]]
/// key = "no_card_numbers"
/// name = "No card numbers"
/// severity = "error"
/// applies_to = ["support"]
/// rule = { kind = "regex_must_not_match", pattern = '\b(?:\d[ -]?){13,16}\b' }
/// ```
///
/// Unknown keys are refused. An empty file yields no checks.
pub fn parse_checks_toml(text: &str) -> Result<Vec<CheckDefinition>, CheckSetError> {
    let file: ChecksFile = toml::from_str(text).map_err(|e| CheckSetError::Parse(e.to_string()))?;
    CheckSet::new(BuiltinsConfig::default(), file.check.clone())?;
    Ok(file.check)
}

/// A compiled, ready-to-run set of checks: the built-ins and the custom
/// checks, in that order.
#[derive(Debug)]
pub struct CheckSet {
    checks: Vec<scan::Check>,
}

impl CheckSet {
    /// Compiles the built-ins with their configuration and every custom
    /// definition (enabled or not, so a broken definition is refused when it
    /// is stored, not when it is switched on).
    pub fn new(builtins: BuiltinsConfig, customs: Vec<CheckDefinition>) -> Result<Self, CheckSetError> {
        let mut checks = builtins.compile()?;
        let mut seen = BTreeSet::new();
        for (index, def) in customs.into_iter().enumerate() {
            if BUILTIN_KEYS.contains(&def.key.as_str()) {
                return Err(CheckSetError::BuiltinKey(def.key));
            }
            if !seen.insert(def.key.clone()) {
                return Err(CheckSetError::DuplicateKey(def.key));
            }
            let check = def.compile().map_err(|error| CheckSetError::Definition {
                index,
                key: def.key.clone(),
                error,
            })?;
            if def.enabled {
                checks.push(check);
            }
        }
        Ok(Self { checks })
    }

    /// The keys of the enabled checks, in the order they run.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.checks.iter().map(|c| c.key.as_str())
    }

    /// Runs every enabled check that applies to the subject's prompt type.
    #[must_use]
    pub fn run(&self, subject: &CheckSubject<'_>) -> Vec<CheckResult> {
        self.checks.iter().filter(|c| c.applies_to(subject.prompt_type)).map(|c| c.run(subject)).collect()
    }
}
