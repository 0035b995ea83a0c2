//! Password sign-in and web sessions, over HTTP.

use std::sync::Arc;

use promptvault_testkit::{Kind, TestDb};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

use super::support::TestServer;

fn as_session(s: &TestServer, token: &str) -> TestServer {
    let mut c = s.anonymous();
    c.token = Some(token.to_owned());
    c
}

async fn login(s: &TestServer, email: &str, password: &str) -> super::support::Resp {
    s.anonymous().post("/api/v1/login", &json!({"email": email, "password": password})).await
}

/// Moves every session's timestamps back, as if time had passed.
async fn age_sessions(db: &TestDb, column: &str) {
    let past = match db.kind {
        Kind::Sqlite => "'2000-01-01T00:00:00.000000Z'",
        Kind::Postgres => "now() - interval '30 days'",
    };
    db.exec(&format!("UPDATE web_session SET {column} = {past}")).await;
}

pub async fn passwords_sign_in_to_sessions_that_end(db: Arc<TestDb>) {
    let s = TestServer::start(&db).await;
    let user = s.post("/api/v1/users", &json!({"email": "ada@example.com", "roles": ["author"]})).await;
    let id = user.ok(201)["id"].as_str().unwrap().to_owned();
    let pw = format!("/api/v1/users/{id}/password");

    // No password yet: sign-in fails like any other failure.
    login(&s, "ada@example.com", "anything at all").await.problem(401, "invalid_credentials");
    s.put(&pw, &json!({"password": "short"})).await.problem(422, "weak_password");
    assert_eq!(s.put(&pw, &json!({"password": "correct horse battery"})).await.status, 204);

    // Wrong password and unknown e-mail read the same.
    let wrong = login(&s, "ada@example.com", "correct horse batterz").await;
    wrong.problem(401, "invalid_credentials");
    let unknown = login(&s, "nobody@example.com", "correct horse battery").await;
    unknown.problem(401, "invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);

    let r = login(&s, "ada@example.com", "correct horse battery").await;
    let body = r.ok(200).clone();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pvs_"), "{body}");
    assert_eq!(body["user"]["id"], id.as_str());
    assert_eq!(body["idle_timeout_seconds"], 1800);
    let cookie = r.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("pv_session={token};")), "{cookie}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert_eq!(r.headers["cache-control"], "private, no-store");

    // The session acts as its user, with the user's roles.
    let ada = as_session(&s, &token);
    assert_eq!(ada.get("/api/v1/me").await.ok(200)["email"], "ada@example.com");
    ada.post("/api/v1/templates", &json!({"name": "web/t", "template_text": "x"})).await.ok(201);
    ada.get("/api/v1/audit/events").await.problem(403, "forbidden");

    // The cookie works too; a change made with it needs the CSRF header.
    let by_cookie = s.anonymous();
    let jar = [("cookie", format!("pv_session={token}"))];
    let jar: Vec<(&str, &str)> = jar.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let me = by_cookie.call(Method::GET, "/api/v1/me", None, &jar).await;
    assert_eq!(me.ok(200)["id"], id.as_str());
    let body = json!({"name": "web/u", "template_text": "x"});
    by_cookie
        .call(Method::POST, "/api/v1/templates", Some(&body), &jar)
        .await
        .problem(403, "csrf_header_missing");
    let mut with_csrf = jar.clone();
    with_csrf.push(("x-promptvault-csrf", "1"));
    by_cookie.call(Method::POST, "/api/v1/templates", Some(&body), &with_csrf).await.ok(201);

    // Changing your own password needs the current one.
    ada.put(&pw, &json!({"password": "another long passphrase"})).await.problem(403, "forbidden");
    let r = ada
        .put(
            &pw,
            &json!({"password": "another long passphrase", "current_password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    login(&s, "ada@example.com", "correct horse battery").await.problem(401, "invalid_credentials");
    let second = login(&s, "ada@example.com", "another long passphrase").await;
    let second = second.ok(200)["token"].as_str().unwrap().to_owned();

    // Sign-out ends that session only; an API key has no session to end.
    let r = ada.post("/api/v1/logout", &json!({})).await;
    assert_eq!(r.status, 204);
    assert!(r.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    ada.get("/api/v1/me").await.problem(401, "session_invalid");
    as_session(&s, &second).get("/api/v1/me").await.ok(200);
    s.post("/api/v1/logout", &json!({})).await.problem(409, "not_a_session");

    // Idle too long, or past the maximum age: over.
    age_sessions(&db, "last_seen_at").await;
    let r = as_session(&s, &second).get("/api/v1/me").await;
    r.problem(401, "session_expired");
    assert!(r.body["detail"].as_str().unwrap().contains("30 minutes without activity"));
    let third = login(&s, "ada@example.com", "another long passphrase").await;
    let third = third.ok(200)["token"].as_str().unwrap().to_owned();
    as_session(&s, &third).get("/api/v1/me").await.ok(200);
    age_sessions(&db, "expires_at").await;
    as_session(&s, &third).get("/api/v1/me").await.problem(401, "session_expired");

    // A disabled user neither signs in nor keeps a session.
    let fourth = login(&s, "ada@example.com", "another long passphrase").await;
    let fourth = fourth.ok(200)["token"].as_str().unwrap().to_owned();
    s.patch(&format!("/api/v1/users/{id}"), &json!({"disabled": true}), "").await.ok(200);
    as_session(&s, &fourth).get("/api/v1/me").await.problem(401, "session_invalid");
    login(&s, "ada@example.com", "another long passphrase").await.problem(401, "invalid_credentials");

    // Every sign-in is in the audit trail, refusals with the reason; no
    // password or token appears in it.
    let export = s.call(Method::GET, "/api/v1/audit/export", None, &[]).await;
    let text = match &export.body {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    for secret in ["correct horse battery", "another long passphrase", &token, &second] {
        assert!(!text.contains(secret), "{secret} leaked into the audit trail");
    }
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let logins: Vec<&Value> = events.iter().filter(|e| e["action"] == "auth.login").collect();
    assert_eq!(logins.iter().filter(|e| e["outcome"] == "success").count(), 4, "{logins:#?}");
    let denied: Vec<&Value> = logins.iter().filter(|e| e["outcome"] == "denied").copied().collect();
    assert_eq!(denied.len(), 5, "{denied:#?}");
    assert!(denied.iter().any(|e| e["reason"] == "the user is disabled"));
    assert!(denied.iter().all(|e| e["client_addr"] == "127.0.0.1"));
    assert!(events.iter().any(|e| e["action"] == "auth.logout" && e["outcome"] == "success"));
    assert!(events.iter().any(|e| e["action"] == "user.password" && e["outcome"] == "success"));
    // Refused sessions and the forged cookie request are there too.
    let refused: Vec<&Value> = events.iter().filter(|e| e["action"] == "auth.authenticate").collect();
    assert!(refused.iter().any(|e| e["details"]["code"] == "csrf_header_missing"), "{refused:#?}");
    assert!(
        refused
            .iter()
            .any(|e| e["details"]["code"] == "session_expired" && e["details"]["credential"] == "session")
    );
}

/// A timestamp literal both backends store as `at`.
fn at_literal(kind: Kind, at: chrono::DateTime<chrono::Utc>) -> String {
    let text = at.format("%Y-%m-%dT%H:%M:%S%.6fZ");
    match kind {
        Kind::Sqlite => format!("'{text}'"),
        Kind::Postgres => format!("'{text}'::timestamptz"),
    }
}

/// Activity extends a session's idle timeout; changing or rendering a
/// restricted template needs a recent password, given again with
/// `POST /reauth` (audited); API keys are not asked.
pub async fn activity_extends_sessions_and_restricted_work_needs_a_recent_password(db: Arc<TestDb>) {
    let s = TestServer::start(&db).await;
    let user = s.post("/api/v1/users", &json!({"email": "rae@example.com", "roles": ["author"]})).await;
    let id = user.ok(201)["id"].as_str().unwrap().to_owned();
    let pw = format!("/api/v1/users/{id}/password");
    assert_eq!(s.put(&pw, &json!({"password": "correct horse battery"})).await.status, 204);
    let token = login(&s, "rae@example.com", "correct horse battery").await.ok(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rae = as_session(&s, &token);

    // Idle for 29 of 30 minutes, then active: the session is extended.
    let now = chrono::Utc::now();
    db.exec(&format!(
        "UPDATE web_session SET last_seen_at = {}",
        at_literal(db.kind, now - chrono::Duration::minutes(29))
    ))
    .await;
    rae.get("/api/v1/me").await.ok(200);
    // The store as the server opened it: with the master key it made.
    let mut options = db.options.clone();
    let key = std::fs::read_to_string(db.dir.path().join("master.key")).expect("the server's master key");
    options.encryption.master = Some(promptvault_store::MasterKey::parse(&key).expect("a master key"));
    let store = promptvault_store::connect(&options).await.expect("open the store");
    let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    let mut extended = false;
    for _ in 0..200 {
        let seen = store.find_session(&hash).await.unwrap().unwrap().last_seen_at;
        if seen >= now - chrono::Duration::minutes(1) {
            extended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(extended, "activity moved last_seen_at forward");
    rae.get("/api/v1/me").await.ok(200);

    // Just signed in: restricted templates may be created and rendered.
    let body = json!({"name": "vault/keys", "template_text": "The key is {{ k }}",
        "parameter_schema": {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]},
        "security_classification": "restricted"});
    rae.post("/api/v1/templates", &body).await.ok(201);
    rae.post("/api/v1/templates", &json!({"name": "open/t", "template_text": "Hi"})).await.ok(201);
    let render = json!({"label": "latest", "parameters": {"k": "42"}});
    rae.post("/api/v1/templates/vault%2Fkeys/render", &render).await.ok(200);

    // Six minutes later (the default allows five): reads go on, changes and
    // renders of the restricted template wait for the password.
    db.exec(&format!(
        "UPDATE web_session SET authenticated_at = {}",
        at_literal(db.kind, chrono::Utc::now() - chrono::Duration::minutes(6))
    ))
    .await;
    let r = rae.post("/api/v1/templates/vault%2Fkeys/render", &render).await;
    r.problem(403, "reauthentication_required");
    assert!(r.body["detail"].as_str().unwrap().contains("POST /api/v1/reauth"), "{:?}", r.body);
    let t = rae.get("/api/v1/templates/vault%2Fkeys?label=latest").await;
    let etag = t.etag();
    t.ok(200);
    rae.patch("/api/v1/templates/vault%2Fkeys", &json!({"description": "x"}), &etag)
        .await
        .problem(403, "reauthentication_required");
    rae.post("/api/v1/templates/vault%2Fkeys/versions", &json!({"template_text": "The key: {{ k }}"}))
        .await
        .problem(403, "reauthentication_required");
    rae.post("/api/v1/templates/open%2Ft/render", &json!({"label": "latest"})).await.ok(200);
    // API keys are not asked.
    s.post("/api/v1/templates/vault%2Fkeys/render", &render).await.ok(200);
    s.post("/api/v1/reauth", &json!({"password": "x"})).await.problem(409, "not_a_session");

    // The password again: a wrong one is refused, the right one refreshes.
    rae.post("/api/v1/reauth", &json!({"password": "correct horse batterz"}))
        .await
        .problem(401, "invalid_credentials");
    rae.post("/api/v1/templates/vault%2Fkeys/render", &render)
        .await
        .problem(403, "reauthentication_required");
    let r = rae.post("/api/v1/reauth", &json!({"password": "correct horse battery"})).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    rae.post("/api/v1/templates/vault%2Fkeys/render", &render).await.ok(200);
    rae.patch("/api/v1/templates/vault%2Fkeys", &json!({"description": "x"}), &etag).await.ok(200);
    // By cookie, re-authentication is a change: it needs the CSRF header.
    let jar = [("cookie", format!("pv_session={token}"))];
    let jar: Vec<(&str, &str)> = jar.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = json!({"password": "correct horse battery"});
    s.anonymous()
        .call(Method::POST, "/api/v1/reauth", Some(&body), &jar)
        .await
        .problem(403, "csrf_header_missing");

    // Both attempts are in the audit trail, without the password.
    let export = s.call(Method::GET, "/api/v1/audit/export", None, &[]).await;
    let text = match &export.body {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    assert!(!text.contains("correct horse"), "the password leaked into the audit trail");
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let reauth: Vec<&Value> = events.iter().filter(|e| e["action"] == "auth.reauth").collect();
    assert_eq!(reauth.iter().filter(|e| e["outcome"] == "success").count(), 1, "{reauth:#?}");
    assert_eq!(reauth.iter().filter(|e| e["outcome"] == "denied").count(), 1, "{reauth:#?}");
    assert!(
        events.iter().any(
            |e| e["outcome"] == "denied" && e["reason"].as_str().unwrap_or("").contains("/api/v1/reauth")
        )
    );
}
