//! `promptvault serve` as a process: layered settings, the admin token from
//! the environment, and a graceful stop on SIGTERM that writes every queued
//! usage record.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use promptvault_testkit::Kind;
use serde_json::{Value, json};

use crate::support::Db;

pub const ADMIN: &str = "serve-test-admin-token-0123456789abcdef";

/// Kills the server if the test fails before stopping it.
pub struct Reap(pub Option<std::process::Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads stderr until the server says where it listens.
fn listening_on(stderr: &mut impl BufRead) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = stderr.read_line(&mut line).expect("read the server's stderr");
        assert!(n > 0, "the server exited before listening");
        if let Some(rest) = line.trim().strip_prefix("promptvault is serving on ") {
            return rest.split_whitespace().next().unwrap_or_default().to_owned();
        }
    }
}

/// Starts `cmd` (a `serve` with stderr piped) and waits until it says where
/// it listens: the reaper, the process id and the address.
pub async fn spawn_serve(cmd: &mut Command) -> (Reap, u32, String) {
    let mut reap = Reap(Some(cmd.spawn().expect("start promptvault serve")));
    let pid = reap.0.as_ref().map(std::process::Child::id).unwrap_or_default();
    let mut stderr = BufReader::new(reap.0.as_mut().and_then(|c| c.stderr.take()).expect("stderr"));
    let addr = tokio::task::spawn_blocking(move || {
        let addr = listening_on(&mut stderr);
        // Keep draining so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr.lines() {});
        addr
    })
    .await
    .expect("reader");
    (reap, pid, addr)
}

/// A `serve` on 127.0.0.1:0 with `data` as its data directory and this
/// test's database, stderr piped; `envs` added.
pub fn serve_command(db: &Db, data: &std::path::Path, envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptvault"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data);
    cmd.env_clear()
        .env("PROMPTVAULT_ADMIN_TOKEN", ADMIN)
        .env("PROMPTVAULT_LOG__LEVEL", "warn")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if db.kind == Kind::Postgres {
        cmd.env("PROMPTVAULT_DATABASE_URL", &db.options.url)
            .env("PROMPTVAULT_PG_SCHEMA", &db.options.pg_schema);
    }
    cmd
}

pub async fn serve_layers_settings_and_stops_gracefully(db: Db) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = db.dir.path().join("served");
    let config = db.dir.path().join("promptvault.toml");
    // The file sets the default label and a long flush interval; the
    // environment gives the database and the token; the flag gives the address.
    std::fs::write(&config, "default_label = \"stable\"\nlisten = \"127.0.0.1:9\"\n[usage]\nflush_interval_ms = 600000\nbatch_size = 100000\n")
        .expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptvault"));
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(&data);
    cmd.env_clear()
        .env("PROMPTVAULT_ADMIN_TOKEN", ADMIN)
        .env("PROMPTVAULT_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if db.kind == Kind::Postgres {
        cmd.env("PROMPTVAULT_DATABASE_URL", &db.options.url)
            .env("PROMPTVAULT_PG_SCHEMA", &db.options.pg_schema);
    }
    let (mut reap, pid, addr) = spawn_serve(&mut cmd).await;
    let base = format!("{addr}/api/v1");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let req = http.request(method, format!("{base}/{path}")).bearer_auth(ADMIN);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, _) =
        call(reqwest::Method::POST, "templates", Some(json!({"name": "served", "template_text": "Hi"})))
            .await;
    assert_eq!(status, 201);
    let (status, _) =
        call(reqwest::Method::PUT, "templates/served/labels/stable", Some(json!({"version": 1}))).await;
    assert_eq!(status, 200);
    // No label named: the file's default label is used.
    let (status, body) = call(reqwest::Method::GET, "templates/served", None).await;
    assert_eq!((status, body["version"]["seq"].clone()), (200, json!(1)), "{body}");
    for _ in 0..25 {
        let (status, _) = call(reqwest::Method::POST, "templates/served/render", Some(json!({}))).await;
        assert_eq!(status, 200);
    }
    // With a ten-minute flush interval the records are still queued: SIGTERM
    // must write them before the process exits.
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let mut child = reap.0.take().expect("child");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "serve exited with {status}");
    // Read the counters with a fresh server on the same database.
    let mut settings = promptvault_server::Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: data.clone(),
        admin_token: None,
        render: crate::support::render_settings(),
        ..promptvault_server::Settings::default()
    };
    if db.kind == Kind::Postgres {
        settings.database_url = Some(promptvault_server::secret::Secret::new(db.options.url.clone()));
        settings.pg_schema = db.options.pg_schema.clone();
    }
    let server = promptvault_server::start(settings).await.expect("restart");
    assert!(server.bootstrap().is_none(), "the key from the environment was kept");
    let url = format!("http://{}/api/v1/templates/served/metrics", server.local_addr());
    let m: Value =
        http.get(url).bearer_auth(ADMIN).send().await.expect("metrics").json().await.expect("json");
    assert_eq!(m["total"]["times_used"], 25, "{m}");
    server.shutdown().await.expect("stop");
}

