//! Approval workflows and compliance checks configured through the API and
//! files loaded at start, and what they change in reviews.

use std::sync::Arc;

use promptvault_server::settings::GovernanceSettings;
use promptvault_testkit::TestDb;
use serde_json::{Value, json};

use super::governance::key_with_role;
use super::support::{TestServer, conforms, settings};

/// A template of `classification` with a description and a declared
/// parameter, so the built-in checks pass.
async fn template(s: &TestServer, name: &str, classification: &str, text: &str) {
    let body = json!({
        "name": name,
        "description": "A greeting",
        "security_classification": classification,
        "template_text": text,
        "parameter_schema": {"type": "object", "properties": {"name": {"type": "string"}}},
    });
    s.post("/api/v1/templates", &body).await.ok(201);
}

fn path(name: &str, verb: &str) -> String {
    format!("/api/v1/templates/{}/versions/1/{verb}", name.replace('/', "%2F"))
}

fn two_reviews() -> Value {
    json!({
        "name": "two-reviews",
        "description": "Two different reviewers, one after the other.",
        "classifications": ["confidential"],
        "steps": [
            {"name": "first", "approver_roles": ["reviewer"], "sla_hours": 8},
            {"name": "second", "approver_roles": ["reviewer"], "required_approvals": 1}
        ]
    })
}

async fn audit_count(s: &TestServer, query: &str) -> usize {
    s.get(&format!("/api/v1/audit/events?{query}")).await.ok(200)["items"].as_array().unwrap().len()
}

