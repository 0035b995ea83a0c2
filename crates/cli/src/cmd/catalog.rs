//! `types` and `templates`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use promptvault_core::render::analyze_body;
use promptvault_core::{ChatItem, ParameterSchema, TemplateBody};
use serde_json::{Map, Value, json};

use super::{piped_stdin, read_json, read_source};
use crate::client::{CliError, Client, Result, seg};
use crate::output::{Out, list, s, time};

#[derive(Debug, Subcommand)]
pub enum TypeCommand {
    /// List prompt types.
    List,
    /// Show one prompt type.
    Show { key: String },
    /// Create a prompt type.
    Create {
        key: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// JSON file with the parameter contract ({"properties":…, "required":…}).
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Change a prompt type.
    Update {
        key: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, conflicts_with = "no_schema")]
        schema: Option<PathBuf>,
        /// Remove the parameter contract.
        #[arg(long)]
        no_schema: bool,
    },
    /// Delete a prompt type no template uses.
    Delete { key: String },
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List templates (filters combine).
    List(ListArgs),
    /// Search templates by words in name, description, tags and text.
    Search {
        query: String,
        #[command(flatten)]
        filters: ListArgs,
    },
    /// Show a template with one version (default label unless told).
    Show {
        name: String,
        #[arg(long, conflicts_with = "version")]
        label: Option<String>,
        #[arg(long)]
        version: Option<String>,
    },
    /// Create a template with its first version.
    Create(CreateArgs),
    /// Change a template's metadata.
    Update(UpdateArgs),
    /// Delete a template with its versions and labels.
    Delete { name: String },
}

#[derive(Debug, Args, Default)]
pub struct ListArgs {
    /// Prompt type key.
    #[arg(long = "type")]
    pub type_key: Option<String>,
    #[arg(long)]
    pub tag: Option<String>,
    /// Templates with a version in this status.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub classification: Option<String>,
    /// Owner user id.
    #[arg(long)]
    pub owner: Option<String>,
    /// Folder prefix (`support` lists `support/…`).
    #[arg(long)]
    pub folder: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue from a previous page's cursor.
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
}

/// Content flags shared by `templates create` and `versions create`.
#[derive(Debug, Args, Default)]
pub struct ContentArgs {
    /// The template: a text file, or for --chat a JSON list of messages; `-` reads stdin, and so does piped input when --file is absent.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// The file holds chat messages (JSON).
    #[arg(long)]
    pub chat: bool,
    /// JSON Schema file declaring the parameters.
    #[arg(long, conflicts_with = "infer_schema")]
    pub schema: Option<PathBuf>,
    /// Declare every variable the template uses as a required string.
    #[arg(long)]
    pub infer_schema: bool,
    /// JSON file with the config (model, temperature, …).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// What changed, for the version history.
    #[arg(long, short)]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Unique name; `/` makes folders.
    pub name: String,
    #[command(flatten)]
    pub content: ContentArgs,
    /// Prompt type key.
    #[arg(long = "type", default_value = "general")]
    pub type_key: String,
    #[arg(long)]
    pub description: Option<String>,
    /// Markdown file with the long description.
    #[arg(long)]
    pub long_description: Option<PathBuf>,
    /// A tag (repeat for more).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// public, internal, confidential or restricted.
    #[arg(long)]
    pub classification: Option<String>,
    /// May be delivered to the desktop deployments (electron_local,
    /// electron_remote) where the classification rules ask for this mark.
    #[arg(long)]
    pub offline_allowed: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    pub name: String,
    #[arg(long)]
    pub description: Option<String>,
    /// Markdown file with the long description.
    #[arg(long)]
    pub long_description: Option<PathBuf>,
    /// Replace the tags (repeat for more).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Remove every tag.
    #[arg(long, conflicts_with = "tags")]
    pub no_tags: bool,
    #[arg(long)]
    pub classification: Option<String>,
    #[arg(long = "type")]
    pub type_key: Option<String>,
    /// Owner user id.
    #[arg(long)]
    pub owner: Option<String>,
    /// Mark the template offline-allowed (true) or not (false): whether the
    /// desktop deployments may receive it where the classification rules
    /// ask for the mark.
    #[arg(long, value_name = "BOOL")]
    pub offline_allowed: Option<bool>,
}

