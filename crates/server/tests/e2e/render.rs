use serde_json::json;

use crate::support::{Db, TestServer, conforms, settings};

pub async fn renders_validate_and_record(db: Db) {
    let s = TestServer::start(&db).await;
    s.post("templates", &json!({
        "name": "r/greet",
        "template_text": "Hello {{ name }}{% if age %}, {{ age }}{% endif %}!",
        "parameter_schema": {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}, "age": {"type": "integer", "minimum": 0}}, "required": ["name"], "additionalProperties": false}
    })).await.ok(201);
    let r = s.post("templates/r/greet/render", &json!({"label": "latest", "parameters": {"name": "Ada", "age": 36}, "session_id": "s1", "agent_id": "a1", "deployment_model": "electron_local"})).await;
    conforms("post", "/api/v1/templates/{name}/render", &r);
    let body = r.ok(200);
    assert_eq!(body["text"], "Hello Ada, 36!");
    assert_eq!((body["version"].as_str(), body["kind"].as_str()), (Some("1.0.0"), Some("text")));
    let id = body["prompt_id"].as_str().unwrap().to_owned();
    let p = s.get(&format!("prompts/{id}")).await;
    conforms("get", "/api/v1/prompts/{id}", &p);
    let p = p.ok(200);
    assert_eq!(
        (p["prompt_text"].as_str(), p["session_id"].as_str(), p["agent_id"].as_str()),
        (Some("Hello Ada, 36!"), Some("s1"), Some("a1"))
    );
    assert_eq!(p["deployment_model"], "electron_local");
    assert_eq!(p["data"], json!({"name": "Ada", "age": 36}));
    // Every violation, with its JSON pointer; the values are not echoed.
    let r = s
        .post(
            "templates/r/greet/render",
            &json!({"label": "latest", "parameters": {"age": "sk-live-SECRETVALUE", "extra": 1}}),
        )
        .await;
    r.problem(422, "invalid_parameters");
    let pointers: Vec<&str> =
        r.body["violations"].as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
    assert!(pointers.contains(&"/") && pointers.contains(&"/age"), "{pointers:?}");
    assert!(!r.body.to_string().contains("SECRETVALUE"));
    s.post("templates/r/greet/render", &json!({"label": "latest", "parameters": [1]}))
        .await
        .problem(422, "invalid_parameters");
    s.post(
        "templates/r/greet/render",
        &json!({"label": "latest", "parameters": {"name": "x"}, "deployment_model": "mainframe"}),
    )
    .await
    .problem(422, "invalid_request");
    s.post("templates/r/greet/render", &json!({"parameters": {"name": "x"}}))
        .await
        .problem(404, "label_not_found");
    s.post("templates/r/greet/render", &json!({"version": 4, "parameters": {"name": "x"}}))
        .await
        .problem(404, "version_not_found");
    // An optional variable printed without a guard, when missing, is named.
    s.post("templates/r/greet/versions", &json!({"template_text": "Hello {{ name }}, aged {{ age }}!"}))
        .await
        .ok(201);
    let r =
        s.post("templates/r/greet/render", &json!({"label": "latest", "parameters": {"name": "Ada"}})).await;
    r.problem(422, "missing_variables");
    assert_eq!(r.body["names"], json!(["age"]));
}

