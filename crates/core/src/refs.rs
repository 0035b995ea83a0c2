//! Composition: templates that include other templates.
//!
//! A template names another with a string literal in `{% include %}`,
//! `{% import %}`, `{% from … import %}` or `{% extends %}`:
//! `"name"` (the default label), `"name|label=staging"` or
//! `"name|version=3"` — the notation Langfuse uses for prompt references.
//! References are resolved when rendering; [`IncludePlan`] walks the graph
//! one fetch at a time so the rules (depth, cycles) stay here while the
//! fetching happens in the caller.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use thiserror::Error;

use crate::content::TemplateBody;
use crate::names::{LabelName, TemplateName};

/// How deep includes may nest below the template being rendered.
pub const MAX_INCLUDE_DEPTH: usize = 5;

/// Which version of the referenced template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// The registry's default label (`production` unless configured).
    Default,
    Label(LabelName),
    Version(u32),
}

/// A parsed reference, with the literal it was written as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateRef {
    pub literal: String,
    pub name: TemplateName,
    pub selector: Selector,
}

#[derive(Debug, Clone, PartialEq, Eq, Error, serde::Serialize, serde::Deserialize)]
pub enum RefError {
    #[error(
        "line {line}: `{{% {tag} %}}` must name a template with a string literal, e.g. {{% {tag} \"common/footer|label=production\" %}}"
    )]
    NotALiteral { line: usize, tag: String },
    #[error("invalid template reference {literal:?}: {reason}")]
    Invalid { literal: String, reason: String },
    #[error("included template {name:?} ({selector}) does not exist")]
    NotFound { name: String, selector: String },
    #[error("included template {name:?} is a chat template; only text templates can be included")]
    NotText { name: String },
    #[error("include cycle: {}", path.join(" → "))]
    Cycle { path: Vec<String> },
    #[error("includes nest deeper than {MAX_INCLUDE_DEPTH}: {}", path.join(" → "))]
    TooDeep { path: Vec<String> },
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Default => f.write_str("default label"),
            Selector::Label(l) => write!(f, "label {l}"),
            Selector::Version(v) => write!(f, "version {v}"),
        }
    }
}

/// Parses `name`, `name|label=x` or `name|version=N`.
pub fn parse_ref(literal: &str) -> Result<TemplateRef, RefError> {
    let invalid = |reason: String| RefError::Invalid { literal: literal.chars().take(120).collect(), reason };
    let (name, selector) = match literal.split_once('|') {
        None => (literal, Selector::Default),
        Some((name, sel)) => {
            let selector = match sel.split_once('=') {
                Some(("label", l)) => {
                    Selector::Label(LabelName::parse(l).map_err(|e| invalid(e.to_string()))?)
                }
                Some(("version", v)) => Selector::Version(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("version must be a positive integer".into()))?,
                ),
                _ => {
                    return Err(invalid("after '|' write label=NAME or version=NUMBER".into()));
                }
            };
            (name, selector)
        }
    };
    let name = TemplateName::parse(name).map_err(|e| invalid(e.to_string()))?;
    Ok(TemplateRef { literal: literal.to_owned(), name, selector })
}

fn tag_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"(?s)\{#.*?#\}|\{%[-+]?\s*(\w+)(.*?)[-+]?%\}"#).expect("static regex"))
}

fn literal_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"^\s*(?:"([^"\\]*)"|'([^'\\]*)')"#).expect("static regex"))
}

/// Every template reference in one source, in order of appearance.
pub fn find_references(source: &str) -> Result<Vec<TemplateRef>, RefError> {
    let mut refs = Vec::new();
    let mut in_raw = false;
    for cap in tag_regex().captures_iter(source) {
        let Some(tag) = cap.get(1) else { continue }; // a comment
        let tag_name = tag.as_str();
        if in_raw {
            in_raw = tag_name != "endraw";
            continue;
        }
        if tag_name == "raw" {
            in_raw = true;
            continue;
        }
        if !matches!(tag_name, "include" | "import" | "from" | "extends") {
            continue;
        }
        let rest = cap.get(2).map_or("", |m| m.as_str());
        let line = source[..tag.start()].matches('\n').count() + 1;
        let lit = literal_regex()
            .captures(rest)
            .and_then(|c| c.get(1).or_else(|| c.get(2)))
            .ok_or_else(|| RefError::NotALiteral { line, tag: tag_name.to_owned() })?;
        refs.push(parse_ref(lit.as_str())?);
    }
    Ok(refs)
}

