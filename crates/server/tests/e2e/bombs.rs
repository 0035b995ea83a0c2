//! Rendering bombs over HTTP: each ends with a problem document and a
//! stable code, never a 500, a hang or a dropped connection.

use serde_json::{Value, json};

use crate::support::{Db, TestServer, settings};

/// Creates a template without parameters and renders its latest version.
async fn render_new(s: &TestServer, name: &str, text: &str) -> crate::support::Resp {
    s.post("templates", &json!({"name": name, "template_text": text})).await.ok(201);
    s.post(&format!("templates/{name}/render"), &json!({"label": "latest"})).await
}

pub async fn recursion_bombs_are_refused(db: Db) {
    let s = TestServer::start(&db).await;
    // A macro calling itself forever, or fanning out within the depth limit.
    let r = render_new(&s, "bomb/macro", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").await;
    r.problem(422, "render_limit_exceeded");
    assert!(r.body["detail"].as_str().unwrap().contains("nested deeper"), "{}", r.body);
    let calls = "{{ f(n + 1) }}".repeat(8);
    let fan = format!("{{% macro f(n) %}}{{% if n < 7 %}}{calls}{{% endif %}}{{% endmacro %}}{{{{ f(0) }}}}");
    let r = render_new(&s, "bomb/fan", &fan).await;
    r.problem(422, "render_limit_exceeded");
    assert!(r.body["detail"].as_str().unwrap().contains("fuel"), "{}", r.body);
    // A recursive loop that never ends.
    s.post(
        "templates",
        &json!({
            "name": "bomb/loop-recursive",
            "template_text": "{% for x in items recursive %}{{ loop(items) }}{% endfor %}",
            "parameter_schema": {"type": "object", "properties": {"items": {"type": "array"}}},
        }),
    )
    .await
    .ok(201);
    s.post("templates/bomb/loop-recursive/render", &json!({"label": "latest", "parameters": {"items": [1]}}))
        .await
        .problem(422, "render_limit_exceeded");
    // Includes: a chain deeper than the include limit, and a cycle.
    s.template("inc/6", "end", &[]).await;
    for i in (0..6).rev() {
        let text = format!("{{% include \"inc/{}|label=latest\" %}}", i + 1);
        s.template(&format!("inc/{i}"), &text, &[]).await;
    }
    let r = s.post("templates/inc/0/render", &json!({"label": "latest"})).await;
    r.problem(422, "include_failed");
    assert!(r.body["detail"].as_str().unwrap().contains("deeper"), "{}", r.body);
    s.template("cyc/a", "a", &[]).await;
    s.template("cyc/b", "{% include \"cyc/a|label=latest\" %}", &[]).await;
    s.post("templates/cyc/a/versions", &json!({"template_text": "{% include \"cyc/b|label=latest\" %}"}))
        .await
        .ok(201);
    s.post("templates/cyc/a/render", &json!({"label": "latest"})).await.problem(422, "include_failed");
}

pub async fn loop_bombs_are_refused(db: Db) {
    let s = TestServer::start(&db).await;
    for (name, text) in [
        ("loop/billion", "{% for i in range(1000000000) %}x{% endfor %}"),
        ("loop/nested", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
        ("loop/repeated", "{% set l = [1] %}{% for x in l * 100000000 %}{% endfor %}"),
        ("loop/too-long", "{% set l = [1] %}{% for x in l * 1000000000 %}{% endfor %}"),
        ("loop/contains", "{% set l = [1] %}{{ 0 in l * 100000000 }}"),
        ("loop/sort", "{{ range(100000) | reverse | sort | join }}"),
    ] {
        render_new(&s, name, text).await.problem(422, "render_limit_exceeded");
    }
    // A repeated list literal would be folded while compiling, outside the
    // limits: refused when saved.
    let r = s
        .post("templates", &json!({"name": "loop/folded", "template_text": "{{ 0 in [1] * 100000000 }}"}))
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("list literal"), "{}", r.body);
}

pub async fn exponential_output_is_refused(db: Db) {
    let s = TestServer::start(&db).await;
    let unrolled = format!("{{% set s = 'x' %}}{}done", "{% set s = s ~ s %}".repeat(64));
    let set_block =
        format!("{{% set s %}}x{{% endset %}}{}done", "{% set s %}{{ s }}{{ s }}{% endset %}".repeat(64));
    for (name, text) in [
        ("exp/multiply", "{{ 'x' * 1000000000 }}".to_owned()),
        ("exp/multiply-unused", "{% set s = 'x' * 4611686018427387904 %}done".to_owned()),
        ("exp/concat-unused", unrolled),
        ("exp/set-block", set_block),
        (
            "exp/namespace",
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}done"
                .to_owned(),
        ),
        ("exp/replace", "{{ ('x' * 10000) | replace('x', 'y' * 10000) }}".to_owned()),
        ("exp/format", "{{ '%1000000000s' | format('x') }}".to_owned()),
        ("exp/output", "{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}".to_owned()),
    ] {
        let r = render_new(&s, name, &text).await;
        r.problem(422, "render_limit_exceeded");
    }
    // A chat whose messages each stay within the fuel, but not together.
    let busy = json!({"role": "user", "content": "{% for i in range(20000) %}{% endfor %}"});
    let messages: Vec<Value> = (0..100).map(|_| busy.clone()).collect();
    s.post("templates", &json!({"name": "exp/chat-one", "messages": [busy]})).await.ok(201);
    s.post("templates/exp/chat-one/render", &json!({"label": "latest"})).await.ok(200);
    s.post("templates", &json!({"name": "exp/chat", "messages": messages})).await.ok(201);
    s.post("templates/exp/chat/render", &json!({"label": "latest"}))
        .await
        .problem(422, "render_limit_exceeded");
}

