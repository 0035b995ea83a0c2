use serde_json::{Value, json};

use crate::support::{Db, TestServer, conforms};

fn schema(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

pub async fn semantic_versions_are_computed(db: Db) {
    let s = TestServer::start(&db).await;
    s.post("templates", &json!({"name": "sv", "template_text": "Greet {{ name }} warmly.", "parameter_schema": schema(json!({"name": {"type": "string"}}), &["name"])}))
        .await
        .ok(201);
    let step = |text: &str, schema: Option<Value>| {
        let mut b = json!({"template_text": text});
        if let Some(sc) = schema {
            b["parameter_schema"] = sc;
        }
        b
    };
    // Whitespace only: patch.
    let r = s.post("templates/sv/versions", &step("Greet  {{ name }} warmly.\n", None)).await;
    conforms("post", "/api/v1/templates/{name}/versions", &r);
    assert_eq!(
        (r.ok(201)["version"]["version"].as_str(), r.body["version"]["bump"].as_str()),
        (Some("1.0.1"), Some("patch"))
    );
    // A typo fix: patch.
    let r = s.post("templates/sv/versions", &step("Greet  {{ name }} warmlly.\n", None)).await;
    assert_eq!(r.ok(201)["version"]["version"], "1.0.2");
    // Wording: minor.
    let r = s.post("templates/sv/versions", &step("Welcome {{ name }} to the shop.", None)).await;
    assert_eq!(r.ok(201)["version"]["version"], "1.1.0");
    // New optional parameter: minor, with the change listed.
    let opt = schema(json!({"name": {"type": "string"}, "shop": {"type": "string"}}), &["name"]);
    let r =
        s.post("templates/sv/versions", &step("Welcome {{ name }} to {{ shop }}.", Some(opt.clone()))).await;
    assert_eq!(r.ok(201)["version"]["version"], "1.2.0");
    let summaries: Vec<&str> =
        r.body["changes"].as_array().unwrap().iter().map(|c| c["summary"].as_str().unwrap()).collect();
    assert!(summaries.contains(&"parameter `shop` added (optional, string)"), "{summaries:?}");
    // The parameter becomes required: major.
    let req = schema(json!({"name": {"type": "string"}, "shop": {"type": "string"}}), &["name", "shop"]);
    let r = s.post("templates/sv/versions", &json!({"parameter_schema": req})).await;
    assert_eq!(r.ok(201)["version"]["version"], "2.0.0");
    // A larger bump may be asked for; a smaller one is refused with the reason.
    let r = s
        .post(
            "templates/sv/versions",
            &json!({"template_text": "Welcome, {{ name }}, to {{ shop }}.", "bump": "major"}),
        )
        .await;
    assert_eq!(r.ok(201)["version"]["version"], "3.0.0");
    let narrowed = schema(
        json!({"name": {"type": "string", "maxLength": 5}, "shop": {"type": "string"}}),
        &["name", "shop"],
    );
    let r = s.post("templates/sv/versions", &json!({"parameter_schema": narrowed, "bump": "patch"})).await;
    r.problem(422, "bump_too_small");
    assert!(r.body["detail"].as_str().unwrap().contains("maxLength"), "{}", r.body);
    s.post("templates/sv/versions", &json!({"bump": "huge"})).await.problem(422, "invalid_request");
    // Undeclared variables are refused with their names; unused ones warn.
    let r = s.post("templates/sv/versions", &json!({"template_text": "{{ name }} {{ mood }}"})).await;
    r.problem(422, "undeclared_variables");
    assert_eq!(r.body["names"]["undeclared"], json!(["mood"]));
    let r = s.post("templates/sv/versions", &json!({"template_text": "Just {{ name }}."})).await;
    let warnings = r.ok(201)["warnings"].as_array().unwrap().clone();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("`shop` is declared but")), "{warnings:?}");
    let list = s.get("templates/sv/versions").await;
    conforms("get", "/api/v1/templates/{name}/versions", &list);
    let versions: Vec<&str> =
        list.ok(200)["items"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["3.1.0", "3.0.0", "2.0.0", "1.2.0", "1.1.0", "1.0.2", "1.0.1", "1.0.0"]);
}

