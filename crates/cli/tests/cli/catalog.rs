//! `templates` and `types`.

use serde_json::json;

use crate::support::{Cli, Db, names, release};

const GREET_SCHEMA: &str = r#"{"type": "object",
  "properties": {"name": {"type": "string"}, "shop": {"type": "string"}},
  "required": ["name"]}"#;

pub async fn templates_are_created_from_files_and_stdin(db: Db) {
    let cli = Cli::start(&db).await;
    // From a file, with a schema file and metadata.
    let text = cli.file("greet.txt", "Hello {{ name }}{% if shop %}, welcome to {{ shop }}{% endif %}.");
    let schema = cli.file("greet.schema.json", GREET_SCHEMA);
    let r = cli
        .run(&[
            "templates",
            "create",
            "support/greet",
            "--file",
            &text,
            "--schema",
            &schema,
            "--description",
            "Greets a customer",
            "--tag",
            "b",
            "--tag",
            "a",
            "-m",
            "first cut",
        ])
        .await;
    assert_eq!(r.ok(), "created support/greet version 1 (1.0.0), a draft\n");
    assert_eq!(r.stderr, "", "no warnings: every variable is declared and used");
    let t = cli.run(&["--json", "templates", "show", "support/greet", "--label", "latest"]).await.json();
    assert_eq!(t["description"], "Greets a customer");
    assert_eq!(t["tags"], json!(["a", "b"]));
    assert_eq!(
        t["version"]["template_text"],
        "Hello {{ name }}{% if shop %}, welcome to {{ shop }}{% endif %}."
    );
    assert_eq!(t["version"]["parameter_schema"]["required"], json!(["name"]));
    assert_eq!(t["version"]["change_description"], "first cut");

    // Piped on standard input, with the schema inferred from the text.
    let r = cli
        .cmd(&["templates", "create", "piped", "--infer-schema"])
        .stdin("Hi {{ who }}, from {{ team }}")
        .run()
        .await;
    assert_eq!(r.ok(), "created piped version 1 (1.0.0), a draft\n");
    let v = cli.run(&["--json", "versions", "show", "piped", "1"]).await.json();
    assert_eq!(v["template_text"], "Hi {{ who }}, from {{ team }}");
    assert_eq!(v["parameter_schema"]["required"], json!(["team", "who"]));
    assert_eq!(v["parameter_schema"]["properties"]["who"], json!({"type": "string"}));
    // `--file -` reads standard input too.
    let r =
        cli.cmd(&["templates", "create", "dash", "--file", "-"]).stdin("No variables here.\n").run().await;
    assert_eq!(r.ok(), "created dash version 1 (1.0.0), a draft\n");
    // A config file and a long description go along.
    let config = cli.file("config.json", r#"{"model": "small", "temperature": 0.2}"#);
    let long = cli.file("long.md", "# Configured\n\nWith *markdown*.\n");
    let r = cli
        .cmd(&["templates", "create", "configured", "--config", &config, "--long-description", &long])
        .stdin("Configured.")
        .run()
        .await;
    r.ok();
    let t = cli.run(&["--json", "templates", "show", "configured", "--label", "latest"]).await.json();
    assert_eq!(t["version"]["config"], json!({"model": "small", "temperature": 0.2}));
    assert_eq!(t["long_description_markdown"], "# Configured\n\nWith *markdown*.\n");
    let r = cli.run(&["templates", "show", "configured", "--label", "latest"]).await;
    assert!(r.ok().ends_with("config\n{\n  \"model\": \"small\",\n  \"temperature\": 0.2\n}\n"), "{r}");
    let v = cli.run(&["--json", "versions", "show", "dash", "1"]).await.json();
    assert_eq!(v["template_text"], "No variables here.\n");

    // Chat messages from a JSON file, with a placeholder.
    let messages = cli.file(
        "chat.json",
        r#"[{"role": "system", "content": "You help {{ team }}."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"}]"#,
    );
    let r = cli
        .run(&["templates", "create", "chat/helper", "--chat", "--file", &messages, "--infer-schema"])
        .await;
    assert_eq!(r.ok(), "created chat/helper version 1 (1.0.0), a draft\n");
    let out = cli.run(&["templates", "show", "chat/helper", "--label", "latest"]).await;
    let out = out.ok();
    assert!(
        out.contains("[system] You help {{ team }}.\n[placeholder: history]\n[user] {{ question }}\n"),
        "{out}"
    );
    assert!(out.contains("\"question\""), "the inferred schema is shown: {out}");

    // Refusals.
    let r = cli.run(&["templates", "create", "nothing"]).await;
    assert!(r.fails(2).contains("--file"), "{r}");
    let r = cli.cmd(&["templates", "create", "piped", "--infer-schema"]).stdin("again {{ x }}").run().await;
    assert!(r.fails(4).contains("[already_exists]"), "{r}");
    let r = cli.cmd(&["templates", "create", "undeclared"]).stdin("Hi {{ stranger }}").run().await;
    let msg = r.fails(6);
    assert!(msg.contains("stranger") && msg.contains("[undeclared_variables]"), "{r}");
    let bad = cli.file("bad.json", r#"{"role": "user""#);
    let r = cli.run(&["templates", "create", "badchat", "--chat", "--file", &bad]).await;
    assert!(r.fails(6).contains("--chat expects a JSON list of messages"), "{r}");
    let r = cli.run(&["templates", "create", "nofile", "--file", "/nonexistent/promptvault.txt"]).await;
    assert!(r.fails(6).contains("/nonexistent/promptvault.txt"), "{r}");
    let r = cli
        .cmd(&["templates", "create", "both", "--schema", &schema, "--infer-schema"])
        .stdin("x")
        .run()
        .await;
    r.fails(2);
    // None of the refused writes created anything.
    let all = cli.run(&["--json", "templates", "list"]).await.json();
    assert_eq!(names(&all), ["chat/helper", "configured", "dash", "piped", "support/greet"]);
    cli.stop().await;
}

pub async fn templates_are_listed_filtered_paged_and_searched(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("plain.txt", "plain text");
    for i in 0..5 {
        let name = format!("bulk/t{i}");
        cli.run(&["templates", "create", &name, "--file", &text, "--tag", "bulk"]).await.ok();
    }
    let refunds = cli.file("refunds.txt", "Mention the thirty day window.");
    cli.run(&[
        "templates",
        "create",
        "support/refunds",
        "--file",
        &refunds,
        "--tag",
        "billing",
        "--description",
        "Explains refunds",
        "--classification",
        "confidential",
    ])
    .await
    .ok();

    // The table: a header, then one line per template.
    let r = cli.run(&["templates", "list"]).await;
    let out = r.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{r}");
    for (word, line) in ["NAME", "LATEST", "TYPE", "CLASS", "TAGS", "DESCRIPTION"].iter().zip([0; 6]) {
        assert!(lines[line].contains(word), "{r}");
    }
    assert!(lines[1].trim_start().starts_with("bulk/t0") && lines[1].contains("v1 (1.0.0)"), "{r}");
    let refunds_line = lines.iter().find(|l| l.trim_start().starts_with("support/refunds")).expect("listed");
    assert!(
        refunds_line.contains("confidential")
            && refunds_line.contains("billing")
            && refunds_line.contains("Explains refunds"),
        "{r}"
    );
    assert_eq!(r.stderr, "", "one page: no cursor to follow");

    // JSON.
    let all = cli.run(&["--json", "templates", "list"]).await.json();
    assert_eq!(names(&all), ["bulk/t0", "bulk/t1", "bulk/t2", "bulk/t3", "bulk/t4", "support/refunds"]);
    assert!(all["next_cursor"].is_null());

    // Filters.
    let r = cli.run(&["--json", "templates", "list", "--folder", "support"]).await.json();
    assert_eq!(names(&r), ["support/refunds"]);
    let r = cli.run(&["--json", "templates", "list", "--tag", "billing"]).await.json();
    assert_eq!(names(&r), ["support/refunds"]);
    let r = cli.run(&["--json", "templates", "list", "--tag", "bulk", "--folder", "support"]).await.json();
    assert_eq!(names(&r), Vec::<String>::new(), "filters combine");
    let r = cli.run(&["--json", "templates", "list", "--classification", "confidential"]).await.json();
    assert_eq!(names(&r), ["support/refunds"]);

    // Pages: one page says how to go on; --all follows every page.
    let r = cli.run(&["templates", "list", "--folder", "bulk", "--limit", "2"]).await;
    assert_eq!(r.ok().lines().count(), 3, "a header and two rows: {r}");
    assert!(r.stderr.starts_with("more: --cursor ") && r.stderr.lines().count() == 1, "{r}");
    let cursor = r.stderr["more: --cursor ".len()..].split_whitespace().next().expect("a cursor").to_owned();
    let next = cli
        .run(&["--json", "templates", "list", "--folder", "bulk", "--limit", "2", "--cursor", &cursor])
        .await;
    assert_eq!(names(&next.json()), ["bulk/t2", "bulk/t3"]);
    let page = cli.run(&["--json", "templates", "list", "--folder", "bulk", "--limit", "2"]).await.json();
    assert_eq!(names(&page), ["bulk/t0", "bulk/t1"]);
    assert!(page["next_cursor"].is_string());
    let every = cli.run(&["--json", "templates", "list", "--folder", "bulk", "--limit", "2", "--all"]).await;
    let every = every.json();
    assert_eq!(names(&every), ["bulk/t0", "bulk/t1", "bulk/t2", "bulk/t3", "bulk/t4"]);
    assert!(every["next_cursor"].is_null());
    let r = cli.run(&["templates", "list", "--limit", "2", "--all"]).await;
    assert_eq!(r.ok().lines().count(), 7, "{r}");
    assert_eq!(r.stderr, "", "{r}");
    let r = cli.run(&["templates", "list", "--all", "--cursor", &cursor]).await;
    assert!(r.fails(2).contains("'--all' cannot be used with '--cursor <CURSOR>'"), "{r}");
    let r = cli.run(&["templates", "list", "--cursor", "not-a-cursor"]).await;
    assert!(r.fails(6).contains("[invalid_cursor]"), "{r}");

    // Search: words in the text, the description, the name. The text of a
    // confidential template is encrypted and never indexed: its name,
    // description and tags find it, its words do not.
    let r = cli.run(&["--json", "templates", "search", "thirty window"]).await.json();
    assert_eq!(names(&r), Vec::<String>::new());
    let r = cli.run(&["templates", "search", "refund"]).await;
    assert!(r.ok().lines().nth(1).is_some_and(|l| l.trim_start().starts_with("support/refunds")), "{r}");
    let r = cli.run(&["--json", "templates", "search", "plain", "--folder", "bulk", "--limit", "50"]).await;
    assert_eq!(names(&r.json()).len(), 5);
    let r = cli.run(&["--json", "templates", "search", "zebra"]).await.json();
    assert_eq!(names(&r), Vec::<String>::new());
    cli.stop().await;
}

pub async fn templates_are_shown_updated_and_deleted(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("t.txt", "Hi {{ name }}");
    let schema = cli.file(
        "s.json",
        r#"{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}"#,
    );
    cli.run(&["templates", "create", "greet", "--file", &text, "--schema", &schema]).await.ok();

    // The default label (production) is not set yet.
    let r = cli.run(&["templates", "show", "greet"]).await;
    let msg = r.fails(3);
    assert!(msg.contains("production") && msg.contains("[label_not_found]"), "{r}");
    let r = cli.run(&["templates", "show", "greet", "--label", "latest"]).await;
    let out = r.ok();
    for line in [
        "name            greet\n",
        "type            general\n",
        "classification  internal\n",
        "labels          latest→v1\n",
        "version         v1 (1.0.0), draft\n",
        "template\nHi {{ name }}\nparameter schema\n{\n",
    ] {
        assert!(out.contains(line), "{line:?} in {r}");
    }
    assert!(out.contains("hash            sha256:"), "{r}");
    // `production` is protected: an approved version only.
    let r = cli.run(&["labels", "set", "greet", "production", "1"]).await;
    assert!(r.fails(4).ends_with("[label_requires_approved]"), "{r}");
    release(&cli, "greet", "1").await;
    cli.run(&["labels", "set", "greet", "production", "1"]).await.ok();
    let r = cli.run(&["templates", "show", "greet"]).await;
    assert!(r.ok().contains("labels          latest→v1  production→v1\n"), "{r}");
    let r = cli.run(&["--json", "templates", "show", "greet", "--version", "1.0.0"]).await.json();
    assert_eq!(r["version"]["seq"], 1);
    let r = cli.run(&["templates", "show", "greet", "--version", "7"]).await;
    assert!(r.fails(3).contains("[version_not_found]"), "{r}");
    let r = cli.run(&["templates", "show", "nope", "--label", "latest"]).await;
    assert!(r.fails(3).contains("[template_not_found]"), "{r}");
    let r = cli.run(&["templates", "show", "greet", "--label", "latest", "--version", "1"]).await;
    r.fails(2);

    // Metadata updates.
    let r = cli
        .run(&["templates", "update", "greet", "--description", "Says hello", "--tag", "x", "--tag", "y"])
        .await;
    assert_eq!(r.ok(), "updated greet (revision 2)\n");
    let t = cli.run(&["--json", "templates", "show", "greet"]).await.json();
    assert_eq!((t["description"].clone(), t["tags"].clone()), (json!("Says hello"), json!(["x", "y"])));
    let r = cli.run(&["templates", "update", "greet", "--no-tags", "--classification", "restricted"]).await;
    assert_eq!(r.ok(), "updated greet (revision 3)\n");
    let t = cli.run(&["--json", "templates", "show", "greet"]).await.json();
    assert_eq!(
        (t["description"].clone(), t["tags"].clone(), t["security_classification"].clone()),
        (json!("Says hello"), json!([]), json!("restricted")),
        "what was not given stays"
    );
    let r = cli.run(&["templates", "update", "greet"]).await;
    assert!(r.fails(2).contains("nothing to change"), "{r}");
    let r = cli.run(&["templates", "update", "greet", "--classification", "secret"]).await;
    r.fails(6);
    let r = cli.run(&["templates", "update", "greet", "--type", "nope"]).await;
    assert!(r.fails(3).contains("[prompt_type_not_found]"), "{r}");
    let r = cli.run(&["templates", "update", "ghost", "--description", "x"]).await;
    assert!(r.fails(3).contains("[template_not_found]"), "{r}");

    // Delete.
    assert_eq!(cli.run(&["templates", "delete", "greet"]).await.ok(), "deleted greet\n");
    let r = cli.run(&["templates", "show", "greet", "--label", "latest"]).await;
    assert!(r.fails(3).contains("[template_not_found]"), "{r}");
    let r = cli.run(&["templates", "delete", "greet"]).await;
    assert!(r.fails(3).contains("[template_not_found]"), "{r}");
    cli.stop().await;
}

pub async fn prompt_types_are_managed(db: Db) {
    let cli = Cli::start(&db).await;
    let contract = cli.file(
        "agent.json",
        r#"{"properties": {"agent_name": {"type": "string"}}, "required": ["agent_name"]}"#,
    );
    let r = cli.run(&["types", "create", "agent", "--name", "Agents", "--schema", &contract]).await;
    assert_eq!(r.ok(), "created prompt type agent\n");
    cli.run(&["types", "create", "notes", "--name", "Notes"]).await.ok();
    let r = cli.run(&["types", "create", "agent", "--name", "Again"]).await;
    assert!(r.fails(4).contains("[already_exists]"), "{r}");
    let r = cli.run(&["types", "create", "Bad Key", "--name", "x"]).await;
    assert!(r.fails(6).contains("[invalid_name]"), "{r}");

    let r = cli.run(&["types", "list"]).await;
    let out = r.ok();
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["KEY", "NAME", "CONTRACT", "CREATED"], "{r}");
    assert_eq!(rows[1][..3], ["agent", "Agents", "yes"], "{r}");
    assert_eq!(rows[2][..2], ["general", "General"], "{r}");
    assert_eq!(rows[3][..3], ["notes", "Notes", "no"], "{r}");
    let keys: Vec<String> = cli.run(&["--json", "types", "list"]).await.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["key"].as_str().expect("key").to_owned())
        .collect();
    assert_eq!(keys, ["agent", "general", "notes"]);
    let r = cli.run(&["types", "show", "agent"]).await;
    let out = r.ok();
    assert!(out.starts_with("key       agent\nname      Agents\n"), "{r}");
    assert!(out.contains("contract:\n{\n") && out.contains("\"agent_name\""), "{r}");
    let r = cli.run(&["types", "show", "ghost"]).await;
    assert!(r.fails(3).contains("[prompt_type_not_found]"), "{r}");

    // A template of the type must meet the contract; then the type is in use.
    let r = cli.cmd(&["templates", "create", "a1", "--type", "agent"]).stdin("hello").run().await;
    assert!(r.fails(6).contains("agent_name"), "{r}");
    let r = cli
        .cmd(&["templates", "create", "a1", "--type", "agent", "--infer-schema"])
        .stdin("I am {{ agent_name }}")
        .run()
        .await;
    r.ok();
    let r = cli.run(&["types", "delete", "agent"]).await;
    assert!(r.fails(4).contains("[in_use]"), "{r}");
    let r = cli.run(&["types", "update", "notes", "--name", "Meeting notes"]).await;
    let out = r.ok();
    assert!(out.contains("name      Meeting notes\n") && out.contains("revision  2\n"), "{r}");
    let r = cli.run(&["types", "update", "notes"]).await;
    assert!(r.fails(2).contains("nothing to change"), "{r}");
    let r = cli.run(&["types", "update", "notes", "--schema", &contract]).await;
    assert!(r.ok().contains("contract:\n") && r.ok().contains("revision  3\n"), "{r}");
    let r = cli.run(&["types", "update", "notes", "--no-schema"]).await;
    assert!(!r.ok().contains("contract:") && r.ok().contains("revision  4\n"), "{r}");
    let r = cli.run(&["types", "update", "notes", "--schema", &contract, "--no-schema"]).await;
    r.fails(2);
    assert_eq!(cli.run(&["types", "delete", "notes"]).await.ok(), "deleted prompt type notes\n");
    let r = cli.run(&["types", "delete", "notes"]).await;
    assert!(r.fails(3).contains("[prompt_type_not_found]"), "{r}");
    cli.stop().await;
}

