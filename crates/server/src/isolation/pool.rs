//! The server's side: a pool of worker processes, one render at a time
//! each.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promptvault_core::render::{RenderError, Rendered};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use super::worker::CACHE_ENTRIES;
use super::{MAX_FRAME, Prepared, Request, Response, WorkerConfig};
use crate::service::ServiceError;

/// How long the start-up check waits for its first worker.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Worker processes, started when first needed and replaced when one is
/// stopped.
#[derive(Debug)]
pub struct Pool {
    config: WorkerConfig,
    idle: Mutex<Vec<Worker>>,
    permits: Arc<Semaphore>,
}

#[derive(Debug)]
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Digests sent to this worker (it may have dropped some since; it
    /// then asks again).
    known: HashSet<[u8; 32]>,
}

/// How an exchange with a worker ended, short of an answer.
enum Fault {
    Io(std::io::Error),
    Protocol(String),
}

impl Pool {
    #[must_use]
    pub fn new(config: WorkerConfig) -> Self {
        let permits = Arc::new(Semaphore::new(config.workers.max(1)));
        Self { config, idle: Mutex::new(Vec::new()), permits }
    }

    /// Starts one worker and renders a trivial template with it: a worker
    /// that cannot run is a start error, not a failure of the first render.
    pub async fn check(self: &Arc<Self>) -> Result<(), String> {
        let prepared = super::Engine::Isolated(self.clone())
            .prepare(
                "promptvault/self-check",
                &promptvault_core::content::TemplateBody::Text("{{ 1 + 1 }}".into()),
                &promptvault_core::schema::ParameterSchema::default(),
                Vec::new(),
                promptvault_core::render::RenderLimits::default(),
            )
            .map_err(|e| e.to_string())?;
        // A first start (of a debug build, on a busy machine) may be slower
        // than the render time limit.
        let rendered = self
            .exchange(&prepared, Value::Object(Map::new()), Map::new(), CHECK_TIMEOUT)
            .await
            .map_err(|e| format!("{e}"))?;
        match rendered.body.to_text().as_str() {
            "2" => Ok(()),
            other => Err(format!("the self-check rendered {other:?}, not \"2\"")),
        }
    }