/// References of every source in a body.
pub fn body_references(body: &TemplateBody) -> Result<Vec<TemplateRef>, RefError> {
    let mut all = Vec::new();
    for source in body.sources() {
        for r in find_references(source)? {
            if !all.contains(&r) {
                all.push(r);
            }
        }
    }
    Ok(all)
}

/// What the caller found for a reference.
#[derive(Debug, Clone)]
pub struct Fetched<V> {
    /// The canonical name of the template found.
    pub name: TemplateName,
    pub body: TemplateBody,
    /// Whatever the caller wants back with the source (e.g. a version id).
    pub tag: V,
}

/// One included source, ready to register with the engine.
#[derive(Debug, Clone)]
pub struct ResolvedInclude<V> {
    pub literal: String,
    pub source: String,
    pub tag: V,
}

struct Pending {
    reference: TemplateRef,
    /// Names from the root down to the template that holds the reference.
    path: Vec<TemplateName>,
}

/// Walks the include graph of one template.
pub struct IncludePlan<V> {
    pending: Vec<Pending>,
    resolved: BTreeMap<String, ResolvedInclude<V>>,
}

impl<V> std::fmt::Debug for IncludePlan<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncludePlan")
            .field("pending", &self.pending.len())
            .field("resolved", &self.resolved.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<V: Clone> IncludePlan<V> {
    pub fn new(root: &TemplateName, body: &TemplateBody) -> Result<Self, RefError> {
        Self::with_references(root, body_references(body)?)
    }

    /// Like [`new`](Self::new), with the root's references already found
    /// (callers cache them per version: finding them scans the source).
    pub fn with_references(root: &TemplateName, references: Vec<TemplateRef>) -> Result<Self, RefError> {
        let mut plan = Self { pending: Vec::new(), resolved: BTreeMap::new() };
        plan.enqueue_refs(std::slice::from_ref(root), references)?;
        Ok(plan)
    }

    fn enqueue(&mut self, path: &[TemplateName], body: &TemplateBody) -> Result<(), RefError> {
        self.enqueue_refs(path, body_references(body)?)
    }

    fn enqueue_refs(&mut self, path: &[TemplateName], references: Vec<TemplateRef>) -> Result<(), RefError> {
        for reference in references {
            let mut next: Vec<TemplateName> = path.to_vec();
            let cycle = path.contains(&reference.name);
            next.push(reference.name.clone());
            let names = || next.iter().map(ToString::to_string).collect();
            if cycle {
                return Err(RefError::Cycle { path: names() });
            }
            if next.len() > MAX_INCLUDE_DEPTH + 1 {
                return Err(RefError::TooDeep { path: names() });
            }
            self.pending.push(Pending { reference, path: path.to_vec() });
        }
        Ok(())
    }

    /// The next reference to fetch, or `None` when the graph is complete.
    #[must_use]
    pub fn next(&self) -> Option<&TemplateRef> {
        self.pending.last().map(|p| &p.reference)
    }

    /// Hands over what [`next`](Self::next) asked for (`None`: not found).
    pub fn provide(&mut self, fetched: Option<Fetched<V>>) -> Result<(), RefError> {
        let Some(Pending { reference, path }) = self.pending.pop() else {
            return Ok(());
        };
        let Some(fetched) = fetched else {
            return Err(RefError::NotFound {
                name: reference.name.to_string(),
                selector: reference.selector.to_string(),
            });
        };
        let TemplateBody::Text(source) = &fetched.body else {
            return Err(RefError::NotText { name: fetched.name.to_string() });
        };
        let mut here = path;
        here.push(fetched.name.clone());
        self.enqueue(&here, &fetched.body)?;
        self.resolved.entry(reference.literal.clone()).or_insert_with(|| ResolvedInclude {
            literal: reference.literal,
            source: source.clone(),
            tag: fetched.tag,
        });
        Ok(())
    }

    /// The includes found, once [`next`](Self::next) returns `None`.
    #[must_use]
    pub fn finish(self) -> Vec<ResolvedInclude<V>> {
        self.resolved.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TemplateName {
        TemplateName::parse(s).unwrap()
    }

    #[test]
    fn references_are_found_in_every_form() {
        let src = r#"{% include "a" %}{%- import 'b|label=staging' as m -%}
{% from "c/d|version=3" import x %}{# {% include "commented" %} #}
{% raw %}{% include "raw" %}{% endraw %}{{ "not a ref" }}"#;
        let refs = find_references(src).unwrap();
        let lits: Vec<&str> = refs.iter().map(|r| r.literal.as_str()).collect();
        assert_eq!(lits, ["a", "b|label=staging", "c/d|version=3"]);
        assert_eq!(refs[1].selector, Selector::Label(LabelName::parse("staging").unwrap()));
        assert_eq!(refs[2].selector, Selector::Version(3));
        assert_eq!(refs[0].selector, Selector::Default);
    }

    #[test]
    fn dynamic_references_are_refused_with_the_line() {
        let err = find_references("line one\n{% include some_var %}").unwrap_err();
        assert!(matches!(err, RefError::NotALiteral { line: 2, .. }), "{err}");
    }

    #[test]
    fn malformed_references_say_why() {
        for bad in ["a|lbl=x", "a|version=0", "a|version=x", "a|label=UP", "//"] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
    }

    fn text(s: &str) -> TemplateBody {
        TemplateBody::Text(s.to_owned())
    }

    fn run(root: &str, graph: &[(&str, &str)]) -> Result<Vec<String>, RefError> {
        let mut plan: IncludePlan<()> =
            IncludePlan::new(&name(root), &text(graph.iter().find(|g| g.0 == root).unwrap().1))?;
        while let Some(r) = plan.next() {
            let found = graph.iter().find(|g| g.0 == r.name.as_str()).map(|g| Fetched {
                name: name(g.0),
                body: text(g.1),
                tag: (),
            });
            plan.provide(found)?;
        }
        Ok(plan.finish().into_iter().map(|r| r.literal).collect())
    }

    #[test]
    fn graphs_resolve() {
        let got = run(
            "a",
            &[("a", r#"{% include "b" %}{% include "c" %}"#), ("b", r#"{% include "c" %}"#), ("c", "leaf")],
        )
        .unwrap();
        assert_eq!(got, ["b", "c"]);
    }

    #[test]
    fn cycles_are_refused_with_the_path() {
        let err = run("a", &[("a", r#"{% include "b" %}"#), ("b", r#"{% include "a" %}"#)]).unwrap_err();
        assert_eq!(err.to_string(), "include cycle: a → b → a");
        let err = run("a", &[("a", r#"{% include "a|version=1" %}"#)]).unwrap_err();
        assert!(matches!(err, RefError::Cycle { .. }));
    }

    #[test]
    fn depth_is_limited() {
        let chain: Vec<(String, String)> = (0..8)
            .map(|i| (format!("t{i}"), format!("{{% include \"t{}\" %}}", i + 1)))
            .chain([("t8".to_string(), "end".to_string())])
            .collect();
        let graph: Vec<(&str, &str)> = chain.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let err = run("t0", &graph).unwrap_err();
        assert!(matches!(err, RefError::TooDeep { .. }), "{err}");
        // Exactly five levels below the root is fine.
        let ok: Vec<(&str, &str)> = graph[..5].iter().copied().chain([("t5", "end")]).collect();
        assert_eq!(run("t0", &ok).unwrap().len(), 5);
    }

    #[test]
    fn missing_targets_are_named() {
        let err = run("a", &[("a", r#"{% include "gone|label=prod" %}"#)]).unwrap_err();
        assert_eq!(err.to_string(), "included template \"gone\" (label prod) does not exist");
    }
}
