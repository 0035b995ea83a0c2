//! The master key from the OS keyring: `promptvault encryption keyring
//! store | delete`, and `serve` reading its key (and the previous one) from
//! an entry.
//!
//! These use the real keyring of the user running the tests (on Linux the
//! kernel's: the session keyring, which `cargo test` and every process it
//! starts share, linked to the user's persistent keyring). Each test takes
//! a service name no other test or run uses, and deletes its entries when
//! it ends, passed or not.

use std::path::{Path, PathBuf};
use std::process::Command;

use promptvault_server::os_keyring::{self, KeyringEntry};
use promptvault_store::MasterKey;
use promptvault_testkit::Kind;
use serde_json::{Value, json};

use crate::serve::{ADMIN, Reap, serve_command, spawn_serve};
use crate::support::{Call, Db, Run};

/// An entry of a service only this test uses, deleted when dropped.
struct TestEntry(KeyringEntry);

impl TestEntry {
    fn new(account: &str) -> TestEntry {
        let service = format!("promptvault-test-{}", uuid::Uuid::now_v7().simple());
        TestEntry(KeyringEntry::parse(&format!("{service}/{account}")).expect("a valid entry"))
    }

    fn name(&self) -> String {
        self.0.to_string()
    }
}

impl Drop for TestEntry {
    fn drop(&mut self) {
        // Already gone when the test deleted it itself.
        let _ = os_keyring::delete(&self.0);
    }
}

/// The same `serve`, run to its end: for starts that must fail.
async fn serve_fails(db: &Db, data: &Path, envs: &[(&str, &str)]) -> Run {
    let data = data.to_str().expect("UTF-8 path");
    let mut call = Call::new(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data])
        .env("PROMPTVAULT_ADMIN_TOKEN", ADMIN)
        .env("PROMPTVAULT_LOG__LEVEL", "warn");
    for (k, v) in envs {
        call = call.env(k, v);
    }
    if db.kind == Kind::Postgres {
        call = call
            .env("PROMPTVAULT_DATABASE_URL", &db.options.url)
            .env("PROMPTVAULT_PG_SCHEMA", &db.options.pg_schema);
    }
    call.run().await
}

/// A running `serve` and its address.
struct Served {
    reap: Reap,
    pid: u32,
    base: String,
    http: reqwest::Client,
}

