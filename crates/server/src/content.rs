//! Content policy: what the server does with scanner and sensitive-data
//! findings when a version is saved, with sensitive or injected parameter
//! values when a template renders, and with the rendered output (a chain of
//! named [`OutputFilter`]s).
//!
//! The settings (`[content]`) are validated at start against the filter
//! registry, so an unknown filter name or finding selector stops the server
//! with a message that says what to change.

use std::collections::BTreeMap;
use std::sync::Arc;

use promptvault_core::SecurityClassification;
use promptvault_core::scan::{Rule, ScanFinding, Severity};
use promptvault_core::sensitive::{self, SensitiveKind};
use serde::Deserialize;

/// `text` with every secret (private key, credential, JWT, high-entropy
/// token) replaced by `[REDACTED:<kind>]`. Personal data is left alone:
/// error messages and audit details name users on purpose. Applied to every
/// error message, logged internal error and audit detail.
#[must_use]
pub fn redact_secrets(text: &str) -> std::borrow::Cow<'_, str> {
    let found: Vec<_> = sensitive::scan(text).into_iter().filter(|f| f.kind.is_secret()).collect();
    if found.is_empty() {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(sensitive::redact_findings(text, &found))
    }
}

/// [`redact_secrets`] over every string in a JSON value.
pub fn redact_secrets_in(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(r) = redact_secrets(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_secrets_in),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_secrets_in),
        _ => {}
    }
}

/// One value per classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerClass<T> {
    pub public: T,
    pub internal: T,
    pub confidential: T,
    pub restricted: T,
}

impl<T> PerClass<T> {
    pub fn get(&self, class: SecurityClassification) -> &T {
        match class {
            SecurityClassification::Public => &self.public,
            SecurityClassification::Internal => &self.internal,
            SecurityClassification::Confidential => &self.confidential,
            SecurityClassification::Restricted => &self.restricted,
        }
    }

    fn all(&self) -> [(SecurityClassification, &T); 4] {
        SecurityClassification::ALL.map(|c| (c, self.get(c)))
    }
}

impl<T: Clone> PerClass<T> {
    fn uniform(v: T) -> Self {
        Self { public: v.clone(), internal: v.clone(), confidential: v.clone(), restricted: v }
    }
}

/// As written in the settings: any classification left out keeps its
/// default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Partial<T> {
    #[serde(default = "Option::default")]
    public: Option<T>,
    #[serde(default = "Option::default")]
    internal: Option<T>,
    #[serde(default = "Option::default")]
    confidential: Option<T>,
    #[serde(default = "Option::default")]
    restricted: Option<T>,
}

impl<T> Default for Partial<T> {
    fn default() -> Self {
        Self { public: None, internal: None, confidential: None, restricted: None }
    }
}

impl<T> Partial<T> {
    fn over(self, d: PerClass<T>) -> PerClass<T> {
        PerClass {
            public: self.public.unwrap_or(d.public),
            internal: self.internal.unwrap_or(d.internal),
            confidential: self.confidential.unwrap_or(d.confidential),
            restricted: self.restricted.unwrap_or(d.restricted),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawContent {
    on_save: Partial<SavePolicy>,
    render: RawRender,
    output: Partial<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRender {
    sensitive: Partial<SensitiveHandling>,
    injection: Partial<InjectionHandling>,
}

impl From<RawContent> for ContentSettings {
    fn from(raw: RawContent) -> Self {
        let d = ContentSettings::default();
        ContentSettings {
            on_save: raw.on_save.over(d.on_save),
            render: RenderPolicy {
                sensitive: raw.render.sensitive.over(d.render.sensitive),
                injection: raw.render.injection.over(d.render.injection),
            },
            output: raw.output.over(d.output),
        }
    }
}

/// `[content]`. Every classification left out keeps its default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawContent")]
pub struct ContentSettings {
    /// `[content.on_save.<classification>]`: which findings refuse a save.
    pub on_save: PerClass<SavePolicy>,
    /// `[content.render]`: parameter values.
    pub render: RenderPolicy,
    /// `[content.output]`: the filter chain per classification.
    pub output: PerClass<Vec<String>>,
}

/// What refuses a save; every other finding is reported as a warning.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SavePolicy {
    /// Finding selectors: a sensitive kind (`credential`, `private_key`,
    /// `email`, …), a scanner rule (`hidden_injection_marker`,
    /// `bidi_control`, …), or a severity (`error`, `warning`, `info`: that
    /// severity or worse).
    pub block: Vec<String>,
}

/// What a render does with a sensitive parameter value (a parameter's
/// `x-sensitive` annotation overrides the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveHandling {
    Allow,
    Redact,
    Refuse,
}

impl SensitiveHandling {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Self::Allow),
            "redact" => Some(Self::Redact),
            "refuse" => Some(Self::Refuse),
            _ => None,
        }
    }
}

