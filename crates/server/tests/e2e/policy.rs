//! Every route of the API × every built-in role, checked against the
//! policy. The routes come from the served OpenAPI document, so a new route
//! that is not in the table below fails this test until someone decides
//! what it needs.

use std::sync::Arc;

use promptvault_core::authz::{Action, Credential, Origin, Principal, Resource, Target, builtin, decide};
use promptvault_core::{ApiKeyId, UserId};
use promptvault_testkit::TestDb;
use serde_json::{Value, json};

use super::governance::key_with_role;
use super::support::TestServer;

/// A user id that does not exist: writes to it are refused (404) once
/// authorized, so allowed calls change nothing.
const NOBODY: &str = "01900000-0000-7000-8000-000000000000";

/// What an operation needs.
enum Need {
    /// No key at all.
    Public,
    /// Any valid key (the caller reads itself).
    AnyKey,
    /// No key: it is how one signs in (wrong credentials are 401).
    SignIn,
    /// A web session; any other credential is told there is none to end.
    Session,
    Permission((Action, Resource)),
}

fn needs(operation: &str) -> Option<Need> {
    use Action::*;
    use Resource::*;
    Some(Need::Permission(match operation {
        "healthz" | "readyz" | "metrics" | "signing_key" => return Some(Need::Public),
        "encryption_status" => (Read, Encryption),
        "rotate_data_key" => (Update, Encryption),
        "whoami" | "explain_authz" => return Some(Need::AnyKey),
        "login" => return Some(Need::SignIn),
        "logout" | "reauthenticate" => return Some(Need::Session),
        "set_password" => (Update, User),
        "list_audit_events" | "export_audit_events" | "verify_audit" => (Read, Audit),
        "purge_audit" => (Delete, Audit),
        "list_prompt_types" | "get_prompt_type" => (Read, Type),
        "create_prompt_type" => (Create, Type),
        "update_prompt_type" => (Update, Type),
        "delete_prompt_type" => (Delete, Type),
        "get_prompt" => (Read, Prompt),
        "report_outcome" => (Update, Prompt),
        "template_metrics" => (Read, Prompt),
        "list_templates" | "get_template" | "diff_versions" | "list_versions" | "get_version" => {
            (Read, Template)
        }
        "create_template" => (Create, Template),
        "update_template" | "create_version" | "update_version" | "delete_version" | "rollback" => {
            (Update, Template)
        }
        "delete_template" => (Delete, Template),
        "render" => (Execute, Template),
        "list_labels" | "get_label" => (Read, Label),
        "list_users" | "get_user" => (Read, User),
        "create_user" => (Create, User),
        "update_user" | "set_user_roles" => (Update, User),
        "delete_user" => (Delete, User),
        "list_keys" => (Read, Key),
        "create_key" => (Create, Key),
        "revoke_key" => (Delete, Key),
        "list_roles" | "get_role" => (Read, Role),
        "create_role" => (Create, Role),
        "update_role" => (Update, Role),
        "delete_role" => (Delete, Role),
        "submit_version" => (Update, Template),
        "approve_version" | "reject_version" => (Approve, Template),
        "deprecate_version" | "archive_version" | "restore_version" => (Publish, Template),
        "list_decisions" | "list_reviews" => (Read, Template),
        "list_workflows" | "get_workflow" => (Read, Workflow),
        "create_workflow" => (Create, Workflow),
        "update_workflow" => (Update, Workflow),
        "delete_workflow" => (Delete, Workflow),
        "list_checks" | "get_check" => (Read, Check),
        "create_check" => (Create, Check),
        "update_check" => (Update, Check),
        "delete_check" => (Delete, Check),
        "set_label" => (Update, Label),
        "delete_label" => (Delete, Label),
        _ => return None,
    }))
}

