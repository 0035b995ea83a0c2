//! `login`, `logout` and setting passwords.

use std::io::{BufRead, IsTerminal};

use clap::Args;
use serde_json::json;

use crate::client::{CliError, Client, Result};
use crate::output::{Out, s};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your e-mail address.
    #[arg(long)]
    pub email: String,
}

/// A password from `PROMPTVAULT_PASSWORD`, else the first line piped in.
fn password_from(env: &str) -> Result<String> {
    if let Ok(p) = std::env::var(env)
        && !p.is_empty()
    {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "pipe the password on standard input or set {env} (it is never taken as an argument)"
        )));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::invalid(format!("cannot read standard input: {e}")))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        return Err(CliError::usage("the password on standard input is empty"));
    }
    Ok(line)
}

/// Signs in; prints the session token (for `PROMPTVAULT_TOKEN`).
pub async fn login(c: &Client, out: Out, args: LoginArgs) -> Result<()> {
    let password = password_from("PROMPTVAULT_PASSWORD")?;
    let r = c.post("/login", &json!({"email": args.email, "password": password})).await?;
    out.show(&r.body, |b| {
        println!("{}", s(b, "token"));
        eprintln!(
            "signed in as {} until {} (ends after {} minutes without use); export PROMPTVAULT_TOKEN=<the token above>",
            s(&b["user"], "email"),
            s(b, "expires_at"),
            b["idle_timeout_seconds"].as_i64().unwrap_or(0) / 60
        );
    });
    Ok(())
}

/// Ends the session whose token the client holds.
pub async fn logout(c: &Client) -> Result<()> {
    c.post("/logout", &json!({})).await?;
    eprintln!("signed out");
    Ok(())
}

/// Sets a user's password: the new one piped in (or
/// `PROMPTVAULT_NEW_PASSWORD`); your current one in `PROMPTVAULT_PASSWORD`
/// when you change your own.
pub async fn set_password(c: &Client, id: &str) -> Result<()> {
    let new = password_from("PROMPTVAULT_NEW_PASSWORD")?;
    let current = std::env::var("PROMPTVAULT_PASSWORD").ok().filter(|p| !p.is_empty());
    let id = crate::client::seg(id);
    c.put(&format!("/users/{id}/password"), &json!({"password": new, "current_password": current})).await?;
    eprintln!("password set");
    Ok(())
}
