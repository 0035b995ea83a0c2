//! The plumbing shared by the checks: a compiled check, the text a check
//! examines with a way back from a byte offset to a [`Location`], and
//! forbidden-phrase matching.

use std::borrow::Cow;
use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};

use super::custom::{CheckDefinitionError, Expect, RegexTarget};
use super::{CheckResult, CheckSubject, Location, Severity, builtin, custom};
use crate::classification::SecurityClassification;
use crate::content::{ChatItem, TemplateBody};
use crate::names::PromptTypeKey;

/// Largest compiled size of a configured regular expression (phrases and
/// patterns): enough for any sensible rule, small enough that a hostile
/// pattern cannot eat the server's memory.
pub(super) const REGEX_SIZE_LIMIT: usize = 1024 * 1024;

/// The estimated number of tokens of a text of `chars` characters:
/// `ceil(chars / 4)`. See the [module documentation](super#token-estimate).
#[must_use]
pub const fn estimate_tokens(chars: usize) -> usize {
    chars.div_ceil(4)
}

/// A check ready to run.
#[derive(Debug)]
pub(super) struct Check {
    pub key: String,
    pub name: String,
    pub severity: Severity,
    /// Prompt types the check applies to; empty means all.
    pub applies_to: Vec<PromptTypeKey>,
    pub kind: Kind,
}

/// What a check does, compiled.
#[derive(Debug)]
pub(super) enum Kind {
    DescriptionPresent { min_chars: usize },
    DeclaredVariables,
    LengthLimit { max_chars: usize, max_tokens: usize },
    ClassificationTags { minimums: BTreeMap<String, SecurityClassification>, public_tags: Vec<String> },
    Phrases(PhraseList),
    Regex { regex: Regex, target: RegexTarget, expect: Expect },
    MaxLength { chars: usize },
    MaxTokens { tokens: usize },
    Schema(Box<jsonschema::Validator>),
    ContentScan { min_severity: crate::scan::Severity },
}

/// What one check found.
#[derive(Debug)]
pub(super) struct Finding {
    pub passed: bool,
    pub message: String,
    pub location: Option<Location>,
}

impl Finding {
    pub fn pass(message: impl Into<String>) -> Self {
        Self { passed: true, message: message.into(), location: None }
    }

    pub fn fail(message: impl Into<String>, location: Option<Location>) -> Self {
        Self { passed: false, message: message.into(), location }
    }
}

impl Check {
    pub fn applies_to(&self, prompt_type: &PromptTypeKey) -> bool {
        self.applies_to.is_empty() || self.applies_to.contains(prompt_type)
    }

    pub fn run(&self, subject: &CheckSubject<'_>) -> CheckResult {
        let finding = match &self.kind {
            Kind::DescriptionPresent { min_chars } => builtin::description_present(subject, *min_chars),
            Kind::DeclaredVariables => builtin::declared_variables(subject),
            Kind::LengthLimit { max_chars, max_tokens } => {
                builtin::length_limit(subject, *max_chars, *max_tokens)
            }
            Kind::ClassificationTags { minimums, public_tags } => {
                builtin::classification_tags(subject, minimums, public_tags)
            }
            Kind::Phrases(list) => list.evaluate(&CheckedText::body(&subject.content.body)),
            Kind::Regex { regex, target, expect } => custom::regex_rule(subject, regex, *target, *expect),
            Kind::MaxLength { chars } => custom::max_length(subject, *chars),
            Kind::MaxTokens { tokens } => custom::max_tokens(subject, *tokens),
            Kind::Schema(validator) => custom::schema_rule(subject, validator),
            Kind::ContentScan { min_severity } => builtin::content_scan(subject, *min_severity),
        };
        CheckResult {
            check: self.key.clone(),
            name: self.name.clone(),
            severity: self.severity,
            passed: finding.passed,
            message: finding.message,
            location: finding.location,
        }
    }
}

/// The string a check examines, and where each chat message starts in it.
#[derive(Debug)]
pub(super) struct CheckedText<'a> {
    text: Cow<'a, str>,
    /// `(byte offset where the part starts, chat item index)`, sorted.
    parts: Vec<(usize, Option<usize>)>,
}

