//! The built-in checks and their configuration.
//!
//! Every built-in has `enabled` (default `true`), `severity` (default per
//! check) and `applies_to` (prompt type keys; default empty = all types),
//! plus its own parameters. Any field left out takes its default, so `{}`
//! is the default configuration.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::custom::{CheckDefinitionError, parse_applies_to};
use super::scan::{Check, CheckedText, Finding, Kind, PhraseList, describe, estimate_tokens};
use super::{CheckSetError, CheckSubject, Location, Severity};
use crate::classification::SecurityClassification;
use crate::content::TemplateBody;
use crate::render::analyze_body;
use crate::schema::check_variables;

/// The keys of the built-in checks; a custom check may not use one.
pub const BUILTIN_KEYS: [&str; 6] = [
    "description_present",
    "declared_variables",
    "length_limit",
    "forbidden_phrases",
    "classification_tags",
    "content_scan",
];

/// The human name of the built-in check `key`, as its results show it.
#[must_use]
pub fn builtin_name(key: &str) -> Option<&'static str> {
    Some(match key {
        "description_present" => "Description present",
        "declared_variables" => "Declared variables",
        "length_limit" => "Length limit",
        "forbidden_phrases" => "Forbidden phrases",
        "classification_tags" => "Classification matches tags",
        "content_scan" => "Content scan",
        _ => return None,
    })
}

/// The configuration of all built-in checks.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuiltinsConfig {
    pub description_present: DescriptionPresentConfig,
    pub declared_variables: DeclaredVariablesConfig,
    pub length_limit: LengthLimitConfig,
    pub forbidden_phrases: ForbiddenPhrasesConfig,
    pub classification_tags: ClassificationTagsConfig,
    pub content_scan: ContentScanConfig,
}

/// `content_scan`: the template scanner ([`crate::scan`]) finds nothing at
/// or above `min_severity` (injection markers hidden with invisible
/// characters, bidirectional controls, secrets, includes of templates
/// classified higher, …).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContentScanConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub applies_to: Vec<String>,
    /// The least serious scanner finding that fails the check.
    pub min_severity: crate::scan::Severity,
}

impl Default for ContentScanConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Error,
            applies_to: Vec::new(),
            min_severity: crate::scan::Severity::Error,
        }
    }
}

/// `description_present`: the template has a non-blank description.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DescriptionPresentConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub applies_to: Vec<String>,
    /// Fewest characters the trimmed description must have (at least 1).
    pub min_chars: usize,
}

impl Default for DescriptionPresentConfig {
    fn default() -> Self {
        Self { enabled: true, severity: Severity::Warning, applies_to: Vec::new(), min_chars: 1 }
    }
}

/// `declared_variables`: every variable the template uses is declared.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeclaredVariablesConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub applies_to: Vec<String>,
}

impl Default for DeclaredVariablesConfig {
    fn default() -> Self {
        Self { enabled: true, severity: Severity::Error, applies_to: Vec::new() }
    }
}

/// `length_limit`: the text is at most `max_chars` characters and at most
/// `max_tokens` estimated tokens.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LengthLimitConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub applies_to: Vec<String>,
    pub max_chars: usize,
    pub max_tokens: usize,
}

impl Default for LengthLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Warning,
            applies_to: Vec::new(),
            max_chars: 32_000,
            max_tokens: 8_000,
        }
    }
}

/// `forbidden_phrases`: none of `phrases` occurs in the text.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForbiddenPhrasesConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub applies_to: Vec<String>,
    pub phrases: Vec<String>,
}

impl Default for ForbiddenPhrasesConfig {
    fn default() -> Self {
        Self { enabled: true, severity: Severity::Error, applies_to: Vec::new(), phrases: Vec::new() }
    }
}

/// `classification_tags`: the classification is consistent with the tags.
/// Tags compare case-insensitively. A configured `minimums` map replaces the
/// default one.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassificationTagsConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub applies_to: Vec<String>,
    /// Tag → the lowest classification a template with that tag may have.
    pub minimums: BTreeMap<String, SecurityClassification>,
    /// Tags that claim the template is public: only `public` is consistent.
    pub public_tags: Vec<String>,
}

impl Default for ClassificationTagsConfig {
    fn default() -> Self {
        use SecurityClassification::{Confidential, Restricted};
        let minimums = [
            ("pii", Confidential),
            ("personal-data", Confidential),
            ("confidential", Confidential),
            ("secret", Restricted),
            ("restricted", Restricted),
        ];
        Self {
            enabled: true,
            severity: Severity::Warning,
            applies_to: Vec::new(),
            minimums: minimums.into_iter().map(|(t, c)| (t.to_owned(), c)).collect(),
            public_tags: vec!["public".to_owned()],
        }
    }
}

