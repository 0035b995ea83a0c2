//! Authentication, reachability, usage errors, and the verbs that need no
//! server: `config example`, `completions`, `openapi`.

use serde_json::Value;

use crate::support::{Call, Cli, Db, FakeServer, http_response};

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
    let r = cli
        .cmd(&["--json", "templates", "list", "--token", super::support::TOKEN])
        .token(Some(wrong))
        .run()
        .await;
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

    // Usage errors: one line too, with clap's tip and the usage.
    let r = cli.run(&["templates", "list", "--bogus"]).await;
    let msg = r.fails(2);
    assert!(msg.starts_with("error: unexpected argument '--bogus' found; "), "{r}");
    assert!(msg.ends_with("; Usage: promptvault templates list [OPTIONS]"), "{r}");
    let r = cli.run(&["templates", "show", "x", "--lable", "y"]).await;
    assert!(r.fails(2).contains("; tip: a similar argument exists: '--label'; "), "{r}");
    let r = cli.run(&["frobnicate"]).await;
    assert!(r.fails(2).starts_with("error: unrecognized subcommand 'frobnicate'"), "{r}");
    let r = cli.run(&["render"]).await;
    assert!(r.fails(2).contains("<NAME>"), "{r}");
    // A group without its verb names the verbs.
    let r = cli.run(&["templates"]).await;
    let msg = r.fails(2);
    assert!(msg.contains("requires a subcommand") && msg.contains("list, search, show, create"), "{r}");
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
    r.fails(2);

    let r = cli.run(&["openapi"]).await;
    let doc: Value = r.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    assert!(doc["paths"]["/api/v1/templates/{name}/render"]["post"].is_object(), "{}", doc["paths"]);
    assert_eq!(r.stderr, "");
}

pub async fn answers_that_are_not_the_api_are_one_line_errors(_db: Db) {
    // A proxy's error page: the status, not the markup.
    let page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n";
    let fake = FakeServer::start(http_response("502 Bad Gateway", "text/html", page)).await;
    let r = Call::new(&["templates", "list"]).url(&fake.url).token(Some("t")).run().await;
    assert_eq!(r.fails(7), "error: 502 Bad Gateway");
    // Plain text: its first line, after the status.
    let text = "upstream connect error\nreset reason: connection failure\n";
    let fake = FakeServer::start(http_response("503 Service Unavailable", "text/plain", text)).await;
    let r = Call::new(&["types", "show", "x"]).url(&fake.url).run().await;
    assert_eq!(r.fails(7), "error: 503 Service Unavailable: upstream connect error");
    // A problem document whose detail spans lines is still one line.
    let problem = r#"{"status": 422, "code": "invalid_template", "detail": "syntax error\n  on line 2:\n    unexpected end"}"#;
    let fake =
        FakeServer::start(http_response("422 Unprocessable Entity", "application/problem+json", problem))
            .await;
    let r = Call::new(&["templates", "show", "x"]).url(&fake.url).run().await;
    assert_eq!(r.fails(6), "error: syntax error on line 2: unexpected end [invalid_template]");
    // Success without JSON is not a result: a web server that is not promptvault.
    let fake = FakeServer::start(http_response(
        "200 OK",
        "text/html",
        "<html>\n<body>Welcome to nginx!</body>\n</html>\n",
    ))
    .await;
    let r = Call::new(&["templates", "list"]).url(&fake.url).run().await;
    let msg = r.fails(7);
    assert!(msg.contains(&fake.url) && msg.contains("is it a promptvault server?"), "{r}");
    // Not HTTP at all.
    let fake = FakeServer::start("SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
    let r = Call::new(&["templates", "list"]).url(&fake.url).run().await;
    let msg = r.fails(7);
    assert!(msg.starts_with(&format!("error: cannot reach {}: the request failed: ", fake.url)), "{r}");
}

pub async fn a_closed_stdout_ends_quietly(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("t.txt", "plain");
    cli.run(&["templates", "create", "t", "--file", &text]).await.ok();
    // `promptvault … | head`: no panic, no message, success.
    for args in [
        &["openapi"][..],
        &["completions", "zsh"],
        &["config", "example"],
        &["templates", "list"],
        &["--json", "templates", "list"],
        &["templates", "show", "t", "--label", "latest"],
    ] {
        let r = cli.cmd(args).run_with_stdout_closed().await;
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r}");
    }
    // An error is still reported, on stderr.
    let r = cli.cmd(&["templates", "show", "nope"]).run_with_stdout_closed().await;
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stderr.starts_with("error: ") && r.stderr.lines().count() == 1, "{r}");
    cli.stop().await;
}

/// Runs the binary with an unreachable server URL.
struct Offline;

impl Offline {
    async fn run(&self, args: &[&str]) -> crate::support::Run {
        Call::new(args).url("http://127.0.0.1:1").run().await
    }
}
