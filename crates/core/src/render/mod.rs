//! The sandboxed template engine.
//!
//! Templates are Jinja (minijinja), so `{{ var }}` templates from Langfuse
//! and MLflow render unchanged and conditionals and loops are available.
//! The environment has no loader: a template sees only the sources handed to
//! it, never files or the network. Every render is bounded in fuel
//! (instructions), recursion depth and output size, and fails with an error
//! that says which bound it hit.

use std::collections::BTreeSet;
use std::io;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value as JValue};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::content::{ChatItem, TemplateBody};
use crate::names::{Identifier, Role};
use crate::refs::{RefError, TemplateRef, body_references};
use crate::schema::{CompiledSchema, ParameterSchema, SchemaError, Violation};

/// Bounds applied to every render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RenderLimits {
    /// Instructions one template evaluation may execute.
    pub fuel: u64,
    /// Bytes of output a render may produce, all messages together.
    pub max_output_bytes: usize,
    /// Nesting of macros, includes and blocks.
    pub recursion_limit: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        Self { fuel: 250_000, max_output_bytes: 1024 * 1024, recursion_limit: 64 }
    }
}

/// A template source that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, Error, serde::Serialize, serde::Deserialize)]
pub enum TemplateError {
    #[error("{part}: syntax error on line {line}: {message}")]
    Syntax { part: String, line: usize, message: String },
    #[error(transparent)]
    Reference(#[from] RefError),
}

/// Why a render failed. Every variant is the caller's (or the author's)
/// problem, never the server's.
#[derive(Debug, Clone, PartialEq, Eq, Error, serde::Serialize, serde::Deserialize)]
pub enum RenderError {
    #[error("the parameters do not match the template's schema ({} violation(s))", .0.len())]
    InvalidParameters(Vec<Violation>),
    #[error("parameters must be a JSON object")]
    ParametersNotObject,
    #[error("missing variable(s): {}", names.join(", "))]
    MissingVariables { names: Vec<String>, detail: String },
    #[error("undefined value: {detail}")]
    Undefined { detail: String },
    #[error("placeholder `{0}` was not filled: pass it in `placeholders` as a list of messages")]
    MissingPlaceholder(String),
    #[error("placeholder `{name}` must be a list of {{\"role\", \"content\"}} messages: {reason}")]
    InvalidPlaceholder { name: String, reason: String },
    #[error("the render used up its fuel ({fuel} instructions); the template loops too much")]
    OutOfFuel { fuel: u64 },
    #[error("the output passed the limit of {limit} bytes")]
    OutputTooLarge { limit: usize },
    #[error("the render nested deeper than the limit of {limit}")]
    TooDeep { limit: usize },
    /// A range or repeated sequence longer than the engine allows.
    #[error("a value would be too large: {detail}")]
    TooLarge { detail: String },
    /// The render ran past the wall-clock limit of an isolated render and
    /// its worker was stopped.
    #[error("the render ran longer than {ms} ms and was stopped")]
    TimedOut { ms: u64 },
    /// The render's worker ran out of the memory it is allowed.
    #[error("the render needed more than {limit_mb} MiB of memory and was stopped")]
    MemoryExceeded { limit_mb: u64 },
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Include(#[from] RefError),
    #[error("invalid parameter schema: {0}")]
    Schema(#[from] SchemaError),
    #[error("render failed: {0}")]
    Failed(String),
}

/// What a saved body uses: variables (top level) and references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyAnalysis {
    pub variables: BTreeSet<String>,
    pub references: Vec<TemplateRef>,
}

/// Builds the sandbox every template runs in.
fn sandbox(limits: &RenderLimits) -> Environment<'static> {
    let mut env = Environment::new();
    env.remove_global("debug");
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.recursion_limit);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_debug(true);
    if let Ok(syntax) = SyntaxConfig::builder().keep_trailing_newline(true).build() {
        env.set_syntax(syntax);
    }
    env
}