impl BuiltinsConfig {
    /// Validates the configuration and compiles the enabled built-ins.
    pub(super) fn compile(self) -> Result<Vec<Check>, CheckSetError> {
        let err = |check: &'static str| move |error| CheckSetError::Builtin { check, error };
        let mut checks = Vec::new();
        let mut add = |key: &'static str, enabled, severity, applies_to: &[String], kind| {
            let applies_to = parse_applies_to(applies_to).map_err(err(key))?;
            if enabled {
                let name = builtin_name(key).unwrap_or(key).to_owned();
                checks.push(Check { key: key.to_owned(), name, severity, applies_to, kind });
            }
            Ok::<_, CheckSetError>(())
        };

        let c = self.description_present;
        if c.min_chars == 0 {
            return Err(err("description_present")(at_least_one("min_chars")));
        }
        let kind = Kind::DescriptionPresent { min_chars: c.min_chars };
        add("description_present", c.enabled, c.severity, &c.applies_to, kind)?;

        let c = self.declared_variables;
        let kind = Kind::DeclaredVariables;
        add("declared_variables", c.enabled, c.severity, &c.applies_to, kind)?;

        let c = self.length_limit;
        for (field, value) in [("max_chars", c.max_chars), ("max_tokens", c.max_tokens)] {
            if value == 0 {
                return Err(err("length_limit")(at_least_one(field)));
            }
        }
        let kind = Kind::LengthLimit { max_chars: c.max_chars, max_tokens: c.max_tokens };
        add("length_limit", c.enabled, c.severity, &c.applies_to, kind)?;

        let c = self.forbidden_phrases;
        let kind =
            Kind::Phrases(PhraseList::compile(&c.phrases, "phrases").map_err(err("forbidden_phrases"))?);
        add("forbidden_phrases", c.enabled, c.severity, &c.applies_to, kind)?;

        let c = self.classification_tags;
        let kind = classification_kind(c.minimums, &c.public_tags).map_err(err("classification_tags"))?;
        add("classification_tags", c.enabled, c.severity, &c.applies_to, kind)?;

        let c = self.content_scan;
        let kind = Kind::ContentScan { min_severity: c.min_severity };
        add("content_scan", c.enabled, c.severity, &c.applies_to, kind)?;

        Ok(checks)
    }
}

fn at_least_one(field: &str) -> CheckDefinitionError {
    CheckDefinitionError::new(field, "must be at least 1")
}

fn classification_kind(
    minimums: BTreeMap<String, SecurityClassification>,
    public_tags: &[String],
) -> Result<Kind, CheckDefinitionError> {
    let mut lowered: BTreeMap<String, SecurityClassification> = BTreeMap::new();
    for (tag, min) in minimums {
        if tag.trim().is_empty() {
            return Err(CheckDefinitionError::new("minimums", "has a blank tag"));
        }
        let entry = lowered.entry(tag.to_lowercase()).or_insert(min);
        *entry = (*entry).max(min);
    }
    let mut public = Vec::new();
    for (i, tag) in public_tags.iter().enumerate() {
        if tag.trim().is_empty() {
            return Err(CheckDefinitionError::new(format!("public_tags[{i}]"), "is blank"));
        }
        public.push(tag.to_lowercase());
    }
    Ok(Kind::ClassificationTags { minimums: lowered, public_tags: public })
}

pub(super) fn description_present(subject: &CheckSubject<'_>, min_chars: usize) -> Finding {
    let description = subject.description.map(str::trim).unwrap_or_default();
    let chars = description.chars().count();
    if chars == 0 {
        return Finding::fail("the template has no description", None);
    }
    if chars < min_chars {
        return Finding::fail(
            format!("the description is {chars} characters long; at least {min_chars} are expected"),
            None,
        );
    }
    Finding::pass("the template has a description")
}

pub(super) fn declared_variables(subject: &CheckSubject<'_>) -> Finding {
    let body = &subject.content.body;
    let (noun, verb) = match body {
        TemplateBody::Text(_) => ("the text", "uses"),
        TemplateBody::Chat(_) => ("the messages", "use"),
    };
    let analysis = match analyze_body(body) {
        Ok(a) => a,
        Err(e) => return Finding::fail(format!("the template does not compile: {e}"), None),
    };
    let report = check_variables(&analysis.variables, &subject.content.parameter_schema);
    if report.undeclared.is_empty() {
        return Finding::pass(format!("every variable {noun} {verb} is declared in the parameter schema"));
    }
    let text = CheckedText::body(body);
    let location = report
        .undeclared
        .iter()
        .filter_map(|v| first_use(text.as_str(), v))
        .min()
        .map(|at| text.location(at));
    let names: Vec<String> = report.undeclared.iter().map(|v| format!("`{v}`")).collect();
    let list = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    };
    let mut message = format!("{noun} {verb} {list} which the parameter schema does not declare");
    if let Some(loc) = &location {
        message.push_str(&format!(" (first use {})", describe(loc)));
    }
    Finding::fail(message, location)
}

