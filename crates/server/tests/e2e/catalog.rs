use serde_json::json;

use crate::governance::approve;
use crate::support::{Db, TestServer, conforms};

pub async fn templates_round_trip_with_folder_names(db: Db) {
    let s = TestServer::start(&db).await;
    let created = s
        .post("templates", &json!({
            "name": "support/en/greeting",
            "description": "Greets",
            "tags": ["b", "a"],
            "security_classification": "confidential",
            "template_text": "Hello {{ name }}",
            "parameter_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            "config": {"model": "m"}
        }))
        .await;
    conforms("post", "/api/v1/templates", &created);
    let body = created.ok(201);
    assert_eq!(body["template"]["name"], "support/en/greeting");
    assert_eq!(body["template"]["tags"], json!(["a", "b"]));
    assert_eq!(body["template"]["type"], "general");
    assert_eq!(body["template"]["version"]["version"], "1.0.0");
    assert_eq!(body["template"]["version"]["status"], "draft");
    assert!(body["template"]["version"]["content_hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(created.etag(), "\"tpl-1\"");
    assert_eq!(created.headers["cache-control"], "private, no-store");
    // Raw slashes and %2F reach the same template.
    for path in
        ["templates/support/en/greeting?label=latest", "templates/support%2Fen%2Fgreeting?label=latest"]
    {
        let r = s.get(path).await;
        conforms("get", "/api/v1/templates/{name}", &r);
        assert_eq!(r.ok(200)["name"], "support/en/greeting", "{path}");
    }
    let r = s.get("templates/support/en/greeting/versions/1").await;
    assert_eq!(r.ok(200)["template_text"], "Hello {{ name }}");
    let r = s.get("templates/support%2Fen%2Fgreeting/versions/1.0.0").await;
    conforms("get", "/api/v1/templates/{name}/versions/{version}", &r);
    assert_eq!(r.ok(200)["config"], json!({"model": "m"}));
    s.post("templates", &json!({"name": "support/en/greeting", "template_text": "x"}))
        .await
        .problem(409, "already_exists");
}

pub async fn reads_resolve_the_default_label_or_say_what_is_missing(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("greet", "Hi {{ name }}", &["name"]).await;
    let r = s.get("templates/greet").await;
    r.problem(404, "label_not_found");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("production") && detail.contains("latest"), "{detail}");
    let cached = s.get("templates/greet?label=latest").await;
    assert_eq!(cached.ok(200)["labels"], json!([{"name": "latest", "version_seq": 1}]));
    // `production` is protected: only an approved version, released by a
    // reviewer other than its author.
    s.put("templates/greet/labels/production", &json!({"version": 1}))
        .await
        .problem(409, "label_requires_approved");
    approve(&db, &s, "greet", 1).await;
    s.put("templates/greet/labels/production", &json!({"version": 1})).await.ok(200);
    let r = s.get("templates/greet?label=latest").await;
    assert_eq!(r.ok(200)["labels"].as_array().unwrap().len(), 2, "the label list is not served stale");
    let r = s.get("templates/greet").await;
    assert_eq!(r.ok(200)["version"]["seq"], 1);
    assert_eq!(
        r.body["labels"],
        json!([{"name": "latest", "version_seq": 1}, {"name": "production", "version_seq": 1}])
    );
    s.get("templates/greet?label=staging").await.problem(404, "label_not_found");
    s.get("templates/greet?version=7").await.problem(404, "version_not_found");
    s.get("templates/greet?version=1&label=latest").await.problem(400, "invalid_selector");
    s.get("templates/nope").await.problem(404, "template_not_found");
}