impl Served {
    async fn start(mut cmd: Command) -> Served {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (reap, pid, addr) = spawn_serve(&mut cmd).await;
        Served { reap, pid, base: format!("{addr}/api/v1"), http: reqwest::Client::new() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = self.http.request(method, format!("{}/{path}", self.base)).bearer_auth(ADMIN);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Creates a confidential (so sealed) template.
    async fn create_secret(&self, name: &str, text: &str) {
        let body = json!({"name": name, "security_classification": "confidential", "template_text": text});
        let (status, body) = self.call(reqwest::Method::POST, "templates", Some(body)).await;
        assert_eq!(status, 201, "{body}");
    }

    async fn text_of(&self, name: &str) -> String {
        let (status, v) =
            self.call(reqwest::Method::GET, &format!("templates/{name}/versions/1"), None).await;
        assert_eq!(status, 200, "{v}");
        v["template_text"].as_str().expect("template text").to_owned()
    }

    async fn master_fingerprint(&self) -> String {
        let (status, st) = self.call(reqwest::Method::GET, "admin/encryption", None).await;
        assert_eq!(status, 200, "{st}");
        st["master_fingerprint"].as_str().expect("fingerprint").to_owned()
    }

    /// SIGTERM, and a clean exit.
    async fn stop(mut self) {
        let killed = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().expect("kill");
        assert!(killed.success());
        let mut child = self.reap.0.take().expect("child");
        let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
        assert!(status.success(), "serve exited with {status}");
    }
}

/// Writes a new key file with `generate-key` and returns its path and
/// fingerprint.
async fn key_file(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let r = Call::new(&["--json", "encryption", "generate-key", "--out", path.to_str().expect("UTF-8")])
        .run()
        .await;
    let fp = r.json()["fingerprint"].as_str().expect("fingerprint").to_owned();
    (path, fp)
}

/// `keyring store --from-file`; returns the fingerprint printed.
async fn store_from_file(entry: &TestEntry, file: &Path, replace: bool) -> String {
    let mut args = vec!["--json", "encryption", "keyring", "store", "--from-file", file.to_str().unwrap()];
    let name = entry.name();
    args.extend(["--entry", &name]);
    if replace {
        args.push("--replace");
    }
    let r = Call::new(&args).run().await;
    let out = r.json();
    assert_eq!(out["entry"], name.as_str(), "{r}");
    assert_eq!(out["generated"], false, "{r}");
    out["fingerprint"].as_str().expect("fingerprint").to_owned()
}

/// (a) A key made into the keyring by `keyring store`, named in the
/// configuration file: the server seals with it, and a second start with
/// the same entry reads the template back. No key file is ever made.
pub async fn keyring_key_serves_and_survives_a_restart(db: Db) {
    let entry = TestEntry::new("master");
    let name = entry.name();
    let r = Call::new(&["--json", "encryption", "keyring", "store", "--entry", &name]).run().await;
    let out = r.json();
    assert_eq!(out["generated"], true, "{r}");
    let fp = out["fingerprint"].as_str().expect("fingerprint").to_owned();
    assert!(fp.starts_with("sha256:"), "{r}");
    assert!(r.stderr.contains("exists only in the OS keyring"), "a made key comes with a warning: {r}");
    // The key itself is printed nowhere.
    let key = os_keyring::read(&entry.0).expect("the entry holds the key");
    assert!(!r.stdout.contains(key.encode().as_str()) && !r.stderr.contains(key.encode().as_str()));
    // An existing entry is never overwritten unless asked.
    let r = Call::new(&["encryption", "keyring", "store", "--entry", &name]).run().await;
    assert!(r.fails(4).contains(&format!("the OS keyring entry {name} already exists")), "{r}");
    assert_eq!(os_keyring::read(&entry.0).expect("still there").fingerprint(), fp);

    let data = db.dir.path().join("keyring-served");
    let config = db.dir.path().join("keyring.toml");
    std::fs::write(&config, format!("[encryption]\nmaster_key_keyring = \"{name}\"\n")).expect("config");
    let config = config.to_str().expect("UTF-8").to_owned();
    let envs = [("PROMPTVAULT_CONFIG", config.as_str())];
    let served = Served::start(serve_command(&db, &data, &envs)).await;
    assert_eq!(served.master_fingerprint().await, fp);
    served.create_secret("kr/secret", "Kept under a key from the keyring.").await;
    served.stop().await;
    assert!(!data.join("master.key").exists(), "no key file was made");

    let served = Served::start(serve_command(&db, &data, &envs)).await;
    assert_eq!(served.text_of("kr/secret").await, "Kept under a key from the keyring.");
    assert_eq!(served.master_fingerprint().await, fp);
    served.stop().await;

    let r = Call::new(&["encryption", "keyring", "delete", "--entry", &name]).run().await;
    assert!(r.ok().contains(&format!("deleted the OS keyring entry {name}")), "{r}");
}

/// (b) An entry that now holds another key: the start is refused with one
/// line naming the fingerprint the database expects.
pub async fn keyring_entry_with_another_key_is_refused(db: Db) {
    let entry = TestEntry::new("master");
    let name = entry.name();
    let files = tempfile::tempdir().expect("temporary directory");
    let (first, first_fp) = key_file(files.path(), "first.key").await;
    assert_eq!(store_from_file(&entry, &first, false).await, first_fp);

    let data = db.dir.path().join("keyring-other");
    let envs = [("PROMPTVAULT_MASTER_KEY_KEYRING", name.as_str())];
    let served = Served::start(serve_command(&db, &data, &envs)).await;
    assert_eq!(served.master_fingerprint().await, first_fp);
    served.create_secret("kr/other", "Sealed.").await;
    served.stop().await;

    let (second, second_fp) = key_file(files.path(), "second.key").await;
    assert_eq!(store_from_file(&entry, &second, true).await, second_fp, "--replace overwrites");
    let run = serve_fails(&db, &data, &envs).await;
    let line = run.fails(1);
    assert!(line.contains(&format!("wrapped with ({first_fp})")), "names the expected key: {run}");
    assert!(line.contains(&second_fp), "{run}");
    let key = std::fs::read_to_string(&second).expect("key file");
    assert!(!run.stderr.contains(key.trim()), "the key is never printed: {run}");
}

/// (c) A missing entry, one that holds no key and a malformed name: each a
/// one-line error before anything is made.
pub async fn missing_or_unusable_keyring_entries_stop_the_start(db: Db) {
    let entry = TestEntry::new("master");
    let name = entry.name();
    let data = db.dir.path().join("keyring-missing");
    let run = serve_fails(&db, &data, &[("PROMPTVAULT_MASTER_KEY_KEYRING", &name)]).await;
    let line = run.fails(1);
    assert!(line.contains(&format!("the OS keyring has no entry {name}")), "{run}");
    assert!(line.contains("promptvault encryption keyring store"), "says how to fix it: {run}");
    assert!(!data.join("master.key").exists(), "no key is made in place of the missing one");
    assert!(!data.join("promptvault.db").exists(), "nothing was opened");
    // From the configuration, and for the previous key, likewise.
    let config = db.dir.path().join("keyring-missing.toml");
    std::fs::write(&config, format!("[encryption]\nprevious_master_key_keyring = \"{name}\"\n")).unwrap();
    let envs = [("PROMPTVAULT_CONFIG", config.to_str().unwrap())];
    let run = serve_fails(&db, &data, &envs).await;
    assert!(
        run.fails(1).contains(&format!("previous master key: the OS keyring has no entry {name}")),
        "{run}"
    );

    let run = serve_fails(&db, &data, &[("PROMPTVAULT_MASTER_KEY_KEYRING", "no-slash")]).await;
    assert!(run.fails(1).contains("PROMPTVAULT_MASTER_KEY_KEYRING: expected service/account"), "{run}");
    std::fs::write(&config, "[encryption]\nmaster_key_keyring = \"a/b/c\"\n").unwrap();
    let run = serve_fails(&db, &data, &envs).await;
    assert!(run.fails(6).contains("expected service/account"), "{run}");

    // An entry holding something that is not a key, put there by another
    // tool the way docs/security.md describes (a `user` key of that
    // description, linked into the persistent keyring): refused, naming
    // the entry and not what it holds.
    #[cfg(target_os = "linux")]
    {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        let garbage = "not-a-master-key-0123456789";
        let session = KeyRing::from_special_id(KeyRingIdentifier::Session, true).expect("a session keyring");
        let persistent = KeyRing::get_persistent(KeyRingIdentifier::Session).expect("the persistent keyring");
        let description = format!("keyring:{}@{}", entry.0.account(), entry.0.service());
        let key = session.add_key(&description, garbage).expect("add a user key");
        persistent.link_key(key).expect("link it into the persistent keyring");
        let run = serve_fails(&db, &data, &[("PROMPTVAULT_MASTER_KEY_KEYRING", &name)]).await;
        let line = run.fails(1);
        assert!(line.contains(&format!("the OS keyring entry {name} does not hold a master key")), "{run}");
        assert!(!line.contains(garbage), "{run}");
        let r = Call::new(&["encryption", "keyring", "delete", "--entry", &name]).run().await;
        r.success();
    }

    // The CLI: a missing entry to delete, a malformed name.
    let other = TestEntry::new("never-stored");
    let r = Call::new(&["encryption", "keyring", "delete", "--entry", &other.name()]).run().await;
    assert!(r.fails(3).contains("has no entry"), "{r}");
    let r = Call::new(&["encryption", "keyring", "store", "--entry", "a/b@c"]).run().await;
    assert!(r.fails(2).contains("expected service/account"), "{r}");
    let files = tempfile::tempdir().unwrap();
    let loose = files.path().join("loose.key");
    std::fs::write(&loose, MasterKey::generate().encode().as_str()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = Call::new(&[
            "encryption",
            "keyring",
            "store",
            "--entry",
            &other.name(),
            "--from-file",
            loose.to_str().unwrap(),
        ])
        .run()
        .await;
        assert!(r.fails(6).contains("readable by others"), "{r}");
    }
}

/// (d) Re-keying at start with the previous key in the keyring and the new
/// one in a file; afterwards the file alone opens the database.
pub async fn rekeying_from_a_keyring_entry(db: Db) {
    let old = TestEntry::new("master-old");
    let files = tempfile::tempdir().expect("temporary directory");
    let (old_file, old_fp) = key_file(files.path(), "old.key").await;
    store_from_file(&old, &old_file, false).await;
    std::fs::remove_file(&old_file).expect("the keyring holds the only copy now");

    let data = db.dir.path().join("keyring-rekey");
    let old_name = old.name();
    let served =
        Served::start(serve_command(&db, &data, &[("PROMPTVAULT_MASTER_KEY_KEYRING", &old_name)])).await;
    assert_eq!(served.master_fingerprint().await, old_fp);
    served.create_secret("kr/rekeyed", "Re-wrapped, not re-encrypted.").await;
    served.stop().await;

    let (new_file, new_fp) = key_file(files.path(), "new.key").await;
    let new_path = new_file.to_str().expect("UTF-8");
    let served = Served::start(serve_command(
        &db,
        &data,
        &[("PROMPTVAULT_MASTER_KEY_FILE", new_path), ("PROMPTVAULT_PREVIOUS_MASTER_KEY_KEYRING", &old_name)],
    ))
    .await;
    assert_eq!(served.master_fingerprint().await, new_fp);
    assert_eq!(served.text_of("kr/rekeyed").await, "Re-wrapped, not re-encrypted.");
    served.stop().await;

    // The old entry is no longer needed.
    Call::new(&["encryption", "keyring", "delete", "--entry", &old_name]).run().await.success();
    let served = Served::start(serve_command(&db, &data, &[("PROMPTVAULT_MASTER_KEY_FILE", new_path)])).await;
    assert_eq!(served.text_of("kr/rekeyed").await, "Re-wrapped, not re-encrypted.");
    served.stop().await;
}