impl ContentArgs {
    /// Adds `template_text`/`messages`, `parameter_schema` and `config` to `body`.
    /// Without a file (and nothing piped) the content is left out, so the
    /// server keeps the newest version's.
    pub fn fill(&self, body: &mut Map<String, Value>, required: bool) -> Result<()> {
        let source = match &self.file {
            Some(path) => Some(read_source(path)?),
            None => piped_stdin()?,
        };
        let parsed = match source {
            None if required => {
                return Err(CliError::usage("give the template with --file PATH (or pipe it in)"));
            }
            None => None,
            Some(text) if self.chat => {
                let items: Value = serde_json::from_str(&text)
                    .map_err(|e| CliError::invalid(format!("--chat expects a JSON list of messages: {e}")))?;
                let parsed: Vec<ChatItem> = serde_json::from_value(items.clone())
                    .map_err(|e| CliError::invalid(format!("invalid chat messages: {e}")))?;
                body.insert("messages".into(), items);
                Some(TemplateBody::Chat(parsed))
            }
            Some(text) => {
                body.insert("template_text".into(), Value::String(text.clone()));
                Some(TemplateBody::Text(text))
            }
        };
        if let Some(path) = &self.schema {
            body.insert("parameter_schema".into(), read_json(path)?);
        } else if self.infer_schema {
            let Some(b) = &parsed else {
                return Err(CliError::usage("--infer-schema needs the template (--file)"));
            };
            let analysis = analyze_body(b).map_err(|e| CliError::invalid(e.to_string()))?;
            let schema = ParameterSchema::inferred(analysis.variables.iter().map(String::as_str));
            body.insert("parameter_schema".into(), schema.as_value().clone());
        }
        if let Some(path) = &self.config {
            body.insert("config".into(), read_json(path)?);
        }
        if let Some(m) = &self.message {
            body.insert("change_description".into(), Value::String(m.clone()));
        }
        Ok(())
    }
}

pub async fn types(c: &Client, out: Out, cmd: TypeCommand) -> Result<()> {
    match cmd {
        TypeCommand::List => {
            let r = c.get("/prompt-types").await?;
            out.show(&r.body, |b| {
                let rows = list(b, "items")
                    .iter()
                    .map(|t| {
                        vec![
                            s(t, "key"),
                            s(t, "name"),
                            if t["schema"].is_null() { "no".into() } else { "yes".into() },
                            time(t, "created_at"),
                        ]
                    })
                    .collect();
                out.table(&["key", "name", "contract", "created"], rows);
            });
        }
        TypeCommand::Show { key } => {
            let r = c.get(&format!("/prompt-types/{}", seg(&key))).await?;
            out.show(&r.body, |t| show_type(out, t));
        }
        TypeCommand::Create { key, name, schema } => {
            let mut body = json!({"key": key, "name": name});
            if let Some(p) = schema {
                body["schema"] = read_json(&p)?;
            }
            let r = c.post("/prompt-types", &body).await?;
            out.show(&r.body, |t| {
                println!("created prompt type {}", s(t, "key"));
            });
        }
        TypeCommand::Update { key, name, schema, no_schema } => {
            if name.is_none() && schema.is_none() && !no_schema {
                return Err(CliError::usage("nothing to change: give --name, --schema or --no-schema"));
            }
            let path = format!("/prompt-types/{}", seg(&key));
            let current = c.get(&path).await?;
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = Value::String(n);
            }
            if let Some(p) = schema {
                body["schema"] = read_json(&p)?;
            } else if no_schema {
                body["schema"] = Value::Null;
            }
            let r = c.patch(&path, &body, current.etag.as_deref()).await?;
            out.show(&r.body, |t| show_type(out, t));
        }
        TypeCommand::Delete { key } => {
            let path = format!("/prompt-types/{}", seg(&key));
            let current = c.get(&path).await?;
            c.delete(&path, current.etag.as_deref()).await?;
            if !out.json {
                println!("deleted prompt type {key}");
            }
        }
    }
    Ok(())
}