    /// Renders in a worker. The exchange runs in a task of its own, so a
    /// caller that goes away does not leave a worker half-way through.
    pub async fn render(
        self: &Arc<Self>,
        prepared: Arc<Prepared>,
        parameters: Value,
        placeholders: Map<String, Value>,
    ) -> Result<Rendered, ServiceError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ServiceError::Unavailable("the render workers are shutting down".into()))?;
        let pool = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            pool.exchange(&prepared, parameters, placeholders, pool.config.timeout).await
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("render task: {e}")))?
    }

    async fn exchange(
        &self,
        prepared: &Prepared,
        parameters: Value,
        placeholders: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Rendered, ServiceError> {
        let Prepared::Remote { digest, spec } = prepared else {
            return Err(ServiceError::Internal("a compiled template reached the worker pool".into()));
        };
        let request = serde_json::to_vec(&Request { digest: hex::encode(digest), parameters, placeholders })
            .map_err(|e| ServiceError::Internal(format!("render request: {e}")))?;
        let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or_default();
        let mut worker = match idle {
            Some(w) => w,
            None => self.spawn()?,
        };
        let outcome = tokio::time::timeout(timeout, worker.call(&request, *digest, spec)).await;
        match outcome {
            Ok(Ok(response)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(worker);
                }
                match response {
                    Response::Rendered(r) => Ok(r),
                    Response::Failed(e) => Err(e.into()),
                    Response::NeedSpec => {
                        Err(ServiceError::Internal("the render worker asked twice for a template".into()))
                    }
                }
            }
            Ok(Err(fault)) => Err(self.lost(worker, fault).await),
            Err(_) => {
                metrics::counter!("promptvault_render_workers_stopped_total", "reason" => "timeout")
                    .increment(1);
                let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(timeout_ms = ms, "a render ran past the time limit; its worker was killed");
                worker.kill();
                Err(RenderError::TimedOut { ms }.into())
            }
        }
    }

    /// A worker that stopped answering: out of memory (it aborts), or
    /// something else, which is ours.
    async fn lost(&self, mut worker: Worker, fault: Fault) -> ServiceError {
        let status = match tokio::time::timeout(Duration::from_secs(2), worker.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                worker.kill();
                None
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            // SIGABRT: Rust aborts when an allocation fails under the cap.
            if status.and_then(|s| s.signal()) == Some(6) {
                metrics::counter!("promptvault_render_workers_stopped_total", "reason" => "memory")
                    .increment(1);
                tracing::warn!(
                    limit_mb = self.config.memory_limit_mb,
                    "a render ran out of memory; its worker stopped"
                );
                return RenderError::MemoryExceeded { limit_mb: self.config.memory_limit_mb }.into();
            }
        }
        metrics::counter!("promptvault_render_workers_stopped_total", "reason" => "failed").increment(1);
        let fault = match fault {
            Fault::Io(e) => e.to_string(),
            Fault::Protocol(m) => m,
        };
        ServiceError::Internal(format!(
            "render worker failed ({fault}); exit status {}",
            status.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
        ))
    }

    fn spawn(&self) -> Result<Worker, ServiceError> {
        let mut child = Command::new(&self.config.program)
            .args(&self.config.args)
            .arg("--memory-limit-mb")
            .arg(self.config.memory_limit_mb.to_string())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ServiceError::Internal(format!(
                    "cannot start the render worker {}: {e}",
                    self.config.program.display()
                ))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ServiceError::Internal("the render worker has no pipes".into()));
        };
        metrics::counter!("promptvault_render_workers_started_total").increment(1);
        Ok(Worker { child, stdin, stdout: BufReader::new(stdout), known: HashSet::new() })
    }
}

impl Worker {
    async fn call(&mut self, request: &[u8], digest: [u8; 32], spec: &[u8]) -> Result<Response, Fault> {
        let send_spec = !self.known.contains(&digest);
        let response = self.send(request, if send_spec { spec } else { &[] }).await?;
        let response = match response {
            Response::NeedSpec if !send_spec => self.send(request, spec).await?,
            other => other,
        };
        if self.known.len() >= CACHE_ENTRIES {
            self.known.clear();
        }
        self.known.insert(digest);
        Ok(response)
    }

    async fn send(&mut self, request: &[u8], spec: &[u8]) -> Result<Response, Fault> {
        let mut head = Vec::with_capacity(8 + request.len());
        head.extend_from_slice(&frame_len(request)?);
        head.extend_from_slice(request);
        head.extend_from_slice(&frame_len(spec)?);
        self.stdin.write_all(&head).await.map_err(Fault::Io)?;
        if !spec.is_empty() {
            self.stdin.write_all(spec).await.map_err(Fault::Io)?;
        }
        self.stdin.flush().await.map_err(Fault::Io)?;
        let mut len = [0u8; 4];
        self.stdout.read_exact(&mut len).await.map_err(Fault::Io)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(Fault::Protocol(format!("the worker sent a frame of {len} bytes")));
        }
        let mut buf = vec![0u8; len];
        self.stdout.read_exact(&mut buf).await.map_err(Fault::Io)?;
        serde_json::from_slice(&buf).map_err(|e| Fault::Protocol(format!("unreadable answer: {e}")))
    }

    fn kill(mut self) {
        let _ = self.child.start_kill();
        // Reaped in the background.
        tokio::spawn(async move {
            let _ = self.child.wait().await;
        });
    }
}

fn frame_len(bytes: &[u8]) -> Result<[u8; 4], Fault> {
    if bytes.len() > MAX_FRAME {
        return Err(Fault::Protocol(format!("a frame of {} bytes is too large", bytes.len())));
    }
    u32::try_from(bytes.len()).map(u32::to_le_bytes).map_err(|_| Fault::Protocol("frame too large".into()))
}
