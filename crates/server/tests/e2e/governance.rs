//! Authorization by role and the audit trail, over HTTP.

use std::sync::Arc;

use promptvault_testkit::{Kind, TestDb};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::support::TestServer;

/// A user holding `role` with an API key, written straight into the
/// database (the users API comes with identities).
pub async fn key_with_role(db: &TestDb, s: &TestServer, role: &str) -> TestServer {
    let user = uuid::Uuid::now_v7();
    let key = uuid::Uuid::now_v7();
    let prefix: String = format!("pv_{}", &user.simple().to_string()[22..32]);
    let token = format!("{prefix}_{}", "ab".repeat(24));
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let (blob, now) = match db.kind {
        Kind::Sqlite => (format!("X'{hash}'"), "'2026-01-01T00:00:00.000000Z'".to_owned()),
        Kind::Postgres => (format!("'\\x{hash}'::bytea"), "now()".to_owned()),
    };
    db.exec(&format!(
        "INSERT INTO \"user\" (id, email, created_at) VALUES ('{user}', '{role}-{user}@example.com', {now})"
    ))
    .await;
    db.exec(&format!("INSERT INTO user_role (user_id, role) VALUES ('{user}', '{role}')")).await;
    db.exec(&format!(
        "INSERT INTO api_key (id, user_id, name, prefix, secret_hash, created_at) \
         VALUES ('{key}', '{user}', '{role} key', '{prefix}', {blob}, {now})"
    ))
    .await;
    let mut other = s.anonymous();
    other.token = Some(token);
    other
}

/// Takes version `seq` of `name` through review: `s` submits it and a
/// reviewer (a new user, so four eyes hold) approves it.
pub async fn approve(db: &TestDb, s: &TestServer, name: &str, seq: u32) {
    let path = format!("/api/v1/templates/{}/versions/{seq}", name.replace('/', "%2F"));
    s.post(&format!("{path}/submit"), &json!({})).await.ok(200);
    let reviewer = key_with_role(db, s, "reviewer").await;
    let r = reviewer.post(&format!("{path}/approve"), &json!({})).await;
    assert_eq!(r.ok(200)["version"]["status"], "approved", "{:?}", r.body);
}

/// `production` (protected by default) points only at approved versions,
/// and only principals allowed to publish move or remove it.
pub async fn protected_labels_hold_only_approved_versions(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    s.template("pl/t", "One {{ name }}", &["name"]).await;
    s.post("/api/v1/templates/pl%2Ft/versions", &json!({"template_text": "Two {{ name }}"})).await.ok(201);
    let author = key_with_role(&db, &s, "author").await;
    let publisher = key_with_role(&db, &s, "publisher").await;
    let prod = "/api/v1/templates/pl%2Ft/labels/production";

    // An author moves unprotected labels, never `production`.
    author.put("/api/v1/templates/pl%2Ft/labels/staging", &json!({"version": 1})).await.ok(200);
    let r = author.put(prod, &json!({"version": 1})).await;
    r.problem(403, "forbidden");
    assert!(r.body["detail"].as_str().unwrap().contains("publish"), "{:?}", r.body);
    // A publisher may move it, but not onto a draft; not even the admin.
    publisher.put(prod, &json!({"version": 1})).await.problem(409, "label_requires_approved");
    s.put(prod, &json!({"version": 1})).await.problem(409, "label_requires_approved");
    let labels = s.get("/api/v1/templates/pl%2Ft/labels").await;
    let names: Vec<&str> =
        labels.ok(200)["items"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["latest", "staging"], "nothing moved");

    approve(&db, &s, "pl/t", 1).await;
    author.put(prod, &json!({"version": 1})).await.problem(403, "forbidden");
    let r = publisher.put(prod, &json!({"version": 1})).await;
    assert_eq!(r.ok(200)["version_seq"], 1);
    // Rollback and removal go through the same rule.
    author
        .post(
            "/api/v1/templates/pl%2Ft/rollback",
            &json!({"strategy": "move_label", "label": "production", "to_version": 2}),
        )
        .await
        .problem(403, "forbidden");
    author.delete(prod, "").await.problem(403, "forbidden");
    publisher.put(prod, &json!({"version": 2})).await.problem(409, "label_requires_approved");
    // What production serves cannot be archived from under it.
    publisher
        .post("/api/v1/templates/pl%2Ft/versions/1/deprecate", &json!({"replacement_version": 2}))
        .await
        .ok(200);
    let r = s.post("/api/v1/templates/pl%2Ft/render", &json!({"parameters": {"name": "Ada"}})).await;
    assert_eq!(r.ok(200)["text"], "One Ada", "a deprecated version still serves, with a warning");
    publisher
        .post("/api/v1/templates/pl%2Ft/versions/1/archive", &json!({}))
        .await
        .problem(409, "label_points_here");

    // The refusals are in the audit trail, with the reason.
    let events = s.get("/api/v1/audit/events?outcome=denied&limit=1000").await;
    let denied = events.ok(200)["items"].as_array().unwrap().clone();
    assert!(denied.iter().filter(|e| e["action"] == "label.publish").count() >= 4, "{denied:#?}");
    let failed = s.get("/api/v1/audit/events?outcome=failed&limit=1000").await;
    let failed = failed.ok(200)["items"].as_array().unwrap().clone();
    assert!(
        failed
            .iter()
            .any(|e| e["action"] == "label.update" && e["reason"].as_str().unwrap().contains("approved"))
    );

    // Which labels are protected is configuration.
    s.stop().await;
    let mut settings = super::support::settings(&db);
    settings.protected_labels = vec!["gold".into()];
    let other = TestServer::start_with(settings).await;
    other.put("/api/v1/templates/pl%2Ft/labels/production", &json!({"version": 2})).await.ok(200);
    other
        .put("/api/v1/templates/pl%2Ft/labels/gold", &json!({"version": 2}))
        .await
        .problem(409, "label_requires_approved");
}