fn show_type(out: Out, t: &Value) {
    out.fields(&[
        ("key", s(t, "key")),
        ("name", s(t, "name")),
        ("created", time(t, "created_at")),
        ("revision", s(t, "revision")),
    ]);
    if !t["schema"].is_null() {
        println!("\ncontract:\n{}", serde_json::to_string_pretty(&t["schema"]).unwrap_or_default());
    }
}

fn list_query(a: &ListArgs, q: Option<&str>) -> String {
    let mut parts = vec![format!("limit={}", a.limit)];
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={}", seg(v)));
        }
    };
    add("type", &a.type_key);
    add("tag", &a.tag);
    add("status", &a.status);
    add("classification", &a.classification);
    add("owner", &a.owner);
    add("folder", &a.folder);
    add("q", &q.map(str::to_owned));
    parts.join("&")
}

async fn list_templates(c: &Client, out: Out, a: &ListArgs, q: Option<&str>) -> Result<()> {
    let base = format!("/templates?{}", list_query(a, q));
    let mut cursor = a.cursor.clone();
    let mut items = Vec::new();
    let mut next;
    loop {
        let path = match &cursor {
            Some(cur) => format!("{base}&cursor={}", seg(cur)),
            None => base.clone(),
        };
        let r = c.get(&path).await?;
        items.extend(list(&r.body, "items").iter().cloned());
        next = r.body.get("next_cursor").and_then(Value::as_str).map(str::to_owned);
        if !a.all || next.is_none() {
            break;
        }
        cursor = next.clone();
    }
    let body = json!({"items": items, "next_cursor": next});
    out.show(&body, |b| {
        let rows = list(b, "items")
            .iter()
            .map(|t| {
                vec![
                    s(t, "name"),
                    format!("v{} ({})", s(&t["latest"], "seq"), s(&t["latest"], "version")),
                    s(t, "type"),
                    s(t, "security_classification"),
                    list(t, "tags").iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
                    s(t, "description"),
                ]
            })
            .collect();
        out.table(&["name", "latest", "type", "class", "tags", "description"], rows);
        if let Some(n) = b["next_cursor"].as_str() {
            eprintln!("more: --cursor {n}  (or --all)");
        }
    });
    Ok(())
}

