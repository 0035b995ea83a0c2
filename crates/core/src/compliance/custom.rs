//! Declarative custom checks: an administrator describes a rule in JSON,
//! promptvault validates and compiles it once, then runs it like a built-in.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::scan::{
    Check, CheckedText, Finding, Kind, PhraseList, compile_regex, describe, estimate_tokens, more_matches,
};
use super::{CheckSubject, Severity};
use crate::hash::write_canonical;
use crate::names::PromptTypeKey;
use crate::schema::{DIALECT, MAX_SCHEMA_BYTES, build_validator};

/// Longest check name accepted.
const NAME_MAX: usize = 200;
/// Longest check description accepted.
const DESCRIPTION_MAX: usize = 2_000;
/// Most schema violations quoted in one result message.
const VIOLATIONS_SHOWN: usize = 5;

/// A custom check as an administrator writes and stores it.
///
/// ```json
/// {
///   "key": "no_card_numbers",
///   "name": "No card numbers",
///   "description": "Templates must not embed payment card numbers.",
///   "severity": "error",
///   "applies_to": ["support", "sales"],
///   "enabled": true,
///   "rule": {"kind": "regex_must_not_match", "pattern": "\\b(?:\\d[ -]?){13,16}\\b", "target": "text"}
/// }
/// ```
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDefinition {
    /// Stable key: 1-64 characters, `a-z`, `0-9`, `_`, starting with a letter.
    pub key: String,
    /// Human name shown with results.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub severity: Severity,
    /// Prompt type keys the check runs on; empty means every type.
    #[serde(default)]
    pub applies_to: Vec<String>,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    pub rule: Rule,
}

fn default_enabled() -> bool {
    true
}

/// What a custom check verifies. Serialized with a `kind` tag.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// The target must contain a match of `pattern` (Rust `regex` syntax).
    RegexMustMatch {
        pattern: String,
        #[serde(default)]
        target: RegexTarget,
    },
    /// The target must not contain a match of `pattern`; the first match's
    /// location is reported.
    RegexMustNotMatch {
        pattern: String,
        #[serde(default)]
        target: RegexTarget,
    },
    /// The text has at most `chars` characters.
    MaxLength { chars: usize },
    /// The text has at most `tokens` estimated tokens (`ceil(chars / 4)`).
    MaxTokens { tokens: usize },
    /// None of `phrases` occurs in the text (case-insensitive, whole phrase).
    ForbiddenPhrases { phrases: Vec<String> },
    /// The version's parameter schema document itself must satisfy this
    /// JSON Schema 2020-12 (e.g. every property has a description).
    SchemaRule { schema: Value },
}

/// What a regular-expression rule looks at.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegexTarget {
    /// The text (chat messages joined by a blank line).
    #[default]
    Text,
    /// The template's description (empty when it has none).
    Description,
    /// The template's name.
    Name,
    /// The version's config as canonical JSON (sorted keys, no whitespace).
    Config,
}

impl RegexTarget {
    fn noun(self) -> &'static str {
        match self {
            Self::Text => "the text",
            Self::Description => "the description",
            Self::Name => "the name",
            Self::Config => "the config",
        }
    }
}

/// Whether a regex rule wants a match or forbids one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Expect {
    Match,
    NoMatch,
}

/// A custom check definition that cannot be used, and which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("`{field}` {message}")]
pub struct CheckDefinitionError {
    /// The offending field: `key`, `applies_to[1]`, `rule.pattern`,
    /// `rule.phrases[0]`, `rule.schema`, …
    pub field: String,
    pub message: String,
}

