use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Db, TestServer, spec};

/// What a refused request must leave unchanged.
async fn snapshot(s: &TestServer) -> Value {
    let templates = s.get("templates?limit=200").await.ok(200).clone();
    let versions = s.get("templates/keep/versions").await.ok(200)["items"].clone();
    let labels = s.get("templates/keep/labels").await.ok(200)["items"].clone();
    let types = s.get("prompt-types").await.ok(200)["items"].clone();
    json!({"templates": templates["items"], "versions": versions, "labels": labels, "types": types})
}

pub async fn malformed_requests_are_refused_and_change_nothing(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("keep", "Keep {{ x }}", &["x"]).await;
    s.put("templates/keep/labels/staging", &json!({"version": 1})).await.ok(200);
    let before = snapshot(&s).await;
    let raw = |method: Method, path: &'static str, body: &'static str, ct: &'static str| {
        let s = &s;
        async move {
            let resp = s
                .http
                .request(method, format!("{}/api/v1/{path}", s.base))
                .bearer_auth(crate::support::TOKEN)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            let ctype =
                resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let body: Value = resp.json().await.expect("a JSON problem");
            (status, ctype, body)
        }
    };
    for (method, path, body, ct, status, code) in [
        (Method::POST, "templates", "{\"name\": ", "application/json", 400, "invalid_json"),
        (Method::POST, "templates", "{\"name\": \"x\",}", "application/json", 400, "invalid_json"),
        (Method::POST, "templates", "not json at all", "application/json", 400, "invalid_json"),
        (
            Method::POST,
            "templates",
            "{\"name\": 5, \"template_text\": \"x\"}",
            "application/json",
            422,
            "invalid_request",
        ),
        (
            Method::POST,
            "templates",
            "{\"name\": \"n\", \"template_text\": \"x\", \"tags\": \"a\"}",
            "application/json",
            422,
            "invalid_request",
        ),
        (
            Method::POST,
            "templates",
            "{\"name\": \"n\", \"template_text\": \"x\", \"colour\": 1}",
            "application/json",
            422,
            "invalid_request",
        ),
        (
            Method::POST,
            "templates",
            "{\"name\": \"n\", \"template_text\": \"x\"}",
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "templates/keep/versions",
            "{\"template_text\": 7}",
            "application/json",
            422,
            "invalid_request",
        ),
        (
            Method::POST,
            "templates/keep/render",
            "{\"parameters\": {\"x\": 1}, \"label\": \"latest\"}",
            "application/json",
            422,
            "invalid_parameters",
        ),
        (Method::POST, "templates/keep/render", "{\"label\": 3}", "application/json", 422, "invalid_request"),
        (
            Method::PUT,
            "templates/keep/labels/staging",
            "{\"version\": true}",
            "application/json",
            422,
            "invalid_request",
        ),
        (Method::PUT, "templates/keep/labels/staging", "{}", "application/json", 422, "invalid_request"),
        (Method::POST, "prompt-types", "{\"key\": \"k\"}", "application/json", 422, "invalid_request"),
    ] {
        let (got, ctype, problem) = raw(method.clone(), path, body, ct).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body}: {problem:#}"
        );
        assert_eq!(ctype, "application/problem+json");
    }
    for (path, body, code) in [
        ("templates", json!({"name": "bad//name", "template_text": "x"}), "invalid_name"),
        ("templates", json!({"name": "x/versions", "template_text": "x"}), "invalid_name"),
        ("templates", json!({"name": "n", "template_text": "{% if %}"}), "invalid_template"),
        (
            "templates",
            json!({"name": "n", "template_text": "x", "parameter_schema": {"type": "string"}}),
            "invalid_parameter_schema",
        ),
        (
            "templates",
            json!({"name": "n", "template_text": "x", "parameter_schema": {"type": "object", "properties": {"a": {"type": "nonsense"}}}}),
            "invalid_parameter_schema",
        ),
        ("templates", json!({"name": "n", "template_text": "x", "config": [1]}), "invalid_config"),
        (
            "templates",
            json!({"name": "n", "template_text": "x", "security_classification": "top-secret"}),
            "invalid_request",
        ),
        ("templates", json!({"name": "n", "template_text": "x", "tags": [""]}), "invalid_name"),
        ("templates", json!({"name": "n", "template_text": "a\u{0}b"}), "invalid_text"),
        ("templates", json!({"name": "n", "template_text": "x", "description": "nul\u{0}"}), "invalid_text"),
        ("templates", json!({"name": "n", "template_text": "x", "config": {"k": "\u{0}"}}), "invalid_text"),
        ("templates", json!({"name": "n", "template_text": "x", "messages": []}), "invalid_template"),
        (
            "templates/keep/render",
            json!({"label": "latest", "parameters": {"x": "a\u{0}"}}),
            "invalid_parameters",
        ),
        (
            "templates/keep/render",
            json!({"label": "latest", "parameters": {"x": "a"}, "session_id": "\u{0}"}),
            "invalid_text",
        ),
        ("templates/keep/render", json!({"label": "LATEST", "parameters": {"x": "a"}}), "invalid_name"),
        ("templates/keep/versions", json!({"template_text": "{{ x }}{{ y }}"}), "undeclared_variables"),
        (
            "templates/keep/versions",
            json!({"template_text": "a", "messages": [{"role": "user", "content": "b"}]}),
            "invalid_template",
        ),
    ] {
        s.post(path, &body).await.problem(422, code);
    }
    s.post("templates", &json!({"name": "n", "template_text": "x", "owner_id": uuid::Uuid::new_v4()}))
        .await
        .problem(422, "invalid_owner");
    s.get("templates/keep/versions/abc").await.problem(400, "invalid_version");
    s.get("templates/keep/versions/0").await.problem(400, "invalid_version");
    s.get("templates/bad%7Cname?label=latest").await.problem(400, "invalid_name");
    assert_eq!(snapshot(&s).await, before, "refused requests changed something");
    // The renders above were all refused: nothing was recorded.
    assert_eq!(s.get("templates/keep/metrics").await.ok(200)["total"]["times_used"], 0);
}