pub async fn templates(c: &Client, out: Out, cmd: TemplateCommand) -> Result<()> {
    match cmd {
        TemplateCommand::List(a) => list_templates(c, out, &a, None).await?,
        TemplateCommand::Search { query, filters } => list_templates(c, out, &filters, Some(&query)).await?,
        TemplateCommand::Show { name, label, version } => {
            let mut path = format!("/templates/{}", seg(&name));
            if let Some(l) = label {
                path.push_str(&format!("?label={}", seg(&l)));
            } else if let Some(v) = version {
                path.push_str(&format!("?version={}", seg(&v)));
            }
            let r = c.get(&path).await?;
            out.show(&r.body, |t| show_template(out, t));
        }
        TemplateCommand::Create(a) => {
            let mut body = Map::new();
            body.insert("name".into(), Value::String(a.name.clone()));
            body.insert("type".into(), Value::String(a.type_key));
            if let Some(d) = a.description {
                body.insert("description".into(), Value::String(d));
            }
            if let Some(p) = a.long_description {
                body.insert("long_description_markdown".into(), Value::String(read_source(&p)?));
            }
            body.insert("tags".into(), json!(a.tags));
            if let Some(cl) = a.classification {
                body.insert("security_classification".into(), Value::String(cl));
            }
            if a.offline_allowed {
                body.insert("access".into(), json!({"offline_allowed": true}));
            }
            a.content.fill(&mut body, true)?;
            let r = c.post("/templates", &Value::Object(body)).await?;
            out.show(&r.body, |b| {
                let t = &b["template"];
                println!("created {} version 1 ({}), a draft", s(t, "name"), s(&t["version"], "version"));
                for w in list(b, "warnings") {
                    out.warn(w.as_str().unwrap_or_default());
                }
            });
        }
        TemplateCommand::Update(a) => {
            let path = format!("/templates/{}", seg(&a.name));
            let current = c.get(&format!("{path}?label=latest")).await?;
            let mut body = Map::new();
            if let Some(d) = a.description {
                body.insert("description".into(), Value::String(d));
            }
            if let Some(p) = a.long_description {
                body.insert("long_description_markdown".into(), Value::String(read_source(&p)?));
            }
            if !a.tags.is_empty() || a.no_tags {
                body.insert("tags".into(), json!(a.tags));
            }
            if let Some(cl) = a.classification {
                body.insert("security_classification".into(), Value::String(cl));
            }
            if let Some(t) = a.type_key {
                body.insert("type".into(), Value::String(t));
            }
            if let Some(o) = a.owner {
                body.insert("owner_id".into(), Value::String(o));
            }
            if let Some(offline) = a.offline_allowed {
                // The access settings are replaced as a whole: keep the rest.
                let mut access = match &current.body["access"] {
                    Value::Object(m) => m.clone(),
                    _ => Map::new(),
                };
                access.insert("offline_allowed".into(), Value::Bool(offline));
                body.insert("access".into(), Value::Object(access));
            }
            if body.is_empty() {
                return Err(CliError::usage(
                    "nothing to change: give --description, --tag, --classification, --type, --owner or \
                     --offline-allowed",
                ));
            }
            let r = c.patch(&path, &Value::Object(body), current.etag.as_deref()).await?;
            out.show(&r.body, |t| println!("updated {} (revision {})", s(t, "name"), s(t, "revision")));
        }
        TemplateCommand::Delete { name } => {
            let path = format!("/templates/{}", seg(&name));
            let current = c.get(&format!("{path}?label=latest")).await?;
            c.delete(&path, current.etag.as_deref()).await?;
            if !out.json {
                println!("deleted {name}");
            }
        }
    }
    Ok(())
}

/// The access settings in one line (`-` when there are none).
fn access_summary(a: &Value) -> String {
    let mut parts = Vec::new();
    if a["owner_only"].as_bool() == Some(true) {
        parts.push("owner-only".to_owned());
    }
    let roles: Vec<&str> = list(a, "allowed_roles").iter().filter_map(Value::as_str).collect();
    if !roles.is_empty() {
        parts.push(format!("roles {}", roles.join(",")));
    }
    let deps: Vec<&str> = list(a, "restricted_deployments").iter().filter_map(Value::as_str).collect();
    if !deps.is_empty() {
        parts.push(format!("deployments {}", deps.join(",")));
    }
    if a["offline_allowed"].as_bool() == Some(true) {
        parts.push("offline-allowed".to_owned());
    }
    if parts.is_empty() { "-".to_owned() } else { parts.join("; ") }
}

fn show_template(out: Out, t: &Value) {
    let v = &t["version"];
    let labels: Vec<String> =
        list(t, "labels").iter().map(|l| format!("{}→v{}", s(l, "name"), s(l, "version_seq"))).collect();
    out.fields(&[
        ("name", s(t, "name")),
        ("type", s(t, "type")),
        ("description", s(t, "description")),
        ("classification", s(t, "security_classification")),
        ("access", access_summary(&t["access"])),
        ("tags", list(t, "tags").iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")),
        ("labels", labels.join("  ")),
        ("version", format!("v{} ({}), {}", s(v, "seq"), s(v, "version"), s(v, "status"))),
        ("hash", s(v, "content_hash")),
        ("changed", format!("{} — {}", time(v, "created_at"), s(v, "change_description"))),
    ]);
    println!();
    super::versions::print_content(out, v);
}