pub async fn roles_decide_and_every_refusal_is_audited(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    s.template("gov/hello", "Hello {{ name }}", &["name"]).await;
    approve(&db, &s, "gov/hello", 1).await;
    let consumer = key_with_role(&db, &s, "consumer").await;
    let viewer = key_with_role(&db, &s, "viewer").await;
    let author = key_with_role(&db, &s, "author").await;

    // A consumer renders and reads, and writes nothing.
    consumer
        .post("/api/v1/templates/gov%2Fhello/render", &json!({"version": 1, "parameters": {"name": "Ada"}}))
        .await
        .ok(200);
    consumer.get("/api/v1/templates/gov%2Fhello?version=1").await.ok(200);
    let writes: Vec<(&str, &str, Value)> = vec![
        ("POST", "/api/v1/templates", json!({"name": "gov/x", "template_text": "x"})),
        ("POST", "/api/v1/templates/gov%2Fhello/versions", json!({"template_text": "Hi {{ name }}"})),
        ("PUT", "/api/v1/templates/gov%2Fhello/labels/production", json!({"version": 1})),
        ("POST", "/api/v1/prompt-types", json!({"key": "x", "name": "X"})),
        ("POST", "/api/v1/audit/purge", json!({"older_than_days": 1})),
    ];
    for (method, path, body) in &writes {
        let r = consumer.call(method.parse().unwrap(), path, Some(body), &[]).await;
        r.problem(403, "forbidden");
    }
    let r = consumer.delete("/api/v1/templates/gov%2Fhello", "\"tpl-1\"").await;
    r.problem(403, "forbidden");
    // Nothing changed.
    let t = s.get("/api/v1/templates/gov%2Fhello?version=1").await;
    assert_eq!(t.ok(200)["latest"]["seq"], 1);
    s.get("/api/v1/templates/gov%2Fx?version=1").await.problem(404, "template_not_found");

    // A viewer reads but does not render; an author writes but does not
    // read the audit trail.
    viewer.get("/api/v1/templates/gov%2Fhello?version=1").await.ok(200);
    viewer
        .post("/api/v1/templates/gov%2Fhello/render", &json!({"version": 1, "parameters": {"name": "Ada"}}))
        .await
        .problem(403, "forbidden");
    author
        .post("/api/v1/templates/gov%2Fhello/versions", &json!({"template_text": "Hi {{ name }}"}))
        .await
        .ok(201);
    let r = author.get("/api/v1/audit/events").await;
    r.problem(403, "forbidden");
    // The author's new version is a draft: not for consumers yet.
    let r = consumer.get("/api/v1/templates/gov%2Fhello?version=2").await;
    r.problem(403, "forbidden");
    assert!(r.body["detail"].as_str().unwrap().contains("draft"), "{:?}", r.body);
    let listed = consumer.get("/api/v1/templates/gov%2Fhello/versions").await;
    let seqs: Vec<i64> =
        listed.ok(200)["items"].as_array().unwrap().iter().map(|v| v["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1], "the draft is left out of the consumer's list");
    // Drafts stay on the web deployment, even for an admin.
    let me = s.get("/api/v1/me").await.ok(200)["id"].as_str().unwrap().to_owned();
    let key = s
        .post(&format!("/api/v1/users/{me}/keys"), &json!({"name": "desk", "deployment": "electron_local"}))
        .await;
    let mut desk = s.anonymous();
    desk.token = Some(key.ok(201)["token"].as_str().unwrap().to_owned());
    let r = desk.get("/api/v1/templates/gov%2Fhello?version=2").await;
    r.problem(403, "forbidden");
    assert!(r.body["detail"].as_str().unwrap().contains("web_application only"), "{:?}", r.body);
    desk.get("/api/v1/templates/gov%2Fhello?version=1").await.ok(200);

    // The trail, read by the admin: the consumer's refusals are there with
    // the reason, the render and the author's version too.
    let events = s.get("/api/v1/audit/events?limit=1000").await;
    let items = events.ok(200)["items"].as_array().unwrap().clone();
    let denied: Vec<&Value> = items.iter().filter(|e| e["outcome"] == "denied").collect();
    assert_eq!(denied.iter().filter(|e| e["actor"].as_str().unwrap().contains("consumer key")).count(), 7);
    assert!(denied.iter().all(|e| !e["reason"].as_str().unwrap_or("").is_empty()));
    assert!(items.iter().any(|e| e["action"] == "template.execute" && e["outcome"] == "success"));
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "version.create" && e["actor"].as_str().unwrap().contains("author"))
    );
    assert!(items.iter().all(|e| e["client_addr"] == "127.0.0.1"));
    assert!(items.iter().all(|e| e["request_id"].as_str().is_some_and(|r| !r.is_empty())));
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());

    // Filters and the export.
    let only = s.get("/api/v1/audit/events?outcome=denied&action=template.").await;
    assert!(
        only.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["outcome"] == "denied" && e["action"].as_str().unwrap().starts_with("template."))
    );
    s.get("/api/v1/audit/events?outcome=maybe").await.problem(400, "invalid_query");
    let export = s.call("GET".parse().unwrap(), "/api/v1/audit/export", None, &[]).await;
    assert_eq!(export.status, 200);
    assert_eq!(export.headers["content-type"], "application/x-ndjson");
    let text = match &export.body {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= items.len());
    assert_eq!(lines[0]["seq"], 1);

    // The chain verifies, and a row edited in the database is named.
    let v = s.get("/api/v1/audit/verify").await;
    assert_eq!(v.ok(200)["ok"], true, "{:?}", v.body);
    let victim = denied[0]["seq"].as_i64().unwrap();
    db.exec(&format!("UPDATE audit_event SET outcome = 'success' WHERE seq = {victim}")).await;
    let v = s.get("/api/v1/audit/verify").await;
    let body = v.ok(200);
    assert_eq!(body["ok"], false);
    assert_eq!(body["broken"]["seq"], victim);
    assert_eq!(body["broken"]["kind"], "edited");
    s.stop().await;
}