pub async fn metadata_updates_need_the_current_etag(db: Db) {
    let s = TestServer::start(&db).await;
    let t = s.template("meta", "x", &[]).await;
    let _ = t;
    let patch = json!({"description": "new", "tags": ["z"]});
    s.call(reqwest::Method::PATCH, "templates/meta", Some(&patch), &[])
        .await
        .problem(428, "precondition_required");
    let r = s.patch("templates/meta", &patch, "\"tpl-1\"").await;
    conforms("patch", "/api/v1/templates/{name}", &r);
    assert_eq!(r.ok(200)["description"], "new");
    assert_eq!(r.etag(), "\"tpl-2\"");
    // A second writer that read revision 1 is refused, and told the current tag.
    let stale = s.patch("templates/meta", &json!({"description": "lost"}), "\"tpl-1\"").await;
    stale.problem(412, "precondition_failed");
    assert_eq!(stale.etag(), "\"tpl-2\"");
    s.patch("templates/meta", &json!({"description": "x"}), "\"ver-2\"")
        .await
        .problem(412, "precondition_failed");
    s.patch("templates/meta", &json!({"description": "x"}), "*").await.problem(428, "precondition_required");
    s.patch("templates/meta", &json!({}), "\"tpl-2\"").await.problem(422, "invalid_request");
    let r = s.get("templates/meta?label=latest").await;
    assert_eq!(r.ok(200)["description"], "new");
    assert_eq!(r.etag(), "\"tpl-2\"", "a refused patch changes nothing");
    // `null` clears; an absent field stays.
    let r = s.patch("templates/meta", &json!({"description": null}), "\"tpl-2\"").await;
    assert_eq!(r.ok(200)["description"], serde_json::Value::Null);
    assert_eq!(r.body["tags"], json!(["z"]));
    // Concurrent writers with the same tag: exactly one wins.
    let (da, db) = (json!({"description": "a"}), json!({"description": "b"}));
    let (a, b) = tokio::join!(
        s.patch("templates/meta", &da, "\"tpl-3\""),
        s.patch("templates/meta", &db, "\"tpl-3\"")
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412]);
}

pub async fn listing_filters_pages_and_search(db: Db) {
    let s = TestServer::start(&db).await;
    for i in 0..7 {
        s.template(&format!("bulk/t{i}"), "plain text", &[]).await;
    }
    s.post("templates", &json!({"name": "support/refunds", "description": "Explains refunds", "tags": ["billing"], "template_text": "Mention the thirty day window."}))
        .await
        .ok(201);
    let mut names = Vec::new();
    let mut path = "templates?folder=bulk&limit=3".to_owned();
    loop {
        let r = s.get(&path).await;
        conforms("get", "/api/v1/templates", &r);
        let body = r.ok(200);
        names
            .extend(body["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("templates?folder=bulk&limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("bulk/t{i}")).collect::<Vec<_>>());
    let r = s.get("templates?tag=billing").await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 1);
    let r = s.get("templates?q=thirty%20window").await;
    assert_eq!(r.ok(200)["items"][0]["name"], "support/refunds");
    let r = s.get("templates?q=&folder=bulk").await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 7, "an empty search is no search");
    let r = s.get("templates?q=refund").await;
    assert_eq!(r.ok(200)["items"][0]["name"], "support/refunds");
    let r = s.get("templates?classification=internal&status=draft&type=general&limit=200").await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 8);
    s.get("templates?classification=secret").await.problem(400, "invalid_query");
    s.get("templates?status=live").await.problem(400, "invalid_query");
    s.get("templates?limit=abc").await.problem(400, "invalid_query");
    s.get("templates?cursor=not-a-cursor").await.problem(400, "invalid_cursor");
}

pub async fn prompt_types_and_contracts(db: Db) {
    let s = TestServer::start(&db).await;
    let r = s
        .post("prompt-types", &json!({"key": "agent", "name": "Agents", "schema": {"properties": {"agent_name": {"type": "string"}}, "required": ["agent_name"]}}))
        .await;
    conforms("post", "/api/v1/prompt-types", &r);
    r.ok(201);
    let r = s.get("prompt-types").await;
    conforms("get", "/api/v1/prompt-types", &r);
    let keys: Vec<&str> =
        r.ok(200)["items"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["agent", "general"]);
    // A template of the type must meet its contract.
    let r = s.post("templates", &json!({"name": "a1", "type": "agent", "template_text": "hi", "parameter_schema": {"type": "object"}})).await;
    r.problem(422, "type_contract_violated");
    assert!(r.body["detail"].as_str().unwrap().contains("agent_name"));
    let ok = json!({"name": "a1", "type": "agent", "template_text": "I am {{ agent_name }}",
        "parameter_schema": {"type": "object", "properties": {"agent_name": {"type": "string"}}, "required": ["agent_name"]}});
    s.post("templates", &ok).await.ok(201);
    // …and later versions too.
    s.post(
        "templates/a1/versions",
        &json!({"template_text": "plain", "parameter_schema": {"type": "object"}}),
    )
    .await
    .problem(422, "type_contract_violated");
    s.post("templates", &json!({"name": "a2", "type": "nope", "template_text": "x"}))
        .await
        .problem(404, "prompt_type_not_found");
    s.post("prompt-types", &json!({"key": "agent", "name": "Other"})).await.problem(409, "already_exists");
    s.post("prompt-types", &json!({"key": "Bad Key", "name": "x"})).await.problem(422, "invalid_name");
    s.post("prompt-types", &json!({"key": "x", "name": "x", "schema": {"properties": 3}}))
        .await
        .problem(422, "invalid_type_schema");
    let current = s.get("prompt-types/agent").await;
    let etag = current.etag();
    s.delete("prompt-types/agent", &etag).await.problem(409, "in_use");
    let r = s.patch("prompt-types/agent", &json!({"name": "Agent prompts"}), &etag).await;
    conforms("patch", "/api/v1/prompt-types/{key}", &r);
    assert_eq!(r.ok(200)["name"], "Agent prompts");
    s.patch("prompt-types/agent", &json!({"name": "x"}), &etag).await.problem(412, "precondition_failed");
    let current = s.get("prompt-types/agent").await.etag();
    s.patch("prompt-types/agent", &json!({}), &current).await.problem(422, "invalid_request");
}

