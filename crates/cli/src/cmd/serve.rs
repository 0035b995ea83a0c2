//! `serve` and `demo`.

use std::path::Path;

use promptvault_server::Settings;
use promptvault_server::settings::{LogSettings, Overrides};
use serde_json::{Value, json};

use crate::client::{CliError, Client, Result, exit, seg};
use crate::output::{Out, list, s};
use crate::{DemoArgs, ServeArgs};

fn init_logging(log: &LogSettings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if log.format == "json" { builder.json().try_init() } else { builder.try_init() };
}

async fn until_stopped() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn start(settings: Settings) -> Result<promptvault_server::Server> {
    promptvault_server::start(settings).await.map_err(|e| CliError::new(exit::FAILURE, e.to_string()))
}

fn announce_bootstrap(server: &promptvault_server::Server) {
    let Some(b) = server.bootstrap() else { return };
    match (&b.generated_token, &b.token_file) {
        (Some(token), Some(file)) => {
            eprintln!(
                "\nFirst start: created an admin API key. It is shown once; a copy is in {} (mode 0600).\n",
                file.display()
            );
            eprintln!("    export PROMPTVAULT_TOKEN={}\n", token.expose());
        }
        _ => eprintln!("First start: created the admin API key from the configured admin token."),
    }
}

pub async fn serve(args: ServeArgs) -> Result<()> {
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        allow_insecure_http: args.allow_insecure_http.then_some(true),
    };
    let settings =
        Settings::load(args.config.as_deref(), &overrides).map_err(|e| CliError::invalid(e.to_string()))?;
    init_logging(&settings.log);
    let server = start(settings).await?;
    announce_bootstrap(&server);
    eprintln!("promptvault is serving on {} (Ctrl-C stops it)", server.url());
    until_stopped().await;
    eprintln!("stopping: finishing requests and writing usage records…");
    server.shutdown().await.map_err(|e| CliError::new(exit::FAILURE, e.to_string()))
}

/// The token the demo uses: generated now, or saved by an earlier run.
fn demo_token(server: &promptvault_server::Server, dir: &Path) -> Result<String> {
    if let Some(t) = server.bootstrap().and_then(|b| b.generated_token.as_ref()) {
        return Ok(t.expose().to_owned());
    }
    if let Ok(t) = std::env::var("PROMPTVAULT_ADMIN_TOKEN") {
        return Ok(t);
    }
    std::fs::read_to_string(dir.join("admin-token")).map(|t| t.trim().to_owned()).map_err(|_| {
        CliError::new(
            exit::FAILURE,
            format!("no admin token found in {}; remove the directory to start afresh", dir.display()),
        )
    })
}

struct Tour<'a> {
    c: &'a Client,
    out: Out,
    base: String,
    step: u32,
}

