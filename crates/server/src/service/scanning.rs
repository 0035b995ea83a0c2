//! The content policy applied: scanning versions on save, checking render
//! inputs, filtering render output.

use promptvault_core::render::{Rendered, RenderedBody};
use promptvault_core::scan::{self, Rule, ScanContext, ScanFinding};
use promptvault_core::sensitive::{self, SensitiveKind};
use promptvault_core::{ParameterSchema, SecurityClassification, VersionContent};
use promptvault_store::VersionSelector;
use serde_json::{Value, json};

use super::{Registry, Result, ServiceError};
use crate::content::{Filtered, InjectionHandling, SensitiveHandling};

/// The annotation on a parameter that says what to do with sensitive values.
pub const SENSITIVE_ANNOTATION: &str = "x-sensitive";

/// Findings as the audit trail keeps them: rule, kind and place, never a
/// message or a value.
pub(super) fn audit_findings(findings: &[ScanFinding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                json!({"rule": f.rule, "severity": f.severity, "kind": f.kind,
                       "message_index": f.message_index, "line": f.line, "column": f.column})
            })
            .collect(),
    )
}

fn place(f: &ScanFinding) -> String {
    match f.message_index {
        Some(i) => format!("message {i}, line {}, column {}", f.line, f.column),
        None => format!("line {}, column {}", f.line, f.column),
    }
}

/// Checks the content annotations the policy reads.
fn check_annotations(schema: &ParameterSchema) -> Result<()> {
    let Some(props) = schema.as_value().get("properties").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, p) in props {
        if let Some(v) = p.get(SENSITIVE_ANNOTATION)
            && v.as_str().and_then(SensitiveHandling::parse).is_none()
        {
            return Err(ServiceError::invalid(
                "invalid_parameter_schema",
                format!(
                    "parameter `{name}`: \"{SENSITIVE_ANNOTATION}\" must be \"allow\", \"redact\" or \"refuse\""
                ),
            ));
        }
        if let Some(v) = p.get(scan::SYSTEM_PARAMETER_ANNOTATION)
            && !v.is_boolean()
        {
            return Err(ServiceError::invalid(
                "invalid_parameter_schema",
                format!(
                    "parameter `{name}`: \"{}\" must be true or false",
                    scan::SYSTEM_PARAMETER_ANNOTATION
                ),
            ));
        }
    }
    Ok(())
}

impl Registry {
    /// Scans content about to be saved for a template so classified. Refuses
    /// it (422) when the policy blocks a finding; otherwise returns every
    /// finding for the response and the audit event.
    pub(super) async fn scan_for_save(
        &self,
        content: &VersionContent,
        references: &[promptvault_core::refs::TemplateRef],
        classification: SecurityClassification,
    ) -> Result<Vec<ScanFinding>> {
        check_annotations(&content.parameter_schema)?;
        let mut includes = Vec::new();
        for r in references {
            // The include's template decides its classification, whatever
            // version is picked; one that does not exist yet is warned
            // about elsewhere.
            if let Some((t, _)) = self.store.resolve(&r.name, &VersionSelector::Latest).await? {
                includes.push((r.name.as_str().to_owned(), t.security_classification));
            }
        }
        let findings = scan::scan_content(content, &ScanContext { classification, includes: &includes });
        let blocking = self.content.blocking(classification, &findings);
        if let Some(first) = blocking.first() {
            let sensitive = blocking.iter().any(|f| f.rule == Rule::SensitiveData);
            let (code, what) = if sensitive {
                ("sensitive_content", "sensitive data")
            } else {
                ("content_blocked", "content the policy refuses")
            };
            return Err(ServiceError::Invalid {
                code,
                detail: format!(
                    "a {} template may not hold {what}: {} at {}{}",
                    classification.as_str(),
                    first.message,
                    place(first),
                    match blocking.len() {
                        1 => String::new(),
                        n => format!(" (and {} more)", n - 1),
                    }
                ),
                extra: Some((
                    "findings",
                    serde_json::to_value(blocking.into_iter().cloned().collect::<Vec<_>>())
                        .unwrap_or(Value::Null),
                )),
            });
        }
        Ok(findings)
    }

