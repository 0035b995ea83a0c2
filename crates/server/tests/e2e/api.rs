use reqwest::Method;
use serde_json::Value;

use crate::support::{Db, TestServer, spec};

/// The committed document (docs/openapi.json) is what the code generates,
/// every documented operation is routed, and every operation has problem
/// responses described.
pub async fn openapi_document_matches_the_routes(db: Db) {
    let s = TestServer::start(&db).await;
    let served = s.get("/api/v1/openapi.json").await;
    let doc = served.ok(200);
    assert_eq!(doc, spec(), "the served document is the generated one");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let committed: Value = serde_json::from_str(include_str!("../../../../docs/openapi.json"))
        .expect("docs/openapi.json is JSON");
    assert!(
        &committed == spec(),
        "docs/openapi.json is out of date: run `cargo run -p promptvault -- openapi > docs/openapi.json`"
    );
    for (path, item) in spec()["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let concrete = path
                .replace("{name}", "x")
                .replace("{key}", "x")
                .replace("{version}", "1")
                .replace("{label}", "x")
                .replace("{id}", &uuid::Uuid::new_v4().to_string());
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = s.call(m, &concrete, Some(&serde_json::json!({})), &[]).await;
            assert_ne!(r.body["code"], "not_found", "{method} {path} is documented but not routed");
            assert_ne!(r.body["code"], "method_not_allowed", "{method} {path} is documented but not routed");
            assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
            if path.starts_with("/api/") {
                let errors =
                    op["responses"].as_object().unwrap().keys().filter(|k| k.starts_with('4')).count();
                assert!(errors > 0, "{method} {path} documents no error response");
            }
        }
    }
}

pub async fn health_ready_and_metrics(db: Db) {
    let s = TestServer::start(&db).await;
    let anon = s.anonymous();
    assert_eq!(anon.get("/healthz").await.status, 200);
    assert_eq!(anon.get("/readyz").await.status, 200);
    s.template("m", "x", &[]).await;
    let r = s.post("templates/m/render", &serde_json::json!({"label": "latest"})).await;
    r.ok(200);
    // Template content is never cached, framed or sniffed.
    for resp in [&r, &s.get("templates/m?label=latest").await, &s.get("templates/nope").await] {
        let h = |n: &str| resp.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(h("cache-control"), "private, no-store");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("content-security-policy"), "default-src 'none'; frame-ancestors 'none'");
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("referrer-policy"), "no-referrer");
    }
    let m = anon.get("/metrics").await;
    assert_eq!(m.status, 200);
    let text = m.body.as_str().unwrap_or_default();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("promptvault_renders_total"), "{text}");
    assert!(
        text.contains("route=\"/api/v1/templates/{name}/render\""),
        "routes are labelled by template, not by name: {text}"
    );
    let r = anon.get("/healthz").await;
    assert!(r.headers.contains_key("x-request-id"));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
}