pub async fn users_keys_and_custom_roles_through_the_api(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    s.template("team/a/one", "Hello {{ name }}", &["name"]).await;
    s.template("team/b/two", "Hi {{ name }}", &["name"]).await;
    approve(&db, &s, "team/a/one", 1).await;
    approve(&db, &s, "team/b/two", 1).await;

    // A custom role scoped to a folder, a user holding it, a key for them.
    s.post("/api/v1/roles", &json!({"name": "team-a", "permissions": ["template:read@folder=team/a", "template:execute@folder=team/a"]}))
        .await
        .ok(201);
    s.post("/api/v1/roles", &json!({"name": "bad", "permissions": ["template:fly"]}))
        .await
        .problem(422, "invalid_permission");
    s.post("/api/v1/users", &json!({"email": "x@example.com", "roles": ["nope"]}))
        .await
        .problem(422, "unknown_role");
    let user = s.post("/api/v1/users", &json!({"email": "ada@example.com", "roles": ["team-a"]})).await;
    let id = user.ok(201)["id"].as_str().unwrap().to_owned();
    s.post("/api/v1/users", &json!({"email": "ADA@example.com"})).await.problem(409, "already_exists");
    let key = s.post(&format!("/api/v1/users/{id}/keys"), &json!({"name": "laptop"})).await;
    let token = key.ok(201)["token"].as_str().unwrap().to_owned();
    let key_id = key.body["key"]["id"].as_str().unwrap().to_owned();
    let mut ada = s.anonymous();
    ada.token = Some(token);

    // The scope decides; the caller reads itself and manages its own keys.
    ada.get("/api/v1/templates/team%2Fa%2Fone?version=1").await.ok(200);
    ada.get("/api/v1/templates/team%2Fb%2Ftwo?version=1").await.problem(403, "forbidden");
    let listed = ada.get("/api/v1/templates").await;
    let names: Vec<&str> =
        listed.ok(200)["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["team/a/one"]);
    assert_eq!(ada.get("/api/v1/me").await.ok(200)["email"], "ada@example.com");
    ada.get(&format!("/api/v1/users/{id}/keys")).await.ok(200);
    ada.get("/api/v1/users").await.problem(403, "forbidden");
    ada.put(&format!("/api/v1/users/{id}/roles"), &json!({"roles": ["admin"]}))
        .await
        .problem(403, "forbidden");
    // Why: the policy explains itself, to the user and to an admin.
    let why = ada.get("/api/v1/authz/explain?action=read&resource=template&template=team%2Fb%2Ftwo").await;
    assert_eq!(why.ok(200)["allowed"], false);
    assert!(why.body["reason"].as_str().unwrap().contains("does not cover"), "{:?}", why.body);
    let why = s
        .get(&format!(
            "/api/v1/authz/explain?user_id={id}&action=execute&resource=template&template=team%2Fa%2Fone"
        ))
        .await;
    assert_eq!(why.ok(200)["allowed"], true);
    assert_eq!(why.body["granted_by"], "team-a: template:execute@folder=team/a");
    ada.get(
        "/api/v1/authz/explain?action=read&resource=template&user_id=01900000-0000-7000-8000-000000000000",
    )
    .await
    .problem(403, "forbidden");

    // Widening the role takes effect on the next request.
    let role = s.get("/api/v1/roles/team-a").await;
    let rev = role.ok(200)["revision"].as_i64().unwrap();
    s.call(
        "PUT".parse().unwrap(),
        "/api/v1/roles/team-a",
        Some(&json!({"permissions": ["template:read@folder=team"]})),
        &[("if-match", &format!("\"role-{rev}\""))],
    )
    .await
    .ok(200);
    ada.get("/api/v1/templates/team%2Fb%2Ftwo?version=1").await.ok(200);
    s.delete("/api/v1/roles/team-a", "").await.problem(409, "in_use");

    // Disabled, then enabled; revoked keys stop at once.
    s.patch(&format!("/api/v1/users/{id}"), &json!({"disabled": true}), "").await.ok(200);
    ada.get("/api/v1/me").await.problem(401, "unauthorized");
    s.patch(&format!("/api/v1/users/{id}"), &json!({"disabled": false}), "").await.ok(200);
    ada.get("/api/v1/me").await.ok(200);
    ada.call("DELETE".parse().unwrap(), &format!("/api/v1/keys/{key_id}"), None, &[]).await.ok(200);
    ada.get("/api/v1/me").await.problem(401, "unauthorized");

    // The admin cannot lock itself out.
    let me = s.get("/api/v1/me").await;
    let admin = me.ok(200)["id"].as_str().unwrap().to_owned();
    s.put(&format!("/api/v1/users/{admin}/roles"), &json!({"roles": []}))
        .await
        .problem(409, "cannot_change_own_roles");
    // All of it is in the trail.
    let ev = s.get("/api/v1/audit/events?action=user.&limit=100").await;
    assert!(ev.ok(200)["items"].as_array().unwrap().len() >= 4);
    s.stop().await;
}

pub async fn lifecycle_with_four_eyes_and_deprecation(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    let author = key_with_role(&db, &s, "author").await;
    let reviewer = key_with_role(&db, &s, "reviewer").await;
    let publisher = key_with_role(&db, &s, "publisher").await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    author
        .post("/api/v1/templates", &json!({"name": "life/t", "description": "A greeting", "template_text": "Hello {{ name }}", "parameter_schema": schema}))
        .await
        .ok(201);

    // Submit: the compliance results come back and are kept with the version.
    let submitted =
        author.post("/api/v1/templates/life%2Ft/versions/1/submit", &json!({"comment": "ready"})).await;
    assert_eq!(submitted.ok(200)["version"]["status"], "review");
    assert!(
        submitted.body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "declared_variables" && c["passed"] == true)
    );
    author
        .post("/api/v1/templates/life%2Ft/versions/1/submit", &json!({}))
        .await
        .problem(409, "invalid_transition");

    // Four eyes: the author may not approve (even holding the reviewer role's
    // permission, the admin here is the author of nothing); a reviewer may.
    author.post("/api/v1/templates/life%2Ft/versions/1/approve", &json!({})).await.problem(403, "forbidden");
    let approved =
        reviewer.post("/api/v1/templates/life%2Ft/versions/1/approve", &json!({"comment": "ok"})).await;
    assert_eq!(approved.ok(200)["version"]["status"], "approved");
    reviewer
        .post("/api/v1/templates/life%2Ft/versions/1/approve", &json!({}))
        .await
        .problem(409, "workflow_complete");
    let decisions = s.get("/api/v1/templates/life%2Ft/versions/1/decisions").await;
    let kinds: Vec<&str> = decisions.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["submit", "approve"]);

    // A second version, rejected with a comment, back to draft.
    author
        .post("/api/v1/templates/life%2Ft/versions", &json!({"template_text": "Hello there {{ name }}"}))
        .await
        .ok(201);
    author.post("/api/v1/templates/life%2Ft/versions/2/submit", &json!({})).await.ok(200);
    reviewer
        .post("/api/v1/templates/life%2Ft/versions/2/reject", &json!({}))
        .await
        .problem(409, "comment_required");
    let rejected = reviewer
        .post("/api/v1/templates/life%2Ft/versions/2/reject", &json!({"comment": "too casual"}))
        .await;
    assert_eq!(rejected.ok(200)["version"]["status"], "draft");

    // Deprecation: renders warn (field and header); archived versions do not render.
    author
        .post("/api/v1/templates/life%2Ft/versions/1/deprecate", &json!({}))
        .await
        .problem(403, "forbidden");
    publisher
        .post(
            "/api/v1/templates/life%2Ft/versions/1/deprecate",
            &json!({"replacement_version": 2, "reason": "wording"}),
        )
        .await
        .ok(200);
    let r = s
        .post("/api/v1/templates/life%2Ft/render", &json!({"version": 1, "parameters": {"name": "Ada"}}))
        .await;
    assert_eq!(r.ok(200)["status"], "deprecated");
    assert!(r.body["warnings"][0].as_str().unwrap().contains("use version 2"), "{:?}", r.body);
    assert_eq!(r.headers["deprecation"], "true");
    publisher.post("/api/v1/templates/life%2Ft/versions/1/archive", &json!({})).await.ok(200);
    s.post("/api/v1/templates/life%2Ft/render", &json!({"version": 1, "parameters": {"name": "Ada"}}))
        .await
        .problem(409, "version_archived");
    publisher
        .post("/api/v1/templates/life%2Ft/versions/1/restore", &json!({}))
        .await
        .problem(409, "invalid_transition");

    // An admin holds the approver role, but not for its own version.
    let schema2 = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    s.post("/api/v1/templates", &json!({"name": "life/own", "description": "d", "template_text": "Hi {{ name }}", "parameter_schema": schema2}))
        .await
        .ok(201);
    s.post("/api/v1/templates/life%2Fown/versions/1/submit", &json!({})).await.ok(200);
    let own = s.post("/api/v1/templates/life%2Fown/versions/1/approve", &json!({})).await;
    own.problem(403, "forbidden");
    assert!(own.body["detail"].as_str().unwrap().contains("four-eyes"), "{:?}", own.body);
    let ev = s.get("/api/v1/audit/events?action=version.approve&outcome=denied").await;
    assert_eq!(ev.ok(200)["items"].as_array().unwrap().len(), 1);

    // The refusal of the author is in the trail as denied.
    let ev = s.get("/api/v1/audit/events?action=template.approve&outcome=denied").await;
    assert_eq!(ev.ok(200)["items"].as_array().unwrap().len(), 1);
    s.stop().await;
}

pub async fn reviewers_racing_on_the_last_approval(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    let author = key_with_role(&db, &s, "author").await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    author
        .post("/api/v1/templates", &json!({"name": "race/t", "description": "d", "template_text": "Hi {{ name }}", "parameter_schema": schema}))
        .await
        .ok(201);
    author.post("/api/v1/templates/race%2Ft/versions/1/submit", &json!({})).await.ok(200);
    let mut reviewers = Vec::new();
    for _ in 0..6 {
        reviewers.push(key_with_role(&db, &s, "reviewer").await);
    }
    let mut tasks = Vec::new();
    for r in reviewers {
        tasks.push(tokio::spawn(async move {
            r.post("/api/v1/templates/race%2Ft/versions/1/approve", &json!({})).await.status.as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 409), "{codes:?}");
    let decisions = s.get("/api/v1/templates/race%2Ft/versions/1/decisions").await;
    let approvals =
        decisions.ok(200)["items"].as_array().unwrap().iter().filter(|d| d["decision"] == "approve").count();
    assert_eq!(approvals, 1);
    s.stop().await;
}
