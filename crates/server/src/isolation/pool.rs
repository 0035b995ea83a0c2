//! The server's side: worker processes, each driven by a task of its own
//! that takes renders from one queue.
//!
//! A driver takes every render waiting (up to [`BATCH`]) and writes them to
//! its worker at once; the worker answers each in order as soon as it is
//! rendered. Under load this spends one wake-up of each side on many
//! renders instead of one each. Each answer has the whole time limit,
//! counted from the previous answer, so the render that runs too long (or
//! the one a worker dies on) is the first unanswered one: it alone fails;
//! the renders behind it go to the next worker.

use std::collections::{HashSet, VecDeque};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use promptvault_core::render::{RenderError, Rendered};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::worker::CACHE_ENTRIES;
use super::{MAX_FRAME, Prepared, Request, Response, WorkerConfig};
use crate::service::ServiceError;

/// How long the start-up check waits for its first worker.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Renders written to a worker at once, at most.
const BATCH: usize = 16;

/// Renders waiting for a worker, at most; beyond, callers wait for room.
const QUEUE: usize = 4096;

/// The queue of renders and the drivers that take from it.
#[derive(Debug)]
pub struct Pool {
    config: Arc<WorkerConfig>,
    queue: mpsc::Sender<Job>,
}

/// One render waiting for an answer.
struct Job {
    digest: [u8; 32],
    prepared: Arc<Prepared>,
    request: Vec<u8>,
    timeout: Duration,
    reply: oneshot::Sender<Result<Rendered, ServiceError>>,
}

impl Job {
    fn spec(&self) -> &[u8] {
        match &*self.prepared {
            Prepared::Remote { spec, .. } => spec,
            Prepared::Local(_) => &[],
        }
    }

    fn answer(self, result: Result<Rendered, ServiceError>) {
        // The caller may have gone (its client hung up): nothing to do.
        let _ = self.reply.send(result);
    }
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
    TimedOut,
}

impl Pool {
    /// Starts the drivers (workers start when first needed).
    #[must_use]
    pub fn new(config: WorkerConfig) -> Self {
        let config = Arc::new(config);
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..config.workers.max(1) {
            tokio::spawn(drive(config.clone(), receiver.clone()));
        }
        Self { config, queue }
    }

    /// Starts a worker and renders a trivial template with it: a worker
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
            .submit(Arc::new(prepared), Value::Object(Map::new()), Map::new(), CHECK_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        match rendered.body.to_text().as_str() {
            "2" => Ok(()),
            other => Err(format!("the self-check rendered {other:?}, not \"2\"")),
        }
    }

    /// Renders in a worker.
    pub async fn render(
        &self,
        prepared: Arc<Prepared>,
        parameters: Value,
        placeholders: Map<String, Value>,
    ) -> Result<Rendered, ServiceError> {
        self.submit(prepared, parameters, placeholders, self.config.timeout).await
    }

    async fn submit(
        &self,
        prepared: Arc<Prepared>,
        parameters: Value,
        placeholders: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Rendered, ServiceError> {
        let Prepared::Remote { digest, .. } = *prepared else {
            return Err(ServiceError::Internal("a compiled template reached the worker pool".into()));
        };
        let request = serde_json::to_vec(&Request { digest: hex::encode(digest), parameters, placeholders })
            .map_err(|e| ServiceError::Internal(format!("render request: {e}")))?;
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { digest, prepared, request, timeout, reply })
            .await
            .map_err(|_| ServiceError::Unavailable("the render workers have stopped".into()))?;
        answer.await.map_err(|_| ServiceError::Unavailable("the render workers have stopped".into()))?
    }
}

