//! Turning submitted content into a checked [`VersionContent`].

use promptvault_core::content::ContentError;
use promptvault_core::render::{BodyAnalysis, TemplateError, analyze_body};
use promptvault_core::schema::{SchemaError, check_variables};
use promptvault_core::{Config, ParameterSchema, TemplateBody, VersionContent};
use serde_json::{Value, json};

use super::ServiceError;

/// Content as submitted: body, and optional schema and config.
#[derive(Debug, Clone)]
pub struct ContentInput {
    pub body: TemplateBody,
    pub parameter_schema: Option<Value>,
    pub config: Option<Value>,
}

/// Checked content, what it uses, and warnings for the author.
pub(super) struct Checked {
    pub content: VersionContent,
    pub analysis: BodyAnalysis,
    pub warnings: Vec<String>,
}

pub(super) fn check(input: ContentInput) -> Result<Checked, ServiceError> {
    VersionContent::check_shape(&input.body).map_err(|e| match e {
        ContentError::TooLarge { .. } => ServiceError::invalid("template_too_large", e.to_string()),
        ContentError::Nul(_) => ServiceError::invalid("invalid_text", e.to_string()),
        other => ServiceError::invalid("invalid_template", other.to_string()),
    })?;
    let parameter_schema = match input.parameter_schema {
        None => ParameterSchema::default(),
        Some(v) => ParameterSchema::parse(v).map_err(schema_error)?,
    };
    let config = Config::parse(input.config.unwrap_or(Value::Null)).map_err(|e| match e {
        ContentError::Nul(_) => ServiceError::invalid("invalid_text", e.to_string()),
        other => ServiceError::invalid("invalid_config", other.to_string()),
    })?;
    let analysis = analyze_body(&input.body).map_err(|e| match e {
        TemplateError::Syntax { .. } => ServiceError::invalid("invalid_template", e.to_string()),
        TemplateError::Reference(r) => ServiceError::invalid("invalid_reference", r.to_string()),
    })?;
    let report = check_variables(&analysis.variables, &parameter_schema);
    if !report.undeclared.is_empty() {
        let suggestion = ParameterSchema::inferred(
            parameter_schema.declared().into_iter().chain(report.undeclared.iter().map(String::as_str)),
        );
        return Err(ServiceError::Invalid {
            code: "undeclared_variables",
            detail: format!(
                "the template uses variables its parameter schema does not declare: {}; declare them under \"properties\"",
                report.undeclared.join(", ")
            ),
            extra: Some((
                "names",
                json!({"undeclared": report.undeclared, "suggested_schema": suggestion.as_value()}),
            )),
        });
    }
    let warnings = report
        .unused
        .iter()
        .map(|n| format!("parameter `{n}` is declared but the template does not use it"))
        .collect();
    Ok(Checked { content: VersionContent { body: input.body, parameter_schema, config }, analysis, warnings })
}

fn schema_error(e: SchemaError) -> ServiceError {
    ServiceError::invalid("invalid_parameter_schema", e.to_string())
}
