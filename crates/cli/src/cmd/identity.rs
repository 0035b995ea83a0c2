//! `whoami`, `users`, `keys`, `roles`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{CliError, Client, Result, seg};
use crate::output::{Out, list, s, time};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users.
    List,
    /// Create a user.
    Create {
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        /// The user's id at an external identity provider (JWT `sub`).
        #[arg(long)]
        external_id: Option<String>,
        /// A role to hold; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Show a user.
    Show { id: String },
    /// Change a user's names or e-mail, or disable / enable them.
    Update {
        id: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Delete a user with their keys.
    Delete { id: String },
    /// Replace the roles a user holds (none: hold no role).
    Roles { id: String, roles: Vec<String> },
    /// Set a user's password for signing in: the new one piped in (or in
    /// PROMPTVAULT_NEW_PASSWORD); for your own, the current one in
    /// PROMPTVAULT_PASSWORD.
    Password { id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List API keys (yours unless --user).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Create an API key; the token is printed once.
    Create {
        name: String,
        /// For another user (needs key:create).
        #[arg(long)]
        user: Option<String>,
        /// Expiry as an RFC 3339 time.
        #[arg(long, conflicts_with = "expires_in_days")]
        expires: Option<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// electron_local, electron_remote or web_application.
        #[arg(long)]
        deployment: Option<String>,
    },
    /// Revoke an API key at once.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// List roles, built-in and custom.
    List,
    /// Show a role and its permissions.
    Show { name: String },
    /// Create a custom role.
    Create {
        name: String,
        /// resource:action[@scope][<=classification]; repeat for several.
        #[arg(long = "permission", short = 'p')]
        permissions: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Replace a custom role's permissions and description.
    Update {
        name: String,
        #[arg(long = "permission", short = 'p')]
        permissions: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a custom role (refused while users hold it).
    Delete { name: String },
}

fn user_row(u: &Value) -> Vec<String> {
    let names: Vec<String> = list(u, "roles").iter().filter_map(|r| r.as_str().map(str::to_owned)).collect();
    vec![
        s(u, "id"),
        s(u, "email"),
        format!("{} {}", s(u, "first_name"), s(u, "last_name")).trim().to_owned(),
        names.join(","),
        if u["disabled"].as_bool() == Some(true) { "disabled".into() } else { "active".into() },
    ]
}

fn show_user(out: Out, u: &Value) {
    out.show(u, |u| {
        out.table(&["id", "email", "name", "roles", "state"], vec![user_row(u)]);
    });
}

pub async fn whoami(c: &Client, out: Out) -> Result<()> {
    let r = c.get("/me").await?;
    show_user(out, &r.body);
    Ok(())
}

pub async fn users(c: &Client, out: Out, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::List => {
            let r = c.get("/users").await?;
            out.show(&r.body, |b| {
                out.table(
                    &["id", "email", "name", "roles", "state"],
                    list(b, "items").iter().map(user_row).collect(),
                );
            });
        }
        UserCommand::Create { email, first_name, last_name, external_id, roles } => {
            let body = json!({"email": email, "first_name": first_name, "last_name": last_name,
                "external_user_id": external_id, "roles": roles});
            let r = c.post("/users", &body).await?;
            show_user(out, &r.body);
        }
        UserCommand::Show { id } => show_user(out, &c.get(&format!("/users/{}", seg(&id))).await?.body),
        UserCommand::Update { id, email, first_name, last_name, disable, enable } => {
            let mut body = Map::new();
            for (k, v) in [("email", email), ("first_name", first_name), ("last_name", last_name)] {
                if let Some(v) = v {
                    body.insert(k.into(), Value::String(v));
                }
            }
            if disable || enable {
                body.insert("disabled".into(), Value::Bool(disable));
            }
            if body.is_empty() {
                return Err(CliError::usage(
                    "nothing to change: give --email, --first-name, --last-name, --disable or --enable",
                ));
            }
            let r = c.patch(&format!("/users/{}", seg(&id)), &Value::Object(body), None).await?;
            show_user(out, &r.body);
        }
        UserCommand::Delete { id } => {
            c.delete(&format!("/users/{}", seg(&id)), None).await?;
            if !out.json {
                println!("deleted user {id}");
            }
        }
        UserCommand::Roles { id, roles } => {
            let r = c.put(&format!("/users/{}/roles", seg(&id)), &json!({"roles": roles})).await?;
            show_user(out, &r.body);
        }
        UserCommand::Password { id } => super::session::set_password(c, &id).await?,
    }
    Ok(())
}

fn key_row(k: &Value) -> Vec<String> {
    let state = if !k["revoked_at"].is_null() { "revoked" } else { "active" };
    vec![
        s(k, "id"),
        s(k, "name"),
        s(k, "prefix"),
        time(k, "expires_at"),
        time(k, "last_used_at"),
        state.into(),
    ]
}

pub async fn keys(c: &Client, out: Out, cmd: KeyCommand) -> Result<()> {
    let me = || async { Ok::<String, CliError>(s(&c.get("/me").await?.body, "id")) };
    match cmd {
        KeyCommand::List { user } => {
            let user = match user {
                Some(u) => u,
                None => me().await?,
            };
            let r = c.get(&format!("/users/{}/keys", seg(&user))).await?;
            out.show(&r.body, |b| {
                out.table(
                    &["id", "name", "prefix", "expires", "last used", "state"],
                    list(b, "items").iter().map(key_row).collect(),
                );
            });
        }
        KeyCommand::Create { name, user, expires, expires_in_days, deployment } => {
            let user = match user {
                Some(u) => u,
                None => me().await?,
            };
            let expires_at = match (expires, expires_in_days) {
                (Some(t), _) => Some(t),
                (None, Some(d)) => {
                    Some((chrono::Utc::now() + chrono::Duration::days(i64::from(d))).to_rfc3339())
                }
                (None, None) => None,
            };
            let body = json!({"name": name, "expires_at": expires_at, "deployment": deployment});
            let r = c.post(&format!("/users/{}/keys", seg(&user)), &body).await?;
            out.show(&r.body, |b| {
                println!("{}", s(b, "token"));
                eprintln!(
                    "key {} ({}) created; the token above is shown this once",
                    s(&b["key"], "id"),
                    s(&b["key"], "prefix")
                );
            });
        }
        KeyCommand::Revoke { id } => {
            let r = c.send(Method::DELETE, &format!("/keys/{}", seg(&id)), None, None).await?;
            out.show(&r.body, |k| println!("revoked key {} ({})", s(k, "id"), s(k, "prefix")));
        }
    }
    Ok(())
}

fn role_rows(r: &Value) -> Vec<Vec<String>> {
    let perms: Vec<String> =
        list(r, "permissions").iter().filter_map(|p| p.as_str().map(str::to_owned)).collect();
    vec![vec![
        s(r, "name"),
        if r["builtin"].as_bool() == Some(true) { "built-in".into() } else { "custom".into() },
        perms.join(" "),
        s(r, "description"),
    ]]
}

pub async fn roles(c: &Client, out: Out, cmd: RoleCommand) -> Result<()> {
    let header = ["name", "kind", "permissions", "description"];
    match cmd {
        RoleCommand::List => {
            let r = c.get("/roles").await?;
            out.show(&r.body, |b| out.table(&header, list(b, "items").iter().flat_map(role_rows).collect()));
        }
        RoleCommand::Show { name } => {
            let r = c.get(&format!("/roles/{}", seg(&name))).await?;
            out.show(&r.body, |b| out.table(&header, role_rows(b)));
        }
        RoleCommand::Create { name, permissions, description } => {
            let body = json!({"name": name, "permissions": permissions, "description": description});
            let r = c.post("/roles", &body).await?;
            out.show(&r.body, |b| out.table(&header, role_rows(b)));
        }
        RoleCommand::Update { name, permissions, description } => {
            let path = format!("/roles/{}", seg(&name));
            let current = c.get(&path).await?;
            let description = description.unwrap_or_else(|| s(&current.body, "description"));
            let etag = current.body["revision"].as_i64().map(|r| format!("\"role-{r}\""));
            let body = json!({"permissions": permissions, "description": description});
            let r = c.send(Method::PUT, &path, Some(&body), etag.as_deref()).await?;
            out.show(&r.body, |b| out.table(&header, role_rows(b)));
        }
        RoleCommand::Delete { name } => {
            c.delete(&format!("/roles/{}", seg(&name)), None).await?;
            if !out.json {
                println!("deleted role {name}");
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AuthzCommand {
    /// May this user (yourself by default) do this, and why. Exits 0 when
    /// allowed and 5 when not.
    Explain {
        /// create, read, update, delete, execute, approve or publish.
        action: String,
        /// template, type, prompt, label, user, role, key, audit, workflow, check, remote or webhook.
        resource: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        template: Option<String>,
        #[arg(long = "type")]
        type_key: Option<String>,
        #[arg(long)]
        classification: Option<String>,
        /// Ask as if from this deployment: electron_local, electron_remote or web_application.
        #[arg(long)]
        deployment: Option<String>,
    },
}

pub async fn authz(c: &Client, out: Out, cmd: AuthzCommand) -> Result<()> {
    let AuthzCommand::Explain { action, resource, user, template, type_key, classification, deployment } =
        cmd;
    let mut q = format!("/authz/explain?action={}&resource={}", seg(&action), seg(&resource));
    for (k, v) in [
        ("user_id", user),
        ("template", template),
        ("type", type_key),
        ("classification", classification),
        ("deployment", deployment),
    ] {
        if let Some(v) = v {
            q.push_str(&format!("&{k}={}", seg(&v)));
        }
    }
    let r = c.get(&q).await?;
    if r.body["allowed"].as_bool() == Some(true) {
        out.show(&r.body, |b| println!("allowed: {}", s(b, "reason")));
        Ok(())
    } else {
        // A refusal is the one-line error, as for every failing command.
        Err(CliError::new(crate::client::exit::AUTH, s(&r.body, "reason")))
    }
}
