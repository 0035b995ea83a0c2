//! Parameter schemas: JSON Schema 2020-12 documents that say which
//! parameters a template takes. A schema is checked once when it enters the
//! system; compiled validators are built from checked schemas only.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::names::Identifier;

/// The only dialect accepted in `$schema`.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";
/// Largest serialized schema accepted.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error, serde::Serialize, serde::Deserialize)]
pub enum SchemaError {
    #[error("the parameter schema must be a JSON object")]
    NotAnObject,
    #[error("the parameter schema must have \"type\": \"object\" (parameters are named)")]
    NotObjectType,
    #[error("the parameter schema must use JSON Schema 2020-12 (\"$schema\": \"{DIALECT}\"), not {0}")]
    WrongDialect(String),
    #[error("the parameter schema contains a NUL character at {0}")]
    Nul(String),
    #[error("the parameter schema is {0} bytes; the limit is {MAX_SCHEMA_BYTES}")]
    TooLarge(usize),
    #[error(
        "parameter name {0:?} cannot be used as a template variable: use letters, digits and '_', not starting with a digit"
    )]
    BadParameterName(String),
    #[error("the parameter schema is not valid JSON Schema 2020-12 at {pointer}: {message}")]
    Invalid { pointer: String, message: String },
}

/// One reason a set of parameters was refused: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// JSON pointer into the parameters (`""` for the whole object, `/user/name`).
    pub pointer: String,
    pub message: String,
}

/// A parameter schema that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSchema(Value);

impl Default for ParameterSchema {
    /// A template without parameters.
    fn default() -> Self {
        Self(json!({"type": "object", "properties": {}}))
    }
}

impl ParameterSchema {
    pub fn parse(value: Value) -> Result<Self, SchemaError> {
        let obj = value.as_object().ok_or(SchemaError::NotAnObject)?;
        if let Some(at) = crate::text::find_nul(&value) {
            return Err(SchemaError::Nul(at));
        }
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
        if size > MAX_SCHEMA_BYTES {
            return Err(SchemaError::TooLarge(size));
        }
        if let Some(dialect) = obj.get("$schema")
            && dialect.as_str() != Some(DIALECT)
        {
            return Err(SchemaError::WrongDialect(dialect.to_string()));
        }
        if obj.get("type") != Some(&Value::String("object".into())) {
            return Err(SchemaError::NotObjectType);
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for name in props.keys() {
                Identifier::parse(name).map_err(|_| SchemaError::BadParameterName(name.clone()))?;
            }
        }
        jsonschema::draft202012::meta::validate(&value).map_err(|e| SchemaError::Invalid {
            pointer: pointer_or_root(e.instance_path().as_str()),
            message: e.masked().to_string(),
        })?;
        // Building the validator catches what the meta-schema cannot: bad
        // regular expressions, unresolvable `$ref`s.
        build_validator(&value).map_err(|e| SchemaError::Invalid {
            pointer: pointer_or_root(e.instance_path().as_str()),
            message: e.masked().to_string(),
        })?;
        Ok(Self(value))
    }

    /// Wraps a schema that was checked when it was stored.
    #[must_use]
    pub fn from_stored(value: Value) -> Self {
        Self(value)
    }

    #[must_use]
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    fn properties(&self) -> Option<&Map<String, Value>> {
        self.0.get("properties").and_then(Value::as_object)
    }

    /// The top-level parameter names.
    #[must_use]
    pub fn declared(&self) -> BTreeSet<&str> {
        self.properties().map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default()
    }

    /// The top-level parameters a caller must pass.
    #[must_use]
    pub fn required(&self) -> BTreeSet<&str> {
        self.0
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// Compiles the schema for validation.
    pub fn compile(&self) -> Result<CompiledSchema, SchemaError> {
        let validator = build_validator(&self.0).map_err(|e| SchemaError::Invalid {
            pointer: pointer_or_root(e.instance_path().as_str()),
            message: e.masked().to_string(),
        })?;
        let defaults = self
            .properties()
            .map(|props| {
                props.iter().filter_map(|(k, v)| v.get("default").map(|d| (k.clone(), d.clone()))).collect()
            })
            .unwrap_or_default();
        Ok(CompiledSchema { validator, defaults })
    }

    /// A schema that declares each name as a required string: a starting
    /// point for authors who have not written one.
    #[must_use]
    pub fn inferred<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let names: BTreeSet<&str> = names.into_iter().collect();
        let props: Map<String, Value> =
            names.iter().map(|n| ((*n).to_owned(), json!({"type": "string"}))).collect();
        Self(json!({"type": "object", "properties": props, "required": names}))
    }

    /// Checks this schema against a prompt type's contract: every parameter
    /// the type declares must be declared here with the same type, and every
    /// parameter the type requires must be required here.
    #[must_use]
    pub fn contract_violations(&self, contract: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let empty = Map::new();
        let type_props = contract.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let own = self.properties().unwrap_or(&empty);
        for (name, spec) in type_props {
            match own.get(name) {
                None => out.push(format!("parameter `{name}` must be declared")),
                Some(mine) => {
                    if let Some(t) = spec.get("type")
                        && mine.get("type") != Some(t)
                    {
                        out.push(format!("parameter `{name}` must have type {t}"));
                    }
                }
            }
        }
        let required = self.required();
        for name in
            contract.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
        {
            if !required.contains(name) {
                out.push(format!("parameter `{name}` must be required"));
            }
        }
        out
    }
}

fn pointer_or_root(p: &str) -> String {
    if p.is_empty() { "/".to_owned() } else { p.to_owned() }
}