/// The engine folds constant expressions while it compiles, outside fuel:
/// `0 in [1] * 100000000` or `[1] * 10**7 == [1] * 10**7` compares up to
/// 10^8 items per expression before any limit applies (a list literal
/// repeated is lazy, so the fold's size cap does not stop it). Refusing a
/// repeated list *literal* closes that; repeating a variable is evaluated
/// at render time, under fuel.
fn constant_bomb(source: &str) -> Option<(usize, String)> {
    static EXPR: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    static REPEAT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let expr = EXPR.get_or_init(|| regex::Regex::new(r"(?s)\{\{.*?\}\}|\{%.*?%\}").expect("static regex"));
    let repeat = REPEAT.get_or_init(|| regex::Regex::new(r"\]\s*\*|\*\s*\[").expect("static regex"));
    let found = expr.find_iter(source).find(|m| repeat.is_match(m.as_str()))?;
    let line = source[..found.start()].matches('\n').count() + 1;
    Some((
        line,
        "a list literal cannot be repeated with `*` (the engine would build it while compiling, outside the render limits); set it to a variable first".to_owned(),
    ))
}

fn check_constants(index: Option<usize>, source: &str) -> Result<(), TemplateError> {
    match constant_bomb(source) {
        Some((line, message)) => Err(TemplateError::Syntax { part: describe_part(index), line, message }),
        None => Ok(()),
    }
}

fn part_name(template: &str, index: Option<usize>) -> String {
    // `|` cannot occur in a template name and `message=` is no selector, so
    // these never collide with an include literal.
    match index {
        None => template.to_owned(),
        Some(i) => format!("{template}|message={}", i + 1),
    }
}

fn describe_part(index: Option<usize>) -> String {
    match index {
        None => "template".to_owned(),
        Some(i) => format!("message {}", i + 1),
    }
}

fn syntax_error(index: Option<usize>, err: &minijinja::Error) -> TemplateError {
    TemplateError::Syntax {
        part: describe_part(index),
        line: err.line().unwrap_or(1),
        message: err.detail().unwrap_or(err.kind().to_string().as_str()).to_owned(),
    }
}

/// Checks that a body compiles and reports what it uses.
pub fn analyze_body(body: &TemplateBody) -> Result<BodyAnalysis, TemplateError> {
    let env = sandbox(&RenderLimits::default());
    let globals: BTreeSet<String> = env.globals().map(|(k, _)| k.to_owned()).collect();
    let mut variables = BTreeSet::new();
    let sources: Vec<(Option<usize>, &str)> = match body {
        TemplateBody::Text(t) => vec![(None, t.as_str())],
        TemplateBody::Chat(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                ChatItem::Message(m) => Some((Some(i), m.content.as_str())),
                ChatItem::Placeholder { .. } => None,
            })
            .collect(),
    };
    for (index, source) in sources {
        check_constants(index, source)?;
        let tmpl = env.template_from_named_str("analysis", source).map_err(|e| syntax_error(index, &e))?;
        variables.extend(tmpl.undeclared_variables(false).into_iter().filter(|v| !globals.contains(v)));
    }
    Ok(BodyAnalysis { variables, references: body_references(body)? })
}

enum Part {
    Template(String),
    Message { role: Role, template: String },
    Placeholder(Identifier),
}

/// A template compiled with its includes and schema, ready to render many
/// times. Cheap to share: renders take `&self`.
pub struct CompiledTemplate {
    env: Environment<'static>,
    parts: Vec<Part>,
    schema: CompiledSchema,
    declared: BTreeSet<String>,
    variables: BTreeSet<String>,
    limits: RenderLimits,
    /// Bytes of template source: a first guess at the output's size.
    size_hint: usize,
}

impl std::fmt::Debug for CompiledTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledTemplate")
            .field("parts", &self.parts.len())
            .field("variables", &self.variables)
            .finish_non_exhaustive()
    }
}

/// One message of a rendered chat template.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RenderedMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RenderedBody {
    Text(String),
    Chat(Vec<RenderedMessage>),
}

