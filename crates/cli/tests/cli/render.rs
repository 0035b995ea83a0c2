//! `render`, `outcome`, `metrics`, `prompt`.

use serde_json::json;

use crate::support::{Cli, Db, prompt_id, release};

const SCHEMA: &str = r#"{"type": "object",
  "properties": {"name": {"type": "string", "minLength": 1}, "n": {"type": "integer", "minimum": 0}},
  "required": ["name"], "additionalProperties": false}"#;

pub async fn render_takes_parameters_from_flags_files_and_stdin(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("t.txt", "Hello {{ name }}{% if n %}, {{ n + 1 }} times{% endif %}!");
    let schema = cli.file("s.json", SCHEMA);
    cli.run(&["templates", "create", "r/greet", "--file", &text, "--schema", &schema]).await.ok();

    // --var k=v is text, --var k:=json is typed; the prompt id goes to stderr.
    let r = cli.run(&["render", "r/greet", "--label", "latest", "--var", "name=Ada", "--var", "n:=3"]).await;
    assert_eq!(r.ok(), "Hello Ada, 4 times!\n");
    let id = prompt_id(&r);
    assert_eq!(r.stderr, format!("prompt {id} · r/greet v1 (1.0.0)\n"));
    let p = cli.run(&["--json", "prompt", &id]).await.json();
    assert_eq!(p["data"], json!({"name": "Ada", "n": 3}));
    assert_eq!(p["prompt_text"], "Hello Ada, 4 times!");
    // A file of parameters; --var adds to it and wins.
    let vars = cli.file("vars.json", r#"{"name": "Bo", "n": 1}"#);
    let r = cli.run(&["render", "r/greet", "--version", "1", "--vars-file", &vars]).await;
    assert_eq!(r.ok(), "Hello Bo, 2 times!\n");
    let r =
        cli.run(&["render", "r/greet", "--version", "1.0.0", "--vars-file", &vars, "-v", "name=Cy"]).await;
    assert_eq!(r.ok(), "Hello Cy, 2 times!\n");
    // Parameters piped in as JSON, or as `--vars-file -`.
    let r = cli.cmd(&["render", "r/greet", "--label", "latest"]).stdin(r#"{"name": "Di"}"#).run().await;
    assert_eq!(r.ok(), "Hello Di!\n");
    let r = cli
        .cmd(&["render", "r/greet", "--label", "latest", "--vars-file", "-"])
        .stdin(r#"{"name": "Ed", "n": 0}"#)
        .run()
        .await;
    assert_eq!(r.ok(), "Hello Ed!\n");

    // --json: the API's answer, prompt id included; nothing on stderr.
    let r = cli.run(&["--json", "render", "r/greet", "--label", "latest", "--var", "name=Fa"]).await;
    let body = r.json();
    assert_eq!(body["text"], "Hello Fa!");
    assert_eq!((body["template"].clone(), body["version_seq"].clone()), (json!("r/greet"), json!(1)));
    assert!(body["prompt_id"].as_str().is_some_and(|s| s.len() == 36), "{r}");
    assert_eq!(r.stderr, "", "{r}");

    // Invalid parameters: every violation with its JSON pointer.
    let r = cli.run(&["render", "r/greet", "--label", "latest", "--var", "name=Ada", "--var", "n=3"]).await;
    let msg = r.fails(6);
    assert!(msg.contains("/n: ") && msg.ends_with("[invalid_parameters]"), "{r}");
    let r = cli.run(&["render", "r/greet", "--label", "latest", "--var", "n:=-1", "--var", "extra=1"]).await;
    let msg = r.fails(6);
    assert!(msg.contains("/n: ") && msg.contains("/: "), "{r}");
    assert!(!msg.contains("--var"), "{r}");
    let r = cli.cmd(&["render", "r/greet", "--label", "latest"]).stdin("[1, 2]").run().await;
    assert!(r.fails(6).contains("must be a JSON object"), "{r}");
    let r = cli.cmd(&["render", "r/greet", "--label", "latest"]).stdin("{name").run().await;
    assert!(r.fails(6).contains("standard input is not a JSON object"), "{r}");
    let r = cli.run(&["render", "r/greet", "--label", "latest", "--var", "n:={bad"]).await;
    assert!(r.fails(2).contains("n:="), "{r}");
    let r = cli.run(&["render", "r/greet", "--label", "latest", "--var", "novalue"]).await;
    r.fails(2);
    // Selecting what to render.
    let r = cli.run(&["render", "r/greet", "--var", "name=Ada"]).await;
    assert!(r.fails(3).contains("production"), "no default label yet: {r}");
    let r = cli.run(&["render", "r/greet", "--version", "4", "--var", "name=Ada"]).await;
    assert!(r.fails(3).ends_with("[version_not_found]"), "{r}");
    let r = cli.run(&["render", "nope", "--label", "latest"]).await;
    assert!(r.fails(3).ends_with("[template_not_found]"), "{r}");
    release(&cli, "r/greet", "1").await;
    cli.run(&["labels", "set", "r/greet", "production", "1"]).await.ok();
    let r = cli.run(&["render", "r/greet", "--var", "name=Gus"]).await;
    assert_eq!(r.ok(), "Hello Gus!\n");
    cli.stop().await;
}

pub async fn chat_templates_render_messages(db: Db) {
    let cli = Cli::start(&db).await;
    let messages = cli.file(
        "chat.json",
        r#"[{"role": "system", "content": "You help {{ team }}."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"}]"#,
    );
    cli.run(&["templates", "create", "chat", "--chat", "--file", &messages, "--infer-schema"]).await.ok();
    let history = cli.file(
        "history.json",
        r#"{"history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#,
    );
    let r = cli
        .run(&[
            "render",
            "chat",
            "--label",
            "latest",
            "--var",
            "team=Billing",
            "--var",
            "question=Why?",
            "--placeholders-file",
            &history,
        ])
        .await;
    assert_eq!(r.ok(), "[system] You help Billing.\n[user] hi\n[assistant] hello\n[user] Why?\n");
    prompt_id(&r);
    let r = cli.run(&["render", "chat", "--label", "latest", "--var", "team=B", "--var", "question=Q"]).await;
    assert!(r.fails(6).ends_with("[missing_placeholder]"), "{r}");
    cli.stop().await;
}

pub async fn outcomes_are_recorded_and_counted(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("t.txt", "Hi {{ n }}");
    cli.run(&["templates", "create", "m", "--file", &text, "--infer-schema"]).await.ok();
    let r = cli.run(&["metrics", "m"]).await;
    let rows: Vec<Vec<String>> =
        r.ok().lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect();
    assert_eq!(rows, [vec!["VERSION", "USED", "LAST", "USED", "SUCCESS"], vec!["all", "0", "-", "-"]], "{r}");

    let first = prompt_id(
        cli.run(&[
            "render",
            "m",
            "--label",
            "latest",
            "--var",
            "n=1",
            "--session-id",
            "s1",
            "--agent-id",
            "a1",
        ])
        .await
        .success(),
    );
    let second = prompt_id(cli.run(&["render", "m", "--label", "latest", "--var", "n=2"]).await.success());
    let r = cli.run(&["outcome", &first, "--success", "--detail", "good"]).await;
    assert_eq!(r.ok(), format!("recorded success for {first}\n"));
    let r = cli.run(&["outcome", &first, "--failure"]).await;
    assert!(r.fails(4).ends_with("[outcome_already_reported]"), "{r}");

    let r = cli.run(&["metrics", "m"]).await;
    let out = r.ok();
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "a header, the total and version 1: {r}");
    assert_eq!((rows[1][0], rows[1][1], rows[1].last().copied()), ("all", "2", Some("100.0%")), "{r}");
    assert_eq!((rows[2][0], rows[2][1], rows[2].last().copied()), ("v1", "2", Some("100.0%")), "{r}");
    let m = cli.run(&["--json", "metrics", "m"]).await.json();
    assert_eq!((m["total"]["successes"].clone(), m["total"]["failures"].clone()), (json!(1), json!(0)));

    let r = cli.run(&["outcome", &second, "--failure"]).await;
    assert_eq!(r.ok(), format!("recorded failure for {second}\n"));
    let m = cli.run(&["--json", "metrics", "m"]).await.json();
    assert_eq!((m["total"]["successes"].clone(), m["total"]["failures"].clone()), (json!(1), json!(1)));
    let r = cli.run(&["metrics", "m"]).await;
    assert!(r.ok().lines().nth(1).is_some_and(|l| l.ends_with("50.0%")), "{r}");

    // The recorded rendering.
    let r = cli.run(&["prompt", &first]).await;
    let out = r.ok();
    assert!(out.starts_with(&format!("id          {first}\nversion     v1\n")), "{r}");
    assert!(out.contains("outcome     success\n") && out.contains("parameters  {\"n\":\"1\"}\n"), "{r}");
    assert!(out.ends_with("\nHi 1\n"), "{r}");
    assert!(out.contains("session     s1\nagent       a1\n"), "{r}");

    // Unknown prompts and bad ids.
    let unknown = "0190a0a0-0000-7000-8000-000000000000";
    let r = cli.run(&["outcome", unknown, "--success"]).await;
    assert!(r.fails(3).ends_with("[prompt_not_found]"), "{r}");
    let r = cli.run(&["prompt", unknown]).await;
    assert!(r.fails(3).ends_with("[prompt_not_found]"), "{r}");
    let r = cli.run(&["outcome", "not-a-uuid", "--success"]).await;
    r.fails(6);
    let r = cli.run(&["outcome", &second]).await;
    assert!(r.fails(2).contains("--success"), "--success or --failure is required: {r}");
    let r = cli.run(&["metrics", "ghost"]).await;
    assert!(r.fails(3).ends_with("[template_not_found]"), "{r}");
    cli.stop().await;
}
