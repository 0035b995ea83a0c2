//! `audit list`, `audit export`, `audit verify`.

use serde_json::Value;

use crate::support::{Cli, Db};

pub async fn the_audit_trail_is_listed_exported_and_verified(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("t.txt", "Hello {{ name }}");
    let schema = cli.file("s.json", r#"{"type": "object", "properties": {"name": {"type": "string"}}}"#);
    cli.run(&["templates", "create", "a/greet", "--file", &text, "--schema", &schema]).await.ok();
    cli.run(&["render", "a/greet", "--label", "latest", "--var", "name=Ada"]).await.ok();

    let listed =
        cli.run(&["--json", "audit", "list", "--action", "template.", "--limit", "100"]).await.json();
    let actions: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"template.create"), "{actions:?}");
    assert!(actions.contains(&"template.execute"), "{actions:?}");
    let table = cli.run(&["audit", "list", "--outcome", "success", "--desc", "--limit", "3"]).await;
    assert!(table.ok().contains("success"), "{table}");

    let export = cli.run(&["audit", "export"]).await;
    let lines: Vec<Value> = export.ok().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seqs: Vec<i64> = lines.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());

    let ok = cli.run(&["audit", "verify"]).await;
    assert!(ok.ok().starts_with("audit trail intact: "), "{ok}");

    // Swap the actions of two events in the database: verify names the first.
    db.exec(
        "UPDATE audit_event SET action = CASE seq WHEN 1 THEN (SELECT action FROM audit_event WHERE seq = 2) \
         ELSE (SELECT action FROM audit_event WHERE seq = 1) END WHERE seq IN (1, 2)",
    )
    .await;
    let broken = cli.run(&["audit", "verify"]).await;
    let line = broken.fails(8);
    assert!(line.contains("audit trail broken at event 1"), "{broken}");
    cli.stop().await;
}
