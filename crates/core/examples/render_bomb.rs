//! Renders one template under the default limits and reports the outcome,
//! the wall-clock time and the peak resident memory of the process — the
//! figures in docs/security.md ("Rendering bombs"). Not a test: timings
//! vary by machine.
//!
//! `cargo run -p promptvault-core --example render_bomb -- '<template>'|@file ['<params json>']`

use std::time::Instant;

use promptvault_core::render::{CompiledTemplate, RenderLimits};
use promptvault_core::{ParameterSchema, TemplateBody};
use serde_json::{Map, Value, json};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(mut source) = args.next() else {
        eprintln!("usage: render_bomb '<template>' ['<params json>']");
        std::process::exit(2);
    };
    // `@path` reads the template from a file (arguments are capped at 128 KiB).
    if let Some(path) = source.strip_prefix('@') {
        source = std::fs::read_to_string(path).expect("template file");
    }
    let params: Value = args.next().map_or(json!({}), |p| serde_json::from_str(&p).expect("params are JSON"));
    let started = Instant::now();
    let compiled = CompiledTemplate::compile(
        "bomb",
        &TemplateBody::Text(source),
        &ParameterSchema::default(),
        vec![],
        RenderLimits::default(),
    );
    let outcome = compiled.map(|t| t.render(params, &Map::new()));
    let elapsed = started.elapsed();
    let summary = match outcome {
        Err(e) => format!("compile error: {e}"),
        Ok(Err(e)) => format!("error: {e:?}"),
        Ok(Ok(r)) => format!("ok: {} bytes", r.body.to_text().len()),
    };
    println!(
        "{summary}\ntime: {:.1} ms\npeak rss: {} KiB",
        elapsed.as_secs_f64() * 1e3,
        peak_rss_kib().unwrap_or(0)
    );
}