pub async fn huge_inputs_are_refused(db: Db) {
    let mut config = settings(&db);
    config.body_limit_bytes = 1024 * 1024;
    let mut s = TestServer::start_with(config).await;
    s.post(
        "templates",
        &json!({
            "name": "in/twice",
            "template_text": "{{ p }}{{ p }}",
            "parameter_schema": {"type": "object", "properties": {"p": {"type": "string"}}},
        }),
    )
    .await
    .ok(201);
    let big = "x".repeat(600 * 1024);
    let r = s.post("templates/in/twice/render", &json!({"label": "latest", "parameters": {"p": big}})).await;
    r.problem(422, "render_limit_exceeded");
    assert!(r.body["detail"].as_str().unwrap().contains("output"), "{}", r.body);
    // A large array looped over twice.
    s.post(
        "templates",
        &json!({
            "name": "in/square",
            "template_text": "{% for a in items %}{% for b in items %}{% endfor %}{% endfor %}",
            "parameter_schema": {"type": "object", "properties": {"items": {"type": "array"}}},
        }),
    )
    .await
    .ok(201);
    let items: Vec<u32> = (0..50_000).collect();
    s.post("templates/in/square/render", &json!({"label": "latest", "parameters": {"items": items}}))
        .await
        .problem(422, "render_limit_exceeded");
    // Parameters nested deeper than the JSON parser accepts.
    let deep = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let body = format!(r#"{{"label": "latest", "parameters": {{"items": {deep}}}}}"#);
    let r = s
        .http
        .post(format!("{}/api/v1/templates/in/square/render", s.base))
        .bearer_auth(s.token.as_deref().unwrap())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // A body over the limit: refused before it is read in full.
    let over = "x".repeat(1024 * 1024 + 1);
    s.post("templates/in/twice/render", &json!({"label": "latest", "parameters": {"p": over}}))
        .await
        .problem(413, "payload_too_large");
    // A template over the template limit (under the body limit), and a
    // deeply nested expression.
    s.post("templates", &json!({"name": "in/giant", "template_text": "{{ x }}".repeat(40_000)}))
        .await
        .problem(422, "template_too_large");
    let nested = format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
    let r = s.post("templates", &json!({"name": "in/nested", "template_text": nested})).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    assert!(r.body["code"].is_string(), "{}", r.body);
    s.stop().await;
}

/// A list doubled ten times is 10^8 items long but lazy, so it costs no
/// fuel; serializing it builds one string, outside fuel and before the
/// output limit applies. The worker's memory cap ends it, and the next
/// render gets a new worker.
pub async fn renders_past_the_memory_cap_are_stopped(db: Db) {
    let mut config = settings(&db);
    config.render.memory_limit_mb = 128;
    config.render.timeout_ms = 60_000;
    let s = TestServer::start_with(config).await;
    s.template("ok/after", "still {{ 1 + 1 }}", &[]).await;
    let grow = "{% set ns = namespace(l=range(100000)|list) %}{% for i in range(10) %}{% set ns.l = ns.l + ns.l %}{% endfor %}";
    for (name, tail) in [("mem/tojson", "{{ ns.l | tojson | length }}")] {
        let r = render_new(&s, name, &format!("{grow}{tail}")).await;
        r.problem(422, "render_limit_exceeded");
        assert!(r.body["detail"].as_str().unwrap().contains("more than 128 MiB"), "{}", r.body);
        let ok = s.post("templates/ok/after/render", &json!({"label": "latest"})).await;
        assert_eq!(ok.ok(200)["text"], "still 2", "{}", ok.body);
    }
    // Stopped renders are security events: audited as failed executes.
    let ev = s.get("/api/v1/audit/events?action=template.execute&limit=100").await;
    let items = ev.ok(200)["items"].as_array().unwrap().clone();
    let stopped = items.iter().find(|e| e["resource"] == "mem/tojson" && e["outcome"] == "failed");
    assert!(
        stopped.expect("audited")["reason"].as_str().unwrap().contains("more than 128 MiB"),
        "{items:#?}"
    );
    // The same list, only measured, stays lazy and within every limit.
    let r = render_new(&s, "mem/length", &format!("{grow}{{{{ ns.l | length }}}}")).await;
    assert_eq!(r.ok(200)["text"], "102400000", "{}", r.body);
}

/// Doubling a list 33 times or more makes the engine copy it out, outside
/// fuel: the worker is stopped at the memory cap or the time limit,
/// whichever comes first (a debug build copies slowly).
pub async fn list_doubling_is_stopped(db: Db) {
    let mut config = settings(&db);
    config.render.memory_limit_mb = 128;
    config.render.timeout_ms = 1_500;
    let s = TestServer::start_with(config).await;
    let unrolled = format!("{{% set l = [1] %}}{}{{{{ l | length }}}}", "{% set l = l + l %}".repeat(40));
    let looped = "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}";
    s.template("ok/after", "still {{ 1 + 1 }}", &[]).await;
    for (name, text) in [("double/unrolled", unrolled.as_str()), ("double/loop", looped)] {
        let r = render_new(&s, name, text).await;
        r.problem(422, "render_limit_exceeded");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains("more than 128 MiB") || detail.contains("longer than 1500 ms"), "{}", r.body);
        let ok = s.post("templates/ok/after/render", &json!({"label": "latest"})).await;
        assert_eq!(ok.ok(200)["text"], "still 2", "{}", ok.body);
    }
    // Fewer doublings stay lazy and within every limit.
    let small = format!("{{% set l = [1] %}}{}{{{{ l | length }}}}", "{% set l = l + l %}".repeat(20));
    let r = render_new(&s, "double/small", &small).await;
    assert_eq!(r.ok(200)["text"], "1048576", "{}", r.body);
}