pub async fn a_workflow_set_through_the_api_governs_approval(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    let author = key_with_role(&db, &s, "author").await;
    let first = key_with_role(&db, &s, "reviewer").await;
    let second = key_with_role(&db, &s, "reviewer").await;

    let created = s.post("/api/v1/workflows", &two_reviews()).await;
    conforms("post", "/api/v1/workflows", &created);
    assert_eq!(created.etag(), "\"wf-1\"");
    assert_eq!((created.body["source"].as_str(), created.body["revision"].as_i64()), (Some("api"), Some(1)));
    assert_eq!(created.body["steps"][1]["required_approvals"], 1);

    // In force: the stored workflow, then what the defaults still govern.
    let listed = s.get("/api/v1/workflows").await;
    conforms("get", "/api/v1/workflows", &listed);
    let items: Vec<(String, Value, String)> = listed.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_owned(),
                w["classifications"].clone(),
                w["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        items,
        vec![
            ("two-reviews".to_owned(), json!(["confidential"]), "api".to_owned()),
            ("standard".to_owned(), json!(["public", "internal"]), "default".to_owned()),
            ("sensitive".to_owned(), json!(["restricted"]), "default".to_owned()),
        ]
    );
    assert_eq!(listed.body["uncovered"], json!([]));
    let default = s.get("/api/v1/workflows/sensitive").await;
    assert_eq!(default.ok(200)["source"], "default");
    assert!(default.etag().is_empty(), "a default has no ETag");

    // A confidential version now needs two reviewers, and no publisher.
    template(&author, "wf/secret", "confidential", "Hello {{ name }}").await;
    author.post(&path("wf/secret", "submit"), &json!({})).await.ok(200);
    let one = first.post(&path("wf/secret", "approve"), &json!({"comment": "fine"})).await;
    assert_eq!(one.ok(200)["version"]["status"], "review", "one approval leaves it in review");
    let reviews = s.get("/api/v1/reviews").await;
    let item = &reviews.ok(200)["items"][0];
    assert_eq!(
        (item["workflow"].as_str(), item["current_step"].as_str()),
        (Some("two-reviews"), Some("second"))
    );
    // One person counts once.
    let again = first.post(&path("wf/secret", "approve"), &json!({})).await;
    again.problem(403, "forbidden");
    assert!(again.body["detail"].as_str().unwrap().contains("one person counts once"), "{:?}", again.body);
    let two = second.post(&path("wf/secret", "approve"), &json!({})).await;
    assert_eq!(two.ok(200)["version"]["status"], "approved");
    let decisions = s.get(&path("wf/secret", "decisions")).await;
    let steps: Vec<&str> =
        decisions.ok(200)["items"].as_array().unwrap().iter().map(|d| d["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["submit", "first", "second"]);

    // Replacing needs the current ETag.
    let mut one_step = two_reviews();
    one_step["steps"] = json!([{"name": "first", "approver_roles": ["reviewer"], "required_approvals": 2}]);
    let url = "/api/v1/workflows/two-reviews";
    s.put(url, &one_step).await.problem(428, "precondition_required");
    let put = s.call(reqwest::Method::PUT, url, Some(&one_step), &[("if-match", "\"wf-1\"")]).await;
    conforms("put", "/api/v1/workflows/{name}", &put);
    assert_eq!((put.ok(200)["revision"].as_i64(), put.etag()), (Some(2), "\"wf-2\"".to_owned()));
    let stale = s.call(reqwest::Method::PUT, url, Some(&one_step), &[("if-match", "\"wf-1\"")]).await;
    stale.problem(412, "precondition_failed");

    // A workflow with versions in review under it cannot be deleted.
    template(&author, "wf/pending", "confidential", "Hi {{ name }}").await;
    author.post(&path("wf/pending", "submit"), &json!({})).await.ok(200);
    let refused = s.delete(url, "").await;
    refused.problem(409, "workflow_in_use");
    assert!(refused.body["detail"].as_str().unwrap().contains("in review"), "{:?}", refused.body);
    author.post(&path("wf/pending", "reject"), &json!({"comment": "x"})).await.problem(403, "forbidden");
    first.post(&path("wf/pending", "reject"), &json!({"comment": "not yet"})).await.ok(200);
    s.delete(url, "\"wf-1\"").await.problem(412, "precondition_failed");
    s.delete(url, "\"wf-2\"").await.ok(204);
    s.get(url).await.problem(404, "workflow_not_found");
    // The default governs confidential again.
    let back = s.get("/api/v1/workflows/sensitive").await;
    assert_eq!(back.ok(200)["classifications"], json!(["confidential", "restricted"]));
    s.delete("/api/v1/workflows/sensitive", "").await.problem(409, "workflow_default");

    assert_eq!(audit_count(&s, "action=workflow.create&outcome=success").await, 1);
    assert_eq!(audit_count(&s, "action=workflow.update&outcome=success").await, 1);
    assert_eq!(audit_count(&s, "action=workflow.delete&outcome=success").await, 1);
    // In use, stale, a default: each refusal after authorization is recorded.
    assert_eq!(audit_count(&s, "action=workflow.delete&outcome=failed").await, 3);
    s.stop().await;
}

pub async fn custom_checks_block_submission_and_show_in_review(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    let author = key_with_role(&db, &s, "author").await;
    let blocker = json!({
        "key": "no_intranet_links",
        "name": "No intranet links",
        "severity": "error",
        "rule": {"kind": "regex_must_not_match", "pattern": "https?://intranet\\."}
    });
    let created = s.post("/api/v1/checks", &blocker).await;
    conforms("post", "/api/v1/checks", &created);
    assert_eq!((created.ok(201)["source"].as_str(), created.etag()), (Some("api"), "\"chk-1\"".to_owned()));
    let advice = json!({
        "key": "polite",
        "name": "Says please",
        "severity": "warning",
        "rule": {"kind": "regex_must_match", "pattern": "(?i)please"}
    });
    s.post("/api/v1/checks", &advice).await.ok(201);
    let listed = s.get("/api/v1/checks").await;
    conforms("get", "/api/v1/checks", &listed);
    let items = listed.ok(200)["items"].as_array().unwrap();
    let keys: Vec<&str> = items.iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "description_present",
            "declared_variables",
            "length_limit",
            "forbidden_phrases",
            "classification_tags",
            "content_scan",
            "no_intranet_links",
            "polite"
        ]
    );
    assert_eq!(items[2]["source"], "builtin");
    assert_eq!(items[2]["config"]["max_chars"], 32_000);

    // The error check blocks, naming itself; nothing moves.
    template(&author, "chk/link", "internal", "See http://intranet.example/{{ name }}").await;
    let blocked = author.post(&path("chk/link", "submit"), &json!({})).await;
    blocked.problem(422, "compliance_failed");
    let detail = blocked.body["detail"].as_str().unwrap();
    assert!(detail.contains("No intranet links (`no_intranet_links`)"), "{detail}");
    let result =
        blocked.body["checks"].as_array().unwrap().iter().find(|c| c["check"] == "no_intranet_links");
    assert_eq!(
        result.map(|c| (c["passed"].clone(), c["severity"].clone())),
        Some((json!(false), json!("error")))
    );
    let v = s.get("/api/v1/templates/chk%2Flink/versions/1").await;
    assert_eq!(v.ok(200)["status"], "draft");
    assert_eq!(audit_count(&s, "action=version.submit&outcome=failed").await, 1);

    // Warnings pass and are kept with the version for the reviewers.
    template(&author, "chk/ok", "internal", "Hello {{ name }}").await;
    author.post(&path("chk/ok", "submit"), &json!({})).await.ok(200);
    let v = s.get("/api/v1/templates/chk%2Fok/versions/1").await;
    conforms("get", "/api/v1/templates/{name}/versions/{version}", &v);
    let results = v.ok(200)["check_results"].as_array().unwrap();
    let polite = results.iter().find(|c| c["check"] == "polite").unwrap();
    assert_eq!((polite["passed"].clone(), polite["severity"].clone()), (json!(false), json!("warning")));
    assert!(results.iter().any(|c| c["check"] == "no_intranet_links" && c["passed"] == true));

    // Disabled, the check no longer runs.
    let mut off = blocker.clone();
    off["enabled"] = json!(false);
    let put = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/checks/no_intranet_links",
            Some(&off),
            &[("if-match", "\"chk-1\"")],
        )
        .await;
    assert_eq!(put.ok(200)["enabled"], false);
    let submitted = author.post(&path("chk/link", "submit"), &json!({})).await;
    let ran: Vec<&str> = submitted.ok(200)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(!ran.contains(&"no_intranet_links") && ran.contains(&"polite"), "{ran:?}");

    // Built-ins are read-only here.
    let builtin = s.get("/api/v1/checks/length_limit").await;
    assert_eq!(builtin.ok(200)["source"], "builtin");
    let mut copy = blocker.clone();
    copy["key"] = json!("length_limit");
    s.post("/api/v1/checks", &copy).await.problem(409, "check_builtin");
    s.call(reqwest::Method::PUT, "/api/v1/checks/length_limit", Some(&copy), &[("if-match", "\"chk-1\"")])
        .await
        .problem(409, "check_builtin");
    s.delete("/api/v1/checks/length_limit", "").await.problem(409, "check_builtin");
    s.delete("/api/v1/checks/polite", "").await.ok(204);
    s.get("/api/v1/checks/polite").await.problem(404, "check_not_found");
    s.stop().await;
}

