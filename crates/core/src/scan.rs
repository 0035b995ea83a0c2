//! Template scanning: static analysis of a version's content before it is
//! saved, and of parameter values before they are rendered.
//!
//! Rules (each finding names its [`Rule`], a [`Severity`] and where it is):
//!
//! - prompt-injection markers ("ignore previous instructions" and its kin,
//!   "disregard the above", "you are now DAN", "system prompt:" …);
//! - role-switch tokens of chat formats (`<|im_start|>`, `[INST]`, `<<SYS>>`,
//!   `### System:`, a blank line then `Human:` …);
//! - invisible and bidirectional-control characters (zero-width characters,
//!   word joiner, a BOM inside the text, soft hyphen, U+202A–U+202E,
//!   U+2066–U+2069, tag characters);
//! - declared parameters interpolated into a system message without the
//!   schema annotation `"x-promptvault-system": true` on the parameter;
//! - includes of templates classified higher than the including one;
//! - secrets and personal data ([`crate::sensitive::scan`]), reported by kind
//!   and place, never by value.
//!
//! Markers are matched on a normalized copy of the text: invisible and
//! format characters are removed (tag characters are read as the ASCII they
//! spell), letters are lower-cased, full-width forms
//! and a few Cyrillic and Greek look-alikes are folded to ASCII, and any run
//! of whitespace matches. A marker that is only visible after that folding is
//! reported as hidden (an error), along with the characters that hid it.
//!
//! Everything here runs in time linear in the input: the regex crate never
//! backtracks, and the normalization is one pass.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use crate::classification::SecurityClassification;
use crate::content::{ChatItem, VersionContent};
use crate::render::analyze_body;
use crate::sensitive::{self, SensitiveKind};
use crate::{ParameterSchema, TemplateBody};

/// The schema annotation that says a parameter may be interpolated into a
/// system message on purpose.
pub const SYSTEM_PARAMETER_ANNOTATION: &str = "x-promptvault-system";

/// At most this many findings are reported for one text; a last `truncated`
/// finding says more were left out.
pub const MAX_FINDINGS: usize = 200;

/// How serious a finding is: the compliance checks' severity, which a
/// `content_scan` check compares its findings with.
pub use crate::compliance::Severity;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A phrase that tries to override the model's instructions.
    InjectionMarker,
    /// An injection marker written with invisible characters, odd case or
    /// look-alike letters so that a reader does not see it.
    HiddenInjectionMarker,
    /// A token that switches the speaker in a chat format.
    RoleToken,
    /// A zero-width or other invisible character.
    InvisibleCharacter,
    /// A bidirectional-control character (the "Trojan Source" trick).
    BidiControl,
    /// A declared parameter used in a system message without the marker.
    ParameterInSystemMessage,
    /// An include of a template classified higher than this one.
    IncludeHigherClassification,
    /// A secret or personal data ([`crate::sensitive`]).
    SensitiveData,
    /// More findings than [`MAX_FINDINGS`]; the rest were left out.
    Truncated,
}

impl Rule {
    pub const ALL: [Self; 9] = [
        Self::InjectionMarker,
        Self::HiddenInjectionMarker,
        Self::RoleToken,
        Self::InvisibleCharacter,
        Self::BidiControl,
        Self::ParameterInSystemMessage,
        Self::IncludeHigherClassification,
        Self::SensitiveData,
        Self::Truncated,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InjectionMarker => "injection_marker",
            Self::HiddenInjectionMarker => "hidden_injection_marker",
            Self::RoleToken => "role_token",
            Self::InvisibleCharacter => "invisible_character",
            Self::BidiControl => "bidi_control",
            Self::ParameterInSystemMessage => "parameter_in_system_message",
            Self::IncludeHigherClassification => "include_higher_classification",
            Self::SensitiveData => "sensitive_data",
            Self::Truncated => "truncated",
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown scan rule {s:?}"))
    }
}

/// One finding. Messages never quote secret values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanFinding {
    pub rule: Rule,
    pub severity: Severity,
    pub message: String,
    /// 1-based index of the chat item, for chat templates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_index: Option<usize>,
    /// 1-based line and column (in characters) in the text or message.
    pub line: usize,
    pub column: usize,
    /// For [`Rule::SensitiveData`]: what kind of data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<SensitiveKind>,
}

