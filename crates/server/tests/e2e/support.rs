//! A real server on an ephemeral port, and an HTTP client for it.

use std::sync::{Arc, OnceLock};

use promptvault_server::secret::Secret;
use promptvault_server::{Server, Settings};
use promptvault_testkit::TestDb;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const TOKEN: &str = "pv_0123456789_e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0";

pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn etag(&self) -> String {
        self.headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }

    /// Asserts a problem document with this status and code.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(
            self.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{:#}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{:#}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(self.body["type"], format!("urn:promptvault:problem:{code}"));
        self
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        &self.body
    }
}

pub fn settings(db: &TestDb) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: db.dir.path().to_path_buf(),
        database_url: Some(Secret::new(db.options.url.clone())),
        pg_schema: db.options.pg_schema.clone(),
        max_connections: 4,
        admin_token: Some(Secret::new(TOKEN.into())),
        body_limit_bytes: 64 * 1024,
        ..Settings::default()
    }
}

impl TestServer {
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(settings(db)).await
    }

    pub async fn start_with(settings: Settings) -> TestServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = promptvault_server::start(settings).await.expect("server starts");
        let base = format!("http://{}", server.local_addr());
        TestServer { server: Some(server), base, http: reqwest::Client::new(), token: Some(TOKEN.into()) }
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }

    pub fn anonymous(&self) -> TestServer {
        TestServer { server: None, base: self.base.clone(), http: self.http.clone(), token: None }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1/{path}", self.base)
        };
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PUT, path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: &Value, etag: &str) -> Resp {
        self.call(Method::PATCH, path, Some(body), &[("if-match", etag)]).await
    }

    pub async fn delete(&self, path: &str, etag: &str) -> Resp {
        let h: &[(&str, &str)] = if etag.is_empty() { &[] } else { &[("if-match", etag)] };
        self.call(Method::DELETE, path, None, h).await
    }

    /// Creates a text template; `schema` declares string parameters.
    pub async fn template(&self, name: &str, text: &str, params: &[&str]) -> Value {
        let props: serde_json::Map<String, Value> =
            params.iter().map(|p| ((*p).to_owned(), json!({"type": "string"}))).collect();
        let body = json!({
            "name": name,
            "template_text": text,
            "parameter_schema": {"type": "object", "properties": props, "required": params},
        });
        self.post("templates", &body).await.ok(201).clone()
    }
}

/// The OpenAPI document the server generates.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| serde_json::to_value(promptvault_server::api::openapi()).expect("openapi serializes"))
}

/// Checks a response body against the schema the OpenAPI document gives for
/// that operation and status: the handlers and the document cannot drift.
#[track_caller]
pub fn conforms(method: &str, path: &str, resp: &Resp) {
    let status = resp.status.as_u16().to_string();
    let op = &spec()["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the OpenAPI document");
    let response = &op["responses"][&status];
    assert!(response.is_object(), "{method} {path} does not document status {status}: {:#}", resp.body);
    let Some(content) = response["content"].as_object() else {
        assert!(resp.body.is_null() || resp.body == Value::String(String::new()), "undocumented body");
        return;
    };
    let ct = resp.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = content
        .iter()
        .find(|(k, _)| ct.starts_with(k.as_str()))
        .unwrap_or_else(|| panic!("{method} {path} {status}: content type {ct} not documented"))
        .1;
    let mut root = json!({"$defs": {"target": media["schema"].clone()}, "$ref": "#/$defs/target", "components": spec()["components"].clone()});
    if root["$defs"]["target"].is_null() {
        return;
    }
    let validator = jsonschema::draft202012::new(&root).expect("response schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(&resp.body).map(|e| format!("{} {}", e.instance_path(), e)).collect();
    root.take();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema: {errors:#?}\n{:#}",
        resp.body
    );
}

pub type Db = Arc<TestDb>;
