//! `submit`, `approve`, `reject`, `deprecate`, `archive`, `restore`,
//! `decisions`, `reviews`.

use clap::Args;
use serde_json::{Value, json};

use crate::client::{Client, Result, seg};
use crate::output::{Out, list, s, time};

#[derive(Debug, Args)]
pub struct DecideArgs {
    pub name: String,
    /// Number or semantic version.
    pub version: String,
    #[arg(long, short = 'm')]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeprecateArgs {
    pub name: String,
    pub version: String,
    /// The version (number) that replaces it.
    #[arg(long)]
    pub replacement: Option<u32>,
    /// End of the deprecation period (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    pub name: String,
    pub version: String,
}

fn path(name: &str, version: &str, verb: &str) -> String {
    format!("/templates/{}/versions/{}/{verb}", seg(name), seg(version))
}

fn report(out: Out, body: &Value) {
    out.show(body, |b| {
        println!("{} v{} is now {}", s(b, "template"), s(&b["version"], "seq"), s(&b["version"], "status"));
        for c in list(b, "checks") {
            if c["passed"].as_bool() == Some(false) {
                out.warn(&format!("{} ({}): {}", s(c, "check"), s(c, "severity"), s(c, "message")));
            }
        }
    });
}

/// `verb` is submit, approve or reject.
pub async fn decide(c: &Client, out: Out, verb: &str, a: DecideArgs) -> Result<()> {
    let r = c.post(&path(&a.name, &a.version, verb), &json!({"comment": a.comment})).await?;
    report(out, &r.body);
    Ok(())
}

pub async fn deprecate(c: &Client, out: Out, a: DeprecateArgs) -> Result<()> {
    let body = json!({"replacement_version": a.replacement, "until": a.until, "reason": a.reason});
    let r = c.post(&path(&a.name, &a.version, "deprecate"), &body).await?;
    report(out, &r.body);
    Ok(())
}

/// `verb` is archive or restore.
pub async fn simple(c: &Client, out: Out, verb: &str, a: VersionArgs) -> Result<()> {
    let r = c.post(&path(&a.name, &a.version, verb), &json!({})).await?;
    report(out, &r.body);
    Ok(())
}

pub async fn decisions(c: &Client, out: Out, a: VersionArgs) -> Result<()> {
    let r = c.get(&path(&a.name, &a.version, "decisions")).await?;
    out.show(&r.body, |b| {
        out.table(
            &["round", "step", "decision", "user", "at", "comment"],
            list(b, "items")
                .iter()
                .map(|d| {
                    vec![
                        s(d, "round"),
                        s(d, "step"),
                        s(d, "decision"),
                        s(d, "user_id"),
                        time(d, "decided_at"),
                        s(d, "comment"),
                    ]
                })
                .collect(),
        );
    });
    Ok(())
}

pub async fn reviews(c: &Client, out: Out) -> Result<()> {
    let r = c.get("/reviews").await?;
    out.show(&r.body, |b| {
        out.table(
            &["template", "version", "class", "step", "approvals", "submitted", "due", "overdue h"],
            list(b, "items")
                .iter()
                .map(|i| {
                    vec![
                        s(i, "template"),
                        s(i, "version_seq"),
                        s(i, "security_classification"),
                        s(i, "current_step"),
                        s(i, "approvals"),
                        time(i, "submitted_at"),
                        time(i, "due_at"),
                        s(i, "overdue_hours"),
                    ]
                })
                .collect(),
        );
    });
    Ok(())
}