impl Tour<'_> {
    fn step(&mut self, title: &str, curl: &str) {
        self.step += 1;
        println!();
        self.out.heading(&format!("{}. {title}", self.step));
        println!("   $ {curl}");
    }

    fn curl(&self, method: &str, path: &str, body: Option<&Value>) -> String {
        let mut c =
            format!("curl -s -H \"Authorization: Bearer $PROMPTVAULT_TOKEN\" '{}/api/v1{path}'", self.base);
        if method != "GET" {
            c = format!(
                "curl -s -X {method} -H \"Authorization: Bearer $PROMPTVAULT_TOKEN\" -H 'Content-Type: application/json' '{}/api/v1{path}'",
                self.base
            );
        }
        if let Some(b) = body {
            c.push_str(&format!(" -d '{}'", b));
        }
        c
    }

    /// Creates unless it exists already (a second run of the demo).
    async fn post_once(&mut self, path: &str, body: &Value) -> Result<Option<Value>> {
        match self.c.post(path, body).await {
            Ok(r) => Ok(Some(r.body)),
            Err(e) if e.code == exit::CONFLICT || e.message.contains("version_unchanged") => {
                println!("   (already there from an earlier run)");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

pub async fn demo(args: DemoArgs, out: Out) -> Result<()> {
    let dir = args.data_dir;
    let db = format!("sqlite://{}", dir.join("promptvault.db").display());
    let overrides = Overrides {
        listen: Some(args.listen),
        data_dir: Some(dir.clone()),
        database_url: Some(db),
        ..Overrides::default()
    };
    let settings = Settings::load(None, &overrides).map_err(|e| CliError::invalid(e.to_string()))?;
    init_logging(&LogSettings { level: "warn".into(), ..settings.log.clone() });
    let server = start(settings).await?;
    let base = format!("http://{}", server.local_addr());
    let token = demo_token(&server, &dir)?;
    let c = Client::new(&base, Some(token.clone()))?;
    out.heading(&format!("promptvault demo — serving on {base}, data in {}/ (SQLite)", dir.display()));
    println!("   export PROMPTVAULT_URL={base} PROMPTVAULT_TOKEN={token}");
    let mut t = Tour { c: &c, out, base: base.clone(), step: 0 };
    let result = tour(&mut t).await;
    if let Err(e) = &result {
        eprintln!("error: {}", e.message);
    }
    println!();
    if args.once {
        server.shutdown().await.map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
        return result;
    }
    out.heading("Your turn — the server keeps running until Ctrl-C. In another terminal:");
    println!("   export PROMPTVAULT_URL={base} PROMPTVAULT_TOKEN={token}");
    println!("   promptvault templates list");
    println!("   promptvault render support/greeting --var customer_name=Grace --var tone=formal");
    println!("   promptvault versions diff support/greeting 1 2");
    println!("   curl -s {base}/api/v1/openapi.json -H \"Authorization: Bearer $PROMPTVAULT_TOKEN\" | head");
    until_stopped().await;
    server.shutdown().await.map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
    result
}

async fn tour(t: &mut Tour<'_>) -> Result<()> {
    let greeting = json!({
        "name": "support/greeting",
        "description": "Opening line for support conversations",
        "tags": ["support", "demo"],
        "template_text": "Hello {{ customer_name }}! {% if tone == 'formal' %}How may I assist you today?{% else %}How can I help?{% endif %}",
        "parameter_schema": {
            "type": "object",
            "properties": {
                "customer_name": {"type": "string", "minLength": 1},
                "tone": {"type": "string", "enum": ["warm", "formal"], "default": "warm"}
            },
            "required": ["customer_name"]
        },
        "change_description": "first version"
    });
    t.step(
        "Create a template: text, a JSON Schema for its parameters, version 1.0.0",
        &t.curl(
            "POST",
            "/templates",
            Some(&json!({"name": "support/greeting", "template_text": "…", "parameter_schema": "…"})),
        ),
    );
    if let Some(b) = t.post_once("/templates", &greeting).await? {
        let v = &b["template"]["version"];
        println!(
            "   → {} version {} ({}), {}",
            s(&b["template"], "name"),
            s(v, "seq"),
            s(v, "version"),
            s(v, "status")
        );
    }

    let params = json!({"parameters": {"customer_name": "Ada"}, "label": "latest"});
    t.step(
        "Render it; parameters are validated first, and the rendering is recorded",
        &t.curl("POST", "/templates/support%2Fgreeting/render", Some(&params)),
    );
    let r = t.c.post("/templates/support%2Fgreeting/render", &params).await?;
    println!("   → {}", s(&r.body, "text"));
    let prompt_id = s(&r.body, "prompt_id");

    let bad = json!({"parameters": {"tone": "rude"}, "label": "latest"});
    t.step(
        "Bad parameters are refused with every violation and its JSON pointer",
        &t.curl("POST", "/templates/support%2Fgreeting/render", Some(&bad)),
    );
    match t.c.post("/templates/support%2Fgreeting/render", &bad).await {
        Ok(_) => println!("   → unexpectedly accepted"),
        Err(e) => println!("   → {}", e.message),
    }

    let v2 = json!({
        "template_text": "Hello {{ customer_name }}! {% if tone == 'formal' %}How may I assist you today?{% else %}How can I help?{% endif %}{% if product %} I see you use {{ product }}.{% endif %}",
        "parameter_schema": {
            "type": "object",
            "properties": {
                "customer_name": {"type": "string", "minLength": 1},
                "tone": {"type": "string", "enum": ["warm", "formal"], "default": "warm"},
                "product": {"type": "string"}
            },
            "required": ["customer_name"]
        },
        "change_description": "mention the product when known"
    });
    t.step(
        "A new version with an optional parameter: the semantic version is computed (minor)",
        &t.curl(
            "POST",
            "/templates/support%2Fgreeting/versions",
            Some(&json!({"template_text": "…", "parameter_schema": "…"})),
        ),
    );
    if let Some(b) = t.post_once("/templates/support%2Fgreeting/versions", &v2).await? {
        let v = &b["version"];
        println!("   → version {} is {} ({} bump)", s(v, "seq"), s(v, "version"), s(v, "bump"));
        for ch in list(&b, "changes") {
            println!("     {:5} {}", s(ch, "impact"), s(ch, "summary"));
        }
    }

    let breaking = json!({"parameter_schema": {
        "type": "object",
        "properties": {"customer_name": {"type": "string"}, "tone": {"type": "string", "enum": ["warm", "formal"]}, "product": {"type": "string"}},
        "required": ["customer_name", "product"]
    }, "bump": "minor"});
    t.step(
        "Asking for a smaller bump than the change needs is refused, with the reason",
        &t.curl(
            "POST",
            "/templates/support%2Fgreeting/versions",
            Some(&json!({"parameter_schema": "… product now required …", "bump": "minor"})),
        ),
    );
    match t.c.post("/templates/support%2Fgreeting/versions", &breaking).await {
        Ok(_) => println!("   → unexpectedly accepted"),
        Err(e) => println!("   → {}", e.message),
    }

    t.step(
        "`production` is protected: it points only at approved versions, and version 2 is a draft",
        &t.curl("PUT", "/templates/support%2Fgreeting/labels/production", Some(&json!({"version": 2}))),
    );
    let v2 = "/templates/support%2Fgreeting/versions/2";
    let status = s(&t.c.get(v2).await?.body, "status");
    if status == "approved" {
        println!("   (version 2 was approved in an earlier run)");
    } else {
        match t.c.put("/templates/support%2Fgreeting/labels/production", &json!({"version": 2})).await {
            Ok(_) => println!("   → unexpectedly accepted"),
            Err(e) => println!("   → {}", e.message),
        }
        t.step(
            "Submit version 2 for review; the compliance checks run",
            &t.curl("POST", &format!("{v2}/submit"), Some(&json!({"comment": "formal tone"}))),
        );
        if status == "draft" {
            let r = t.c.post(&format!("{v2}/submit"), &json!({"comment": "formal tone"})).await?;
            println!("   → version 2 is {}", s(&r.body["version"], "status"));
        }
        t.step(
            "You wrote it, so you cannot approve it: four eyes",
            &t.curl("POST", &format!("{v2}/approve"), Some(&json!({}))),
        );
        match t.c.post(&format!("{v2}/approve"), &json!({})).await {
            Ok(_) => println!("   → unexpectedly accepted"),
            Err(e) => println!("   → {}", e.message),
        }
        t.step(
            "A reviewer (another user, with a key of their own) approves it",
            &t.curl("POST", "/users", Some(&json!({"email": "reviewer@example.com", "roles": ["reviewer"]}))),
        );
        let email = format!("reviewer-{}@example.com", chrono::Utc::now().timestamp());
        let user = t.c.post("/users", &json!({"email": email, "roles": ["reviewer"]})).await?;
        let key =
            t.c.post(&format!("/users/{}/keys", s(&user.body, "id")), &json!({"name": "demo reviewer"}))
                .await?;
        let reviewer = Client::new(&t.base, Some(s(&key.body, "token")))?;
        let r = reviewer.post(&format!("{v2}/approve"), &json!({"comment": "reads well"})).await?;
        println!("   → {email} approved: version 2 is {}", s(&r.body["version"], "status"));
    }
    t.step(
        "Now point `production` at version 2; reads without a label resolve it",
        &t.curl("PUT", "/templates/support%2Fgreeting/labels/production", Some(&json!({"version": 2}))),
    );
    t.c.put("/templates/support%2Fgreeting/labels/production", &json!({"version": 2})).await?;
    let r =
        t.c.post(
            "/templates/support%2Fgreeting/render",
            &json!({"parameters": {"customer_name": "Grace", "tone": "formal", "product": "the Pro plan"}}),
        )
        .await?;
    println!("   → {}", s(&r.body, "text"));

    t.step("Diff two versions", &t.curl("GET", "/templates/support%2Fgreeting/diff?from=1&to=2", None));
    let d = t.c.get("/templates/support%2Fgreeting/diff?from=1&to=2").await?;
    for line in s(&d.body, "text_diff").lines() {
        println!("   {line}");
    }

    let chat = json!({
        "name": "agents/triage",
        "description": "System prompt for the triage agent",
        "tags": ["agents", "demo"],
        "messages": [
            {"role": "system", "content": "You triage tickets for {{ team }}. Answer with one of: {{ queues | join(', ') }}."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ ticket }}"}
        ],
        "parameter_schema": {
            "type": "object",
            "properties": {"team": {"type": "string"}, "queues": {"type": "array", "items": {"type": "string"}, "minItems": 1}, "ticket": {"type": "string"}},
            "required": ["team", "queues", "ticket"]
        },
        "config": {"model": "gpt-4o-mini", "temperature": 0}
    });
    t.step(
        "A chat template with a placeholder the caller fills with earlier messages",
        &t.curl("POST", "/templates", Some(&json!({"name": "agents/triage", "messages": "…"}))),
    );
    t.post_once("/templates", &chat).await?;
    let render = json!({
        "label": "latest",
        "parameters": {"team": "Billing", "queues": ["refunds", "invoices", "other"], "ticket": "I was charged twice."},
        "placeholders": {"history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! What happened?"}]}
    });
    let r = t.c.post("/templates/agents%2Ftriage/render", &render).await?;
    for m in list(&r.body, "messages") {
        println!("   → [{}] {}", s(m, "role"), s(m, "content"));
    }

    t.step(
        "Report how a rendering worked; usage metrics follow",
        &t.curl("POST", &format!("/prompts/{prompt_id}/outcome"), Some(&json!({"success": true}))),
    );
    let _ = t.c.post(&format!("/prompts/{}/outcome", seg(&prompt_id)), &json!({"success": true})).await;
    let m = t.c.get("/templates/support%2Fgreeting/metrics").await?;
    let total = &m.body["total"];
    println!(
        "   → used {} times, success rate {}",
        s(total, "times_used"),
        total["success_rate"].as_f64().map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
    );

    t.step("Search over names, descriptions, tags and text", &t.curl("GET", "/templates?q=triage", None));
    let found = t.c.get("/templates?q=triage").await?;
    for item in list(&found.body, "items") {
        println!("   → {} — {}", s(item, "name"), s(item, "description"));
    }
    Ok(())
}