/// What the scanner needs to know about a version besides its content.
#[derive(Debug, Clone, Copy)]
pub struct ScanContext<'a> {
    pub classification: SecurityClassification,
    /// The templates this version includes (by name) and their
    /// classifications, as looked up by the caller.
    pub includes: &'a [(String, SecurityClassification)],
}

/// Scans a version's content: every rule, every message.
#[must_use]
pub fn scan_content(content: &VersionContent, cx: &ScanContext<'_>) -> Vec<ScanFinding> {
    let mut out = Vec::new();
    includes(&content.body, cx, &mut out);
    match &content.body {
        TemplateBody::Text(t) => scan_template_text(t, None, &mut out),
        TemplateBody::Chat(items) => {
            for (i, item) in items.iter().enumerate() {
                if let ChatItem::Message(m) = item {
                    scan_template_text(&m.content, Some(i + 1), &mut out);
                    if is_system_role(m.role.as_str()) {
                        system_parameters(&m.content, &content.parameter_schema, i + 1, &mut out);
                    }
                }
            }
        }
    }
    truncate(out)
}

/// Scans a value passed to a render (a parameter value) for injection
/// markers, role tokens and invisible characters. Sensitive data in values
/// is handled by the `x-sensitive` policy, not here.
#[must_use]
pub fn scan_value(text: &str) -> Vec<ScanFinding> {
    let mut out = Vec::new();
    markers(text, None, &mut out);
    invisible(text, None, &mut out);
    truncate(out)
}

/// The text with every invisible and bidirectional-control character removed.
#[must_use]
pub fn strip_invisible(text: &str) -> String {
    text.chars().filter(|c| invisible_class(*c).is_none()).collect()
}

fn scan_template_text(text: &str, message_index: Option<usize>, out: &mut Vec<ScanFinding>) {
    markers(text, message_index, out);
    invisible(text, message_index, out);
    for f in sensitive::scan(text) {
        let severity = if f.kind.is_secret() { Severity::Error } else { Severity::Warning };
        out.push(ScanFinding {
            rule: Rule::SensitiveData,
            severity,
            message: format!("{} ({}) in the template", describe_kind(f.kind), f.detail),
            message_index,
            line: f.line,
            column: f.column,
            kind: Some(f.kind),
        });
    }
}

fn describe_kind(kind: SensitiveKind) -> &'static str {
    match kind {
        SensitiveKind::PrivateKey => "a private key",
        SensitiveKind::Credential => "a credential",
        SensitiveKind::Jwt => "a JSON web token",
        SensitiveKind::PaymentCard => "a payment card number",
        SensitiveKind::Iban => "an IBAN",
        SensitiveKind::NationalId => "a national identifier",
        SensitiveKind::Email => "an e-mail address",
        SensitiveKind::Phone => "a phone number",
        SensitiveKind::IpAddress => "an IP address",
        SensitiveKind::HighEntropy => "a high-entropy string (possibly a secret)",
    }
}

fn truncate(mut out: Vec<ScanFinding>) -> Vec<ScanFinding> {
    out.sort_by_key(|f| (f.message_index, f.line, f.column, f.rule));
    if out.len() > MAX_FINDINGS {
        let left = out.len() - MAX_FINDINGS;
        out.truncate(MAX_FINDINGS);
        out.push(ScanFinding {
            rule: Rule::Truncated,
            severity: Severity::Info,
            message: format!("{left} more finding(s) left out"),
            message_index: None,
            line: 1,
            column: 1,
            kind: None,
        });
    }
    out
}

// ---------------------------------------------------------------------------
// Normalization

/// Which kind of invisible character `c` is, if any.
fn invisible_class(c: char) -> Option<Rule> {
    match c {
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' => {
            Some(Rule::BidiControl)
        }
        '\u{200B}'..='\u{200D}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}'
        | '\u{00AD}'
        | '\u{180E}'
        | '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{FFA0}'
        | '\u{E0000}'..='\u{E007F}' => Some(Rule::InvisibleCharacter),
        _ => None,
    }
}