/// A request for the operation that, once authorized, is refused for
/// another reason or changes nothing that matters (stale ETags, names that
/// exist, unchanged content), so the order of calls does not matter.
fn request(
    operation: &str,
    path: &str,
    prompt_id: &str,
) -> (Option<Value>, Vec<(&'static str, String)>, String) {
    let path = path
        .replace("{name}", "rr%2Ft")
        .replace("{label}", "staging")
        .replace("{version}", "1")
        .replace("{key}", "general")
        .replace("{id}", if path.starts_with("/api/v1/prompts/") { prompt_id } else { NOBODY });
    let stale = |kind: &str| vec![("if-match", format!("\"{kind}-999\""))];
    let text = json!({"template_text": "Hello {{ name }}", "parameter_schema":
        {"type": "object", "properties": {"name": {"type": "string"}}}});
    let (body, headers) = match operation {
        "purge_audit" => (Some(json!({"older_than_days": 3650})), vec![]),
        "create_prompt_type" => (Some(json!({"key": "general", "name": "General again"})), vec![]),
        "update_prompt_type" => (Some(json!({"name": "Renamed"})), stale("type")),
        "delete_prompt_type" => (None, stale("type")),
        "report_outcome" => (Some(json!({"success": true})), vec![]),
        "create_template" => (Some(json!({"name": "rr/t", "template_text": "x"})), vec![]),
        "update_template" => (Some(json!({"description": "changed"})), stale("tpl")),
        "delete_template" => (None, stale("tpl")),
        // Built on a version that does not exist: refused with 409 once allowed.
        "create_version" => {
            let mut t = text.clone();
            t["base_version"] = json!(99);
            (Some(t), vec![])
        }
        "update_version" => (Some(text), stale("ver")),
        "delete_version" => (None, stale("ver")),
        "rollback" => (Some(json!({"strategy": "new_version", "from_version": 1})), vec![]),
        "render" => (Some(json!({"version": 1, "parameters": {"name": "Ada"}})), vec![]),
        "set_label" => (Some(json!({"version": 1})), stale("label")),
        "delete_label" => (None, stale("label")),
        "create_user" => (Some(json!({"email": "policy@example.com"})), vec![]),
        "update_user" => (Some(json!({"first_name": "Policy"})), vec![]),
        "set_user_roles" => (Some(json!({"roles": ["viewer"]})), vec![]),
        "create_key" => (Some(json!({"name": "policy"})), vec![]),
        "create_role" => (Some(json!({"name": "policy-role", "permissions": ["template:read"]})), vec![]),
        "update_role" => (Some(json!({"permissions": []})), stale("role")),
        "explain_authz" => (None, vec![]),
        "login" => (Some(json!({"email": "nobody@example.com", "password": "not the password"})), vec![]),
        "set_password" => (Some(json!({"password": "a long enough passphrase"})), vec![]),
        "reauthenticate" => (Some(json!({"password": "a long enough passphrase"})), vec![]),
        // Workflows and checks: refused by validation (422) or missing (404)
        // once allowed, so nothing changes.
        "create_workflow" => {
            (Some(json!({"name": "policy", "classifications": ["internal"], "steps": []})), vec![])
        }
        "update_workflow" => (Some(json!({"classifications": ["internal"], "steps": []})), stale("wf")),
        "delete_workflow" => (None, stale("wf")),
        "create_check" | "update_check" => (
            Some(json!({"key": "general", "name": "Policy", "severity": "error",
                "rule": {"kind": "max_length", "chars": 0}})),
            if operation == "update_check" { stale("chk") } else { vec![] },
        ),
        "delete_check" => (None, stale("chk")),
        // Stale If-Match: refused with 412 once allowed.
        "submit_version" | "archive_version" | "restore_version" => (None, stale("ver")),
        "deprecate_version" => (Some(json!({"reason": "policy"})), stale("ver")),
        // Version 1 is a draft, not in review: refused with 409 once allowed.
        "approve_version" => (None, vec![]),
        "reject_version" => (Some(json!({"comment": "no"})), vec![]),
        _ => (None, vec![]),
    };
    let path =
        if operation == "explain_authz" { format!("{path}?action=read&resource=template") } else { path };
    (body, headers, path)
}

fn principal(role: &str) -> Principal {
    Principal {
        user_id: UserId::new(),
        display: role.into(),
        credential: Credential::ApiKey(ApiKeyId::new()),
        roles: vec![builtin::role_named(role).expect("built-in role")],
        deployment: None,
        origin: Origin::default(),
        authenticated_at: None,
    }
}

pub async fn every_route_and_role_follow_the_policy(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    s.template("rr/t", "Hello {{ name }}", &["name"]).await;
    // Released, so every reader sees it (drafts are for contributors).
    super::governance::approve(&db, &s, "rr/t", 1).await;
    s.put("/api/v1/templates/rr%2Ft/labels/staging", &json!({"version": 1})).await.ok(200);
    let rendered = s
        .post("/api/v1/templates/rr%2Ft/render", &json!({"version": 1, "parameters": {"name": "Ada"}}))
        .await;
    let prompt_id = rendered.ok(200)["prompt_id"].as_str().unwrap().to_owned();

    let mut keys = Vec::new();
    for role in builtin::NAMES {
        keys.push((role, key_with_role(&db, &s, role).await));
    }
    let spec = s.get("/api/v1/openapi.json").await;
    let paths = spec.ok(200)["paths"].as_object().unwrap().clone();
    let mut checked = 0;
    let mut unknown = Vec::new();
    for (path, ops) in &paths {
        for (method, op) in ops.as_object().unwrap() {
            let operation = op["operationId"].as_str().unwrap();
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let Some(need) = needs(operation) else {
                unknown.push(format!("{method} {path} ({operation})"));
                continue;
            };
            let (body, headers, url) = request(operation, path, &prompt_id);
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (action, resource) = match need {
                Need::Public => {
                    let r = s.anonymous().call(method.clone(), &url, None, &[]).await;
                    assert_eq!(r.status.as_u16(), 200, "{operation} is public");
                    continue;
                }
                Need::SignIn => {
                    let r = s.anonymous().call(method.clone(), &url, body.as_ref(), &[]).await;
                    r.problem(401, "invalid_credentials");
                    continue;
                }
                Need::Session => {
                    s.anonymous()
                        .call(method.clone(), &url, body.as_ref(), &[])
                        .await
                        .problem(401, "unauthorized");
                    for (_, client) in &keys {
                        client
                            .call(method.clone(), &url, body.as_ref(), &[])
                            .await
                            .problem(409, "not_a_session");
                    }
                    continue;
                }
                Need::AnyKey => {
                    for (role, client) in &keys {
                        let r = client.call(method.clone(), &url, body.as_ref(), &headers).await;
                        assert_eq!(r.status.as_u16(), 200, "{role} reads itself ({operation}): {:?}", r.body);
                    }
                    continue;
                }
                Need::Permission(p) => p,
            };
            // Without a key: 401, whatever the route.
            let r = s.anonymous().call(method.clone(), &url, body.as_ref(), &headers).await;
            assert_eq!(r.status.as_u16(), 401, "{operation} without a key: {:?}", r.body);
            for (role, client) in &keys {
                let expected = decide(&principal(role), action, resource, &Target::default());
                let r = client.call(method.clone(), &url, body.as_ref(), &headers).await;
                let status = r.status.as_u16();
                if expected.allowed {
                    assert!(
                        status != 403 && status != 401,
                        "{role} may {resource}:{action} ({operation}) but got {status}: {:?}",
                        r.body
                    );
                } else {
                    r.problem(403, "forbidden");
                }
                checked += 1;
            }
        }
    }
    assert!(unknown.is_empty(), "routes without a policy entry in this test: {unknown:?}");
    assert!(checked >= 28 * builtin::NAMES.len(), "only {checked} checks");
    // Nothing the refusals touched changed: still one version, label where it was.
    let t = s.get("/api/v1/templates/rr%2Ft?label=staging").await;
    assert_eq!(t.ok(200)["latest"]["seq"], 1);
    s.stop().await;
}