impl<'a> CheckedText<'a> {
    /// A template's text; a chat template's messages joined by a blank line.
    pub fn body(body: &'a TemplateBody) -> Self {
        match body {
            TemplateBody::Text(t) => Self::plain(t),
            TemplateBody::Chat(items) => {
                let mut text = String::new();
                let mut parts = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    if let ChatItem::Message(m) = item {
                        if !parts.is_empty() {
                            text.push_str("\n\n");
                        }
                        parts.push((text.len(), Some(index)));
                        text.push_str(&m.content);
                    }
                }
                if parts.is_empty() {
                    parts.push((0, None));
                }
                Self { text: Cow::Owned(text), parts }
            }
        }
    }

    /// A single string (a name, a description, a config).
    pub fn plain(text: impl Into<Cow<'a, str>>) -> Self {
        Self { text: text.into(), parts: vec![(0, None)] }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn chars(&self) -> usize {
        self.text.chars().count()
    }

    /// The location of the character at byte `offset`.
    pub fn location(&self, offset: usize) -> Location {
        let part = self.parts.partition_point(|(start, _)| *start <= offset).saturating_sub(1);
        let (start, message_index) = self.parts.get(part).copied().unwrap_or((0, None));
        let before = self.text.get(start..offset).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            message_index,
        }
    }
}

/// `"at line 3, column 14"`, or `"in message 2 at line 1, column 5"` for a
/// chat template.
pub(super) fn describe(location: &Location) -> String {
    let at = format!("at line {}, column {}", location.line, location.column);
    match location.message_index {
        Some(i) => format!("in message {} {at}", i + 1),
        None => at,
    }
}

/// `" (and 2 more matches)"`, or nothing when there is no other match.
pub(super) fn more_matches(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " (and 1 more match)".to_owned(),
        n => format!(" (and {n} more matches)"),
    }
}

/// Compiles a configured regular expression with the size limit.
pub(super) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("the pattern is too large once compiled (the limit is {limit} bytes)")
        }
        other => other.to_string(),
    })
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A list of forbidden phrases, each compiled to a case-insensitive,
/// whole-phrase regular expression.
#[derive(Debug)]
pub(super) struct PhraseList {
    phrases: Vec<(String, Regex)>,
}

impl PhraseList {
    /// `field` names the list in errors (`phrases`, `rule.phrases`).
    pub fn compile(phrases: &[String], field: &str) -> Result<Self, CheckDefinitionError> {
        let mut compiled = Vec::with_capacity(phrases.len());
        for (i, phrase) in phrases.iter().enumerate() {
            let field = format!("{field}[{i}]");
            let words: Vec<&str> = phrase.split_whitespace().collect();
            let (Some(first), Some(last)) = (words.first(), words.last()) else {
                return Err(CheckDefinitionError::new(field, "is blank; a phrase needs at least one word"));
            };
            let start = if first.starts_with(is_word_char) { r"\b" } else { "" };
            let end = if last.ends_with(is_word_char) { r"\b" } else { "" };
            let body: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
            let pattern = format!(r"(?i){start}{}{end}", body.join(r"\s+"));
            let regex = compile_regex(&pattern).map_err(|e| CheckDefinitionError::new(field, e))?;
            compiled.push((phrase.trim().to_owned(), regex));
        }
        Ok(Self { phrases: compiled })
    }

    /// Fails on the earliest occurrence of any phrase.
    pub fn evaluate(&self, text: &CheckedText<'_>) -> Finding {
        let haystack = text.as_str();
        let mut first: Option<(usize, &str)> = None;
        let mut count = 0usize;
        for (phrase, regex) in &self.phrases {
            for m in regex.find_iter(haystack) {
                count += 1;
                if first.is_none_or(|(at, _)| m.start() < at) {
                    first = Some((m.start(), phrase));
                }
            }
        }
        match first {
            None if self.phrases.is_empty() => Finding::pass("no forbidden phrases are configured"),
            None => Finding::pass(format!(
                "the text contains none of the {} forbidden phrase(s)",
                self.phrases.len()
            )),
            Some((offset, phrase)) => {
                let location = text.location(offset);
                Finding::fail(
                    format!(
                        "forbidden phrase \"{phrase}\" {}{}",
                        describe(&location),
                        more_matches(count - 1)
                    ),
                    Some(location),
                )
            }
        }
    }
}