/// A render that runs past the time limit without growing (fuel raised so
/// the engine does not stop it first) is killed; the next one works.
pub async fn renders_past_the_time_limit_are_killed(db: Db) {
    let mut config = settings(&db);
    config.render.fuel = 1_000_000_000_000;
    config.render.timeout_ms = 300;
    let s = TestServer::start_with(config).await;
    let spin = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let r = render_new(&s, "slow/spin", spin).await;
    r.problem(422, "render_limit_exceeded");
    assert!(r.body["detail"].as_str().unwrap().contains("longer than 300 ms"), "{}", r.body);
    s.template("ok/fast", "fast", &[]).await;
    let ok = s.post("templates/ok/fast/render", &json!({"label": "latest"})).await;
    assert_eq!(ok.ok(200)["text"], "fast", "{}", ok.body);
}

/// One worker, busy, then a runaway and renders queued behind it: they go
/// to the worker in one batch, yet only the runaway fails; the renders
/// behind it are answered by the next worker. (The pool is driven
/// directly, so the order of the queue is known.)
pub async fn renders_behind_a_runaway_are_answered(_db: Db) {
    use promptvault_core::content::TemplateBody;
    use promptvault_core::render::RenderLimits;
    use promptvault_core::schema::ParameterSchema;
    use promptvault_server::isolation::{Engine, Pool, Prepared, WorkerConfig};
    use std::sync::Arc;

    let pool = Arc::new(Pool::new(WorkerConfig {
        program: std::env::current_exe().unwrap(),
        args: vec!["render-worker".into()],
        workers: 1,
        memory_limit_mb: 256,
        timeout: std::time::Duration::from_secs(3),
    }));
    let engine = Engine::Isolated(pool.clone());
    let limits = RenderLimits { fuel: 1_000_000_000_000, ..RenderLimits::default() };
    let prepare = |text: &str| -> Arc<Prepared> {
        let body = TemplateBody::Text(text.into());
        Arc::new(engine.prepare("t", &body, &ParameterSchema::default(), Vec::new(), limits).unwrap())
    };
    let blocker = prepare("{% for i in range(100000) %}{% for j in range(3) %}{% endfor %}{% endfor %}busy");
    let runaway = prepare("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
    let echo = prepare("echo {{ n }}");
    let no_params = || (serde_json::Value::Object(serde_json::Map::new()), serde_json::Map::new());
    // The worker is busy with the blocker while the rest is queued, in order.
    let (p, h) = no_params();
    let busy = pool.render(blocker, p, h);
    let (p, h) = no_params();
    let stuck = pool.render(runaway, p, h);
    let behind = futures::future::join_all(
        (0..12).map(|i| pool.render(echo.clone(), json!({"n": i}), serde_json::Map::new())),
    );
    let (busy, stuck, behind) = tokio::join!(busy, stuck, behind);
    assert_eq!(busy.expect("the blocker renders").body.to_text(), "busy");
    let stuck = stuck.expect_err("the runaway is stopped");
    assert!(stuck.to_string().contains("longer than 3000 ms"), "{stuck}");
    for (i, r) in behind.into_iter().enumerate() {
        assert_eq!(r.expect("a render behind the runaway").body.to_text(), format!("echo {i}"));
    }
}
