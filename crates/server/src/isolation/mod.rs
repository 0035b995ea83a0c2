//! Where templates are rendered: in worker processes with a memory cap and
//! a time limit (the default), or in the server's own process.
//!
//! Fuel, recursion and output limits stop most runaway templates inside the
//! engine, but not all: `{% set l = l + l %}` repeated builds a list lazily
//! that the engine later copies out without charging fuel, and nothing in
//! the process can interrupt that copy. So each render runs in a worker
//! process (`promptvault render-worker`) whose address space is capped
//! (`RLIMIT_AS`) and which is killed when it runs past the time limit. A
//! worker that runs out of memory aborts; either way the render ends with
//! `render_limit_exceeded` and the next render gets a fresh worker.
//!
//! Workers keep compiled templates, keyed by a digest of everything that
//! went into compiling them (sources, includes, schema, limits); the
//! sources are sent only to a worker that does not have them yet. The
//! worker's environment is emptied before it starts: no key or token of
//! the server's reaches it.

mod pool;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use promptvault_core::content::{ChatItem, TemplateBody};
use promptvault_core::render::{CompiledTemplate, RenderError, RenderLimits, Rendered};
use promptvault_core::schema::ParameterSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::service::ServiceError;
pub use pool::Pool;

/// `[render] isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Each render in a worker process, capped in memory and time.
    #[default]
    Process,
    /// In the server's own process: faster, but a template that builds a
    /// huge list lazily is bounded only by the machine.
    None,
}

/// How the worker processes run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The program and its arguments; `--memory-limit-mb N` is added.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Workers at most (renders beyond that wait for one).
    pub workers: usize,
    pub memory_limit_mb: u64,
    pub timeout: Duration,
}

/// Everything a worker needs to compile a template. Its digest names the
/// compiled template in the worker's cache.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    pub text: Option<String>,
    pub chat: Option<Vec<ChatItem>>,
    pub schema: Value,
    pub includes: Vec<(String, String)>,
    pub limits: RenderLimits,
}

impl Spec {
    pub fn compile(self) -> Result<CompiledTemplate, RenderError> {
        let body = match (self.text, self.chat) {
            (Some(t), _) => TemplateBody::Text(t),
            (None, Some(items)) => TemplateBody::Chat(items),
            (None, None) => return Err(RenderError::Failed("the template has no body".into())),
        };
        CompiledTemplate::compile(
            &self.name,
            &body,
            &ParameterSchema::from_stored(self.schema),
            self.includes,
            self.limits,
        )
    }
}

/// A template ready to render: compiled here, or described for a worker.
#[derive(Debug)]
pub enum Prepared {
    Local(Box<CompiledTemplate>),
    Remote { digest: [u8; 32], spec: Vec<u8> },
}

/// Renders in worker processes or in this one.
#[derive(Debug)]
pub enum Engine {
    InProcess,
    Isolated(std::sync::Arc<Pool>),
}

impl Engine {
    /// Compiles (in process) or describes (for a worker) a template.
    pub fn prepare(
        &self,
        name: &str,
        body: &TemplateBody,
        schema: &ParameterSchema,
        includes: Vec<(String, String)>,
        limits: RenderLimits,
    ) -> Result<Prepared, ServiceError> {
        match self {
            Engine::InProcess => Ok(Prepared::Local(Box::new(CompiledTemplate::compile(
                name, body, schema, includes, limits,
            )?))),
            Engine::Isolated(_) => {
                let (text, chat) = match body {
                    TemplateBody::Text(t) => (Some(t.clone()), None),
                    TemplateBody::Chat(items) => (None, Some(items.clone())),
                };
                let spec = Spec {
                    name: name.to_owned(),
                    text,
                    chat,
                    schema: schema.as_value().clone(),
                    includes,
                    limits,
                };
                let spec = serde_json::to_vec(&spec)
                    .map_err(|e| ServiceError::Internal(format!("render spec: {e}")))?;
                let digest: [u8; 32] = Sha256::digest(&spec).into();
                Ok(Prepared::Remote { digest, spec })
            }
        }
    }

    /// Validates `parameters` and renders.
    pub async fn render(
        &self,
        prepared: std::sync::Arc<Prepared>,
        parameters: Value,
        placeholders: Map<String, Value>,
    ) -> Result<Rendered, ServiceError> {
        match (&*prepared, self) {
            (Prepared::Local(c), _) => Ok(c.render(parameters, &placeholders)?),
            (Prepared::Remote { .. }, Engine::Isolated(pool)) => {
                pool.render(prepared, parameters, placeholders).await
            }
            (Prepared::Remote { .. }, Engine::InProcess) => Err(ServiceError::Internal(
                "a template prepared for a worker reached the in-process engine".into(),
            )),
        }
    }
}

/// One request to a worker. The spec travels in its own frame after it.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    digest: String,
    parameters: Value,
    placeholders: Map<String, Value>,
}

/// A worker's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Response {
    Rendered(Rendered),
    Failed(RenderError),
    /// The worker does not have this digest compiled: send the spec.
    NeedSpec,
}

/// Frames larger than this are refused by both sides.
const MAX_FRAME: usize = 256 * 1024 * 1024;