pub async fn invalid_definitions_are_refused_with_a_code(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    let wf = |f: &dyn Fn(&mut Value)| {
        let mut v = two_reviews();
        f(&mut v);
        v
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (wf(&|v| v["steps"] = json!([])), 422, "workflow_without_steps"),
        (wf(&|v| v["steps"][0]["required_approvals"] = json!(0)), 422, "required_approvals_out_of_range"),
        (wf(&|v| v["steps"][0]["approver_roles"] = json!([])), 422, "step_without_approver_roles"),
        (wf(&|v| v["steps"][0]["approver_roles"] = json!(["ghosts"])), 422, "unknown_role"),
        (wf(&|v| v["steps"][1]["name"] = json!("first")), 422, "duplicate_step"),
        (wf(&|v| v["steps"][0]["sla_hours"] = json!(0)), 422, "sla_out_of_range"),
        (wf(&|v| v["classifications"] = json!([])), 422, "workflow_without_classifications"),
        (wf(&|v| v["classifications"] = json!(["secret"])), 422, "invalid_classification"),
        (wf(&|v| v["name"] = json!("Two Reviews")), 422, "invalid_workflow_name"),
        (wf(&|v| v["bypass"] = json!(true)), 422, "invalid_request"),
        // A default's classification is free, a stored one's is not.
        (wf(&|v| v["classifications"] = json!(["internal"])), 201, ""),
        (
            wf(&|v| (v["name"], v["classifications"]) = (json!("other"), json!(["internal"]))),
            409,
            "classification_claimed_twice",
        ),
        (wf(&|v| v["classifications"] = json!(["public"])), 409, "already_exists"),
    ];
    for (body, status, code) in cases {
        let r = s.post("/api/v1/workflows", &body).await;
        if status == 201 {
            r.ok(201);
        } else {
            r.problem(status, code);
        }
    }
    // Refusals of well-formed requests are in the trail (not the malformed
    // body or the unknown classification, refused before the service).
    assert_eq!(audit_count(&s, "action=workflow.create&outcome=failed").await, 10);
    let mismatch = wf(&|v| v["name"] = json!("else"));
    s.call(
        reqwest::Method::PUT,
        "/api/v1/workflows/two-reviews",
        Some(&mismatch),
        &[("if-match", "\"wf-1\"")],
    )
    .await
    .problem(422, "name_mismatch");
    s.call(
        reqwest::Method::PUT,
        "/api/v1/workflows/standard",
        Some(&wf(&|v| v["name"] = json!("standard"))),
        &[("if-match", "\"wf-1\"")],
    )
    .await
    .problem(404, "workflow_not_found");

    let check = |rule: Value| json!({"key": "c", "name": "C", "severity": "error", "rule": rule});
    let cases = [
        (
            check(json!({"kind": "regex_must_match", "pattern": "(unclosed"})),
            "invalid_regex",
            Some("rule.pattern"),
        ),
        (
            check(json!({"kind": "schema_rule", "schema": {"type": 12}})),
            "invalid_json_schema",
            Some("rule.schema"),
        ),
        (check(json!({"kind": "max_length", "chars": 0})), "invalid_check", Some("rule.chars")),
        (check(json!({"kind": "telepathy"})), "invalid_check_rule", None),
        (
            json!({"key": "c", "name": "C", "severity": "fatal", "rule": {"kind": "max_tokens", "tokens": 9}}),
            "invalid_severity",
            None,
        ),
        (
            json!({"key": "Bad Key", "name": "C", "severity": "info", "rule": {"kind": "max_tokens", "tokens": 9}}),
            "invalid_check_key",
            Some("key"),
        ),
        (
            json!({"key": "c", "name": "C", "severity": "info", "applies_to": ["Not A Type"], "rule": {"kind": "max_tokens", "tokens": 9}}),
            "invalid_prompt_type",
            Some("applies_to[0]"),
        ),
    ];
    for (body, code, field) in cases {
        let r = s.post("/api/v1/checks", &body).await;
        r.problem(422, code);
        if let Some(field) = field {
            assert_eq!(r.body["field"], field, "{:?}", r.body);
        }
    }
    assert_eq!(s.get("/api/v1/checks").await.ok(200)["items"].as_array().unwrap().len(), 6, "nothing stored");
    s.stop().await;
}