pub async fn deleting_a_template_keeps_its_renderings(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("gone", "Hi {{ n }}", &["n"]).await;
    let r = s.post("templates/gone/render", &json!({"label": "latest", "parameters": {"n": "x"}})).await;
    let id = r.ok(200)["prompt_id"].as_str().unwrap().to_owned();
    s.delete("templates/gone", "").await.problem(428, "precondition_required");
    s.delete("templates/gone", "\"tpl-9\"").await.problem(412, "precondition_failed");
    let r = s.delete("templates/gone", "\"tpl-1\"").await;
    assert_eq!(r.status, 204);
    s.get("templates/gone?label=latest").await.problem(404, "template_not_found");
    let p = s.get(&format!("prompts/{id}")).await;
    assert_eq!(p.ok(200)["prompt_text"], "Hi x");
}

pub async fn first_start_creates_an_admin_key_once(db: Db) {
    let mut config = crate::support::settings(&db);
    config.admin_token = None;
    let server = promptvault_server::start(config.clone()).await.expect("start");
    let boot = server.bootstrap().expect("first start bootstraps");
    let token = boot.generated_token.as_ref().expect("a token is generated").expose().to_owned();
    let file = boot.token_file.clone().expect("written to a file");
    assert_eq!(file, db.dir.path().join("admin-token"));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let mut s = TestServer {
        server: Some(server),
        base: String::new(),
        http: reqwest::Client::new(),
        token: Some(token.clone()),
    };
    s.base = format!("http://{}", s.server.as_ref().unwrap().local_addr());
    s.get("templates").await.ok(200);
    s.stop().await;
    // A second start finds the key and creates nothing.
    let server = promptvault_server::start(config).await.expect("restart");
    assert!(server.bootstrap().is_none());
    let mut s = TestServer {
        base: format!("http://{}", server.local_addr()),
        server: Some(server),
        http: reqwest::Client::new(),
        token: Some(token),
    };
    s.get("templates").await.ok(200);
    s.stop().await;
}

/// Two server processes on one PostgreSQL database: a write through one is
/// seen through the other at once, although both cache what they read
/// (invalidation travels by LISTEN/NOTIFY).
pub async fn servers_sharing_postgres_see_each_others_writes(db: Db) {
    let mut a = TestServer::start(&db).await;
    let mut b = TestServer::start(&db).await;
    a.template("shared", "one", &[]).await;
    a.post("templates/shared/versions", &json!({"template_text": "two words"})).await.ok(201);
    a.put("templates/shared/labels/staging", &json!({"version": 1})).await.ok(200);
    // B reads (and caches) staging → 1.
    for _ in 0..3 {
        assert_eq!(b.get("templates/shared?label=staging").await.ok(200)["version"]["seq"], 1);
    }
    let render = json!({"parameters": {}, "label": "staging"});
    assert_eq!(b.post("templates/shared/render", &render).await.ok(200)["text"], "one");
    // A moves the label; B must follow without a restart.
    a.put("templates/shared/labels/staging", &json!({"version": 2})).await.ok(200);
    let mut seen = None;
    for _ in 0..200 {
        let v = b.get("templates/shared?label=staging").await.ok(200)["version"]["seq"].clone();
        if v == 2 {
            seen = Some(v);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(seen, Some(json!(2)), "B kept serving the old label");
    assert_eq!(b.post("templates/shared/render", &render).await.ok(200)["text"], "two words");
    a.stop().await;
    b.stop().await;
}