impl CheckDefinitionError {
    pub(super) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl CheckDefinition {
    /// Checks every field and compiles the rule (regular expressions with a
    /// 1 MiB size limit, the JSON Schema against the 2020-12 meta-schema).
    /// Uniqueness of keys is checked by [`CheckSet::new`](super::CheckSet::new).
    pub fn validate(&self) -> Result<(), CheckDefinitionError> {
        self.compile().map(drop)
    }

    pub(super) fn compile(&self) -> Result<Check, CheckDefinitionError> {
        check_key(&self.key)?;
        let name = self.name.trim();
        if name.is_empty() {
            return Err(CheckDefinitionError::new("name", "must not be blank"));
        }
        if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
            return Err(CheckDefinitionError::new(
                "name",
                format!("must be at most {NAME_MAX} characters, without control characters"),
            ));
        }
        if self.description.chars().count() > DESCRIPTION_MAX {
            return Err(CheckDefinitionError::new(
                "description",
                format!("must be at most {DESCRIPTION_MAX} characters"),
            ));
        }
        let applies_to = parse_applies_to(&self.applies_to)?;
        let kind = self.rule.compile()?;
        Ok(Check { key: self.key.clone(), name: name.to_owned(), severity: self.severity, applies_to, kind })
    }
}

fn check_key(key: &str) -> Result<(), CheckDefinitionError> {
    let mut chars = key.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && key.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(CheckDefinitionError::new(
            "key",
            "must be 1-64 characters: a-z, 0-9 and '_', starting with a letter",
        ))
    }
}

/// Parses a list of prompt type keys; errors name the item (`applies_to[2]`).
pub(super) fn parse_applies_to(keys: &[String]) -> Result<Vec<PromptTypeKey>, CheckDefinitionError> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            PromptTypeKey::parse(k)
                .map_err(|e| CheckDefinitionError::new(format!("applies_to[{i}]"), e.to_string()))
        })
        .collect()
}

impl Rule {
    fn compile(&self) -> Result<Kind, CheckDefinitionError> {
        let at_least_one = |field: &str| CheckDefinitionError::new(field, "must be at least 1");
        Ok(match self {
            Self::RegexMustMatch { pattern, target } => regex_kind(pattern, *target, Expect::Match)?,
            Self::RegexMustNotMatch { pattern, target } => regex_kind(pattern, *target, Expect::NoMatch)?,
            Self::MaxLength { chars: 0 } => return Err(at_least_one("rule.chars")),
            Self::MaxLength { chars } => Kind::MaxLength { chars: *chars },
            Self::MaxTokens { tokens: 0 } => return Err(at_least_one("rule.tokens")),
            Self::MaxTokens { tokens } => Kind::MaxTokens { tokens: *tokens },
            Self::ForbiddenPhrases { phrases } if phrases.is_empty() => {
                return Err(CheckDefinitionError::new("rule.phrases", "must list at least one phrase"));
            }
            Self::ForbiddenPhrases { phrases } => {
                Kind::Phrases(PhraseList::compile(phrases, "rule.phrases")?)
            }
            Self::SchemaRule { schema } => Kind::Schema(Box::new(compile_schema(schema)?)),
        })
    }
}

fn regex_kind(pattern: &str, target: RegexTarget, expect: Expect) -> Result<Kind, CheckDefinitionError> {
    if pattern.is_empty() {
        return Err(CheckDefinitionError::new("rule.pattern", "must not be empty"));
    }
    let regex = compile_regex(pattern).map_err(|e| {
        CheckDefinitionError::new("rule.pattern", format!("is not a valid regular expression: {e}"))
    })?;
    Ok(Kind::Regex { regex, target, expect })
}

fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, CheckDefinitionError> {
    let err = |message: String| CheckDefinitionError::new("rule.schema", message);
    if !schema.is_object() && !schema.is_boolean() {
        return Err(err("must be a JSON Schema: an object or a boolean".to_owned()));
    }
    let size = serde_json::to_vec(schema).map_or(usize::MAX, |v| v.len());
    if size > MAX_SCHEMA_BYTES {
        return Err(err(format!("is {size} bytes; the limit is {MAX_SCHEMA_BYTES}")));
    }
    if let Some(dialect) = schema.get("$schema")
        && dialect.as_str() != Some(DIALECT)
    {
        return Err(err(format!("must use JSON Schema 2020-12 (\"$schema\": \"{DIALECT}\"), not {dialect}")));
    }
    let invalid = |e: jsonschema::ValidationError<'_>| {
        err(format!(
            "is not valid JSON Schema 2020-12 at {}: {}",
            pointer(e.instance_path().as_str()),
            e.masked()
        ))
    };
    jsonschema::draft202012::meta::validate(schema).map_err(invalid)?;
    build_validator(schema).map_err(invalid)
}

