//! Transport: HTTPS from certificate files with HSTS, and the refusal to
//! serve plain HTTP beyond loopback.

use std::sync::Arc;

use promptvault_testkit::TestDb;
use serde_json::json;

use super::support::{TOKEN, TestServer, settings};

pub async fn https_serves_content_with_hsts(db: Arc<TestDb>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = db.dir.path().join("tls");
    let (cert, key) =
        promptvault_server::tls::write_self_signed(&dir, &["localhost".into(), "127.0.0.1".into()])
            .expect("self-signed pair");
    let mut s = settings(&db);
    s.tls.cert_file = Some(cert.clone());
    s.tls.key_file = Some(key);
    let server = promptvault_server::start(s).await.expect("starts under TLS");
    let url = server.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).expect("cert parses");
    let http = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");

    let created = http
        .post(format!("{url}/api/v1/templates"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "tls/hello", "template_text": "Hello over TLS"}))
        .send()
        .await
        .expect("https request");
    assert_eq!(created.status(), 201);
    let resp = http
        .post(format!("{url}/api/v1/templates/tls%2Fhello/render"))
        .bearer_auth(TOKEN)
        .json(&json!({"label": "latest"}))
        .send()
        .await
        .expect("https request");
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["strict-transport-security"], "max-age=63072000; includeSubDomains");
    assert_eq!(h["cache-control"], "private, no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["text"], "Hello over TLS");
    // Problems and unauthenticated answers carry it too.
    let r = http.get(format!("{url}/api/v1/templates")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("strict-transport-security"));
    let r = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert!(r.headers().contains_key("strict-transport-security"));
    // A client that does not trust the certificate gets no answer, and
    // plain HTTP on the TLS port gets no content.
    assert!(reqwest::Client::new().get(format!("{url}/healthz")).send().await.is_err());
    let plain = format!("http://{}/healthz", server.local_addr());
    if let Ok(r) = reqwest::Client::new().get(plain).send().await {
        assert_ne!(r.status(), 200, "plain HTTP must not be served on the TLS port");
    }
    // The graceful stop works under TLS as without.
    server.shutdown().await.expect("clean shutdown");

    // Without TLS: no HSTS.
    let mut plain = TestServer::start(&db).await;
    let r = plain.get("/healthz").await;
    assert!(!r.headers.contains_key("strict-transport-security"));
    assert_eq!(r.headers["cache-control"], "private, no-store");
    plain.stop().await;
}

pub async fn plain_http_beyond_loopback_is_refused(db: Arc<TestDb>) {
    let mut s = settings(&db);
    s.listen = "0.0.0.0:0".parse().unwrap();
    let err = promptvault_server::start(s.clone()).await.expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("refusing to serve plain HTTP on 0.0.0.0:0"), "{msg}");
    assert!(msg.contains("allow_insecure_http") && !msg.contains('\n'), "{msg}");

    // Half a TLS configuration is refused with what is missing.
    let mut half = s.clone();
    half.tls.cert_file = Some(db.dir.path().join("cert.pem"));
    let err = promptvault_server::start(half).await.expect_err("refused").to_string();
    assert!(err.contains("tls.key_file"), "{err}");
    // Unreadable files are named.
    let mut missing = s.clone();
    missing.tls.cert_file = Some(db.dir.path().join("nope.pem"));
    missing.tls.key_file = Some(db.dir.path().join("nope.key"));
    let err = promptvault_server::start(missing).await.expect_err("refused").to_string();
    assert!(err.contains("nope.pem"), "{err}");

    // Explicitly allowed, it starts (behind a proxy that terminates TLS).
    s.allow_insecure_http = true;
    let server = promptvault_server::start(s).await.expect("allowed");
    assert!(server.url().starts_with("http://0.0.0.0:"));
    let port = server.local_addr().port();
    let r = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("strict-transport-security"));
    server.shutdown().await.expect("clean shutdown");
}
