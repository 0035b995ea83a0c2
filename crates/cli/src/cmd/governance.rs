//! `workflows` and `checks`: approval workflows and compliance checks.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use promptvault_core::compliance::parse_checks_toml;
use promptvault_core::workflow::parse_workflows_toml;
use reqwest::Method;
use serde_json::Value;

use super::read_source;
use crate::client::{CliError, Client, Result, exit, seg};
use crate::output::{Out, list, s, time};

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// The workflows in force: stored ones, then the defaults still in use.
    List,
    /// Show a workflow and its steps.
    Show { name: String },
    /// Create or replace workflows from a file: TOML (`[[workflow]]` with
    /// `[[workflow.step]]`, as the workflows file) or JSON (one workflow or
    /// a list); `-` reads standard input.
    Set {
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Delete a stored workflow (the defaults take over its classifications).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// The built-in checks as configured, then the custom ones.
    List,
    /// Show a check.
    Show { key: String },
    /// Create or replace custom checks from a file: TOML (`[[check]]`, as
    /// the checks file) or JSON (one check or a list); `-` reads standard
    /// input.
    Set {
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Delete a custom check.
    Delete { key: String },
}

/// What `set` sends: one JSON body per definition. A `.toml` file is TOML,
/// a `.json` file JSON; anything else (standard input) is JSON when it
/// parses as JSON, else TOML.
fn definitions(path: &Path, from_toml: impl FnOnce(&str) -> Result<Vec<Value>>) -> Result<Vec<Value>> {
    let text = read_source(path)?;
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let json = match extension.as_deref() {
        Some("toml") => return from_toml(&text),
        Some("json") => serde_json::from_str::<Value>(&text)
            .map_err(|e| CliError::invalid(format!("{} is not valid JSON: {e}", path.display())))?,
        _ => match serde_json::from_str::<Value>(&text) {
            Ok(v) => v,
            Err(_) => return from_toml(&text),
        },
    };
    Ok(match json {
        Value::Array(items) => items,
        one => vec![one],
    })
}

fn to_json<T: serde::Serialize>(items: Vec<T>) -> Vec<Value> {
    items.into_iter().filter_map(|d| serde_json::to_value(d).ok()).collect()
}

/// Replaces the stored definition at `path` (with its revision as
/// `If-Match`), or creates it at `collection` when nothing is stored.
async fn upsert(c: &Client, collection: &str, key: &str, etag_kind: &str, body: &Value) -> Result<Value> {
    let path = format!("{collection}/{}", seg(key));
    let stored = match c.get(&path).await {
        Ok(r) => r.body["revision"].as_i64(),
        Err(e) if e.code == exit::NOT_FOUND => None,
        Err(e) => return Err(e),
    };
    let reply = match stored {
        Some(rev) => {
            let tag = format!("\"{etag_kind}-{rev}\"");
            c.send(Method::PUT, &path, Some(body), Some(&tag)).await?
        }
        None => c.post(collection, body).await?,
    };
    Ok(reply.body)
}

fn steps(w: &Value) -> String {
    list(w, "steps")
        .iter()
        .map(|st| {
            let roles: Vec<String> =
                list(st, "approver_roles").iter().filter_map(|r| r.as_str().map(str::to_owned)).collect();
            let sla = st["sla_hours"].as_u64().map(|h| format!(", {h}h")).unwrap_or_default();
            format!(
                "{}: {} x{}{sla}",
                s(st, "name"),
                roles.join("|"),
                st["required_approvals"].as_u64().unwrap_or(1)
            )
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn joined(v: &Value, key: &str) -> String {
    list(v, key).iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
}

fn workflow_rows(w: &Value) -> Vec<Vec<String>> {
    vec![vec![s(w, "name"), s(w, "source"), joined(w, "classifications"), steps(w)]]
}

const WORKFLOW_HEADER: [&str; 4] = ["name", "source", "classifications", "steps"];

pub async fn workflows(c: &Client, out: Out, cmd: WorkflowCommand) -> Result<()> {
    match cmd {
        WorkflowCommand::List => {
            let r = c.get("/workflows").await?;
            out.show(&r.body, |b| {
                out.table(&WORKFLOW_HEADER, list(b, "items").iter().flat_map(workflow_rows).collect());
                let uncovered = joined(b, "uncovered");
                if !uncovered.is_empty() {
                    out.warn(&format!(
                        "no workflow governs: {uncovered} (their versions cannot be approved)"
                    ));
                }
            });
        }
        WorkflowCommand::Show { name } => {
            let r = c.get(&format!("/workflows/{}", seg(&name))).await?;
            out.show(&r.body, |w| {
                out.fields(&[
                    ("name", s(w, "name")),
                    ("description", s(w, "description")),
                    ("source", s(w, "source")),
                    ("classifications", joined(w, "classifications")),
                    ("revision", w["revision"].as_i64().map(|r| r.to_string()).unwrap_or_default()),
                    ("updated", time(w, "updated_at")),
                ]);
                let rows = list(w, "steps")
                    .iter()
                    .map(|st| {
                        vec![
                            s(st, "name"),
                            joined(st, "approver_roles"),
                            st["required_approvals"].to_string(),
                            st["sla_hours"].as_u64().map(|h| h.to_string()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                out.table(&["step", "approver roles", "approvals", "sla hours"], rows);
            });
        }
        WorkflowCommand::Set { file } => {
            let defs = definitions(&file, |text| {
                let defs = parse_workflows_toml(text)
                    .map_err(|e| CliError::invalid(format!("{}: {e}", file.display())))?;
                Ok(to_json(defs))
            })?;
            let mut results = Vec::new();
            for def in defs {
                let name = def["name"].as_str().map(str::to_owned).ok_or_else(|| {
                    CliError::invalid(format!("{}: every workflow needs a \"name\"", file.display()))
                })?;
                results.push(upsert(c, "/workflows", &name, "wf", &def).await?);
            }
            let body = Value::Array(results);
            out.show(&body, |b| {
                out.table(
                    &WORKFLOW_HEADER,
                    b.as_array().into_iter().flatten().flat_map(workflow_rows).collect(),
                );
            });
        }
        WorkflowCommand::Delete { name } => {
            c.delete(&format!("/workflows/{}", seg(&name)), None).await?;
            if !out.json {
                println!("deleted workflow {name}");
            }
        }
    }
    Ok(())
}

/// What a check verifies, in a few words.
fn what(ch: &Value) -> String {
    if let Some(rule) = ch["rule"].as_object() {
        let detail = ["pattern", "chars", "tokens", "phrases"]
            .iter()
            .find_map(|k| rule.get(*k))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default();
        return format!("{} {detail}", rule.get("kind").and_then(Value::as_str).unwrap_or("?"))
            .trim()
            .to_owned();
    }
    ch["config"]
        .as_object()
        .map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn check_rows(ch: &Value) -> Vec<Vec<String>> {
    let applies = joined(ch, "applies_to");
    vec![vec![
        s(ch, "key"),
        s(ch, "source"),
        s(ch, "severity"),
        if ch["enabled"].as_bool() == Some(false) { "no".into() } else { "yes".into() },
        if applies.is_empty() { "all types".into() } else { applies },
        what(ch),
    ]]
}

const CHECK_HEADER: [&str; 6] = ["key", "source", "severity", "enabled", "applies to", "what"];

pub async fn checks(c: &Client, out: Out, cmd: CheckCommand) -> Result<()> {
    match cmd {
        CheckCommand::List => {
            let r = c.get("/checks").await?;
            out.show(&r.body, |b| {
                out.table(&CHECK_HEADER, list(b, "items").iter().flat_map(check_rows).collect())
            });
        }
        CheckCommand::Show { key } => {
            let r = c.get(&format!("/checks/{}", seg(&key))).await?;
            out.show(&r.body, |ch| {
                let detail = if ch["rule"].is_object() { &ch["rule"] } else { &ch["config"] };
                out.fields(&[
                    ("key", s(ch, "key")),
                    ("name", s(ch, "name")),
                    ("description", s(ch, "description")),
                    ("source", s(ch, "source")),
                    ("severity", s(ch, "severity")),
                    ("enabled", ch["enabled"].to_string()),
                    ("applies to", joined(ch, "applies_to")),
                    (if ch["rule"].is_object() { "rule" } else { "config" }, detail.to_string()),
                    ("revision", ch["revision"].as_i64().map(|r| r.to_string()).unwrap_or_default()),
                ]);
            });
        }
        CheckCommand::Set { file } => {
            let defs = definitions(&file, |text| {
                let defs = parse_checks_toml(text)
                    .map_err(|e| CliError::invalid(format!("{}: {e}", file.display())))?;
                Ok(to_json(defs))
            })?;
            let mut results = Vec::new();
            for def in defs {
                let key = def["key"].as_str().map(str::to_owned).ok_or_else(|| {
                    CliError::invalid(format!("{}: every check needs a \"key\"", file.display()))
                })?;
                results.push(upsert(c, "/checks", &key, "chk", &def).await?);
            }
            let body = Value::Array(results);
            out.show(&body, |b| {
                out.table(&CHECK_HEADER, b.as_array().into_iter().flatten().flat_map(check_rows).collect());
            });
        }
        CheckCommand::Delete { key } => {
            c.delete(&format!("/checks/{}", seg(&key)), None).await?;
            if !out.json {
                println!("deleted check {key}");
            }
        }
    }
    Ok(())
}