fn pointer(p: &str) -> &str {
    if p.is_empty() { "/" } else { p }
}

/// Reads a rule's target out of the subject.
fn target_text<'a>(subject: &CheckSubject<'a>, target: RegexTarget) -> CheckedText<'a> {
    match target {
        RegexTarget::Text => CheckedText::body(&subject.content.body),
        RegexTarget::Description => CheckedText::plain(subject.description.unwrap_or_default()),
        RegexTarget::Name => CheckedText::plain(subject.name.as_str()),
        RegexTarget::Config => {
            let mut json = String::new();
            write_canonical(&subject.content.config.to_value(), &mut json);
            CheckedText::plain(json)
        }
    }
}

pub(super) fn regex_rule(
    subject: &CheckSubject<'_>,
    regex: &regex::Regex,
    target: RegexTarget,
    expect: Expect,
) -> Finding {
    let text = target_text(subject, target);
    let noun = target.noun();
    let pattern = regex.as_str();
    let mut matches = regex.find_iter(text.as_str());
    match (expect, matches.next()) {
        (Expect::Match, Some(_)) => Finding::pass(format!("{noun} matches the pattern `{pattern}`")),
        (Expect::Match, None) => {
            Finding::fail(format!("{noun} does not match the required pattern `{pattern}`"), None)
        }
        (Expect::NoMatch, None) => Finding::pass(format!("{noun} does not match the pattern `{pattern}`")),
        (Expect::NoMatch, Some(first)) => {
            let location = text.location(first.start());
            let message = format!(
                "{noun} matches the forbidden pattern `{pattern}` {}{}",
                describe(&location),
                more_matches(matches.count())
            );
            Finding::fail(message, Some(location))
        }
    }
}

pub(super) fn max_length(subject: &CheckSubject<'_>, limit: usize) -> Finding {
    let chars = CheckedText::body(&subject.content.body).chars();
    if chars > limit {
        Finding::fail(format!("the text is {chars} characters; the limit is {limit}"), None)
    } else {
        Finding::pass(format!("the text is {chars} characters, within the limit of {limit}"))
    }
}

pub(super) fn max_tokens(subject: &CheckSubject<'_>, limit: usize) -> Finding {
    let tokens = estimate_tokens(CheckedText::body(&subject.content.body).chars());
    if tokens > limit {
        Finding::fail(
            format!("the text is about {tokens} tokens (characters / 4); the limit is {limit}"),
            None,
        )
    } else {
        Finding::pass(format!("the text is about {tokens} tokens, within the limit of {limit}"))
    }
}

pub(super) fn schema_rule(subject: &CheckSubject<'_>, validator: &jsonschema::Validator) -> Finding {
    let document = subject.content.parameter_schema.as_value();
    let violations: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("at {}: {}", pointer(e.instance_path().as_str()), shorten(&e.to_string())))
        .collect();
    if violations.is_empty() {
        return Finding::pass("the parameter schema satisfies the rule");
    }
    let shown = violations.len().min(VIOLATIONS_SHOWN);
    let message = format!(
        "the parameter schema breaks the rule {}{}",
        violations[..shown].join("; "),
        more_violations(violations.len() - shown)
    );
    Finding::fail(message, None)
}

fn more_violations(others: usize) -> String {
    match others {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    }
}

/// Keeps a violation readable: the validator quotes whole sub-documents.
fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}
