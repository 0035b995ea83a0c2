//! `audit list`, `audit export`, `audit verify`.

use std::io::Write as _;

use clap::{Args, Subcommand};

use crate::client::{CliError, Client, Result, exit};
use crate::output::{Out, list, s, time};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List events (oldest first; --desc for newest first).
    List {
        #[command(flatten)]
        filter: AuditFilter,
        /// At most this many events (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        desc: bool,
    },
    /// Write every matching event as JSON Lines, oldest first.
    Export {
        #[command(flatten)]
        filter: AuditFilter,
    },
    /// Check the hash chain; exits 8 and names the first broken event if
    /// anything was edited, deleted or reordered.
    Verify,
}

#[derive(Debug, Args)]
pub struct AuditFilter {
    /// Events of this user id.
    #[arg(long)]
    pub actor: Option<String>,
    /// Actions starting with this, e.g. `template.` or `label.update`.
    #[arg(long)]
    pub action: Option<String>,
    /// `success`, `denied` or `failed`.
    #[arg(long)]
    pub outcome: Option<String>,
    /// A template name, label (`name|label`) or other resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// RFC 3339 time: events at or after it.
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339 time: events before it.
    #[arg(long)]
    pub until: Option<String>,
}

impl AuditFilter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        for (k, v) in [
            ("actor_id", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("resource", &self.resource),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        q
    }
}

fn path(query: &[(&str, String)]) -> String {
    let mut out = String::from("/audit/events?");
    for (i, (k, v)) in query.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&crate::client::seg(v));
    }
    out
}

pub async fn run(c: &Client, out: Out, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::List { filter, limit, desc } => {
            let mut q = filter.query();
            q.push(("limit", limit.to_string()));
            if desc {
                q.push(("order", "desc".into()));
            }
            let r = c.get(&path(&q)).await?;
            out.show(&r.body, |b| {
                out.table(
                    &["seq", "at", "actor", "action", "resource", "outcome", "reason"],
                    list(b, "items")
                        .iter()
                        .map(|e| {
                            vec![
                                s(e, "seq"),
                                time(e, "at"),
                                s(e, "actor"),
                                s(e, "action"),
                                s(e, "resource"),
                                s(e, "outcome"),
                                s(e, "reason"),
                            ]
                        })
                        .collect(),
                );
            });
            Ok(())
        }
        AuditCommand::Export { filter } => {
            let base = filter.query();
            let mut after: Option<i64> = None;
            let stdout = std::io::stdout();
            loop {
                let mut q = base.clone();
                q.push(("limit", "1000".into()));
                if let Some(a) = after {
                    q.push(("after_seq", a.to_string()));
                }
                let r = c.get(&path(&q)).await?;
                let items = list(&r.body, "items");
                let mut lock = stdout.lock();
                for e in items {
                    writeln!(lock, "{e}")
                        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot write: {e}")))?;
                }
                match r.body["next"].as_i64() {
                    Some(n) if !items.is_empty() => after = Some(n),
                    _ => break,
                }
            }
            Ok(())
        }
        AuditCommand::Verify => {
            let r = c.get("/audit/verify").await?;
            let b = &r.body;
            if out.json {
                out.show(b, |_| {});
            }
            if b["ok"].as_bool() == Some(true) {
                if !out.json {
                    println!(
                        "audit trail intact: {} events checked, newest is {}{}",
                        s(b, "checked"),
                        s(b, "head_seq"),
                        b["checkpoint_seq"].as_i64().map_or(String::new(), |c| format!(
                            " (verified from the retention checkpoint after event {c})"
                        ))
                    );
                }
                Ok(())
            } else {
                let broken = &b["broken"];
                Err(CliError::new(
                    exit::VERIFY_FAILED,
                    format!(
                        "audit trail broken at event {} ({}): {}",
                        s(broken, "seq"),
                        s(broken, "kind"),
                        broken["message"].as_str().unwrap_or_default()
                    ),
                ))
            }
        }
    }
}