pub async fn stale_bases_and_unchanged_content_are_refused(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("base", "one", &[]).await;
    s.post("templates/base/versions", &json!({"template_text": "two two", "base_version": 1})).await.ok(201);
    let r = s.post("templates/base/versions", &json!({"template_text": "three", "base_version": 1})).await;
    r.problem(409, "stale_base");
    s.post("templates/base/versions", &json!({"template_text": "two two"}))
        .await
        .problem(422, "version_unchanged");
    s.post("templates/base/versions", &json!({})).await.problem(422, "version_unchanged");
    let r = s.get("templates/base/versions").await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 2, "refused writes added nothing");
}

pub async fn drafts_are_edited_in_place_with_if_match(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("draft", "v1 text", &[]).await;
    s.post("templates/draft/versions", &json!({"template_text": "v2 text here"})).await.ok(201);
    let v2 = s.get("templates/draft/versions/2").await;
    let etag = v2.etag();
    assert_eq!(etag, "\"ver-1\"");
    s.call(reqwest::Method::PATCH, "templates/draft/versions/2", Some(&json!({"template_text": "x"})), &[])
        .await
        .problem(428, "precondition_required");
    let r = s
        .patch(
            "templates/draft/versions/2",
            &json!({"template_text": "v1  text\n", "change_description": "fix"}),
            &etag,
        )
        .await;
    conforms("patch", "/api/v1/templates/{name}/versions/{version}", &r);
    assert_eq!(r.ok(200)["version"]["seq"], 2);
    assert_eq!(r.body["version"]["version"], "1.0.1", "recomputed against version 1: whitespace only");
    s.patch("templates/draft/versions/2", &json!({"template_text": "lost"}), &etag)
        .await
        .problem(412, "precondition_failed");
    let v1 = s.get("templates/draft/versions/1").await;
    s.patch("templates/draft/versions/1", &json!({"template_text": "late"}), &v1.etag())
        .await
        .problem(409, "version_superseded");
    let r = s.get("templates/draft/versions/2").await;
    assert_eq!(r.ok(200)["template_text"], "v1  text\n");
    // Deleting: the draft must not be labelled.
    s.put("templates/draft/labels/staging", &json!({"version": 2})).await.ok(200);
    s.delete("templates/draft/versions/2", &r.etag()).await.problem(409, "version_labelled");
    s.delete("templates/draft/labels/staging", "").await;
    assert_eq!(s.delete("templates/draft/versions/2", &r.etag()).await.status, 204);
    s.delete("templates/draft/versions/1", &v1.etag()).await.problem(409, "last_version");
    let r = s.post("templates/draft/versions", &json!({"template_text": "again"})).await;
    assert_eq!(r.ok(201)["version"]["seq"], 3, "numbers are never reused");
}

