//! Authentication, reachability, usage errors, and the verbs that need no
//! server: `config example`, `completions`, `openapi`.

use serde_json::Value;

use crate::support::{Cli, Db};

pub async fn refusals_map_to_exit_codes(db: Db) {
    let cli = Cli::start(&db).await;
    // A wrong token, or none.
    let wrong = "pv_0123456789_000000000000000000000000000000000000000000000000";
    let r = cli.cmd(&["templates", "list"]).token(Some(wrong)).run().await;
    r.fails(5);
    let r = cli.cmd(&["types", "list"]).token(None).run().await;
    r.fails(5);
    let r = cli.cmd(&["templates", "list", "--token", "not-a-valid-token-at-all"]).token(None).run().await;
    r.fails(5);
    // --token wins over the environment.
    let r = cli.cmd(&["--json", "templates", "list", "--token", super::support::TOKEN]).token(Some(wrong)).run().await;
    assert!(r.json()["items"].is_array(), "{r}");

    // Nothing listening.
    let r = cli.cmd(&["templates", "list"]).url("http://127.0.0.1:1").run().await;
    let msg = r.fails(7);
    assert!(msg.contains("cannot reach http://127.0.0.1:1"), "{r}");
    let r = cli.cmd(&["render", "x", "--var", "a=b"]).url("http://127.0.0.1:1/").run().await;
    assert!(r.fails(7).contains("is it running?"), "{r}");
    // --server overrides PROMPTVAULT_URL.
    let r = cli.cmd(&["--json", "types", "list", "--server", &cli.url]).url("http://127.0.0.1:1").run().await;
    assert!(r.json()["items"].is_array(), "{r}");
    let r = cli.cmd(&["types", "list"]).url("ftp://127.0.0.1").run().await;
    assert!(r.fails(2).contains("http:// or https://"), "{r}");

    // Usage errors: clap's message starts with `error: ` and names the flag.
    let r = cli.run(&["templates", "list", "--bogus"]).await;
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.starts_with("error: ") && r.stderr.lines().next().is_some_and(|l| l.contains("--bogus")), "{r}");
    assert_eq!(r.stdout, "", "{r}");
    let r = cli.run(&["frobnicate"]).await;
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.starts_with("error: ") && r.stderr.contains("frobnicate"), "{r}");
    let r = cli.run(&["templates"]).await;
    assert_eq!(r.code, 2, "a group without its verb: {r}");
    // --help and --version are not errors.
    let r = cli.run(&["--help"]).await;
    assert!(r.ok().contains("Exit codes:") && r.stderr.is_empty(), "{r}");
    let r = cli.run(&["--version"]).await;
    assert_eq!(r.ok(), format!("promptvault {}\n", env!("CARGO_PKG_VERSION")));
    cli.stop().await;
}

pub async fn offline_verbs_print_documents(_db: Db) {
    // These need no server: the URL points nowhere on purpose.
    let cli = Offline;
    let r = cli.run(&["config", "example"]).await;
    let doc: toml::Table = toml::from_str(r.ok()).unwrap_or_else(|e| panic!("not TOML ({e}): {r}"));
    assert_eq!(doc.get("listen").and_then(toml::Value::as_str), Some("127.0.0.1:8080"), "{r}");
    assert_eq!(doc.get("default_label").and_then(toml::Value::as_str), Some("production"), "{r}");
    assert!(r.ok().contains("# data_dir = "), "the optional settings are shown, commented out: {r}");

    let r = cli.run(&["completions", "bash"]).await;
    let script = r.ok();
    assert!(script.contains("_promptvault()") && script.contains("complete -F _promptvault"), "{r}");
    for verb in ["templates", "versions", "labels", "render", "rollback", "outcome"] {
        assert!(script.contains(verb), "{verb} in the completions");
    }
    let r = cli.run(&["completions", "zsh"]).await;
    assert!(r.ok().starts_with("#compdef promptvault"), "{r}");
    let r = cli.run(&["completions", "tcsh"]).await;
    assert_eq!(r.code, 2, "{r}");

    let r = cli.run(&["openapi"]).await;
    let doc: Value = r.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    assert!(doc["paths"]["/api/v1/templates/{name}/render"]["post"].is_object(), "{}", doc["paths"]);
    assert_eq!(r.stderr, "");
}

/// Runs the binary with an unreachable server URL.
struct Offline;

impl Offline {
    async fn run(&self, args: &[&str]) -> crate::support::Run {
        crate::support::Call::new(args).url("http://127.0.0.1:1").run().await
    }
}