pub async fn chat_templates_fill_placeholders(db: Db) {
    let s = TestServer::start(&db).await;
    let r = s.post("templates", &json!({
        "name": "chat",
        "messages": [
            {"role": "system", "content": "You help {{ team }}."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"}
        ],
        "parameter_schema": {"type": "object", "properties": {"team": {"type": "string"}, "question": {"type": "string"}}, "required": ["team", "question"]},
        "config": {"model": "gpt", "temperature": 0}
    })).await;
    assert_eq!(r.ok(201)["template"]["version"]["kind"], "chat");
    let r = s.post("templates/chat/render", &json!({
        "label": "latest",
        "parameters": {"team": "Billing", "question": "Why?"},
        "placeholders": {"history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    })).await;
    conforms("post", "/api/v1/templates/{name}/render", &r);
    let body = r.ok(200);
    let got: Vec<(String, String)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        got,
        [
            ("system".into(), "You help Billing.".into()),
            ("user".into(), "hi".into()),
            ("assistant".into(), "hello".into()),
            ("user".into(), "Why?".into()),
        ]
    );
    assert_eq!(body["config"], json!({"model": "gpt", "temperature": 0}));
    s.post(
        "templates/chat/render",
        &json!({"label": "latest", "parameters": {"team": "B", "question": "Q"}}),
    )
    .await
    .problem(422, "missing_placeholder");
    s.post("templates/chat/render", &json!({"label": "latest", "parameters": {"team": "B", "question": "Q"}, "placeholders": {"history": "nope"}})).await.problem(422, "invalid_placeholder");
    s.post("templates", &json!({"name": "chat2", "messages": [{"role": "user"}]}))
        .await
        .problem(422, "invalid_template");
    s.post("templates", &json!({"name": "chat3", "messages": []})).await.problem(422, "invalid_template");
}

pub async fn includes_resolve_at_render_time(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("common/sig", "-- {{ agent }}", &["agent"]).await;
    s.put("templates/common/sig/labels/staging", &json!({"version": 1})).await.ok(200);
    let r = s.post("templates", &json!({
        "name": "letter",
        "template_text": "Dear {{ name }},\n{% include \"common/sig|label=staging\" %}",
        "parameter_schema": {"type": "object", "properties": {"name": {"type": "string"}, "agent": {"type": "string"}}, "required": ["name", "agent"]}
    })).await;
    r.ok(201);
    let render = json!({"label": "latest", "parameters": {"name": "Ada", "agent": "Bo"}});
    assert_eq!(s.post("templates/letter/render", &render).await.ok(200)["text"], "Dear Ada,\n-- Bo");
    // Moving the included template's label changes the next render.
    s.post("templates/common/sig/versions", &json!({"template_text": "Regards, {{ agent }}"})).await.ok(201);
    s.put("templates/common/sig/labels/staging", &json!({"version": 2})).await.ok(200);
    assert_eq!(s.post("templates/letter/render", &render).await.ok(200)["text"], "Dear Ada,\nRegards, Bo");
    // A missing target is a clear error; so is a cycle.
    s.post("templates", &json!({"name": "broken", "template_text": "{% include \"nowhere\" %}"}))
        .await
        .ok(201);
    s.post("templates/broken/render", &json!({"label": "latest"})).await.problem(422, "include_failed");
    s.post("templates", &json!({"name": "cyc/a", "template_text": "{% include \"cyc/b|label=latest\" %}"}))
        .await
        .ok(201);
    s.post("templates", &json!({"name": "cyc/b", "template_text": "{% include \"cyc/a|label=latest\" %}"}))
        .await
        .ok(201);
    let r = s.post("templates/cyc/a/render", &json!({"label": "latest"})).await;
    r.problem(422, "include_failed");
    assert!(r.body["detail"].as_str().unwrap().contains("cycle"), "{}", r.body);
    // Six levels of includes are refused.
    for i in 0..7 {
        s.post("templates", &json!({"name": format!("deep/{i}"), "template_text": format!("{{% include \"deep/{}|label=latest\" %}}", i + 1)})).await.ok(201);
    }
    s.post("templates", &json!({"name": "deep/7", "template_text": "bottom"})).await.ok(201);
    let r = s.post("templates/deep/0/render", &json!({"label": "latest"})).await;
    r.problem(422, "include_failed");
    assert!(r.body["detail"].as_str().unwrap().contains("deeper than 5"), "{}", r.body);
    assert_eq!(
        s.post("templates/deep/2/render", &json!({"label": "latest"})).await.ok(200)["text"],
        "bottom"
    );
    // Dynamic includes cannot be saved.
    s.post("templates", &json!({"name": "dyn", "template_text": "{% include name %}", "parameter_schema": {"type": "object", "properties": {"name": {"type": "string"}}}})).await.problem(422, "invalid_reference");
}

pub async fn render_bombs_end_with_a_clear_error(db: Db) {
    let s = TestServer::start(&db).await;
    for (name, text) in [
        ("bomb/loop", "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"),
        ("bomb/output", "{{ 'x' * 5000000 }}"),
        ("bomb/recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
    ] {
        s.post("templates", &json!({"name": name, "template_text": text})).await.ok(201);
        let started = std::time::Instant::now();
        let r = s.post(&format!("templates/{name}/render"), &json!({"label": "latest"})).await;
        r.problem(422, "render_limit_exceeded");
        // Not a timing assertion on speed: only that it ended at all.
        let _ = started.elapsed();
    }
}

pub async fn outcomes_and_metrics(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("m", "Hi {{ n }}", &["n"]).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = s
            .post("templates/m/render", &json!({"label": "latest", "parameters": {"n": i.to_string()}}))
            .await;
        ids.push(r.ok(200)["prompt_id"].as_str().unwrap().to_owned());
    }
    s.post("templates/m/versions", &json!({"template_text": "Hey {{ n }}"})).await.ok(201);
    let r = s.post("templates/m/render", &json!({"label": "latest", "parameters": {"n": "v2"}})).await;
    ids.push(r.ok(200)["prompt_id"].as_str().unwrap().to_owned());
    let r = s.post(&format!("prompts/{}/outcome", ids[0]), &json!({"success": true, "detail": "good"})).await;
    assert_eq!(r.status, 204);
    s.post(&format!("prompts/{}/outcome", ids[1]), &json!({"success": false})).await;
    s.post(&format!("prompts/{}/outcome", ids[4]), &json!({"success": true})).await;
    s.post(&format!("prompts/{}/outcome", ids[0]), &json!({"success": false}))
        .await
        .problem(409, "outcome_already_reported");
    s.post(&format!("prompts/{}/outcome", uuid_v4()), &json!({"success": true}))
        .await
        .problem(404, "prompt_not_found");
    s.post("prompts/not-a-uuid/outcome", &json!({"success": true})).await.problem(400, "invalid_path");
    let r = s.get("templates/m/metrics").await;
    conforms("get", "/api/v1/templates/{name}/metrics", &r);
    let m = r.ok(200);
    assert_eq!(m["total"]["times_used"], 5);
    assert_eq!(m["total"]["successes"], 2);
    assert_eq!(m["total"]["failures"], 1);
    assert!((m["total"]["success_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!(m["total"]["last_used"].is_string());
    let per: Vec<(u64, u64)> = m["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version_seq"].as_u64().unwrap(), v["times_used"].as_u64().unwrap()))
        .collect();
    assert_eq!(per, [(2, 1), (1, 4)]);
    let p = s.get(&format!("prompts/{}", ids[0])).await;
    assert_eq!(p.ok(200)["outcome"]["success"], true);
    assert_eq!(p.body["outcome"]["detail"], "good");
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn graceful_shutdown_loses_no_usage_record(db: Db) {
    // A long flush interval: records sit in the queue until shutdown.
    let mut config = settings(&db);
    config.usage.flush_interval_ms = 60_000;
    config.usage.batch_size = 100_000;
    let mut s = TestServer::start_with(config.clone()).await;
    s.template("sd", "Hi {{ n }}", &["n"]).await;
    let renders: Vec<_> = (0..150)
        .map(|i| {
            let s = &s;
            async move {
                s.post("templates/sd/render", &json!({"label": "latest", "parameters": {"n": i.to_string()}}))
                    .await
            }
        })
        .collect();
    for r in futures::future::join_all(renders).await {
        r.ok(200);
    }
    s.stop().await;
    let s = TestServer::start(&db).await;
    let m = s.get("templates/sd/metrics").await;
    assert_eq!(m.ok(200)["total"]["times_used"], 150);
}

pub async fn concurrent_renders_are_all_recorded(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("cc", "Hi {{ n }}", &["n"]).await;
    let renders: Vec<_> = (0..200)
        .map(|i| {
            let s = &s;
            async move {
                s.post("templates/cc/render", &json!({"label": "latest", "parameters": {"n": i.to_string()}}))
                    .await
            }
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for r in futures::future::join_all(renders).await {
        ids.insert(r.ok(200)["prompt_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 200, "every rendering has its own id");
    let m = s.get("templates/cc/metrics").await;
    assert_eq!(m.ok(200)["total"]["times_used"], 200);
}