pub async fn labels_move_with_history_and_optimistic_concurrency(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("lab", "one", &[]).await;
    s.post("templates/lab/versions", &json!({"template_text": "two words"})).await.ok(201);
    let r = s.put("templates/lab/labels/staging", &json!({"version": 1})).await;
    conforms("put", "/api/v1/templates/{name}/labels/{label}", &r);
    assert_eq!(r.ok(200)["version_seq"], 1);
    let tag = r.etag();
    let r = s
        .call(
            reqwest::Method::PUT,
            "templates/lab/labels/staging",
            Some(&json!({"version": "1.1.0"})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(r.ok(200)["version_seq"], 2);
    s.call(
        reqwest::Method::PUT,
        "templates/lab/labels/staging",
        Some(&json!({"version": 1})),
        &[("if-match", &tag)],
    )
    .await
    .problem(412, "precondition_failed");
    s.put("templates/lab/labels/latest", &json!({"version": 1})).await.problem(422, "label_reserved");
    s.delete("templates/lab/labels/latest", "").await.problem(422, "label_reserved");
    s.put("templates/lab/labels/staging", &json!({"version": 9})).await.problem(404, "version_not_found");
    s.put("templates/lab/labels/Prod!", &json!({"version": 1})).await.problem(400, "invalid_name");
    s.put("templates/lab/labels/staging", &json!({"version": "one"})).await.problem(422, "invalid_version");
    let list = s.get("templates/lab/labels").await;
    conforms("get", "/api/v1/templates/{name}/labels", &list);
    let names: Vec<&str> =
        list.ok(200)["items"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["latest", "staging"]);
    let detail = s.get("templates/lab/labels/staging").await;
    conforms("get", "/api/v1/templates/{name}/labels/{label}", &detail);
    let moves: Vec<(Value, Value)> = detail.ok(200)["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["from_version"].clone(), m["to_version"].clone()))
        .collect();
    assert_eq!(moves, [(json!(1), json!(2)), (Value::Null, json!(1))]);
    assert_eq!(s.delete("templates/lab/labels/staging", "").await.status, 204);
    s.delete("templates/lab/labels/staging", "").await.problem(404, "label_not_found");
}

pub async fn rollback_moves_a_label_back_or_restores_content(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("rb", "first text", &[]).await;
    s.post("templates/rb/versions", &json!({"template_text": "second text"})).await.ok(201);
    s.post("templates/rb/rollback", &json!({"strategy": "move_label", "label": "staging"}))
        .await
        .problem(404, "label_not_found");
    s.put("templates/rb/labels/staging", &json!({"version": 1})).await.ok(200);
    s.post("templates/rb/rollback", &json!({"strategy": "move_label", "label": "staging"}))
        .await
        .problem(409, "no_previous_version");
    s.put("templates/rb/labels/staging", &json!({"version": 2})).await.ok(200);
    let r = s.post("templates/rb/rollback", &json!({"strategy": "move_label", "label": "staging"})).await;
    conforms("post", "/api/v1/templates/{name}/rollback", &r);
    assert_eq!(r.ok(200)["label"]["version_seq"], 1, "back to where it pointed before");
    let r = s.post("templates/rb/rollback", &json!({"strategy": "new_version", "from_version": 1})).await;
    let v = &r.ok(200)["version"]["version"];
    assert_eq!(
        (v["seq"].clone(), v["restored_from"].clone(), v["template_text"].clone()),
        (json!(3), json!(1), json!("first text"))
    );
    s.post("templates/rb/rollback", &json!({"strategy": "sideways"})).await.problem(422, "invalid_request");
}

pub async fn diffs_show_text_and_schema_changes(db: Db) {
    let s = TestServer::start(&db).await;
    s.template("df", "Hello {{ name }}.\nBye.\n", &["name"]).await;
    let sc = schema(json!({"name": {"type": "string"}, "mood": {"type": "string"}}), &["name"]);
    s.post("templates/df/versions", &json!({"template_text": "Hello {{ name }}!\nBye.\n", "parameter_schema": sc, "config": {"temperature": 0.2}})).await.ok(201);
    let r = s.get("templates/df/diff").await;
    conforms("get", "/api/v1/templates/{name}/diff", &r);
    let d = r.ok(200);
    assert!(d["text_diff"].as_str().unwrap().contains("-Hello {{ name }}.\n+Hello {{ name }}!\n"), "{d:#}");
    assert!(d["config_diff"].as_str().unwrap().contains("+  \"temperature\": 0.2"));
    assert_eq!(d["required_bump"], "minor");
    assert_eq!((d["from"]["seq"].clone(), d["to"]["seq"].clone()), (json!(1), json!(2)));
    let r = s.get("templates/df/diff?from=2&to=1").await;
    assert_eq!(r.ok(200)["required_bump"], "major", "removing a parameter is incompatible");
    s.get("templates/df/diff?from=9").await.problem(404, "version_not_found");
    s.get("templates/df/diff?from=x.y").await.problem(400, "invalid_version");
}
