//! `workflows` and `checks`: set from TOML and JSON files, listed, shown,
//! refused with the documented exit codes, deleted.

use serde_json::json;

use crate::support::{Call, Cli, Db};

const WORKFLOW_TOML: &str = r#"
[[workflow]]
name = "pair"
description = "Two reviewers for confidential templates."
classifications = ["confidential"]

[[workflow.step]]
name = "review"
approver_roles = ["reviewer"]
required_approvals = 2
sla_hours = 24
"#;

const CHECK_TOML: &str = r#"
[[check]]
key = "no_todo"
name = "No TODO left"
severity = "error"
rule = { kind = "forbidden_phrases", phrases = ["TODO"] }
"#;

pub async fn workflows_and_checks_are_set_listed_and_deleted(db: Db) {
    let cli = Cli::start(&db).await;
    let listed = cli.run(&["workflows", "list"]).await;
    assert!(listed.ok().contains("standard") && listed.stdout.contains("default"), "{listed}");

    // TOML creates, the same name again replaces (with the stored revision).
    let file = cli.file("wf.toml", WORKFLOW_TOML);
    let set = cli.run(&["workflows", "set", "--file", &file]).await;
    assert!(set.ok().contains("pair") && set.stdout.contains("review: reviewer x2, 24h"), "{set}");
    let shown = cli.run(&["--json", "workflows", "show", "pair"]).await.json();
    assert_eq!((shown["source"].clone(), shown["revision"].clone()), (json!("api"), json!(1)));
    let file =
        cli.file("wf.toml", &WORKFLOW_TOML.replace("required_approvals = 2", "required_approvals = 1"));
    cli.run(&["workflows", "set", "--file", &file]).await.ok();
    let shown = cli.run(&["--json", "workflows", "show", "pair"]).await.json();
    assert_eq!(
        (shown["revision"].clone(), shown["steps"][0]["required_approvals"].clone()),
        (json!(2), json!(1))
    );

    // JSON: one object (or a list).
    let one = json!({"name": "vault", "classifications": ["restricted"],
        "steps": [{"name": "sign-off", "approver_roles": ["publisher", "admin"]}]});
    let file = cli.file("wf.json", &one.to_string());
    cli.run(&["workflows", "set", "--file", &file]).await.ok();
    let all = cli.run(&["--json", "workflows", "list"]).await.json();
    let names: Vec<&str> =
        all["items"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pair", "vault", "standard"], "both of `sensitive`'s classifications are taken");
    let table = cli.run(&["workflows", "show", "vault"]).await;
    assert!(table.ok().contains("sign-off") && table.stdout.contains("publisher, admin"), "{table}");

    // Refusals: invalid locally (6), unknown role on the server (6), a
    // classification taken (4), not found (3), not allowed (5).
    let zero =
        cli.file("zero.toml", &WORKFLOW_TOML.replace("required_approvals = 2", "required_approvals = 0"));
    assert!(cli.run(&["workflows", "set", "--file", &zero]).await.fails(6).contains("requires 0 approvals"));
    let ghost = json!({"name": "ghost", "classifications": ["public"],
        "steps": [{"name": "r", "approver_roles": ["ghosts"]}]});
    let file = cli.file("ghost.json", &ghost.to_string());
    assert!(cli.run(&["workflows", "set", "--file", &file]).await.fails(6).contains("ghosts"));
    let taken = json!({"name": "other", "classifications": ["confidential"],
        "steps": [{"name": "r", "approver_roles": ["reviewer"]}]});
    let file = cli.file("taken.json", &taken.to_string());
    assert!(cli.run(&["workflows", "set", "--file", &file]).await.fails(4).contains("pair"));
    cli.run(&["workflows", "show", "nope"]).await.fails(3);
    let viewer =
        cli.run(&["--json", "users", "create", "--email", "v@example.com", "--role", "viewer"]).await.json();
    let token = cli
        .run(&["keys", "create", "v", "--user", viewer["id"].as_str().unwrap()])
        .await
        .ok()
        .trim()
        .to_owned();
    let as_viewer = |args: &[&str]| Call::new(args).url(&cli.url).token(Some(&token));
    as_viewer(&["workflows", "list"]).run().await.ok();
    as_viewer(&["workflows", "delete", "pair"]).run().await.fails(5);

    cli.run(&["workflows", "delete", "pair"]).await.ok();
    cli.run(&["workflows", "show", "pair"]).await.fails(3);
    assert!(cli.run(&["workflows", "delete", "standard"]).await.fails(4).contains("default"));

    // Checks: TOML, listed after the built-ins, shown, refused, deleted.
    let file = cli.file("checks.toml", CHECK_TOML);
    let set = cli.run(&["checks", "set", "--file", &file]).await;
    assert!(set.ok().contains("no_todo") && set.stdout.contains("forbidden_phrases"), "{set}");
    let listed = cli.run(&["checks", "list"]).await;
    let lines: Vec<&str> = listed.ok().lines().map(str::trim_start).collect();
    assert!(lines[1].starts_with("description_present") && lines[1].contains("builtin"), "{listed}");
    assert!(lines.last().unwrap().starts_with("no_todo"), "{listed}");
    let shown = cli.run(&["checks", "show", "no_todo"]).await;
    assert!(shown.ok().contains("No TODO left") && shown.stdout.contains("error"), "{shown}");
    let bad = json!({"key": "bad", "name": "Bad", "severity": "error",
        "rule": {"kind": "regex_must_match", "pattern": "("}});
    let file = cli.file("bad.json", &bad.to_string());
    assert!(cli.run(&["checks", "set", "--file", &file]).await.fails(6).contains("rule.pattern"));
    assert!(cli.run(&["checks", "delete", "length_limit"]).await.fails(4).contains("built-in"));
    as_viewer(&["checks", "delete", "no_todo"]).run().await.fails(5);
    cli.run(&["checks", "delete", "no_todo"]).await.ok();
    cli.run(&["checks", "show", "no_todo"]).await.fails(3);
    cli.stop().await;
}
