//! `render`, `outcome`, `metrics`, `prompt`.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::{parse_vars, piped_stdin, read_json};
use crate::client::{CliError, Client, Result, seg};
use crate::output::{Out, list, s, time};

#[derive(Debug, Args)]
pub struct RenderArgs {
    pub name: String,
    #[arg(long, conflicts_with = "version")]
    pub label: Option<String>,
    #[arg(long)]
    pub version: Option<String>,
    /// A parameter: key=text, or key:=json for numbers, lists, objects.
    #[arg(long = "var", short = 'v')]
    pub vars: Vec<String>,
    /// JSON file with the parameters (`-` for stdin). Without this and without --var, a JSON object piped in is read.
    #[arg(long)]
    pub vars_file: Option<PathBuf>,
    /// JSON file with chat placeholders: {"history": [{"role", "content"}, …]}.
    #[arg(long)]
    pub placeholders_file: Option<PathBuf>,
    #[arg(long)]
    pub session_id: Option<String>,
    #[arg(long)]
    pub agent_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct OutcomeArgs {
    /// The prompt id a render printed.
    pub prompt_id: String,
    #[arg(long, conflicts_with = "failure", required_unless_present = "failure")]
    pub success: bool,
    #[arg(long)]
    pub failure: bool,
    #[arg(long)]
    pub detail: Option<String>,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PromptArgs {
    pub prompt_id: String,
}

pub async fn render(c: &Client, out: Out, a: RenderArgs) -> Result<()> {
    let mut params = match &a.vars_file {
        Some(path) => read_json(path)?,
        None if a.vars.is_empty() => match piped_stdin()? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                CliError::invalid(format!("standard input is not a JSON object of parameters: {e}"))
            })?,
            None => json!({}),
        },
        None => json!({}),
    };
    let Some(obj) = params.as_object_mut() else {
        return Err(CliError::invalid("the parameters must be a JSON object"));
    };
    obj.extend(parse_vars(&a.vars)?);
    let mut body = json!({"parameters": params});
    if let Some(l) = a.label {
        body["label"] = Value::String(l);
    }
    if let Some(v) = a.version {
        body["version"] = v.parse::<u64>().map_or(Value::String(v), |n| json!(n));
    }
    if let Some(p) = a.placeholders_file {
        body["placeholders"] = read_json(&p)?;
    }
    if let Some(sid) = a.session_id {
        body["session_id"] = Value::String(sid);
    }
    if let Some(aid) = a.agent_id {
        body["agent_id"] = Value::String(aid);
    }
    let r = c.post(&format!("/templates/{}/render", seg(&a.name)), &body).await?;
    out.show(&r.body, |b| {
        if let Some(text) = b["text"].as_str() {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        } else {
            for m in list(b, "messages") {
                println!("[{}] {}", s(m, "role"), s(m, "content"));
            }
        }
        for w in list(b, "warnings") {
            out.warn(w.as_str().unwrap_or_default());
        }
        eprintln!(
            "prompt {} · {} v{} ({})",
            s(b, "prompt_id"),
            s(b, "template"),
            s(b, "version_seq"),
            s(b, "version")
        );
    });
    Ok(())
}

pub async fn outcome(c: &Client, out: Out, a: OutcomeArgs) -> Result<()> {
    let mut body = json!({"success": a.success && !a.failure});
    if let Some(d) = a.detail {
        body["detail"] = Value::String(d);
    }
    c.post(&format!("/prompts/{}/outcome", seg(&a.prompt_id)), &body).await?;
    if !out.json {
        println!("recorded {} for {}", if a.success { "success" } else { "failure" }, a.prompt_id);
    }
    Ok(())
}

fn rate(v: &Value) -> String {
    v["success_rate"].as_f64().map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

pub async fn metrics(c: &Client, out: Out, a: MetricsArgs) -> Result<()> {
    let r = c.get(&format!("/templates/{}/metrics", seg(&a.name))).await?;
    out.show(&r.body, |b| {
        let mut rows = vec![vec![
            "all".to_owned(),
            s(&b["total"], "times_used"),
            time(&b["total"], "last_used"),
            rate(&b["total"]),
        ]];
        rows.extend(list(b, "versions").iter().map(|v| {
            vec![format!("v{}", s(v, "version_seq")), s(v, "times_used"), time(v, "last_used"), rate(v)]
        }));
        out.table(&["version", "used", "last used", "success"], rows);
    });
    Ok(())
}

pub async fn prompt(c: &Client, out: Out, a: PromptArgs) -> Result<()> {
    let r = c.get(&format!("/prompts/{}", seg(&a.prompt_id))).await?;
    out.show(&r.body, |p| {
        out.fields(&[
            ("id", s(p, "id")),
            ("version", format!("v{}", s(p, "version_seq"))),
            ("when", time(p, "created_at")),
            ("deployment", s(p, "deployment_model")),
            ("session", s(p, "session_id")),
            ("agent", s(p, "agent_id")),
            (
                "outcome",
                p["outcome"]["success"]
                    .as_bool()
                    .map_or("-".into(), |ok| if ok { "success".into() } else { "failure".into() }),
            ),
            ("parameters", p["data"].to_string()),
        ]);
        println!("\n{}", s(p, "prompt_text"));
    });
    Ok(())
}