/// What a render does with injection markers in parameter values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionHandling {
    Off,
    Warn,
    Refuse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderPolicy {
    /// Default handling of sensitive parameter values per classification.
    pub sensitive: PerClass<SensitiveHandling>,
    /// Injection markers, role tokens and invisible characters in parameter
    /// values.
    pub injection: PerClass<InjectionHandling>,
}

impl Default for RenderPolicy {
    fn default() -> Self {
        Self {
            sensitive: PerClass {
                public: SensitiveHandling::Redact,
                internal: SensitiveHandling::Allow,
                confidential: SensitiveHandling::Allow,
                restricted: SensitiveHandling::Allow,
            },
            injection: PerClass::uniform(InjectionHandling::Warn),
        }
    }
}

impl Default for ContentSettings {
    fn default() -> Self {
        Self {
            on_save: PerClass {
                public: SavePolicy { block: vec!["private_key".into(), "credential".into()] },
                internal: SavePolicy::default(),
                confidential: SavePolicy::default(),
                restricted: SavePolicy::default(),
            },
            render: RenderPolicy::default(),
            output: PerClass::uniform(vec!["pass".to_owned()]),
        }
    }
}

/// A compiled finding selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selector {
    Kind(SensitiveKind),
    Rule(Rule),
    AtLeast(Severity),
}

impl Selector {
    fn parse(s: &str) -> Option<Self> {
        if let Ok(k) = s.parse() {
            return Some(Self::Kind(k));
        }
        if let Ok(r) = s.parse() {
            return Some(Self::Rule(r));
        }
        match s {
            "error" => Some(Self::AtLeast(Severity::Error)),
            "warning" => Some(Self::AtLeast(Severity::Warning)),
            "info" => Some(Self::AtLeast(Severity::Info)),
            _ => None,
        }
    }

    fn matches(self, f: &ScanFinding) -> bool {
        match self {
            Self::Kind(k) => f.kind == Some(k),
            Self::Rule(r) => f.rule == r,
            Self::AtLeast(s) => f.severity >= s && f.rule != Rule::Truncated,
        }
    }
}

/// What an output filter decides about one piece of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    Keep,
    Replace(String),
    /// Refuse the render; the reason is shown to the caller and must not
    /// quote the output.
    Block(String),
}

/// A post-processing step applied to rendered output (each text, or each
/// chat message's content). Filters are looked up by name in the
/// [`FilterRegistry`]; the chain for a render comes from the template's
/// `access.output_filters` or else `[content.output]` for its
/// classification.
pub trait OutputFilter: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    fn apply(&self, text: &str) -> Filtered;
}

/// `pass`: leaves the output alone.
#[derive(Debug)]
struct Pass;

impl OutputFilter for Pass {
    fn name(&self) -> &str {
        "pass"
    }

    fn apply(&self, _: &str) -> Filtered {
        Filtered::Keep
    }
}

/// `redact_sensitive`: replaces secrets and personal data with
/// `[REDACTED:<kind>]`.
#[derive(Debug)]
struct RedactSensitive;

impl OutputFilter for RedactSensitive {
    fn name(&self) -> &str {
        "redact_sensitive"
    }

    fn apply(&self, text: &str) -> Filtered {
        let findings = sensitive::scan(text);
        if findings.is_empty() {
            Filtered::Keep
        } else {
            Filtered::Replace(sensitive::redact_findings(text, &findings))
        }
    }
}

/// `block_sensitive`: refuses the render when the output holds secrets or
/// personal data.
#[derive(Debug)]
struct BlockSensitive;

impl OutputFilter for BlockSensitive {
    fn name(&self) -> &str {
        "block_sensitive"
    }

    fn apply(&self, text: &str) -> Filtered {
        let findings = sensitive::scan(text);
        match findings.first() {
            None => Filtered::Keep,
            Some(f) => Filtered::Block(format!(
                "the output contains sensitive data ({}, at line {}, column {})",
                f.kind, f.line, f.column
            )),
        }
    }
}

/// Output filters by name: the built-ins, and any registered at start.
#[derive(Debug, Clone)]
pub struct FilterRegistry {
    filters: BTreeMap<String, Arc<dyn OutputFilter>>,
}

impl Default for FilterRegistry {
    fn default() -> Self {
        let mut r = Self { filters: BTreeMap::new() };
        r.register(Arc::new(Pass));
        r.register(Arc::new(RedactSensitive));
        r.register(Arc::new(BlockSensitive));
        r
    }
}

impl FilterRegistry {
    /// Adds (or replaces) a filter under its name.
    pub fn register(&mut self, filter: Arc<dyn OutputFilter>) {
        self.filters.insert(filter.name().to_owned(), filter);
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Arc<dyn OutputFilter>> {
        self.filters.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.filters.keys().map(String::as_str)
    }

    /// The first name in `chain` that is not registered.
    #[must_use]
    pub fn unknown<'a>(&self, chain: &'a [String]) -> Option<&'a str> {
        chain.iter().map(String::as_str).find(|n| !self.filters.contains_key(*n))
    }
}

