//! Rate limits per credential, over HTTP.

use std::sync::Arc;

use promptvault_testkit::TestDb;
use serde_json::json;

use super::support::{TestServer, settings};

pub async fn a_burst_beyond_the_limit_gets_429_and_other_keys_are_unaffected(db: Arc<TestDb>) {
    let mut s = settings(&db);
    s.rate_limit.enabled = true;
    // One token every 100 s: nothing refills while the test runs.
    s.rate_limit.requests_per_second = 0.01;
    s.rate_limit.burst = 5;
    let admin = TestServer::start_with(s).await;
    // A second key, made before the admin's bucket runs dry (one request).
    let me = admin.get("/api/v1/me").await.ok(200)["id"].as_str().unwrap().to_owned();
    let key = admin.post(&format!("/api/v1/users/{me}/keys"), &json!({"name": "other"})).await;
    let mut other = admin.anonymous();
    other.token = Some(key.ok(201)["token"].as_str().unwrap().to_owned());

    // The admin key has 3 of its 5 left: a burst of 10 is cut off.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..10 {
        let r = admin.get("/api/v1/templates").await;
        statuses.push(r.status.as_u16());
        if r.status == 429 {
            limited.get_or_insert(r);
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = limited.unwrap();
    r.problem(429, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((90..=100).contains(&retry), "{retry}");
    assert_eq!(r.headers["cache-control"], "private, no-store");

    // Another key has its own bucket.
    for _ in 0..5 {
        other.get("/api/v1/templates").await.ok(200);
    }
    other.get("/api/v1/templates").await.problem(429, "rate_limited");

    // Without credentials, or with bad ones, the client address has a bucket
    // of its own: sign-in attempts and token guessing are limited too.
    let anon = admin.anonymous();
    let mut bad = admin.anonymous();
    bad.token = Some("pv_nope_000000000000000000000000000000000000000000000000".into());
    let mut codes = Vec::new();
    for i in 0..8 {
        let r = if i % 2 == 0 {
            anon.post("/api/v1/login", &json!({"email": "x@example.com", "password": "wrong-password"})).await
        } else {
            bad.get("/api/v1/templates").await
        };
        codes.push(r.status.as_u16());
    }
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 3, "{codes:?}");
    assert!(codes[5..].iter().all(|c| *c == 429), "{codes:?}");
    // Health probes are not limited.
    for _ in 0..10 {
        anon.get("/healthz").await.ok(200);
    }
}