    /// Applies the render-input policy to `params` in place: sensitive
    /// values allowed, redacted or refused per parameter, injection markers
    /// ignored, warned about or refused. Returns the warnings.
    pub(super) fn check_render_inputs(
        &self,
        schema: &ParameterSchema,
        classification: SecurityClassification,
        params: &mut Value,
    ) -> Result<Vec<String>> {
        let Some(map) = params.as_object_mut() else {
            return Ok(Vec::new());
        };
        let policy = &self.content.settings.render;
        let default = *policy.sensitive.get(classification);
        let injection = *policy.injection.get(classification);
        let mut warnings = Vec::new();
        for (name, value) in map.iter_mut() {
            let handling = schema
                .as_value()
                .pointer(&format!("/properties/{name}/{SENSITIVE_ANNOTATION}"))
                .and_then(Value::as_str)
                .and_then(SensitiveHandling::parse)
                .unwrap_or(default);
            let mut refused: Option<SensitiveKind> = None;
            let mut marker: Option<ScanFinding> = None;
            visit_strings(value, &mut |s: &mut String| {
                if handling != SensitiveHandling::Allow {
                    let found = sensitive::scan(s);
                    if let Some(f) = found.first() {
                        match handling {
                            SensitiveHandling::Refuse => refused = refused.or(Some(f.kind)),
                            _ => *s = sensitive::redact_findings(s, &found),
                        }
                    }
                }
                if injection != InjectionHandling::Off && marker.is_none() {
                    marker = scan::scan_value(s).into_iter().next();
                }
            });
            if let Some(kind) = refused {
                return Err(ServiceError::invalid(
                    "sensitive_parameter",
                    format!(
                        "parameter `{name}` holds sensitive data ({kind}); this template refuses it (\"{SENSITIVE_ANNOTATION}\": \"refuse\")"
                    ),
                ));
            }
            if let Some(f) = marker {
                let text =
                    format!("parameter `{name}`: {} ({}) at {}", f.message, f.rule.as_str(), place(&f));
                match injection {
                    InjectionHandling::Refuse => {
                        return Err(ServiceError::invalid("injected_parameter", text));
                    }
                    _ => warnings.push(text),
                }
            }
        }
        Ok(warnings)
    }

    /// Runs the output filter chain of a template (its own, or its
    /// classification's) over every piece of the output.
    pub(super) fn filter_output(
        &self,
        chain: Option<&[String]>,
        classification: SecurityClassification,
        rendered: &mut Rendered,
    ) -> Result<()> {
        let chain = chain.unwrap_or_else(|| self.content.settings.output.get(classification).as_slice());
        for name in chain {
            let filter =
                self.content.filters.get(name).ok_or_else(|| {
                    ServiceError::Internal(format!("output filter {name:?} is not registered"))
                })?;
            let apply = |text: &mut String| -> Result<()> {
                match filter.apply(text) {
                    Filtered::Keep => Ok(()),
                    Filtered::Replace(t) => {
                        *text = t;
                        Ok(())
                    }
                    Filtered::Block(reason) => Err(ServiceError::invalid(
                        "output_blocked",
                        format!("output filter `{name}` refused the output: {reason}"),
                    )),
                }
            };
            match &mut rendered.body {
                RenderedBody::Text(t) => apply(t)?,
                RenderedBody::Chat(messages) => {
                    for m in messages {
                        apply(&mut m.content)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Refuses an output filter chain that names an unregistered filter.
    pub(super) fn check_output_filters(&self, chain: Option<&[String]>) -> Result<()> {
        if let Some(name) = chain.and_then(|c| self.content.filters.unknown(c)) {
            return Err(ServiceError::Invalid {
                code: "unknown_output_filter",
                detail: format!("there is no output filter {name:?}"),
                extra: Some(("known", json!(self.content.filters.names().collect::<Vec<_>>()))),
            });
        }
        Ok(())
    }
}

fn visit_strings(value: &mut Value, f: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| visit_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| visit_strings(v, f)),
        _ => {}
    }
}