/// One driver: a worker process (replaced when it stops) fed from the
/// shared queue. Ends when the pool is dropped.
async fn drive(config: Arc<WorkerConfig>, receiver: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut worker: Option<Worker> = None;
    // Renders that were behind a failed one, tried again first.
    let mut carried: VecDeque<Job> = VecDeque::new();
    loop {
        let mut batch: Vec<Job> = carried.drain(..).collect();
        if batch.is_empty() {
            let mut rx = receiver.lock().await;
            match rx.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let mut w = match worker.take() {
            Some(w) => w,
            None => match spawn(&config) {
                Ok(w) => w,
                Err(e) => {
                    for job in batch {
                        job.answer(Err(ServiceError::Internal(e.clone())));
                    }
                    // Do not spin on a program that cannot start.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        match run_batch(&mut w, batch).await {
            Ok(again) => {
                worker = Some(w);
                carried.extend(again);
            }
            Err((job, fault, rest)) => {
                let error = lost(w, fault, &config, job.timeout).await;
                job.answer(Err(error));
                carried.extend(rest);
            }
        }
    }
}

/// Writes the batch and reads the answers in order. Answers each job, and
/// returns those the worker asked the sources for (it had dropped them),
/// to be sent again. On a fault: the job that was being rendered, the
/// fault, and the jobs behind it.
async fn run_batch(w: &mut Worker, batch: Vec<Job>) -> Result<Vec<Job>, (Job, Fault, Vec<Job>)> {
    let mut out = Vec::new();
    let mut jobs = VecDeque::with_capacity(batch.len());
    for job in batch {
        let with_spec = !w.known.contains(&job.digest);
        if let Err(f) = push_request(&mut out, &job.request, if with_spec { job.spec() } else { &[] }) {
            job.answer(Err(ServiceError::Internal(fault_text(&f))));
            continue;
        }
        if with_spec {
            if w.known.len() >= CACHE_ENTRIES {
                w.known.clear();
            }
            w.known.insert(job.digest);
        }
        jobs.push_back(job);
    }
    let Some(first) = jobs.pop_front() else { return Ok(Vec::new()) };
    if let Err(e) = write_all(w, &out).await {
        return Err((first, Fault::Io(e), jobs.into()));
    }
    jobs.push_front(first);
    let mut again = Vec::new();
    while let Some(job) = jobs.pop_front() {
        match read_response(w, job.timeout).await {
            Ok(Response::Rendered(r)) => job.answer(Ok(r)),
            Ok(Response::Failed(e)) => job.answer(Err(e.into())),
            Ok(Response::NeedSpec) => {
                w.known.remove(&job.digest);
                again.push(job);
            }
            Err(fault) => return Err((job, fault, jobs.into())),
        }
    }
    Ok(again)
}

/// Appends a request and its spec as two frames (both or neither).
fn push_request(out: &mut Vec<u8>, request: &[u8], spec: &[u8]) -> Result<(), Fault> {
    let (request_len, spec_len) = (frame_len(request)?, frame_len(spec)?);
    out.extend_from_slice(&request_len);
    out.extend_from_slice(request);
    out.extend_from_slice(&spec_len);
    out.extend_from_slice(spec);
    Ok(())
}

async fn write_all(w: &mut Worker, bytes: &[u8]) -> std::io::Result<()> {
    w.stdin.write_all(bytes).await?;
    w.stdin.flush().await
}

async fn read_response(w: &mut Worker, timeout: Duration) -> Result<Response, Fault> {
    let read = async {
        let mut len = [0u8; 4];
        w.stdout.read_exact(&mut len).await.map_err(Fault::Io)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(Fault::Protocol(format!("the worker sent a frame of {len} bytes")));
        }
        let mut buf = vec![0u8; len];
        w.stdout.read_exact(&mut buf).await.map_err(Fault::Io)?;
        serde_json::from_slice(&buf).map_err(|e| Fault::Protocol(format!("unreadable answer: {e}")))
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(Fault::TimedOut))
}

/// A worker that stopped answering: past the time limit (killed now), out
/// of memory (it aborted), or something else, which is ours.
async fn lost(mut worker: Worker, fault: Fault, config: &WorkerConfig, timeout: Duration) -> ServiceError {
    if matches!(fault, Fault::TimedOut) {
        metrics::counter!("promptvault_render_workers_stopped_total", "reason" => "timeout").increment(1);
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(timeout_ms = ms, "a render ran past the time limit; its worker was killed");
        kill(worker);
        return RenderError::TimedOut { ms }.into();
    }
    let status = match tokio::time::timeout(Duration::from_secs(2), worker.child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            kill(worker);
            None
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // SIGABRT: Rust aborts when an allocation fails under the cap.
        if status.and_then(|s| s.signal()) == Some(6) {
            metrics::counter!("promptvault_render_workers_stopped_total", "reason" => "memory").increment(1);
            tracing::warn!(
                limit_mb = config.memory_limit_mb,
                "a render ran out of memory; its worker stopped"
            );
            return RenderError::MemoryExceeded { limit_mb: config.memory_limit_mb }.into();
        }
    }
    metrics::counter!("promptvault_render_workers_stopped_total", "reason" => "failed").increment(1);
    ServiceError::Internal(format!(
        "render worker failed ({}); exit status {}",
        fault_text(&fault),
        status.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
    ))
}

fn fault_text(fault: &Fault) -> String {
    match fault {
        Fault::Io(e) => e.to_string(),
        Fault::Protocol(m) => m.clone(),
        Fault::TimedOut => "no answer in time".to_owned(),
    }
}

fn kill(mut worker: Worker) {
    let _ = worker.child.start_kill();
    // Reaped in the background.
    tokio::spawn(async move {
        let _ = worker.child.wait().await;
    });
}

fn spawn(config: &WorkerConfig) -> Result<Worker, String> {
    let mut child = Command::new(&config.program)
        .args(&config.args)
        .arg("--memory-limit-mb")
        .arg(config.memory_limit_mb.to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the render worker {}: {e}", config.program.display()))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the render worker has no pipes".into());
    };
    metrics::counter!("promptvault_render_workers_started_total").increment(1);
    Ok(Worker { child, stdin, stdout: BufReader::with_capacity(64 * 1024, stdout), known: HashSet::new() })
}

fn frame_len(bytes: &[u8]) -> Result<[u8; 4], Fault> {
    if bytes.len() > MAX_FRAME {
        return Err(Fault::Protocol(format!("a frame of {} bytes is too large", bytes.len())));
    }
    u32::try_from(bytes.len()).map(u32::to_le_bytes).map_err(|_| Fault::Protocol("frame too large".into()))
}