impl RenderedBody {
    /// The output as one string: the text, or the messages as JSON.
    #[must_use]
    pub fn to_text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Chat(m) => serde_json::to_string(m).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rendered {
    pub body: RenderedBody,
    /// Things the caller may want to know (ignored inputs, …).
    pub warnings: Vec<String>,
    /// The parameters as rendered, defaults filled in.
    pub parameters: Map<String, Value>,
}

impl CompiledTemplate {
    /// Compiles `body` named `name`, with the include sources it references
    /// (`(literal, source)` pairs as resolved by an [`crate::refs::IncludePlan`]).
    pub fn compile(
        name: &str,
        body: &TemplateBody,
        schema: &ParameterSchema,
        includes: Vec<(String, String)>,
        limits: RenderLimits,
    ) -> Result<Self, RenderError> {
        let mut env = sandbox(&limits);
        let globals: BTreeSet<String> = env.globals().map(|(k, _)| k.to_owned()).collect();
        let mut parts = Vec::new();
        let mut sources: Vec<(String, String, Option<usize>)> = Vec::new();
        match body {
            TemplateBody::Text(t) => {
                parts.push(Part::Template(part_name(name, None)));
                sources.push((part_name(name, None), t.clone(), None));
            }
            TemplateBody::Chat(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        ChatItem::Message(m) => {
                            let template = part_name(name, Some(i));
                            sources.push((template.clone(), m.content.clone(), Some(i)));
                            parts.push(Part::Message { role: m.role.clone(), template });
                        }
                        ChatItem::Placeholder { name } => parts.push(Part::Placeholder(name.clone())),
                    }
                }
            }
        }
        let mut variables = BTreeSet::new();
        let size_hint = sources.iter().map(|s| s.1.len()).sum::<usize>();
        for (template, source, index) in sources {
            check_constants(index, &source)?;
            env.add_template_owned(template.clone(), source).map_err(|e| syntax_error(index, &e))?;
            if let Ok(t) = env.get_template(&template) {
                variables.extend(t.undeclared_variables(false));
            }
        }
        for (literal, source) in includes {
            if let Some((line, message)) = constant_bomb(&source) {
                return Err(TemplateError::Syntax {
                    part: format!("included template {literal:?}"),
                    line,
                    message,
                }
                .into());
            }
            env.add_template_owned(literal.clone(), source).map_err(|e| TemplateError::Syntax {
                part: format!("included template {literal:?}"),
                line: e.line().unwrap_or(1),
                message: e.detail().unwrap_or("invalid template").to_owned(),
            })?;
            if let Ok(t) = env.get_template(&literal) {
                variables.extend(t.undeclared_variables(false));
            }
        }
        variables.retain(|v| !globals.contains(v));
        Ok(Self {
            env,
            parts,
            schema: schema.compile()?,
            declared: schema.declared().into_iter().map(str::to_owned).collect(),
            variables,
            limits,
            size_hint,
        })
    }

    /// Top-level variables the template and its includes may read.
    #[must_use]
    pub fn variables(&self) -> &BTreeSet<String> {
        &self.variables
    }

    /// Validates `params` (filling in defaults) and renders.
    pub fn render(&self, params: Value, placeholders: &Map<String, Value>) -> Result<Rendered, RenderError> {
        let Value::Object(mut params) = params else {
            return Err(RenderError::ParametersNotObject);
        };
        // NUL cannot be stored (PostgreSQL refuses it) and never belongs in a prompt.
        let nul = |pointer: String| {
            RenderError::InvalidParameters(vec![Violation {
                pointer,
                message: "NUL characters are not accepted".into(),
            }])
        };
        if let Some(at) = crate::text::find_nul_in(&params) {
            return Err(nul(at));
        }
        if let Some(at) = crate::text::find_nul_in(placeholders) {
            return Err(nul(format!("/placeholders{at}")));
        }
        self.schema.apply_defaults(&mut params);
        let as_value = Value::Object(params);
        self.schema.validate(&as_value).map_err(RenderError::InvalidParameters)?;
        let Value::Object(params) = as_value else {
            return Err(RenderError::ParametersNotObject);
        };
        let mut warnings: Vec<String> = params
            .keys()
            .filter(|k| !self.declared.contains(k.as_str()))
            .map(|k| format!("parameter `{k}` is not declared by the template and was ignored"))
            .collect();
        let ctx = map_to_value(&params);
        let mut out = Limited::new(self.limits.max_output_bytes);
        out.buf.reserve(self.size_hint.min(self.limits.max_output_bytes));
        let body = match self.parts.as_slice() {
            [Part::Template(t)] => {
                self.render_part(t, &ctx, &params, &mut out)?;
                RenderedBody::Text(out.take())
            }
            parts => {
                let mut messages = Vec::with_capacity(parts.len());
                // The engine gives each evaluation its own fuel; the messages
                // of one render share one budget, so a chat of many busy
                // messages stops after at most one message past it.
                let mut fuel_used: u64 = 0;
                for part in parts {
                    match part {
                        Part::Template(t) | Part::Message { template: t, .. } => {
                            if fuel_used >= self.limits.fuel {
                                return Err(RenderError::OutOfFuel { fuel: self.limits.fuel });
                            }
                            fuel_used =
                                fuel_used.saturating_add(self.render_part(t, &ctx, &params, &mut out)?);
                            let role = match part {
                                Part::Message { role, .. } => role.to_string(),
                                _ => "user".to_owned(),
                            };
                            messages.push(RenderedMessage { role, content: out.take() });
                        }
                        Part::Placeholder(name) => {
                            fill_placeholder(name, placeholders, &mut out, &mut messages)?;
                        }
                    }
                }
                RenderedBody::Chat(messages)
            }
        };
        let has_nul = match &body {
            RenderedBody::Text(t) => t.contains('\0'),
            RenderedBody::Chat(m) => m.iter().any(|m| m.content.contains('\0')),
        };
        if has_nul {
            return Err(RenderError::Failed("the output contains a NUL character".into()));
        }
        let known: BTreeSet<&str> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Placeholder(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        warnings.extend(
            placeholders
                .keys()
                .filter(|k| !known.contains(k.as_str()))
                .map(|k| format!("placeholder `{k}` is not used by the template and was ignored")),
        );
        Ok(Rendered { body, warnings, parameters: params })
    }

    fn render_part(
        &self,
        template: &str,
        ctx: &JValue,
        params: &Map<String, Value>,
        out: &mut Limited,
    ) -> Result<u64, RenderError> {
        let tmpl = self.env.get_template(template).map_err(|e| RenderError::Failed(e.to_string()))?;
        match tmpl.render_captured_to(ctx.clone(), &mut *out) {
            // Fuel used by this evaluation.
            Ok(captured) => Ok(captured.state().fuel_levels().map_or(0, |(used, _)| used)),
            Err(e) => Err(self.classify(&e, params, out.exceeded)),
        }
    }

    fn classify(&self, err: &minijinja::Error, params: &Map<String, Value>, exceeded: bool) -> RenderError {
        if exceeded {
            return RenderError::OutputTooLarge { limit: self.limits.max_output_bytes };
        }
        // The first cause in the chain that is not an include wrapper.
        let mut cause: &minijinja::Error = err;
        while cause.kind() == ErrorKind::BadInclude {
            match std::error::Error::source(cause).and_then(|s| s.downcast_ref::<minijinja::Error>()) {
                Some(inner) => cause = inner,
                None => break,
            }
        }
        let detail = cause.to_string();
        match cause.kind() {
            ErrorKind::OutOfFuel => RenderError::OutOfFuel { fuel: self.limits.fuel },
            ErrorKind::UndefinedError => {
                // The engine names the value ("`x` is undefined"); when it is a
                // top-level variable the caller left out, report just that one.
                let named = detail
                    .split('`')
                    .nth(1)
                    .filter(|n| self.variables.contains(*n) && !params.contains_key(*n));
                let names: Vec<String> = match named {
                    Some(n) => vec![n.to_owned()],
                    None => {
                        self.variables.iter().filter(|v| !params.contains_key(v.as_str())).cloned().collect()
                    }
                };
                if names.is_empty() {
                    RenderError::Undefined { detail }
                } else {
                    RenderError::MissingVariables { names, detail }
                }
            }
            ErrorKind::InvalidOperation if detail.contains("recursion") => {
                RenderError::TooDeep { limit: self.limits.recursion_limit }
            }
            ErrorKind::InvalidOperation if SIZE_REFUSALS.iter().any(|m| detail.contains(m)) => {
                RenderError::TooLarge { detail: cause.detail().unwrap_or("value too large").to_owned() }
            }
            _ => RenderError::Failed(detail),
        }
    }
}

