//! `whoami`, `users`, `keys`, `roles`.

use crate::support::{Call, Cli, Db};

pub async fn users_keys_and_roles_are_managed(db: Db) {
    let cli = Cli::start(&db).await;
    let me = cli.run(&["--json", "whoami"]).await.json();
    assert_eq!(me["roles"], serde_json::json!(["admin"]));

    cli.run(&["roles", "create", "readers", "-p", "template:read", "-p", "template:execute<=internal"])
        .await
        .ok();
    let bad = cli.run(&["roles", "create", "oops", "-p", "template:fly"]).await;
    assert!(bad.fails(6).contains("template:fly"), "{bad}");
    let user = cli
        .run(&["--json", "users", "create", "--email", "bo@example.com", "--role", "readers"])
        .await
        .json();
    let id = user["id"].as_str().unwrap().to_owned();
    let listed = cli.run(&["users", "list"]).await;
    assert!(listed.ok().contains("bo@example.com") && listed.stdout.contains("readers"), "{listed}");

    // A key for Bo: the token is the only thing on stdout.
    let created = cli.run(&["keys", "create", "ci", "--user", &id, "--expires-in-days", "30"]).await;
    let token = created.ok().trim().to_owned();
    assert!(token.starts_with("pv_"), "{created}");
    let bo = Call::new(&["--json", "whoami"]).url(&cli.url).token(Some(&token)).run().await.json();
    assert_eq!(bo["email"], "bo@example.com");
    let why =
        Call::new(&["authz", "explain", "read", "template"]).url(&cli.url).token(Some(&token)).run().await;
    assert!(why.ok().starts_with("allowed: role readers grants template:read"), "{why}");
    let no =
        Call::new(&["authz", "explain", "update", "template"]).url(&cli.url).token(Some(&token)).run().await;
    assert!(no.fails(5).contains("denied"), "{no}");
    // Bo may not manage users: exit code 5, one line.
    let refused = Call::new(&["users", "list"]).url(&cli.url).token(Some(&token)).run().await;
    refused.fails(5);

    let keys = cli.run(&["--json", "keys", "list", "--user", &id]).await.json();
    let key_id = keys["items"][0]["id"].as_str().unwrap().to_owned();
    cli.run(&["keys", "revoke", &key_id]).await.ok();
    let after = Call::new(&["whoami"]).url(&cli.url).token(Some(&token)).run().await;
    after.fails(5);

    cli.run(&["users", "update", &id, "--disable"]).await.ok();
    let shown = cli.run(&["users", "show", &id]).await;
    assert!(shown.ok().contains("disabled"), "{shown}");
    let in_use = cli.run(&["roles", "delete", "readers"]).await;
    in_use.fails(4);
    cli.run(&["users", "roles", &id]).await.ok();
    cli.run(&["roles", "delete", "readers"]).await.ok();
    cli.run(&["users", "delete", &id]).await.ok();
    cli.stop().await;
}

pub async fn versions_go_through_review(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("t.txt", "Hello {{ name }}");
    let schema = cli.file("s.json", r#"{"type": "object", "properties": {"name": {"type": "string"}}}"#);
    cli.run(&["templates", "create", "l/greet", "--file", &text, "--schema", &schema, "--description", "d"])
        .await
        .ok();
    let submitted = cli.run(&["submit", "l/greet", "1", "-m", "ready"]).await;
    assert_eq!(submitted.ok(), "l/greet v1 is now review\n");
    // The admin wrote it: four eyes refuses, exit 5.
    let own = cli.run(&["approve", "l/greet", "1"]).await;
    assert!(own.fails(5).contains("four-eyes"), "{own}");
    let reviewer = cli
        .run(&["--json", "users", "create", "--email", "rev@example.com", "--role", "reviewer"])
        .await
        .json();
    let id = reviewer["id"].as_str().unwrap().to_owned();
    let token = cli.run(&["keys", "create", "r", "--user", &id]).await.ok().trim().to_owned();
    // Not approved yet: `production` refuses it, even for the admin.
    let r = cli.run(&["labels", "set", "l/greet", "production", "1"]).await;
    assert!(r.fails(4).ends_with("[label_requires_approved]"), "{r}");
    let ok =
        Call::new(&["approve", "l/greet", "1", "-m", "fine"]).url(&cli.url).token(Some(&token)).run().await;
    assert_eq!(ok.ok(), "l/greet v1 is now approved\n");
    // A reviewer approves but does not move labels.
    let r = Call::new(&["labels", "set", "l/greet", "production", "1"])
        .url(&cli.url)
        .token(Some(&token))
        .run()
        .await;
    assert!(r.fails(5).ends_with("[forbidden]"), "{r}");
    cli.run(&["labels", "set", "l/greet", "production", "1"]).await.ok();
    let reviews = cli.run(&["--json", "reviews"]).await.json();
    assert_eq!(reviews["items"], serde_json::json!([]));
    let d = cli.run(&["--json", "decisions", "l/greet", "1"]).await.json();
    assert_eq!(d["items"].as_array().unwrap().len(), 2);
    cli.run(&["deprecate", "l/greet", "1", "--reason", "old"]).await.ok();
    let r = cli.run(&["archive", "l/greet", "1"]).await;
    assert!(r.fails(4).ends_with("[label_points_here]"), "production still serves it: {r}");
    cli.run(&["labels", "remove", "l/greet", "production"]).await.ok();
    cli.run(&["archive", "l/greet", "1"]).await.ok();
    cli.run(&["restore", "l/greet", "1"]).await.fails(4);
    cli.stop().await;
}

pub async fn sign_in_with_a_password(db: Db) {
    let cli = Cli::start(&db).await;
    let user = cli
        .run(&["--json", "users", "create", "--email", "lin@example.com", "--role", "viewer"])
        .await
        .json();
    let id = user["id"].as_str().unwrap().to_owned();
    let r = cli.cmd(&["users", "password", &id]).stdin("short\n").run().await;
    assert!(r.fails(6).ends_with("[weak_password]"), "{r}");
    cli.cmd(&["users", "password", &id]).stdin("a long enough passphrase\n").run().await.success();

    let wrong =
        Call::new(&["login", "--email", "lin@example.com"]).url(&cli.url).stdin("not it\n").run().await;
    assert!(wrong.fails(5).ends_with("[invalid_credentials]"), "{wrong}");
    let ok = Call::new(&["login", "--email", "lin@example.com"])
        .url(&cli.url)
        .env("PROMPTVAULT_PASSWORD", "a long enough passphrase")
        .run()
        .await;
    let token = ok.ok().trim().to_owned();
    assert!(token.starts_with("pvs_"), "{ok}");
    let me = Call::new(&["--json", "whoami"]).url(&cli.url).token(Some(&token)).run().await.json();
    assert_eq!(me["email"], "lin@example.com");
    Call::new(&["logout"]).url(&cli.url).token(Some(&token)).run().await.success();
    let after = Call::new(&["whoami"]).url(&cli.url).token(Some(&token)).run().await;
    assert!(after.fails(5).ends_with("[session_invalid]"), "{after}");
    // An API key has no session to end.
    assert!(cli.run(&["logout"]).await.fails(4).ends_with("[not_a_session]"));
    cli.stop().await;
}
