//! `versions`, `labels` and `rollback`.

use serde_json::json;

use crate::support::{Cli, Db, normalize};

fn schema(props: &str, required: &[&str]) -> String {
    format!(r#"{{"type": "object", "properties": {props}, "required": {}}}"#, json!(required))
}

pub async fn versions_are_computed_refused_listed_and_compared(db: Db) {
    let cli = Cli::start(&db).await;
    let v1 = cli.file("v1.txt", "Greet {{ name }} warmly.\n");
    let s1 = cli.file("s1.json", &schema(r#"{"name": {"type": "string"}}"#, &["name"]));
    cli.run(&["templates", "create", "sv", "--file", &v1, "--schema", &s1]).await.ok();

    // A wording change: the minor bump is computed and printed.
    let v2 = cli.file("v2.txt", "Welcome {{ name }} to the shop.\n");
    let r = cli.run(&["versions", "create", "sv", "--file", &v2, "-m", "new wording"]).await;
    let out = r.ok();
    assert!(out.starts_with("created sv version 2 (1.1.0, minor bump), a draft\n"), "{r}");
    assert!(out.lines().skip(1).any(|l| l.trim_start().starts_with("minor")), "the change is listed: {r}");
    // Asking for more than needed is fine; the content may also be piped.
    let r = cli
        .cmd(&["versions", "create", "sv", "--bump", "major"])
        .stdin("Welcome, {{ name }}, to the shop.\n")
        .run()
        .await;
    assert!(r.ok().starts_with("created sv version 3 (2.0.0, major bump), a draft\n"), "{r}");
    // Asking for less is refused, with the reason.
    let narrowed = cli.file("s2.json", &schema(r#"{"name": {"type": "string", "maxLength": 5}}"#, &["name"]));
    let r = cli.run(&["versions", "create", "sv", "--schema", &narrowed, "--bump", "patch"]).await;
    let msg = r.fails(6);
    assert!(msg.contains("maxLength") && msg.ends_with("[bump_too_small]"), "{r}");
    let r = cli.run(&["versions", "create", "sv", "--bump", "huge"]).await;
    r.fails(6);
    // The same content again, or no content at all, is not a version.
    let v3 = cli.file("v3.txt", "Welcome, {{ name }}, to the shop.\n");
    let r = cli.run(&["versions", "create", "sv", "--file", &v3]).await;
    assert!(r.fails(6).ends_with("[version_unchanged]"), "{r}");
    let r = cli.run(&["versions", "create", "sv"]).await;
    assert!(r.fails(6).ends_with("[version_unchanged]"), "{r}");
    // Built on an older version than the newest: stale.
    let v4 = cli.file("v4.txt", "Hello {{ name }}.\n");
    let r = cli.run(&["versions", "create", "sv", "--file", &v4, "--base", "2"]).await;
    assert!(r.fails(4).ends_with("[stale_base]"), "{r}");
    let r = cli.run(&["versions", "create", "sv", "--file", &v4, "--base", "3"]).await;
    assert!(r.ok().starts_with("created sv version 4 (2.1.0, minor bump)"), "{r}");
    let r = cli.run(&["versions", "create", "ghost", "--file", &v4]).await;
    assert!(r.fails(3).ends_with("[template_not_found]"), "{r}");

    // List: newest first, and as JSON.
    let r = cli.run(&["versions", "list", "sv"]).await;
    let out = r.ok();
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["#", "VERSION", "STATUS", "BUMP", "CREATED", "CHANGE"], "{r}");
    let firsts: Vec<(&str, &str, &str)> = rows[1..].iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        firsts,
        [("4", "2.1.0", "draft"), ("3", "2.0.0", "draft"), ("2", "1.1.0", "draft"), ("1", "1.0.0", "draft")],
        "{r}"
    );
    assert!(rows[3].ends_with(&["new", "wording"]), "{r}");
    let list = cli.run(&["--json", "versions", "list", "sv", "--limit", "2"]).await.json();
    let seqs: Vec<u64> =
        list["items"].as_array().expect("items").iter().map(|v| v["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, [4, 3]);
    insta::assert_snapshot!("versions_list", normalize(out));
    // Pages: one page says how to go on; --all follows every page.
    let r = cli.run(&["versions", "list", "sv", "--limit", "3"]).await;
    assert_eq!(r.ok().lines().count(), 4, "a header and three rows: {r}");
    assert!(r.stderr.starts_with("more: --cursor ") && r.stderr.lines().count() == 1, "{r}");
    let cursor = r.stderr["more: --cursor ".len()..].split_whitespace().next().expect("a cursor").to_owned();
    let rest =
        cli.run(&["--json", "versions", "list", "sv", "--limit", "3", "--cursor", &cursor]).await.json();
    assert_eq!(
        rest["items"].as_array().map(|i| i.iter().map(|v| v["seq"].clone()).collect()),
        Some(vec![json!(1)])
    );
    let r = cli.run(&["versions", "list", "sv", "--limit", "1", "--all"]).await;
    assert_eq!(normalize(r.ok()), normalize(out), "{r}");
    assert_eq!(r.stderr, "", "{r}");
    let all = cli.run(&["--json", "versions", "list", "sv", "--limit", "1", "--all"]).await.json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(4));
    assert!(all["next_cursor"].is_null(), "{all:#}");

    // Show, by number and by semantic version.
    let r = cli.run(&["versions", "show", "sv", "2"]).await;
    let by_number = r.ok();
    assert!(by_number.starts_with("version  v2 (1.1.0)\nstatus   draft\nbump     minor\n"), "{r}");
    assert!(by_number.contains("change   new wording\n"), "{r}");
    assert!(by_number.contains("template\nWelcome {{ name }} to the shop.\nparameter schema\n"), "{r}");
    let by_semver = cli.run(&["versions", "show", "sv", "1.1.0"]).await;
    assert_eq!(by_semver.ok(), by_number);
    let r = cli.run(&["versions", "show", "sv", "9"]).await;
    assert!(r.fails(3).ends_with("[version_not_found]"), "{r}");
    let r = cli.run(&["versions", "show", "sv", "x.y"]).await;
    assert!(r.fails(6).ends_with("[invalid_version]"), "{r}");

    // Diff: unified, never coloured with --no-color.
    let r = cli.run(&["versions", "diff", "sv", "1", "2"]).await;
    let out = r.ok();
    assert!(out.contains("\n-Greet {{ name }} warmly.\n+Welcome {{ name }} to the shop.\n"), "{r}");
    assert!(out.contains("changes (at least a minor bump)"), "{r}");
    assert!(!out.contains('\u{1b}'), "no ANSI escapes: {r}");
    // On a terminal the diff is coloured, unless told not to be.
    let diff = ["versions", "diff", "sv", "1", "2"];
    let r = cli.cmd(&diff).colour_allowed().run_in_terminal().await;
    let out = r.ok();
    assert!(out.contains("\u{1b}[31m-Greet {{ name }} warmly.\u{1b}[39m\n"), "{r:?}");
    assert!(out.contains("\u{1b}[32m+Welcome {{ name }} to the shop.\u{1b}[39m\n"), "{r:?}");
    let r = cli.cmd(&diff).run_in_terminal().await;
    assert!(r.ok().contains("\n-Greet {{ name }} warmly.\n") && !r.stdout.contains('\u{1b}'), "{r}");
    let r = cli.cmd(&diff).colour_allowed().env("NO_COLOR", "1").run_in_terminal().await;
    assert!(r.ok().contains("\n-Greet {{ name }} warmly.\n") && !r.stdout.contains('\u{1b}'), "{r}");
    let r = cli.cmd(&diff).colour_allowed().run().await;
    assert!(!r.ok().contains('\u{1b}'), "not a terminal: {r}");
    let r = cli.run(&["versions", "diff", "sv"]).await;
    let out = r.ok();
    assert!(
        out.contains("\n-Welcome, {{ name }}, to the shop.\n+Hello {{ name }}.\n"),
        "newest against the one before: {r}"
    );
    let d = cli.run(&["--json", "versions", "diff", "sv", "3", "4"]).await.json();
    assert_eq!((d["from"]["seq"].clone(), d["to"]["seq"].clone()), (json!(3), json!(4)));
    let r = cli.run(&["versions", "diff", "sv", "1", "1"]).await;
    assert!(r.ok().ends_with("no changes\n"), "{r}");
    let r = cli.run(&["versions", "diff", "sv", "1", "9"]).await;
    assert!(r.fails(3).ends_with("[version_not_found]"), "{r}");
    cli.stop().await;
}

pub async fn drafts_are_edited_and_deleted(db: Db) {
    let cli = Cli::start(&db).await;
    let v1 = cli.file("v1.txt", "v1 text");
    cli.run(&["templates", "create", "draft", "--file", &v1]).await.ok();
    let v2 = cli.file("v2.txt", "v2 text here");
    cli.run(&["versions", "create", "draft", "--file", &v2]).await.ok();
    // The newest draft is edited in place, its version recomputed.
    let fix = cli.file("fix.txt", "v1  text\n");
    let r = cli.run(&["versions", "edit", "draft", "2", "--file", &fix, "-m", "fix"]).await;
    assert!(r.ok().starts_with("edited draft version 2 (1.0.1, patch bump), a draft\n"), "{r}");
    let v = cli.run(&["--json", "versions", "show", "draft", "2"]).await.json();
    assert_eq!(
        (v["template_text"].clone(), v["change_description"].clone()),
        (json!("v1  text\n"), json!("fix"))
    );
    let r = cli.cmd(&["versions", "edit", "draft", "1.0.1"]).stdin("v1 text again, longer").run().await;
    assert!(r.ok().starts_with("edited draft version 2 (1.1.0, minor bump)"), "{r}");
    // An older version is not edited.
    let r = cli.run(&["versions", "edit", "draft", "1", "--file", &fix]).await;
    assert!(r.fails(4).ends_with("[version_superseded]"), "{r}");

    // A labelled draft is not deleted; once the label is gone it is.
    cli.run(&["labels", "set", "draft", "staging", "2"]).await.ok();
    let r = cli.run(&["versions", "delete", "draft", "2"]).await;
    assert!(r.fails(4).ends_with("[version_labelled]"), "{r}");
    cli.run(&["labels", "remove", "draft", "staging"]).await.ok();
    let r = cli.run(&["versions", "delete", "draft", "2"]).await;
    assert_eq!(r.ok(), "deleted version 2 of draft\n");
    let r = cli.run(&["versions", "delete", "draft", "1"]).await;
    assert!(r.fails(4).ends_with("[last_version]"), "{r}");
    let r = cli.run(&["versions", "delete", "draft", "2"]).await;
    assert!(r.fails(3).ends_with("[version_not_found]"), "{r}");
    let r = cli.cmd(&["versions", "create", "draft"]).stdin("again").run().await;
    assert!(r.ok().starts_with("created draft version 3 "), "numbers are never reused: {r}");
    assert_eq!(r.stderr, "", "{r}");
    // Warnings go to stderr, the result to stdout.
    let unused = cli.file("unused.json", &schema(r#"{"mood": {"type": "string"}}"#, &[]));
    let r =
        cli.cmd(&["versions", "create", "draft", "--schema", &unused]).stdin("again, moodless").run().await;
    assert!(r.ok().starts_with("created draft version 4 "), "{r}");
    assert_eq!(r.stderr, "warning: parameter `mood` is declared but the template does not use it\n");
    cli.stop().await;
}

pub async fn labels_are_set_listed_and_removed(db: Db) {
    let cli = Cli::start(&db).await;
    let one = cli.file("one.txt", "one");
    cli.run(&["templates", "create", "lab", "--file", &one]).await.ok();
    cli.cmd(&["versions", "create", "lab"]).stdin("two words").run().await.ok();

    let r = cli.run(&["labels", "set", "lab", "canary", "1"]).await;
    assert_eq!(r.ok(), "canary of lab → v1 (1.0.0)\n");
    let r = cli.run(&["labels", "set", "lab", "canary", "1.1.0"]).await;
    assert_eq!(r.ok(), "canary of lab → v2 (1.1.0)\n");
    cli.run(&["labels", "set", "lab", "staging", "1"]).await.ok();
    let r = cli.run(&["labels", "set", "lab", "latest", "1"]).await;
    assert!(r.fails(6).ends_with("[label_reserved]"), "{r}");
    let r = cli.run(&["labels", "set", "lab", "canary", "9"]).await;
    assert!(r.fails(3).ends_with("[version_not_found]"), "{r}");
    let r = cli.run(&["labels", "set", "lab", "Prod!", "1"]).await;
    assert!(r.fails(6).ends_with("[invalid_name]"), "{r}");

    let r = cli.run(&["labels", "list", "lab"]).await;
    let out = r.ok();
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 4, "{r}");
    assert_eq!(rows[0], ["LABEL", "VERSION", "MOVED"], "{r}");
    assert_eq!(rows[1], ["latest", "v2", "(1.1.0)", "automatic"], "{r}");
    assert_eq!(rows[2][..3], ["canary", "v2", "(1.1.0)"], "{r}");
    assert_eq!(rows[3][..3], ["staging", "v1", "(1.0.0)"], "{r}");
    let l = cli.run(&["--json", "labels", "list", "lab"]).await.json();
    assert_eq!(l["items"].as_array().map(Vec::len), Some(3));

    let r = cli.run(&["labels", "history", "lab", "canary"]).await;
    let out = r.ok();
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["canary", "→", "v2", "(1.1.0)"], "{r}");
    assert_eq!(rows[1], ["WHEN", "FROM", "TO", "BY"], "{r}");
    // Newest first: 1 → 2, then the first setting (from nowhere) to 1.
    assert_eq!(rows[2][2..4], ["1", "2"], "{r}");
    assert_eq!(rows[3][2..4], ["-", "1"], "{r}");
    assert_eq!(rows.len(), 4, "{r}");
    let h = cli.run(&["--json", "labels", "history", "lab", "canary"]).await.json();
    assert_eq!(h["history"].as_array().map(Vec::len), Some(2));
    insta::assert_snapshot!("labels_history", normalize(out));

    let r = cli.run(&["labels", "remove", "lab", "staging"]).await;
    assert_eq!(r.ok(), "removed label staging from lab\n");
    let r = cli.run(&["labels", "remove", "lab", "staging"]).await;
    assert!(r.fails(3).ends_with("[label_not_found]"), "{r}");
    let r = cli.run(&["labels", "remove", "lab", "latest"]).await;
    assert!(r.fails(6).ends_with("[label_reserved]"), "{r}");
    let r = cli.run(&["labels", "history", "lab", "staging"]).await;
    assert!(r.fails(3).ends_with("[label_not_found]"), "{r}");
    let l = cli.run(&["--json", "labels", "list", "lab"]).await.json();
    assert_eq!(l["items"].as_array().map(Vec::len), Some(2));
    cli.stop().await;
}

pub async fn rollback_moves_a_label_back_or_restores_content(db: Db) {
    let cli = Cli::start(&db).await;
    let first = cli.file("first.txt", "first text");
    cli.run(&["templates", "create", "rb", "--file", &first]).await.ok();
    cli.cmd(&["versions", "create", "rb"]).stdin("second text").run().await.ok();

    let r = cli.run(&["rollback", "rb", "--label", "canary"]).await;
    assert!(r.fails(3).ends_with("[label_not_found]"), "{r}");
    cli.run(&["labels", "set", "rb", "canary", "1"]).await.ok();
    let r = cli.run(&["rollback", "rb", "--label", "canary"]).await;
    assert!(r.fails(4).ends_with("[no_previous_version]"), "{r}");
    cli.run(&["labels", "set", "rb", "canary", "2"]).await.ok();
    // Back to where the label pointed before.
    let r = cli.run(&["rollback", "rb", "--label", "canary"]).await;
    assert_eq!(r.ok(), "canary of rb → v1 (1.0.0)\n");
    let t = cli.run(&["--json", "templates", "show", "rb", "--label", "canary"]).await.json();
    assert_eq!(t["version"]["template_text"], "first text");
    let r = cli.run(&["rollback", "rb", "--label", "canary", "--to", "2"]).await;
    assert_eq!(r.ok(), "canary of rb → v2 (1.1.0)\n");

    // A new version with version 1's content.
    let r = cli.run(&["rollback", "rb", "--from", "1", "-m", "undo"]).await;
    assert!(r.ok().starts_with("restored as rb version 3 ("), "{r}");
    let v = cli.run(&["--json", "versions", "show", "rb", "3"]).await.json();
    assert_eq!(
        (v["template_text"].clone(), v["restored_from"].clone(), v["change_description"].clone()),
        (json!("first text"), json!(1), json!("undo"))
    );
    let r = cli.run(&["rollback", "rb", "--from", "9"]).await;
    assert!(r.fails(3).ends_with("[version_not_found]"), "{r}");
    let r = cli.run(&["rollback", "rb"]).await;
    assert!(r.fails(2).contains("--label <LABEL>"), "--label or --from is required: {r}");
    let r = cli.run(&["rollback", "rb", "--label", "canary", "--from", "1"]).await;
    r.fails(2);
    cli.stop().await;
}
