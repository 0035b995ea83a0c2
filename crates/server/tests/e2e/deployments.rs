//! Deployment restrictions by classification, over HTTP: what an API key
//! bound to a desktop deployment may receive.

use std::sync::Arc;

use promptvault_testkit::TestDb;
use serde_json::{Value, json};

use super::governance::approve;
use super::support::TestServer;

/// An approved template of `classification` (created public, approved by
/// one reviewer, then reclassified).
async fn approved(db: &TestDb, s: &TestServer, name: &str, classification: &str) {
    s.template(name, "Hello {{ name }}, the secret is 42", &["name"]).await;
    approve(db, s, name, 1).await;
    let path = format!("/api/v1/templates/{}", name.replace('/', "%2F"));
    s.put(&format!("{path}/labels/production"), &json!({"version": 1})).await.ok(200);
    let etag = s.get(&path).await.etag();
    s.patch(&path, &json!({"security_classification": classification}), &etag).await.ok(200);
}

/// An admin key bound to `deployment`.
async fn bound_key(s: &TestServer, deployment: &str) -> TestServer {
    let me = s.get("/api/v1/me").await.ok(200)["id"].as_str().unwrap().to_owned();
    let key = s
        .post(&format!("/api/v1/users/{me}/keys"), &json!({"name": deployment, "deployment": deployment}))
        .await;
    let mut other = s.anonymous();
    other.token = Some(key.ok(201)["token"].as_str().unwrap().to_owned());
    other
}

fn detail(r: &super::support::Resp) -> String {
    r.body["detail"].as_str().unwrap_or_default().to_owned()
}