fn fill_placeholder(
    name: &Identifier,
    placeholders: &Map<String, Value>,
    out: &mut Limited,
    messages: &mut Vec<RenderedMessage>,
) -> Result<(), RenderError> {
    let invalid =
        |reason: &str| RenderError::InvalidPlaceholder { name: name.to_string(), reason: reason.to_owned() };
    let list = placeholders
        .get(name.as_str())
        .ok_or_else(|| RenderError::MissingPlaceholder(name.to_string()))?
        .as_array()
        .ok_or_else(|| invalid("not a list"))?;
    for (i, item) in list.iter().enumerate() {
        let role = item.get("role").and_then(Value::as_str);
        let content = item.get("content").and_then(Value::as_str);
        let (Some(role), Some(content)) = (role, content) else {
            return Err(invalid(&format!("item {} needs string `role` and `content`", i + 1)));
        };
        Role::parse(role).map_err(|e| invalid(&e.to_string()))?;
        out.charge(content.len() + role.len())
            .map_err(|_| RenderError::OutputTooLarge { limit: out.limit })?;
        messages.push(RenderedMessage { role: role.to_owned(), content: content.to_owned() });
    }
    Ok(())
}

/// The engine's refusals of values it will not build, whatever the fuel
/// (ranges over 100,000 items, repetitions over 100,000,000).
const SIZE_REFUSALS: &[&str] = &["range has too many elements", "is too large"];