/// Folds a visible character to what it looks like in lower-case ASCII, when
/// it is a full-width form or a common Cyrillic or Greek look-alike.
fn fold_lookalike(c: char) -> Option<char> {
    let folded = match c {
        // Full-width ASCII.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0)?,
        // Cyrillic.
        'а' | 'А' => 'a',
        'в' | 'В' => 'b',
        'е' | 'Е' | 'ё' | 'Ё' => 'e',
        'к' | 'К' => 'k',
        'м' | 'М' => 'm',
        'н' | 'Н' => 'h',
        'о' | 'О' => 'o',
        'р' | 'Р' => 'p',
        'с' | 'С' => 'c',
        'т' | 'Т' => 't',
        'у' | 'У' => 'y',
        'х' | 'Х' => 'x',
        'і' | 'І' => 'i',
        'ј' | 'Ј' => 'j',
        'ѕ' | 'Ѕ' => 's',
        'ԁ' => 'd',
        'ɡ' => 'g',
        // Greek.
        'α' | 'Α' => 'a',
        'ε' | 'Ε' => 'e',
        'ι' | 'Ι' => 'i',
        'κ' | 'Κ' => 'k',
        'ν' => 'v',
        'ο' | 'Ο' => 'o',
        'ρ' | 'Ρ' => 'p',
        'τ' | 'Τ' => 't',
        'υ' | 'Υ' => 'u',
        'χ' | 'Χ' => 'x',
        'Β' => 'b',
        'Η' => 'h',
        'Μ' => 'm',
        'Ν' => 'n',
        'Ζ' => 'z',
        _ => return None,
    };
    Some(folded.to_ascii_lowercase())
}

/// A normalized copy of a text and, for each of its bytes, the byte range of
/// the original character it came from.
struct Normalized {
    text: String,
    /// (original start, original end, whether the character was folded).
    origin: Vec<(usize, usize, bool)>,
    /// For each original byte offset where an invisible character starts.
    hidden: Vec<usize>,
}

fn normalize(text: &str) -> Normalized {
    let mut n =
        Normalized { text: String::with_capacity(text.len()), origin: Vec::new(), hidden: Vec::new() };
    for (at, c) in text.char_indices() {
        let end = at + c.len_utf8();
        let mut push = |ch: char, folded: bool| {
            let before = n.text.len();
            n.text.push(ch);
            for _ in before..n.text.len() {
                n.origin.push((at, end, folded));
            }
        };
        if ('\u{E0020}'..='\u{E007E}').contains(&c) {
            // Tag characters spell ASCII invisibly ("ASCII smuggling"): read
            // what they spell.
            if let Some(ascii) = char::from_u32(c as u32 - 0xE0000) {
                push(ascii.to_ascii_lowercase(), true);
            }
        } else if invisible_class(c).is_some() {
            n.hidden.push(at);
        } else if let Some(f) = fold_lookalike(c) {
            push(f, true);
        } else if c.is_uppercase() {
            for l in c.to_lowercase() {
                push(l, false);
            }
        } else {
            push(c, false);
        }
    }
    n
}

impl Normalized {
    /// The original byte range of a normalized range, and whether it was
    /// disguised (look-alike letters or invisible characters inside).
    fn original(&self, start: usize, end: usize) -> (usize, usize, bool) {
        let s = self.origin[start].0;
        let e = self.origin[end - 1].1;
        let folded = self.origin[start..end].iter().any(|o| o.2);
        let first_hidden = self.hidden.partition_point(|&h| h < s);
        let invisible_inside = self.hidden.get(first_hidden).is_some_and(|&h| h < e);
        (s, e, folded || invisible_inside)
    }
}

// ---------------------------------------------------------------------------
// Markers

struct Marker {
    rule: Rule,
    what: &'static str,
    pattern: &'static str,
}