/// `[auth.jwt]` from `PROMPTVAULT_AUTH__JWT__*`: a bad value stops `serve`
/// before it listens, saying which setting to change.
pub async fn jwt_settings_from_the_environment_are_checked_at_start(db: Db) {
    let data = db.dir.path().join("jwt");
    let data = data.to_str().expect("UTF-8 path");
    let serve = || {
        crate::support::Call::new(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data])
            .env("PROMPTVAULT_ADMIN_TOKEN", ADMIN)
            .env("PROMPTVAULT_AUTH__JWT__ENABLED", "true")
    };
    let run = serve().env("PROMPTVAULT_AUTH__JWT__HS256_SECRET", "too-short").run().await;
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains("auth.jwt.hs256_secret must be at least 32 bytes"), "{run}");
    assert!(!run.stderr.contains("too-short"), "the secret is not echoed: {run}");
    let run = serve().run().await;
    assert!(run.code != 0 && run.stderr.contains("auth.jwt: set hs256_secret"), "{run}");
    let run = serve().env("PROMPTVAULT_AUTH__JWT__SECRET", "x").run().await;
    assert!(run.code != 0 && run.stderr.contains("unknown field"), "{run}");
    assert!(!std::path::Path::new(data).join("promptvault.db").exists(), "nothing was created");
}

