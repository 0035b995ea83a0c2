//! `versions`, `labels` and `rollback`.

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::catalog::ContentArgs;
use crate::client::{CliError, Client, Result, seg};
use crate::output::{Out, list, s, time};

#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    /// List versions, newest first.
    List {
        name: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue from a previous page's cursor.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Follow every page.
        #[arg(long)]
        all: bool,
    },
    /// Show one version (number or semantic version).
    Show { name: String, version: String },
    /// Create a version; its semantic version is computed from the change.
    Create(CreateVersionArgs),
    /// Edit the newest version while it is a draft.
    Edit(EditVersionArgs),
    /// Compare two versions (default: the newest against the one before).
    Diff {
        name: String,
        /// Older side.
        from: Option<String>,
        /// Newer side.
        to: Option<String>,
    },
    /// Delete a draft no label points at.
    Delete { name: String, version: String },
}

#[derive(Debug, Args)]
pub struct CreateVersionArgs {
    pub name: String,
    #[command(flatten)]
    pub content: ContentArgs,
    /// Ask for a larger bump than the change needs: patch, minor, major.
    #[arg(long)]
    pub bump: Option<String>,
    /// The version you built on; refused if a newer one exists.
    #[arg(long)]
    pub base: Option<u32>,
}

#[derive(Debug, Args)]
pub struct EditVersionArgs {
    pub name: String,
    pub version: String,
    #[command(flatten)]
    pub content: ContentArgs,
    #[arg(long)]
    pub bump: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LabelCommand {
    /// List labels, `latest` included.
    List { name: String },
    /// Point a label at a version.
    Set { name: String, label: String, version: String },
    /// Remove a label.
    Remove { name: String, label: String },
    /// Show a label and where it pointed before.
    History { name: String, label: String },
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    pub name: String,
    /// Move this label back (to --to, or to where it pointed before).
    #[arg(long, conflicts_with = "from", required_unless_present = "from")]
    pub label: Option<String>,
    /// With --label: the version to point it at.
    #[arg(long, requires = "label")]
    pub to: Option<String>,
    /// Create a new version with this version's content instead.
    #[arg(long)]
    pub from: Option<String>,
    /// With --from: what changed.
    #[arg(long, short, requires = "from")]
    pub message: Option<String>,
}

/// A version argument as JSON: a number stays a number.
fn version_value(v: &str) -> Value {
    v.parse::<u64>().map_or_else(|_| Value::String(v.to_owned()), |n| json!(n))
}

pub fn print_content(out: Out, v: &Value) {
    if let Some(text) = v["template_text"].as_str() {
        out.heading("template");
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    } else {
        out.heading("messages");
        for m in list(v, "messages") {
            if m["type"] == "placeholder" {
                println!("[placeholder: {}]", s(m, "name"));
            } else {
                println!("[{}] {}", s(m, "role"), s(m, "content"));
            }
        }
    }
    out.heading("parameter schema");
    println!("{}", serde_json::to_string_pretty(&v["parameter_schema"]).unwrap_or_default());
    if v["config"].as_object().is_some_and(|c| !c.is_empty()) {
        out.heading("config");
        println!("{}", serde_json::to_string_pretty(&v["config"]).unwrap_or_default());
    }
}

fn print_written(out: Out, b: &Value, verb: &str) {
    let v = &b["version"];
    println!(
        "{verb} {} version {} ({}, {} bump), a draft",
        s(b, "template"),
        s(v, "seq"),
        s(v, "version"),
        s(v, "bump")
    );
    for c in list(b, "changes") {
        println!("  {:5}  {}", s(c, "impact"), s(c, "summary"));
    }
    for w in list(b, "warnings") {
        out.warn(w.as_str().unwrap_or_default());
    }
}

pub async fn versions(c: &Client, out: Out, cmd: VersionCommand) -> Result<()> {
    match cmd {
        VersionCommand::List { name, limit, mut cursor, all } => {
            let base = format!("/templates/{}/versions?limit={limit}", seg(&name));
            let mut items = Vec::new();
            let mut page;
            loop {
                let path = match &cursor {
                    Some(cur) => format!("{base}&cursor={}", seg(cur)),
                    None => base.clone(),
                };
                page = c.get(&path).await?.body;
                items.extend(list(&page, "items").iter().cloned());
                cursor = page.get("next_cursor").and_then(Value::as_str).map(str::to_owned);
                if !all || cursor.is_none() {
                    break;
                }
            }
            page["items"] = Value::Array(items);
            out.show(&page, |b| {
                let rows = list(b, "items")
                    .iter()
                    .map(|v| {
                        vec![
                            s(v, "seq"),
                            s(v, "version"),
                            s(v, "status"),
                            s(v, "bump"),
                            time(v, "created_at"),
                            s(v, "change_description"),
                        ]
                    })
                    .collect();
                out.table(&["#", "version", "status", "bump", "created", "change"], rows);
                if let Some(n) = b["next_cursor"].as_str() {
                    eprintln!("more: --cursor {n}  (or --all)");
                }
            });
        }
        VersionCommand::Show { name, version } => {
            let r = c.get(&format!("/templates/{}/versions/{}", seg(&name), seg(&version))).await?;
            out.show(&r.body, |v| {
                out.fields(&[
                    ("version", format!("v{} ({})", s(v, "seq"), s(v, "version"))),
                    ("status", s(v, "status")),
                    ("bump", s(v, "bump")),
                    ("hash", s(v, "content_hash")),
                    ("created", time(v, "created_at")),
                    ("change", s(v, "change_description")),
                ]);
                println!();
                print_content(out, v);
            });
        }
        VersionCommand::Create(a) => {
            let mut body = Map::new();
            a.content.fill(&mut body, false)?;
            if let Some(b) = a.bump {
                body.insert("bump".into(), Value::String(b));
            }
            if let Some(base) = a.base {
                body.insert("base_version".into(), json!(base));
            }
            let r = c.post(&format!("/templates/{}/versions", seg(&a.name)), &Value::Object(body)).await?;
            out.show(&r.body, |b| print_written(out, b, "created"));
        }
        VersionCommand::Edit(a) => {
            let path = format!("/templates/{}/versions/{}", seg(&a.name), seg(&a.version));
            let current = c.get(&path).await?;
            let mut body = Map::new();
            a.content.fill(&mut body, false)?;
            if let Some(b) = a.bump {
                body.insert("bump".into(), Value::String(b));
            }
            let r = c.patch(&path, &Value::Object(body), current.etag.as_deref()).await?;
            out.show(&r.body, |b| print_written(out, b, "edited"));
        }
        VersionCommand::Diff { name, from, to } => {
            let mut q = Vec::new();
            if let Some(f) = &from {
                q.push(format!("from={}", seg(f)));
            }
            if let Some(t) = &to {
                q.push(format!("to={}", seg(t)));
            }
            let r = c.get(&format!("/templates/{}/diff?{}", seg(&name), q.join("&"))).await?;
            out.show(&r.body, |d| {
                if d["text_diff"].as_str().is_some_and(|t| !t.is_empty()) {
                    out.diff(d["text_diff"].as_str().unwrap_or_default());
                }
                if d["config_diff"].as_str().is_some_and(|t| !t.is_empty()) {
                    out.diff(d["config_diff"].as_str().unwrap_or_default());
                }
                let changes = list(d, "changes");
                if changes.is_empty() {
                    println!("no changes");
                } else {
                    out.heading(&format!("changes (at least a {} bump)", s(d, "required_bump")));
                    for ch in changes {
                        println!("  {:5}  {}", s(ch, "impact"), s(ch, "summary"));
                    }
                }
            });
        }
        VersionCommand::Delete { name, version } => {
            let path = format!("/templates/{}/versions/{}", seg(&name), seg(&version));
            let current = c.get(&path).await?;
            c.delete(&path, current.etag.as_deref()).await?;
            if !out.json {
                println!("deleted version {version} of {name}");
            }
        }
    }
    Ok(())
}

pub async fn labels(c: &Client, out: Out, cmd: LabelCommand) -> Result<()> {
    match cmd {
        LabelCommand::List { name } => {
            let r = c.get(&format!("/templates/{}/labels", seg(&name))).await?;
            out.show(&r.body, |b| {
                let rows = list(b, "items")
                    .iter()
                    .map(|l| {
                        vec![
                            s(l, "name"),
                            format!("v{} ({})", s(l, "version_seq"), s(l, "version")),
                            if l["automatic"] == true { "automatic".into() } else { time(l, "updated_at") },
                        ]
                    })
                    .collect();
                out.table(&["label", "version", "moved"], rows);
            });
        }
        LabelCommand::Set { name, label, version } => {
            let r = c
                .put(
                    &format!("/templates/{}/labels/{}", seg(&name), seg(&label)),
                    &json!({"version": version_value(&version)}),
                )
                .await?;
            out.show(&r.body, |l| {
                println!("{} of {name} → v{} ({})", s(l, "name"), s(l, "version_seq"), s(l, "version"))
            });
        }
        LabelCommand::Remove { name, label } => {
            c.delete(&format!("/templates/{}/labels/{}", seg(&name), seg(&label)), None).await?;
            if !out.json {
                println!("removed label {label} from {name}");
            }
        }
        LabelCommand::History { name, label } => {
            let r = c.get(&format!("/templates/{}/labels/{}", seg(&name), seg(&label))).await?;
            out.show(&r.body, |b| {
                let l = &b["label"];
                println!("{} → v{} ({})", s(l, "name"), s(l, "version_seq"), s(l, "version"));
                let rows = list(b, "history")
                    .iter()
                    .map(|m| vec![time(m, "at"), s(m, "from_version"), s(m, "to_version"), s(m, "by")])
                    .collect();
                out.table(&["when", "from", "to", "by"], rows);
            });
        }
    }
    Ok(())
}

pub async fn rollback(c: &Client, out: Out, a: RollbackArgs) -> Result<()> {
    let body = match (&a.label, &a.from) {
        (Some(label), None) => {
            let mut b = json!({"strategy": "move_label", "label": label});
            if let Some(to) = &a.to {
                b["to_version"] = version_value(to);
            }
            b
        }
        (None, Some(from)) => {
            let mut b = json!({"strategy": "new_version", "from_version": version_value(from)});
            if let Some(m) = &a.message {
                b["change_description"] = Value::String(m.clone());
            }
            b
        }
        _ => {
            return Err(CliError::usage(
                "give --label (move a label back) or --from (restore as a new version)",
            ));
        }
    };
    let r = c.post(&format!("/templates/{}/rollback", seg(&a.name)), &body).await?;
    out.show(&r.body, |b| match b["strategy"].as_str() {
        Some("move_label") => {
            let l = &b["label"];
            println!("{} of {} → v{} ({})", s(l, "name"), a.name, s(l, "version_seq"), s(l, "version"));
        }
        _ => print_written(out, &b["version"], "restored as"),
    });
    Ok(())
}