pub async fn only_admins_change_workflows_and_checks(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    for role in ["viewer", "author", "reviewer", "publisher", "auditor", "consumer"] {
        let who = key_with_role(&db, &s, role).await;
        who.post("/api/v1/workflows", &two_reviews()).await.problem(403, "forbidden");
        let check = json!({"key": "c", "name": "C", "severity": "error", "rule": {"kind": "max_tokens", "tokens": 9}});
        who.post("/api/v1/checks", &check).await.problem(403, "forbidden");
        who.delete("/api/v1/workflows/standard", "").await.problem(403, "forbidden");
        who.call(reqwest::Method::PUT, "/api/v1/checks/c", Some(&check), &[("if-match", "\"chk-1\"")])
            .await
            .problem(403, "forbidden");
        let read = who.get("/api/v1/workflows").await;
        if role == "consumer" {
            read.problem(403, "forbidden");
        } else {
            read.ok(200);
        }
    }
    assert_eq!(audit_count(&s, "action=workflow.create&outcome=denied").await, 6);
    assert_eq!(audit_count(&s, "action=check.create&outcome=denied").await, 6);
    assert_eq!(audit_count(&s, "action=workflow.delete&outcome=denied").await, 6);
    assert_eq!(audit_count(&s, "action=check.update&outcome=denied").await, 6);
    let listed = s.get("/api/v1/workflows").await;
    assert!(listed.ok(200)["items"].as_array().unwrap().iter().all(|w| w["source"] == "default"));
    s.stop().await;
}

const FILE: &str = r#"
[[workflow]]
name = "internal-pair"
description = "Internal templates need two reviewers."
classifications = ["internal"]

[[workflow.step]]
name = "review"
approver_roles = ["reviewer"]
required_approvals = 2
sla_hours = 24
"#;

const CHECKS: &str = r#"
[[check]]
key = "no_todo"
name = "No TODO left"
severity = "error"
rule = { kind = "forbidden_phrases", phrases = ["TODO"] }
"#;