/// Data-key rotation is re-encryption in small transactions: a `serve`
/// killed with SIGKILL in the middle of it loses nothing, and the next
/// start carries on until no row is left on the old key.
pub async fn rotation_killed_mid_way_resumes_and_loses_nothing(db: Db) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = db.dir.path().join("rotating");
    // One row per transaction, so the kill lands between many of them.
    let mut cmd = serve_command(&db, &data, &[("PROMPTVAULT_ENCRYPTION__REENCRYPT_BATCH", "1")]);
    let (mut reap, pid, addr) = spawn_serve(&mut cmd).await;
    let http = reqwest::Client::new();
    let call = |base: String, method: reqwest::Method, path: &str, body: Option<Value>| {
        let req = http.request(method, format!("{base}/api/v1/{path}")).bearer_auth(ADMIN);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let post = |path: &str, body: Value| call(addr.clone(), reqwest::Method::POST, path, Some(body));
    let (status, _) = post(
        "templates",
        json!({"name": "rot", "security_classification": "confidential", "template_text": "Text 1"}),
    )
    .await;
    assert_eq!(status, 201);
    for i in 2..=20 {
        let (status, body) = post(
            "templates/rot/versions",
            json!({"base_version": i - 1, "template_text": format!("Text {i}")}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut prompts = Vec::new();
    for _ in 0..80 {
        let (status, body) = post("templates/rot/render", json!({"version": 20})).await;
        assert_eq!(status, 200, "{body}");
        prompts.push(body["prompt_id"].as_str().expect("prompt id").to_owned());
    }
    // Every render on disk before rotating.
    let mut sealed = 0;
    for _ in 0..100 {
        let (_, st) = call(addr.clone(), reqwest::Method::GET, "admin/encryption", None).await;
        sealed = st["sealed_rows"].as_u64().unwrap_or_default();
        if sealed == 100 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sealed, 100, "20 versions and 80 renders are sealed");
    let (status, st) = post("admin/encryption/rotate", json!({})).await;
    assert_eq!(status, 202, "{st}");
    let new_key = st["active_key"].as_str().expect("active key").to_owned();
    let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let mut child = reap.0.take().expect("child");
    tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");

    // A new server on the same data: it resumes, and everything reads back.
    let mut settings = promptvault_server::Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: data.clone(),
        admin_token: None,
        render: crate::support::render_settings(),
        ..promptvault_server::Settings::default()
    };
    settings.encryption.reencrypt_batch = 1;
    if db.kind == Kind::Postgres {
        settings.database_url = Some(promptvault_server::secret::Secret::new(db.options.url.clone()));
        settings.pg_schema = db.options.pg_schema.clone();
    }
    let server = promptvault_server::start(settings).await.expect("restart after SIGKILL");
    let base = format!("http://{}", server.local_addr());
    let mut st = Value::Null;
    for round in 0..400 {
        st = call(base.clone(), reqwest::Method::GET, "admin/encryption", None).await.1;
        if round == 0 {
            // What the kill left (it varies with timing; the assertions
            // below hold whatever it was).
            eprintln!("rows left on the old key after SIGKILL: {}", st["pending_rows"]);
        }
        if st["pending_rows"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(st["pending_rows"], 0, "{st}");
    assert_eq!(st["active_key"], new_key.as_str());
    assert_eq!(st["sealed_rows"], 100, "{st}");
    for i in 1..=20 {
        let (status, v) =
            call(base.clone(), reqwest::Method::GET, &format!("templates/rot/versions/{i}"), None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["template_text"], format!("Text {i}"), "{v}");
    }
    for id in &prompts {
        let (status, p) = call(base.clone(), reqwest::Method::GET, &format!("prompts/{id}"), None).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["prompt_text"], "Text 20", "{p}");
    }
    server.shutdown().await.expect("stop");
}

/// `tls self-signed` writes a pair `serve` uses for HTTPS (with HSTS), and
/// SIGTERM still stops it gracefully; plain HTTP beyond loopback is refused
/// with one line unless allowed.
pub async fn self_signed_pair_serves_https_and_plain_http_beyond_loopback_is_refused(db: Db) {
    use rustls::pki_types::pem::PemObject;
    use std::os::unix::fs::PermissionsExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = db.dir.path().join("certs");
    let dir_s = dir.to_str().expect("UTF-8 path");
    let run = crate::support::Call::new(&[
        "tls",
        "self-signed",
        "--out",
        dir_s,
        "--host",
        "localhost",
        "--host",
        "127.0.0.1",
    ])
    .run()
    .await;
    assert!(run.ok().contains("cert.pem") && run.ok().contains("mode 0600"), "{run}");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mode = std::fs::metadata(&key).expect("key written").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is private");
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
        .expect("cert file")
        .collect::<Result<_, _>>()
        .expect("cert parses");
    assert_eq!(certs.len(), 1);
    rustls::pki_types::PrivateKeyDer::from_pem_file(&key).expect("key parses");
    // Run again: the pair is replaced, the key stays private.
    crate::support::Call::new(&["tls", "self-signed", "--out", dir_s]).run().await.success();
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    // Plain HTTP on every interface: refused, one line, nothing created.
    let data = db.dir.path().join("tls-served");
    let data_s = data.to_str().expect("UTF-8 path");
    let run = crate::support::Call::new(&["serve", "--listen", "0.0.0.0:0", "--data-dir", data_s])
        .env("PROMPTVAULT_ADMIN_TOKEN", ADMIN)
        .run()
        .await;
    assert_ne!(run.code, 0, "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(run.stderr.contains("refusing to serve plain HTTP on 0.0.0.0:0"), "{run}");
    assert!(!data.join("promptvault.db").exists(), "nothing was created");

    // Explicitly allowed (from the environment; `--allow-insecure-http` is
    // the flag): it serves plain HTTP there, without HSTS.
    // The same data directory throughout: it holds the master key the
    // database was first sealed with.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptvault"));
    cmd.args(["serve", "--listen", "0.0.0.0:0", "--data-dir"]).arg(&data);
    cmd.env_clear()
        .env("PROMPTVAULT_ADMIN_TOKEN", ADMIN)
        .env("PROMPTVAULT_LOG__LEVEL", "warn")
        .env("PROMPTVAULT_ALLOW_INSECURE_HTTP", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if db.kind == Kind::Postgres {
        cmd.env("PROMPTVAULT_DATABASE_URL", &db.options.url)
            .env("PROMPTVAULT_PG_SCHEMA", &db.options.pg_schema);
    }
    let (mut reap, pid, addr) = spawn_serve(&mut cmd).await;
    let port =
        addr.strip_prefix("http://0.0.0.0:").unwrap_or_else(|| panic!("plain HTTP on 0.0.0.0: {addr}"));
    let r = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.expect("plain HTTP");
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("strict-transport-security"));
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let mut child = reap.0.take().expect("child");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "serve exited with {status}");

    // HTTPS with the pair, from the environment.
    let mut cmd = serve_command(&db, &data, &[]);
    cmd.env("PROMPTVAULT_TLS__CERT_FILE", &cert).env("PROMPTVAULT_TLS__KEY_FILE", &key);
    let (mut reap, pid, addr) = spawn_serve(&mut cmd).await;
    assert!(addr.starts_with("https://127.0.0.1:"), "{addr}");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).expect("cert");
    let http = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
    let r = http
        .post(format!("{addr}/api/v1/templates"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "tls-served", "template_text": "Hi over TLS"}))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=63072000; includeSubDomains");
    let r = http
        .get(format!("{addr}/api/v1/templates/tls-served?label=latest"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["version"]["template_text"], "Hi over TLS", "{body}");
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let mut child = reap.0.take().expect("child");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "serve under TLS exited with {status} on SIGTERM");
}