/// Converts JSON into the engine's values.
fn to_value(v: &Value) -> JValue {
    match v {
        Value::Null => JValue::from(()),
        Value::Bool(b) => JValue::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                JValue::from(i)
            } else if let Some(u) = n.as_u64() {
                JValue::from(u)
            } else {
                JValue::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => JValue::from(s.as_str()),
        Value::Array(a) => JValue::from(a.iter().map(to_value).collect::<Vec<_>>()),
        Value::Object(o) => map_to_value(o),
    }
}

fn map_to_value(o: &Map<String, Value>) -> JValue {
    JValue::from_object(
        o.iter()
            .map(|(k, v)| (k.clone(), to_value(v)))
            .collect::<std::collections::BTreeMap<String, JValue>>(),
    )
}

/// An output buffer that refuses to grow past a limit.
struct Limited {
    buf: Vec<u8>,
    limit: usize,
    /// Bytes produced by earlier parts of the same render.
    used: usize,
    exceeded: bool,
}

impl Limited {
    fn new(limit: usize) -> Self {
        Self { buf: Vec::new(), limit, used: 0, exceeded: false }
    }

    fn charge(&mut self, n: usize) -> Result<(), ()> {
        if self.used + self.buf.len() + n > self.limit {
            self.exceeded = true;
            return Err(());
        }
        self.used += n;
        Ok(())
    }

    /// Takes the current part's output; the byte count carries on.
    fn take(&mut self) -> String {
        self.used += self.buf.len();
        let bytes = std::mem::take(&mut self.buf);
        // The engine writes whole `str` pieces, so the bytes are UTF-8.
        String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl io::Write for Limited {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.used + self.buf.len() + data.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bomb_tests;