/// The settings, checked, with the filters they name.
#[derive(Debug, Clone)]
pub struct ContentPolicy {
    pub settings: ContentSettings,
    pub filters: FilterRegistry,
    block: PerClass<Vec<Selector>>,
}

impl Default for ContentPolicy {
    fn default() -> Self {
        Self::new(ContentSettings::default(), FilterRegistry::default()).expect("the default policy is valid")
    }
}

impl ContentPolicy {
    /// Checks every selector and filter name.
    pub fn new(settings: ContentSettings, filters: FilterRegistry) -> Result<Self, String> {
        let mut block = PerClass::uniform(Vec::new());
        for (class, policy) in settings.on_save.all() {
            let mut selectors = Vec::new();
            for s in &policy.block {
                selectors.push(Selector::parse(s).ok_or_else(|| {
                    format!(
                        "content.on_save.{class}.block: {s:?} is neither a sensitive kind ({}), a scan rule ({}) nor a severity (error, warning, info)",
                        SensitiveKind::ALL.map(SensitiveKind::as_str).join(", "),
                        Rule::ALL.map(Rule::as_str).join(", ")
                    )
                })?);
            }
            *match class {
                SecurityClassification::Public => &mut block.public,
                SecurityClassification::Internal => &mut block.internal,
                SecurityClassification::Confidential => &mut block.confidential,
                SecurityClassification::Restricted => &mut block.restricted,
            } = selectors;
        }
        for (class, chain) in settings.output.all() {
            if let Some(name) = filters.unknown(chain) {
                return Err(format!(
                    "content.output.{class}: unknown output filter {name:?}; known: {}",
                    filters.names().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(Self { settings, filters, block })
    }

    /// The findings that refuse a save of a template so classified.
    #[must_use]
    pub fn blocking<'a>(
        &self,
        class: SecurityClassification,
        findings: &'a [ScanFinding],
    ) -> Vec<&'a ScanFinding> {
        let selectors = self.block.get(class);
        findings.iter().filter(|f| selectors.iter().any(|s| s.matches(f))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_block_credentials_in_public_templates_only() {
        let p = ContentPolicy::default();
        let f = |kind| ScanFinding {
            rule: Rule::SensitiveData,
            severity: Severity::Error,
            message: String::new(),
            message_index: None,
            line: 1,
            column: 1,
            kind: Some(kind),
        };
        let findings = [f(SensitiveKind::Credential), f(SensitiveKind::Email), f(SensitiveKind::PrivateKey)];
        assert_eq!(p.blocking(SecurityClassification::Public, &findings).len(), 2);
        assert!(p.blocking(SecurityClassification::Internal, &findings).is_empty());
    }

    #[test]
    fn unknown_names_are_start_up_errors() {
        let mut s = ContentSettings::default();
        s.output.internal = vec!["redact_sensitive".into(), "shout".into()];
        let e = ContentPolicy::new(s, FilterRegistry::default()).unwrap_err();
        assert!(e.contains("content.output.internal") && e.contains("\"shout\""), "{e}");
        let mut s = ContentSettings::default();
        s.on_save.restricted.block = vec!["passwords".into()];
        let e = ContentPolicy::new(s, FilterRegistry::default()).unwrap_err();
        assert!(e.contains("content.on_save.restricted.block"), "{e}");
    }

    #[test]
    fn settings_parse_from_toml() {
        let s: ContentSettings = toml::from_str(
            "[on_save.internal]\nblock = [\"hidden_injection_marker\", \"error\"]\n\
             [render.sensitive]\npublic = \"refuse\"\n\
             [render.injection]\nconfidential = \"off\"\n\
             [output]\npublic = [\"block_sensitive\"]\ninternal = [\"redact_sensitive\"]\n",
        )
        .unwrap();
        assert_eq!(s.render.sensitive.public, SensitiveHandling::Refuse);
        assert_eq!(s.render.sensitive.internal, SensitiveHandling::Allow, "left out: the default");
        assert_eq!(s.render.injection.confidential, InjectionHandling::Off);
        assert_eq!(s.on_save.public.block, ["private_key", "credential"], "left out: the default");
        assert_eq!(s.on_save.internal.block, ["hidden_injection_marker", "error"]);
        assert!(toml::from_str::<ContentSettings>("[output]\nsecret = []\n").is_err());
        let p = ContentPolicy::new(s, FilterRegistry::default()).unwrap();
        assert_eq!(p.settings.output.public, ["block_sensitive"]);
    }

    #[test]
    fn built_in_filters() {
        let r = FilterRegistry::default();
        let key = "token sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z end";
        assert_eq!(r.get("pass").unwrap().apply(key), Filtered::Keep);
        assert_eq!(
            r.get("redact_sensitive").unwrap().apply(key),
            Filtered::Replace("token [REDACTED:credential] end".into())
        );
        match r.get("block_sensitive").unwrap().apply(key) {
            Filtered::Block(reason) => {
                assert!(reason.contains("credential") && !reason.contains("sk-proj"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.get("block_sensitive").unwrap().apply("hello"), Filtered::Keep);
    }
}
