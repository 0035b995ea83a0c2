//! The worker process: reads requests on standard input, renders, answers
//! on standard output, until its input closes.
//!
//! Frames are a little-endian `u32` length and that many bytes of JSON. A
//! request is two frames: the [`Request`](super::Request) and the spec
//! (empty when the worker is expected to have it compiled already).

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use promptvault_core::render::{CompiledTemplate, RenderError};

use super::{MAX_FRAME, Request, Response, Spec};

/// Compiled templates a worker keeps; past this it starts again empty.
pub(super) const CACHE_ENTRIES: usize = 512;

/// Runs a worker with its address space capped at `memory_limit_mb`.
pub fn run(memory_limit_mb: u64) -> ExitCode {
    if let Err(e) = confine(memory_limit_mb) {
        eprintln!("promptvault render-worker: cannot apply limits: {e}");
        return ExitCode::FAILURE;
    }
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    let mut cache: HashMap<[u8; 32], Arc<CompiledTemplate>> = HashMap::new();
    loop {
        let (request, spec) = match read_frame(&mut input).and_then(|r| Ok((r, read_frame(&mut input)?))) {
            Ok((Some(request), Some(spec))) => (request, spec),
            // The server closed the pipe: it stopped or let this worker go.
            Ok(_) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("promptvault render-worker: {e}");
                return ExitCode::FAILURE;
            }
        };
        let response =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(&request, &spec, &mut cache)))
                .unwrap_or_else(|_| {
                    Response::Failed(RenderError::Failed("the template engine failed".into()))
                });
        let bytes = serde_json::to_vec(&response).unwrap_or_else(|e| {
            serde_json::to_vec(&Response::Failed(RenderError::Failed(format!(
                "cannot encode the result: {e}"
            ))))
            .unwrap_or_default()
        });
        if write_frame(&mut output, &bytes).and_then(|()| output.flush()).is_err() {
            return ExitCode::SUCCESS;
        }
    }
}

fn handle(request: &[u8], spec: &[u8], cache: &mut HashMap<[u8; 32], Arc<CompiledTemplate>>) -> Response {
    let request: Request = match serde_json::from_slice(request) {
        Ok(r) => r,
        Err(e) => return Response::Failed(RenderError::Failed(format!("bad request to the worker: {e}"))),
    };
    let Some(digest) = parse_digest(&request.digest) else {
        return Response::Failed(RenderError::Failed("bad digest in a request to the worker".into()));
    };
    let compiled = match cache.get(&digest) {
        Some(c) => c.clone(),
        None if spec.is_empty() => return Response::NeedSpec,
        None => {
            let spec: Spec = match serde_json::from_slice(spec) {
                Ok(s) => s,
                Err(e) => return Response::Failed(RenderError::Failed(format!("bad template spec: {e}"))),
            };
            let compiled = match spec.compile() {
                Ok(c) => Arc::new(c),
                Err(e) => return Response::Failed(e),
            };
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(digest, compiled.clone());
            compiled
        }
    };
    match compiled.render(request.parameters, &request.placeholders) {
        Ok(r) => Response::Rendered(r),
        Err(e) => Response::Failed(e),
    }
}

fn parse_digest(hex_digest: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_digest).ok()?;
    bytes.try_into().ok()
}

/// Reads one frame; `None` at a clean end of input.
fn read_frame(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is too large"),
        ));
    }
    let mut buf = vec![0u8; len];
    input.read_exact(&mut buf)?;
    Ok(Some(buf))
}

fn write_frame(output: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("frame too large"))?;
    output.write_all(&len.to_le_bytes())?;
    output.write_all(bytes)
}

/// Caps the address space and turns off core dumps (a worker that runs out
/// of memory aborts). A worker whose server is gone reads the end of its
/// input and exits; one busy with a runaway render is killed by the server
/// at the time limit, or aborts at the memory cap.
#[cfg(unix)]
fn confine(memory_limit_mb: u64) -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let bytes = memory_limit_mb.saturating_mul(1024 * 1024);
    setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })?;
    setrlimit(Resource::As, Rlimit { current: Some(bytes), maximum: Some(bytes) })?;
    Ok(())
}

#[cfg(not(unix))]
fn confine(_memory_limit_mb: u64) -> io::Result<()> {
    Err(io::Error::other("render workers need a Unix system; set [render] isolation = \"none\""))
}
