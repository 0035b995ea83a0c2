//! `promptvault`: the server (`serve`, `demo`) and its command-line client.

// Standard output may close before everything is written (`promptvault
// openapi | head`), and std's `print!`/`println!` panic then. These shadow
// them in the whole crate: the process ends quietly instead.
macro_rules! print {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { print!("\n") };
    ($($arg:tt)*) => { print!("{}\n", format_args!($($arg)*)) };
}

mod client;
mod cmd;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use client::{CliError, Client, exit};
use output::Out;

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  unexpected failure
  2  bad command-line usage
  3  not found (template, version, label, type, rendering)
  4  conflict: the name is taken, a stale write (ETag), a precondition
  5  authentication or permission refused
  6  invalid input (refused by validation)
  7  the server cannot be reached or failed";

/// A self-hosted registry for prompt templates: versioned, validated,
/// rendered and recorded.
#[derive(Debug, Parser)]
#[command(name = "promptvault", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Server URL for the client verbs.
    #[arg(long, global = true, env = "PROMPTVAULT_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// API key for the client verbs.
    #[arg(long, global = true, env = "PROMPTVAULT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON (the API's responses) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Never colour the output (also: NO_COLOR).
    #[arg(long, global = true)]
    no_color: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the server with example templates and walk through what it does.
    Demo(DemoArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// TLS helpers: a self-signed certificate for local use.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Renders for a running server in a process capped in memory (started
    /// by the server; not for people).
    #[command(hide = true)]
    RenderWorker {
        #[arg(long)]
        memory_limit_mb: u64,
    },
    /// Prompt types: categories with an optional parameter contract.
    #[command(subcommand, alias = "type")]
    Types(cmd::catalog::TypeCommand),
    /// Templates: create, list, show, search, update, delete.
    #[command(subcommand, alias = "template")]
    Templates(cmd::catalog::TemplateCommand),
    /// Versions: create, list, show, diff, delete drafts.
    #[command(subcommand, alias = "version")]
    Versions(cmd::versions::VersionCommand),
    /// Labels: set, remove, list, history.
    #[command(subcommand, alias = "label")]
    Labels(cmd::versions::LabelCommand),
    /// Render a template with parameters.
    Render(cmd::render::RenderArgs),
    /// Make an earlier version current again.
    Rollback(cmd::versions::RollbackArgs),
    /// Report whether a rendering worked.
    Outcome(cmd::render::OutcomeArgs),
    /// Usage of a template: times used, last used, success rate.
    Metrics(cmd::render::MetricsArgs),
    /// Show a recorded rendering.
    Prompt(cmd::render::PromptArgs),
    /// Submit a draft for review (compliance checks run first).
    Submit(cmd::lifecycle::DecideArgs),
    /// Approve a version in review (a step of its workflow).
    Approve(cmd::lifecycle::DecideArgs),
    /// Reject a version in review, back to draft (needs --comment).
    Reject(cmd::lifecycle::DecideArgs),
    /// Deprecate an approved version.
    Deprecate(cmd::lifecycle::DeprecateArgs),
    /// Archive a deprecated version (it no longer renders).
    Archive(cmd::lifecycle::VersionArgs),
    /// Undo a deprecation.
    Restore(cmd::lifecycle::VersionArgs),
    /// The submissions and decisions on a version.
    Decisions(cmd::lifecycle::VersionArgs),
    /// Versions waiting for review, with their SLA.
    Reviews,
    /// Who the token belongs to.
    Whoami,
    /// Sign in with your e-mail address and password (piped in, or in
    /// PROMPTVAULT_PASSWORD); prints a session token for PROMPTVAULT_TOKEN.
    Login(cmd::session::LoginArgs),
    /// End the web session whose token PROMPTVAULT_TOKEN holds.
    Logout,
    /// Authorization: explain why a principal may or may not do something.
    #[command(subcommand)]
    Authz(cmd::identity::AuthzCommand),
    /// Users: create, list, show, update, disable, delete, roles.
    #[command(subcommand, alias = "user")]
    Users(cmd::identity::UserCommand),
    /// API keys: create (the token is shown once), list, revoke.
    #[command(subcommand, alias = "key")]
    Keys(cmd::identity::KeyCommand),
    /// Roles: built-in and custom, with their permissions.
    #[command(subcommand, alias = "role")]
    Roles(cmd::identity::RoleCommand),
    /// Approval workflows: list, show, set (from TOML or JSON), delete.
    #[command(subcommand, alias = "workflow")]
    Workflows(cmd::governance::WorkflowCommand),
    /// Compliance checks: list (built-in and custom), show, set, delete.
    #[command(subcommand, alias = "check")]
    Checks(cmd::governance::CheckCommand),
    /// The audit trail: list, export (JSON Lines), verify the hash chain.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Encryption at rest: key status, data-key rotation, master keys.
    #[command(subcommand)]
    Encryption(cmd::encryption::EncryptionCommand),
    /// Print the OpenAPI 3.1 document of the REST API.
    Openapi,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Write a self-signed certificate (cert.pem) and its key (key.pem,
    /// mode 0600) into a directory, for [tls] cert_file and key_file.
    SelfSigned {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// A DNS name or IP address the certificate is for (repeat for more;
        /// default: localhost, 127.0.0.1, ::1).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print an annotated example configuration file.
    Example,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Directory for the SQLite database and the admin token file.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://… (default: SQLite in the data directory).
    #[arg(long, hide_env_values = true)]
    database_url: Option<String>,
    /// TOML configuration file (also: PROMPTVAULT_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a proxy that
    /// terminates TLS); without it and without [tls] the server refuses.
    #[arg(long)]
    allow_insecure_http: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory for the demo's database.
    #[arg(long, default_value = "promptvault-demo")]
    data_dir: PathBuf,
    /// Show the tour and stop, instead of serving until Ctrl-C.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help asked for, or a group without its verb: clap prints the help.
        Err(e) if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e.render().to_string()));
            return ExitCode::from(exit::USAGE);
        }
    };
    // A render worker runs without an async runtime: one thread, one render
    // at a time.
    if let Command::RenderWorker { memory_limit_mb } = cli.command {
        return promptvault_server::isolation::worker::run(memory_limit_mb);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Clap's usage error on one line, like every other error: its paragraphs
/// (the error, tips, usage) joined with `; `, without the `--help` hint.
fn one_line_usage_error(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty() && !p.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let out = Out::new(cli.json, cli.no_color);
    let client = || Client::new(&cli.server, cli.token.clone());
    match cli.command {
        Command::Serve(args) => cmd::serve::serve(args).await,
        Command::RenderWorker { .. } => Ok(()),
        Command::Demo(args) => cmd::serve::demo(args, out).await,
        Command::Tls(TlsCommand::SelfSigned { out: dir, hosts }) => {
            let (cert, key) = promptvault_server::tls::write_self_signed(&dir, &hosts)
                .map_err(|e| CliError::new(exit::FAILURE, e))?;
            if out.json {
                println!("{}", serde_json::json!({"cert_file": cert, "key_file": key}));
            } else {
                println!("wrote {} and {} (mode 0600)", cert.display(), key.display());
                println!(
                    "[tls]\ncert_file = {:?}\nkey_file = {:?}",
                    cert.display().to_string(),
                    key.display().to_string()
                );
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{}", promptvault_server::settings::EXAMPLE);
            Ok(())
        }
        Command::Openapi => {
            let doc = promptvault_server::api::openapi();
            let text = serde_json::to_string_pretty(&doc)
                .map_err(|e| CliError::new(exit::FAILURE, format!("cannot serialize the document: {e}")))?;
            println!("{text}");
            Ok(())
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "promptvault", &mut script);
            print!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::Types(c) => cmd::catalog::types(&client()?, out, c).await,
        Command::Templates(c) => cmd::catalog::templates(&client()?, out, c).await,
        Command::Versions(c) => cmd::versions::versions(&client()?, out, c).await,
        Command::Labels(c) => cmd::versions::labels(&client()?, out, c).await,
        Command::Rollback(a) => cmd::versions::rollback(&client()?, out, a).await,
        Command::Render(a) => cmd::render::render(&client()?, out, a).await,
        Command::Outcome(a) => cmd::render::outcome(&client()?, out, a).await,
        Command::Metrics(a) => cmd::render::metrics(&client()?, out, a).await,
        Command::Prompt(a) => cmd::render::prompt(&client()?, out, a).await,
        Command::Audit(a) => cmd::audit::run(&client()?, out, a).await,
        Command::Encryption(a) => cmd::encryption::run(client, out, a).await,
        Command::Whoami => cmd::identity::whoami(&client()?, out).await,
        Command::Login(a) => cmd::session::login(&client()?, out, a).await,
        Command::Logout => cmd::session::logout(&client()?).await,
        Command::Submit(a) => cmd::lifecycle::decide(&client()?, out, "submit", a).await,
        Command::Approve(a) => cmd::lifecycle::decide(&client()?, out, "approve", a).await,
        Command::Reject(a) => cmd::lifecycle::decide(&client()?, out, "reject", a).await,
        Command::Deprecate(a) => cmd::lifecycle::deprecate(&client()?, out, a).await,
        Command::Archive(a) => cmd::lifecycle::simple(&client()?, out, "archive", a).await,
        Command::Restore(a) => cmd::lifecycle::simple(&client()?, out, "restore", a).await,
        Command::Decisions(a) => cmd::lifecycle::decisions(&client()?, out, a).await,
        Command::Reviews => cmd::lifecycle::reviews(&client()?, out).await,
        Command::Authz(a) => cmd::identity::authz(&client()?, out, a).await,
        Command::Users(a) => cmd::identity::users(&client()?, out, a).await,
        Command::Keys(a) => cmd::identity::keys(&client()?, out, a).await,
        Command::Roles(a) => cmd::identity::roles(&client()?, out, a).await,
        Command::Workflows(a) => cmd::governance::workflows(&client()?, out, a).await,
        Command::Checks(a) => cmd::governance::checks(&client()?, out, a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_are_one_line() {
        let e = Cli::try_parse_from(["promptvault", "templates", "show", "x", "--lable", "y"]).unwrap_err();
        assert_eq!(
            one_line_usage_error(&e.render().to_string()),
            "error: unexpected argument '--lable' found; tip: a similar argument exists: '--label'; \
             Usage: promptvault templates show --label <LABEL> <NAME>"
        );
    }
}