/// Patterns over the normalized (lower-case, folded) text. `\s+` lets any
/// whitespace, line breaks included, separate the words.
const MARKERS: &[Marker] = &[
    Marker {
        rule: Rule::InjectionMarker,
        what: "an instruction to ignore earlier instructions",
        pattern: r"\b(?:ignore|disregard|forget|skip|override|bypass|drop|discard|abandon)\s+(?:(?:all|any|every|each|of|the|your|my|these|those|this|that|previous|prior|above|earlier|preceding|foregoing|former|initial|original|system|existing|current|old)\s+){0,4}(?:instructions?|prompts?|directions?|directives?|rules?|guidelines?|guidance|commands?|orders?|context|messages?|constraints?|restrictions?|programming|policies|policy)\b",
    },
    Marker {
        rule: Rule::InjectionMarker,
        what: "an instruction to disregard what came before",
        pattern: r"\b(?:ignore|disregard|forget)\s+(?:(?:all|everything|anything|of)\s+)?(?:the\s+)?(?:above|before|previous|prior|preceding|earlier)\b",
    },
    Marker {
        rule: Rule::InjectionMarker,
        what: "a persona switch",
        pattern: r"\byou\s+are\s+(?:now\s+|no\s+longer\s+)(?:an?\s+)?(?:dan|jailbroken|unrestricted|unfiltered|uncensored|evil|in\s+developer\s+mode|free\s+(?:of|from)|bound\s+by|restricted|an?\s+ai\s+without)\b",
    },
    Marker {
        rule: Rule::InjectionMarker,
        what: "a jailbreak phrase",
        pattern: r"\b(?:do\s+anything\s+now|developer\s+mode\s+(?:enabled|on)|jailbreak(?:\s+mode)?|act\s+as\s+dan|pretend\s+(?:that\s+)?you\s+(?:have|are\s+under)\s+no\s+(?:rules|restrictions|limits))\b",
    },
    Marker {
        rule: Rule::InjectionMarker,
        what: "an injected system prompt",
        pattern: r"(?:\bsystem\s+(?:prompt|message|instructions?)\s*:|\bnew\s+(?:system\s+)?instructions?\s*:|\bbegin\s+system\s+prompt\b)",
    },
    Marker {
        rule: Rule::InjectionMarker,
        what: "a request to reveal hidden instructions",
        pattern: r"\b(?:reveal|print|show|repeat|output|leak|disclose)\s+(?:me\s+)?(?:your|the)\s+(?:(?:system|hidden|initial|original)\s+)+(?:prompt|instructions|message)\b",
    },
    Marker {
        rule: Rule::RoleToken,
        what: "a chat-format role token",
        pattern: r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|start_header_id|end_header_id|eot_id|begin_of_text)\s*\|>|\[/?inst\]|<</?sys>>|<start_of_turn>|<end_of_turn>",
    },
    Marker {
        rule: Rule::RoleToken,
        what: "a role heading",
        pattern: r"(?m)^[ \t]*#{2,}[ \t]*(?:system|instruction|instructions|user|assistant|response|human)[ \t]*:",
    },
    Marker {
        rule: Rule::RoleToken,
        what: "a speaker switch after a blank line",
        pattern: r"(?:\A|\n[ \t]*\n)[ \t]*(?:human|assistant|system|user)[ \t]*:",
    },
];

fn marker_regexes() -> &'static [Regex] {
    static COMPILED: OnceLock<Vec<Regex>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        MARKERS.iter().map(|m| Regex::new(m.pattern).expect("a valid marker pattern")).collect()
    })
}

fn markers(text: &str, message_index: Option<usize>, out: &mut Vec<ScanFinding>) {
    let n = normalize(text);
    // Kept ranges; a later match overlapping one is the same marker.
    let mut seen: Vec<(usize, usize)> = Vec::new();
    for (m, re) in MARKERS.iter().zip(marker_regexes()) {
        for found in re.find_iter(&n.text) {
            // The speaker-switch pattern starts at the blank line; report
            // the word itself.
            let trimmed = found.as_str().trim_start();
            let start = found.end() - trimmed.len();
            if start >= found.end() {
                continue;
            }
            let (s, e, disguised) = n.original(start, found.end());
            if seen.iter().any(|&(a, b)| s < b && a < e) {
                continue;
            }
            seen.push((s, e));
            let (line, column) = line_column(text, s);
            let (rule, severity, message) = match (m.rule, disguised) {
                (Rule::InjectionMarker, true) => (
                    Rule::HiddenInjectionMarker,
                    Severity::Error,
                    format!("{} hidden with invisible characters or look-alike letters", m.what),
                ),
                (Rule::InjectionMarker, false) => {
                    (Rule::InjectionMarker, Severity::Warning, format!("{} (prompt injection)", m.what))
                }
                (_, true) => (
                    Rule::RoleToken,
                    Severity::Error,
                    format!("{} hidden with invisible characters or look-alike letters", m.what),
                ),
                (_, false) => (Rule::RoleToken, Severity::Warning, format!("{}: {:?}", m.what, trimmed)),
            };
            out.push(ScanFinding { rule, severity, message, message_index, line, column, kind: None });
        }
    }
}