/// `--offline-allowed` on create and update, shown with the access
/// settings, and `authz explain --deployment` telling what it changes.
pub async fn offline_allowed_is_set_shown_and_explained(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("t.txt", "Salaries");
    cli.run(&["templates", "create", "hr/pay", "--file", &text, "--classification", "confidential"])
        .await
        .ok();
    let r = cli.run(&["templates", "show", "hr/pay", "--label", "latest"]).await;
    assert!(r.ok().contains("access          -\n"), "{r}");
    let explain =
        ["authz", "explain", "read", "template", "--template", "hr/pay", "--deployment", "electron_local"];
    let r = cli.run(&explain).await;
    let msg = r.fails(5);
    assert!(msg.contains("confidential") && msg.contains("offline_allowed"), "{r}");

    let r = cli.run(&["templates", "update", "hr/pay", "--offline-allowed", "true"]).await;
    r.ok();
    let r = cli.run(&["templates", "show", "hr/pay", "--label", "latest"]).await;
    assert!(r.ok().contains("access          offline-allowed\n"), "{r}");
    let r = cli.run(&explain).await;
    assert!(r.ok().starts_with("allowed: "), "{r}");
    cli.run(&["templates", "update", "hr/pay", "--offline-allowed", "false"]).await.ok();
    let r = cli.run(&["--json", "templates", "show", "hr/pay", "--label", "latest"]).await.json();
    assert_eq!(r["access"]["offline_allowed"], false);
    cli.run(&explain).await.fails(5);
    // Given at creation.
    cli.run(&[
        "templates",
        "create",
        "hr/faq",
        "--file",
        &text,
        "--classification",
        "confidential",
        "--offline-allowed",
    ])
    .await
    .ok();
    let r = cli.run(&["--json", "templates", "show", "hr/faq", "--label", "latest"]).await.json();
    assert_eq!(r["access"]["offline_allowed"], true);
    cli.stop().await;
}