pub(crate) fn build_validator(
    schema: &Value,
) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    // No retrieval: a `$ref` must point inside the schema. Patterns use the
    // linear-time `regex` engine, so no pattern can stall a render.
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(schema)
}

/// A validator ready to check parameters.
#[derive(Debug)]
pub struct CompiledSchema {
    validator: jsonschema::Validator,
    defaults: Vec<(String, Value)>,
}

impl CompiledSchema {
    /// Fills in declared defaults for parameters the caller left out.
    pub fn apply_defaults(&self, params: &mut Map<String, Value>) {
        for (name, value) in &self.defaults {
            if !params.contains_key(name) {
                params.insert(name.clone(), value.clone());
            }
        }
    }

    /// Every violation, each with its JSON pointer. Messages never quote the
    /// offending value: parameters can carry secrets.
    pub fn validate(&self, params: &Value) -> Result<(), Vec<Violation>> {
        if self.validator.is_valid(params) {
            return Ok(());
        }
        Err(self
            .validator
            .iter_errors(params)
            .map(|e| Violation {
                pointer: pointer_or_root(e.instance_path().as_str()),
                message: e.masked().to_string(),
            })
            .collect())
    }
}

/// Compares the variables a template uses with those its schema declares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VariableReport {
    /// Used by the template but not declared: the version is refused.
    pub undeclared: Vec<String>,
    /// Declared but never used: a warning.
    pub unused: Vec<String>,
}

#[must_use]
pub fn check_variables(used: &BTreeSet<String>, schema: &ParameterSchema) -> VariableReport {
    let declared = schema.declared();
    VariableReport {
        undeclared: used.iter().filter(|u| !declared.contains(u.as_str())).cloned().collect(),
        unused: declared.iter().filter(|d| !used.contains(**d)).map(|d| (*d).to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> ParameterSchema {
        ParameterSchema::parse(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "age": {"type": "integer", "minimum": 0},
                "tone": {"type": "string", "enum": ["warm", "formal"], "default": "warm"},
                "user": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}}
            },
            "required": ["name", "age"],
            "additionalProperties": false
        }))
        .unwrap()
    }

    #[test]
    fn every_violation_is_reported_with_its_pointer() {
        let compiled = schema().compile().unwrap();
        let errs = compiled
            .validate(&json!({"age": "sk-secret-value", "extra": 1, "user": {"email": "nope"}}))
            .unwrap_err();
        let pointers: BTreeSet<&str> = errs.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains("/"), "{errs:?}"); // missing `name`, unexpected `extra`
        assert!(pointers.contains("/age"), "{errs:?}");
        assert!(pointers.contains("/user/email"), "{errs:?}");
        for v in &errs {
            assert!(!v.message.contains("sk-secret-value"), "value leaked: {}", v.message);
        }
    }

    #[test]
    fn valid_parameters_pass_and_defaults_fill_in() {
        let compiled = schema().compile().unwrap();
        let mut params = json!({"name": "Ada", "age": 36});
        compiled.apply_defaults(params.as_object_mut().unwrap());
        assert_eq!(params["tone"], "warm");
        assert!(compiled.validate(&params).is_ok());
    }

    #[test]
    fn schemas_are_checked_on_entry() {
        assert_eq!(ParameterSchema::parse(json!([])), Err(SchemaError::NotAnObject));
        assert_eq!(ParameterSchema::parse(json!({"type": "string"})), Err(SchemaError::NotObjectType));
        assert!(matches!(
            ParameterSchema::parse(
                json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"})
            ),
            Err(SchemaError::WrongDialect(_))
        ));
        assert!(matches!(
            ParameterSchema::parse(json!({"type": "object", "properties": {"first-name": {}}})),
            Err(SchemaError::BadParameterName(_))
        ));
        let err = ParameterSchema::parse(json!({"type": "object", "properties": {"x": {"type": "strin"}}}))
            .unwrap_err();
        assert!(matches!(err, SchemaError::Invalid { .. }), "{err}");
        let err = ParameterSchema::parse(
            json!({"type": "object", "properties": {"x": {"type": "string", "pattern": "("}}}),
        )
        .unwrap_err();
        assert!(matches!(err, SchemaError::Invalid { .. }), "{err}");
        let err = ParameterSchema::parse(
            json!({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}}),
        )
        .unwrap_err();
        assert!(matches!(err, SchemaError::Invalid { .. }), "{err}");
    }

    #[test]
    fn variables_against_declarations() {
        let used: BTreeSet<String> = ["name", "place"].map(String::from).into();
        let report = check_variables(&used, &schema());
        assert_eq!(report.undeclared, vec!["place"]);
        assert_eq!(report.unused, vec!["age", "tone", "user"]);
    }

    #[test]
    fn type_contracts() {
        let contract = json!({"properties": {"name": {"type": "string"}, "locale": {"type": "string"}}, "required": ["name", "tone"]});
        let v = schema().contract_violations(&contract);
        assert_eq!(v, vec!["parameter `locale` must be declared", "parameter `tone` must be required"]);
        assert!(schema().contract_violations(&json!({})).is_empty());
    }

    #[test]
    fn inferred_schema_declares_every_name() {
        let s = ParameterSchema::inferred(["b", "a"]);
        assert_eq!(s.declared(), BTreeSet::from(["a", "b"]));
        assert_eq!(s.required(), BTreeSet::from(["a", "b"]));
        assert!(ParameterSchema::parse(s.as_value().clone()).is_ok());
    }
}