fn names(listing: &Value) -> Vec<String> {
    listing["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

pub async fn classification_decides_which_deployments_receive_a_template(db: Arc<TestDb>) {
    let s = TestServer::start(&db).await;
    approved(&db, &s, "dep/secret", "restricted").await;
    approved(&db, &s, "dep/conf", "confidential").await;
    approved(&db, &s, "dep/open", "internal").await;
    let local = bound_key(&s, "electron_local").await;
    let remote = bound_key(&s, "electron_remote").await;
    let render = json!({"parameters": {"name": "Ada"}});

    // Restricted: never outside web_application, for an admin key too, on
    // every route that delivers content.
    let r = local.get("/api/v1/templates/dep%2Fsecret").await;
    r.problem(403, "forbidden");
    let why = detail(&r);
    for part in ["dep/secret", "restricted", "electron_local", "web_application only"] {
        assert!(why.contains(part), "{part}: {why}");
    }
    for path in [
        "/api/v1/templates/dep%2Fsecret?version=1",
        "/api/v1/templates/dep%2Fsecret/versions",
        "/api/v1/templates/dep%2Fsecret/versions/1",
        "/api/v1/templates/dep%2Fsecret/diff?from=1&to=1",
        "/api/v1/templates/dep%2Fsecret/labels",
        "/api/v1/templates/dep%2Fsecret/labels/production",
    ] {
        let r = local.get(path).await;
        r.problem(403, "forbidden");
        assert!(detail(&r).contains("restricted"), "{path}: {}", detail(&r));
        remote.get(path).await.problem(403, "forbidden");
    }
    let r = local.post("/api/v1/templates/dep%2Fsecret/render", &render).await;
    r.problem(403, "forbidden");
    assert!(detail(&r).contains("electron_local"), "{}", detail(&r));
    remote.post("/api/v1/templates/dep%2Fsecret/render", &render).await.problem(403, "forbidden");
    // The central deployment receives it.
    let r = s.post("/api/v1/templates/dep%2Fsecret/render", &render).await;
    assert!(r.ok(200)["text"].as_str().unwrap().contains("secret is 42"), "{:?}", r.body);
    // Nor does the recorded rendering reach it.
    let prompt = format!("/api/v1/prompts/{}", r.body["prompt_id"].as_str().unwrap());
    s.get(&prompt).await.ok(200);
    let r = local.get(&prompt).await;
    r.problem(403, "forbidden");
    assert!(detail(&r).contains("restricted"), "{}", detail(&r));
    // Marking it offline-allowed changes nothing for restricted templates.
    let etag = s.get("/api/v1/templates/dep%2Fsecret").await.etag();
    s.patch("/api/v1/templates/dep%2Fsecret", &json!({"access": {"offline_allowed": true}}), &etag)
        .await
        .ok(200);
    local.get("/api/v1/templates/dep%2Fsecret").await.problem(403, "forbidden");

    // An internal template including the restricted one carries its
    // content: refused too, naming the include.
    s.template("dep/wrapper", "Wrapped: {% include \"dep/secret|label=production\" %}", &["name"]).await;
    approve(&db, &s, "dep/wrapper", 1).await;
    s.put("/api/v1/templates/dep%2Fwrapper/labels/production", &json!({"version": 1})).await.ok(200);
    let r = local.post("/api/v1/templates/dep%2Fwrapper/render", &render).await;
    r.problem(403, "forbidden");
    assert!(detail(&r).contains("dep/wrapper includes dep/secret"), "{}", detail(&r));
    let r = s.post("/api/v1/templates/dep%2Fwrapper/render", &render).await;
    assert_eq!(r.ok(200)["text"], "Wrapped: Hello Ada, the secret is 42");

    // Confidential: only when marked offline-allowed.
    let r = local.get("/api/v1/templates/dep%2Fconf").await;
    r.problem(403, "forbidden");
    let why = detail(&r);
    for part in ["confidential", "electron_local", "offline_allowed"] {
        assert!(why.contains(part), "{part}: {why}");
    }
    local.post("/api/v1/templates/dep%2Fconf/render", &render).await.problem(403, "forbidden");
    remote.get("/api/v1/templates/dep%2Fconf/versions/1").await.problem(403, "forbidden");
    // Internal goes everywhere.
    local.get("/api/v1/templates/dep%2Fopen").await.ok(200);

    // Listings leave out what the deployment may not receive, as they do
    // for per-template deployment restrictions.
    let listed = names(local.get("/api/v1/templates?limit=100").await.ok(200));
    assert!(
        listed.contains(&"dep/open".to_owned()) && listed.contains(&"dep/wrapper".to_owned()),
        "{listed:?}"
    );
    assert!(!listed.iter().any(|n| n == "dep/conf" || n == "dep/secret"), "{listed:?}");
    // Search goes through the same filter (sealed confidential and
    // restricted text is not searchable anyway).
    let listed = names(local.get("/api/v1/templates?q=hello&limit=100").await.ok(200));
    assert_eq!(listed, ["dep/open"], "search leaves them out too");
    assert_eq!(names(s.get("/api/v1/templates?limit=100").await.ok(200)).len(), 4);

    // The policy explains itself, for the asking key or a deployment named.
    let e = local.get("/api/v1/authz/explain?action=read&resource=template&template=dep/conf").await;
    let e = e.ok(200);
    assert_eq!(e["allowed"], false);
    assert!(e["reason"].as_str().unwrap().contains("offline_allowed"), "{e}");
    let e = s
        .get("/api/v1/authz/explain?action=execute&resource=template&template=dep/secret&deployment=electron_remote")
        .await;
    let e = e.ok(200);
    assert_eq!(e["allowed"], false);
    assert!(e["reason"].as_str().unwrap().contains("electron_remote"), "{e}");
    let e = s.get("/api/v1/authz/explain?action=execute&resource=template&template=dep/secret").await;
    assert_eq!(e.ok(200)["allowed"], true);
    s.get("/api/v1/authz/explain?action=read&resource=template&deployment=mainframe")
        .await
        .problem(400, "invalid_query");

    // Marked offline-allowed, the confidential template reaches both
    // desktop deployments; the access settings show the mark.
    let etag = s.get("/api/v1/templates/dep%2Fconf").await.etag();
    let t =
        s.patch("/api/v1/templates/dep%2Fconf", &json!({"access": {"offline_allowed": true}}), &etag).await;
    assert_eq!(t.ok(200)["access"]["offline_allowed"], true, "{:?}", t.body);
    let t = local.get("/api/v1/templates/dep%2Fconf").await;
    assert_eq!(t.ok(200)["access"]["offline_allowed"], true);
    let r = local.post("/api/v1/templates/dep%2Fconf/render", &render).await;
    assert!(r.ok(200)["text"].as_str().unwrap().contains("Ada"));
    remote.get("/api/v1/templates/dep%2Fconf/versions/1").await.ok(200);
    let listed = names(local.get("/api/v1/templates?limit=100").await.ok(200));
    assert!(listed.contains(&"dep/conf".to_owned()) && !listed.contains(&"dep/secret".to_owned()));

    // Every refusal is in the audit trail with its reason.
    let events = s.get("/api/v1/audit/events?outcome=denied&limit=1000").await;
    let denied = events.ok(200)["items"].as_array().unwrap().clone();
    assert!(
        denied
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("restricted and this request comes from")),
        "{denied:#?}"
    );
}

/// The rules come from the settings: here confidential templates go to
/// electron_remote without the mark.
pub async fn delivery_rules_are_configurable(db: Arc<TestDb>) {
    let mut settings = super::support::settings(&db);
    settings.deployment_rules.confidential.deployments = vec![
        promptvault_core::DeploymentModel::WebApplication,
        promptvault_core::DeploymentModel::ElectronRemote,
    ];
    let s = TestServer::start_with(settings).await;
    approved(&db, &s, "cfg/conf", "confidential").await;
    let remote = bound_key(&s, "electron_remote").await;
    let local = bound_key(&s, "electron_local").await;
    remote.get("/api/v1/templates/cfg%2Fconf").await.ok(200);
    let r = local.get("/api/v1/templates/cfg%2Fconf").await;
    r.problem(403, "forbidden");
    assert!(detail(&r).contains("only when marked offline-allowed"), "{}", detail(&r));
    // Restricted ones keep the default rule.
    approved(&db, &s, "cfg/secret", "restricted").await;
    remote.get("/api/v1/templates/cfg%2Fsecret").await.problem(403, "forbidden");
}