fn invisible(text: &str, message_index: Option<usize>, out: &mut Vec<ScanFinding>) {
    // Runs of the same class of character are one finding.
    let mut run: Option<(usize, Rule, Vec<char>)> = None;
    let flush = |run: &mut Option<(usize, Rule, Vec<char>)>, out: &mut Vec<ScanFinding>| {
        if let Some((at, rule, chars)) = run.take() {
            let (line, column) = line_column(text, at);
            let mut names: Vec<String> = chars.iter().map(|c| format!("U+{:04X}", *c as u32)).collect();
            names.dedup();
            let (severity, what) = match rule {
                Rule::BidiControl => (Severity::Error, "bidirectional-control character(s)"),
                _ if chars.iter().any(|c| ('\u{E0000}'..='\u{E007F}').contains(c)) => {
                    (Severity::Error, "invisible tag character(s)")
                }
                _ => (Severity::Warning, "invisible character(s)"),
            };
            out.push(ScanFinding {
                rule,
                severity,
                message: format!("{} {what}: {}", chars.len(), names.join(" ")),
                message_index,
                line,
                column,
                kind: None,
            });
        }
    };
    let mut prev_end = usize::MAX;
    for (at, c) in text.char_indices() {
        let class = invisible_class(c).filter(|_| !(at == 0 && c == '\u{FEFF}'));
        match (class, &mut run) {
            (Some(rule), Some((_, r, chars))) if *r == rule && prev_end == at => chars.push(c),
            (Some(rule), _) => {
                flush(&mut run, out);
                run = Some((at, rule, vec![c]));
            }
            (None, _) => flush(&mut run, out),
        }
        prev_end = at + c.len_utf8();
    }
    flush(&mut run, out);
}

// ---------------------------------------------------------------------------
// Parameters in system messages, includes

fn is_system_role(role: &str) -> bool {
    role.eq_ignore_ascii_case("system") || role.eq_ignore_ascii_case("developer")
}

fn annotated_for_system(schema: &ParameterSchema, name: &str) -> bool {
    schema
        .as_value()
        .pointer(&format!("/properties/{name}/{SYSTEM_PARAMETER_ANNOTATION}"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn system_parameters(text: &str, schema: &ParameterSchema, index: usize, out: &mut Vec<ScanFinding>) {
    let Ok(analysis) = analyze_body(&TemplateBody::Text(text.to_owned())) else {
        return;
    };
    let declared = schema.declared();
    for var in analysis.variables.iter().filter(|v| declared.contains(v.as_str())) {
        if annotated_for_system(schema, var) {
            continue;
        }
        let (line, column) = find_word(text, var).map_or((1, 1), |at| line_column(text, at));
        out.push(ScanFinding {
            rule: Rule::ParameterInSystemMessage,
            severity: Severity::Warning,
            message: format!(
                "parameter `{var}` is interpolated into a system message; if callers are meant to set it, mark it with \"{SYSTEM_PARAMETER_ANNOTATION}\": true in the parameter schema"
            ),
            message_index: Some(index),
            line,
            column,
            kind: None,
        });
    }
}

/// The first occurrence of `word` as a whole identifier.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

fn includes(body: &TemplateBody, cx: &ScanContext<'_>, out: &mut Vec<ScanFinding>) {
    let parts: Vec<(Option<usize>, &str)> = match body {
        TemplateBody::Text(t) => vec![(None, t.as_str())],
        TemplateBody::Chat(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                ChatItem::Message(m) => Some((Some(i + 1), m.content.as_str())),
                ChatItem::Placeholder { .. } => None,
            })
            .collect(),
    };
    for (name, class) in cx.includes {
        if *class <= cx.classification {
            continue;
        }
        let (message_index, line, column) = parts
            .iter()
            .find_map(|(i, text)| text.find(name.as_str()).map(|at| (*i, line_column(text, at))))
            .map_or((None, 1, 1), |(i, (l, c))| (i, l, c));
        out.push(ScanFinding {
            rule: Rule::IncludeHigherClassification,
            severity: Severity::Error,
            message: format!(
                "includes {name:?}, classified {}, into a template classified {}: its content would leak to readers of this one",
                class.as_str(),
                cx.classification.as_str()
            ),
            message_index,
            line,
            column,
            kind: None,
        });
    }
}

fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