/// The byte offset of the first use of variable `name` inside a `{{ … }}` or
/// `{% … %}` tag: the name as a whole identifier, not after a `.` (an
/// attribute) and not inside a string literal's quotes. Best effort: it only
/// places the location, the analysis decides what is used.
fn first_use(text: &str, name: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut rest = 0;
    while let Some(open) = text[rest..].find('{').map(|i| rest + i) {
        let close_tag = match text[open..].get(1..2) {
            Some("{") => "}}",
            Some("%") => "%}",
            _ => {
                rest = open + 1;
                continue;
            }
        };
        let inner_start = open + 2;
        let inner_end = text[inner_start..].find(close_tag).map_or(text.len(), |i| inner_start + i);
        let inner = &text[inner_start..inner_end];
        let mut quote: Option<char> = None;
        let mut prev: Option<char> = None;
        for (i, c) in inner.char_indices() {
            match quote {
                Some(q) if c == q && prev != Some('\\') => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None => {
                    let boundary_before = prev.is_none_or(|p| !is_ident(p) && p != '.');
                    let after = inner[i..].strip_prefix(name).map(|r| r.chars().next());
                    if boundary_before && after.is_some_and(|a| a.is_none_or(|a| !is_ident(a))) {
                        return Some(inner_start + i);
                    }
                }
            }
            prev = Some(c);
        }
        rest = inner_end;
    }
    None
}

pub(super) fn length_limit(subject: &CheckSubject<'_>, max_chars: usize, max_tokens: usize) -> Finding {
    let chars = CheckedText::body(&subject.content.body).chars();
    let tokens = estimate_tokens(chars);
    let mut over = Vec::new();
    if chars > max_chars {
        over.push(format!("{chars} characters, over the limit of {max_chars}"));
    }
    if tokens > max_tokens {
        over.push(format!("about {tokens} tokens (characters / 4), over the limit of {max_tokens}"));
    }
    if over.is_empty() {
        Finding::pass(format!(
            "the text is {chars} characters, about {tokens} tokens; the limits are {max_chars} characters and {max_tokens} tokens"
        ))
    } else {
        Finding::fail(format!("the text is {}", over.join("; ")), None)
    }
}

pub(super) fn classification_tags(
    subject: &CheckSubject<'_>,
    minimums: &BTreeMap<String, SecurityClassification>,
    public_tags: &[String],
) -> Finding {
    let class = subject.classification;
    let mut problems = Vec::new();
    let tags: BTreeSet<String> = subject.tags.iter().map(|t| t.as_str().to_lowercase()).collect();
    for tag in &tags {
        if let Some(min) = minimums.get(tag)
            && class < *min
        {
            problems.push(format!("tag `{tag}` needs at least {min}, but the template is {class}"));
        }
        if public_tags.contains(tag) && class > SecurityClassification::Public {
            problems.push(format!("tag `{tag}` marks the template as public, but it is classified {class}"));
        }
    }
    if problems.is_empty() {
        Finding::pass(format!("the classification ({class}) is consistent with the tags"))
    } else {
        Finding::fail(problems.join("; "), None)
    }
}

pub(super) fn content_scan(subject: &CheckSubject<'_>, min_severity: crate::scan::Severity) -> Finding {
    // Includes are not looked up here (core does no I/O); saving a version
    // reports includes of higher classification with their lookups.
    let cx = crate::scan::ScanContext { classification: subject.classification, includes: &[] };
    let found: Vec<_> = crate::scan::scan_content(subject.content, &cx)
        .into_iter()
        .filter(|f| f.severity >= min_severity && f.rule != crate::scan::Rule::Truncated)
        .collect();
    let Some(first) = found.first() else {
        return Finding::pass(format!("the scanner found nothing at or above {}", min_severity.as_str()));
    };
    let location = Location {
        line: u32::try_from(first.line).unwrap_or(u32::MAX),
        column: u32::try_from(first.column).unwrap_or(u32::MAX),
        message_index: first.message_index.map(|i| i - 1),
    };
    let place = match first.message_index {
        Some(i) => format!("message {i}, line {}, column {}", first.line, first.column),
        None => format!("line {}, column {}", first.line, first.column),
    };
    Finding::fail(
        format!(
            "the scanner found {} problem(s) at or above {}; the first: {} ({}) at {place}",
            found.len(),
            min_severity.as_str(),
            first.message,
            first.rule.as_str()
        ),
        Some(location),
    )
}
