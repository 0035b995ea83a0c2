//! The HTTP client the verbs use, and CLI errors with their exit codes.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ETAG, HeaderMap, HeaderValue, IF_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Exit codes, documented in `promptvault --help` and the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const AUTH: u8 = 5;
    pub const INVALID: u8 = 6;
    pub const UNAVAILABLE: u8 = 7;
    /// `audit verify` found the chain broken.
    pub const VERIFY_FAILED: u8 = 8;
}

/// A failure to report in one line, with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(exit::INVALID, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub type Result<T> = std::result::Result<T, CliError>;

/// A successful response: its JSON body and ETag.
#[derive(Debug)]
pub struct Reply {
    pub body: Value,
    pub etag: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Percent-encodes one path segment (a template name keeps its meaning
/// whatever characters it has).
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        // reqwest needs a TLS provider installed before the first client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("promptvault-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::new(exit::FAILURE, format!("cannot build the HTTP client: {e}")))?;
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::usage(format!(
                "--server must be an http:// or https:// URL, not {base:?}"
            )));
        }
        Ok(Self { http, base, token })
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(Method::POST, path, Some(body), None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(Method::PUT, path, Some(body), None).await
    }

    pub async fn patch(&self, path: &str, body: &Value, etag: Option<&str>) -> Result<Reply> {
        self.send(Method::PATCH, path, Some(body), etag).await
    }

    pub async fn delete(&self, path: &str, etag: Option<&str>) -> Result<Reply> {
        self.send(Method::DELETE, path, None, etag).await
    }

    /// Sends a request under `/api/v1`, or at the root when `path` starts
    /// with `//`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        etag: Option<&str>,
    ) -> Result<Reply> {
        let url = match path.strip_prefix("//") {
            Some(root) => format!("{}/{root}", self.base),
            None => format!("{}/api/v1{path}", self.base),
        };
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
            let mut h = HeaderMap::new();
            h.insert(IF_MATCH, tag);
            req = req.headers(h);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let why = if e.is_connect() {
                "is it running? (promptvault serve)".to_owned()
            } else if e.is_timeout() {
                "it did not answer in time".to_owned()
            } else {
                // The innermost cause says what went wrong (TLS, a garbled answer…).
                let mut cause: &dyn std::error::Error = &e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                format!("the request failed: {}", one_line(&cause.to_string()))
            };
            CliError::new(exit::UNAVAILABLE, format!("cannot reach {}: {why}", self.base))
        })?;
        let status = resp.status();
        let etag = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = resp
            .text()
            .await
            .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("the response could not be read: {e}")))?;
        if status.is_success() {
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                // Anything but JSON is not the API answering (a wrong URL, a
                // proxy's page): printing it as an empty result would hide that.
                serde_json::from_str(&text).map_err(|_| {
                    CliError::new(
                        exit::UNAVAILABLE,
                        format!("{} answered {status} without JSON: is it a promptvault server?", self.base),
                    )
                })?
            };
            return Ok(Reply { body, etag });
        }
        Err(problem(status, &text))
    }
}

/// Turns a problem document into a one-line error with its exit code.
fn problem(status: StatusCode, text: &str) -> CliError {
    let doc: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let code = doc.get("code").and_then(Value::as_str).unwrap_or("");
    let first_line = one_line(text.trim().lines().next().unwrap_or_default());
    let mut message = match doc.get("detail").and_then(Value::as_str).map(one_line) {
        Some(detail) if !detail.is_empty() => detail,
        // Not a problem document (a proxy's error page, say): the status
        // tells, with the first line of a plain-text answer.
        _ if first_line.is_empty() || first_line.starts_with('<') => status.to_string(),
        _ => format!("{status}: {first_line}"),
    };
    if let Some(v) = doc.get("violations").and_then(Value::as_array) {
        let parts: Vec<String> = v
            .iter()
            .map(|x| {
                format!(
                    "{}: {}",
                    x.get("pointer").and_then(Value::as_str).unwrap_or("/"),
                    one_line(x.get("message").and_then(Value::as_str).unwrap_or(""))
                )
            })
            .collect();
        message = format!("{message}: {}", parts.join("; "));
    }
    if !code.is_empty() {
        message = format!("{message} [{code}]");
    }
    let exit = match status.as_u16() {
        404 => exit::NOT_FOUND,
        409 | 412 | 428 => exit::CONFLICT,
        401 | 403 => exit::AUTH,
        400 | 413 | 415 | 422 => exit::INVALID,
        500..=599 => exit::UNAVAILABLE,
        _ => exit::FAILURE,
    };
    CliError::new(exit, message)
}

/// Error text on one line: line breaks and runs of spaces become one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