pub async fn oversized_bodies_are_refused(db: Db) {
    let s = TestServer::start(&db).await;
    let huge = "x".repeat(100 * 1024);
    s.post("templates", &json!({"name": "big", "template_text": huge}))
        .await
        .problem(413, "payload_too_large");
    s.get("templates/big?label=latest").await.problem(404, "template_not_found");
    // Under the body limit but over the template limit is a 422.
    let mut config = crate::support::settings(&db);
    config.body_limit_bytes = 1024 * 1024;
    let mut s2 = TestServer::start_with(config).await;
    let over = "x".repeat(300 * 1024);
    s2.post("templates", &json!({"name": "big", "template_text": over}))
        .await
        .problem(422, "template_too_large");
    s2.stop().await;
}

pub async fn unknown_names_are_404_problems(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("known", "k", &[]).await;
    for path in [
        "templates/unknown?label=latest",
        "templates/unknown/versions",
        "templates/unknown/labels",
        "templates/unknown/metrics",
        "templates/unknown/diff",
        "prompt-types/unknown",
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.body["code"].as_str().unwrap().ends_with("not_found"), "{path}: {}", r.body);
    }
    s.get("templates/known/labels/nope").await.problem(404, "label_not_found");
    s.get("templates/known/versions/2").await.problem(404, "version_not_found");
    s.post("templates/unknown/render", &json!({})).await.problem(404, "template_not_found");
    s.get(&format!("prompts/{}", uuid::Uuid::new_v4())).await.problem(404, "prompt_not_found");
    s.get("/api/v1/no-such-thing").await.problem(404, "not_found");
    s.call(Method::DELETE, "prompt-types", None, &[]).await.problem(405, "method_not_allowed");
}

pub async fn every_api_route_requires_a_key(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("a/b", "x", &[]).await;
    let anon = s.anonymous();
    let mut checked = 0;
    for (path, item) in spec()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{name}", "a%2Fb")
                .replace("{key}", "general")
                .replace("{version}", "1")
                .replace("{label}", "production")
                .replace("{id}", &uuid::Uuid::new_v4().to_string());
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
            let r = anon.call(m.clone(), &concrete, body.as_ref(), &[]).await;
            if path == "/api/v1/login" {
                // Signing in needs no key; what it gets wrong is the body.
                r.problem(422, "invalid_request");
            } else if path.starts_with("/api/") {
                r.problem(401, "unauthorized");
                assert!(r.headers.contains_key("www-authenticate"));
            } else {
                assert_eq!(r.status, 200, "{method} {path} should need no key");
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} operations documented");
    for bad in [
        "Bearer nope",
        "Bearer pv_0123456789_wrongwrongwrongwrongwrongwrongwrongwrongwrongwrong",
        "Basic abc",
        "Bearer ",
    ] {
        let r = anon.call(Method::GET, "templates", None, &[("authorization", bad)]).await;
        r.problem(401, "unauthorized");
    }
    anon.get("/api/v1/openapi.json").await.problem(401, "unauthorized");
}