pub async fn files_given_at_start_are_in_force(db: Arc<TestDb>) {
    let workflows = db.dir.path().join("workflows.toml");
    let checks = db.dir.path().join("checks.toml");
    std::fs::write(&workflows, FILE).unwrap();
    std::fs::write(&checks, CHECKS).unwrap();
    let mut config = settings(&db);
    config.governance = GovernanceSettings {
        workflows_file: Some(workflows.clone()),
        checks_file: Some(checks.clone()),
        ..GovernanceSettings::default()
    };
    let mut s = TestServer::start_with(config.clone()).await;
    let author = key_with_role(&db, &s, "author").await;
    let first = key_with_role(&db, &s, "reviewer").await;
    let second = key_with_role(&db, &s, "reviewer").await;
    let wf = s.get("/api/v1/workflows/internal-pair").await;
    assert_eq!((wf.ok(200)["source"].as_str(), wf.etag()), (Some("file"), "\"wf-1\"".to_owned()));
    assert_eq!(s.get("/api/v1/checks/no_todo").await.ok(200)["source"], "file");
    assert_eq!(
        audit_count(&s, "action=workflow.update&outcome=success").await,
        1,
        "the file's application is audited"
    );

    template(&author, "file/todo", "internal", "Hello {{ name }} TODO").await;
    author.post(&path("file/todo", "submit"), &json!({})).await.problem(422, "compliance_failed");
    template(&author, "file/t", "internal", "Hello {{ name }}").await;
    author.post(&path("file/t", "submit"), &json!({})).await.ok(200);
    let one = first.post(&path("file/t", "approve"), &json!({})).await;
    assert_eq!(one.ok(200)["version"]["status"], "review", "the file's step needs two approvals");
    let two = second.post(&path("file/t", "approve"), &json!({})).await;
    assert_eq!(two.ok(200)["version"]["status"], "approved");

    // Edited through the API, then restarted: the file wins for its names.
    let mut edited = s.get("/api/v1/workflows/internal-pair").await.body.clone();
    for k in ["source", "revision", "updated_at"] {
        edited.as_object_mut().unwrap().remove(k);
    }
    edited["steps"][0]["required_approvals"] = json!(1);
    let put = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/workflows/internal-pair",
            Some(&edited),
            &[("if-match", "\"wf-1\"")],
        )
        .await;
    assert_eq!(put.ok(200)["source"], "api");
    s.stop().await;
    let mut s = TestServer::start_with(config.clone()).await;
    let wf = s.get("/api/v1/workflows/internal-pair").await;
    assert_eq!(
        (wf.ok(200)["source"].as_str(), wf.body["steps"][0]["required_approvals"].as_u64()),
        (Some("file"), Some(2))
    );
    s.stop().await;

    // An invalid file stops the start with the file and the problem named.
    std::fs::write(&workflows, FILE.replace("required_approvals = 2", "required_approvals = 0")).unwrap();
    let err = promptvault_server::start(config.clone()).await.unwrap_err().to_string();
    assert!(err.contains("governance.workflows_file") && err.contains("workflows.toml"), "{err}");
    assert!(err.contains("requires 0 approvals"), "{err}");
    std::fs::write(
        &workflows,
        FILE.replace("classifications = [\"internal\"]", "classifications = [\"secret\"]"),
    )
    .unwrap();
    let err = promptvault_server::start(config.clone()).await.unwrap_err().to_string();
    assert!(err.contains("workflows.toml") && err.contains("secret"), "{err}");
    std::fs::write(&workflows, FILE).unwrap();
    std::fs::write(
        &checks,
        CHECKS.replace(
            r#"rule = { kind = "forbidden_phrases", phrases = ["TODO"] }"#,
            r#"rule = { kind = "regex_must_match", pattern = "(" }"#,
        ),
    )
    .unwrap();
    let err = promptvault_server::start(config).await.unwrap_err().to_string();
    assert!(err.contains("governance.checks_file") && err.contains("rule.pattern"), "{err}");
}

/// Another process sharing the database follows a workflow change.
pub async fn servers_sharing_postgres_follow_workflow_changes(db: Arc<TestDb>) {
    let mut a = TestServer::start(&db).await;
    let mut b = TestServer::start(&db).await;
    let author = key_with_role(&db, &a, "author").await;
    template(&author, "shared/t", "internal", "Hello {{ name }}").await;
    author.post(&path("shared/t", "submit"), &json!({})).await.ok(200);
    assert_eq!(b.get("/api/v1/reviews").await.ok(200)["items"][0]["workflow"], "standard");
    let mut mine = two_reviews();
    mine["name"] = json!("team");
    mine["classifications"] = json!(["internal"]);
    a.post("/api/v1/workflows", &mine).await.ok(201);
    let mut seen = None;
    for _ in 0..200 {
        let w = b.get("/api/v1/reviews").await.ok(200)["items"][0]["workflow"].clone();
        if w == "team" {
            seen = Some(w);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(seen, Some(json!("team")), "B kept the old workflow");
    a.stop().await;
    b.stop().await;
}
