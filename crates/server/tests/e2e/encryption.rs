//! Encryption at rest seen from outside: raw database files and dumps,
//! master keys at start, rotation through the API, signed manifests.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use promptvault_testkit::{Kind, TestDb};
use serde_json::json;

use crate::support::{TestServer, settings};

const SEALED: &str = "PVSEALEDMARK9X";
const PARAM: &str = "PVPARAMMARK4K";
const PLAIN: &str = "PVPLAINMARK2W";
const PLAIN_PARAM: &str = "PVPLAINPARAM6J";

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every byte the database keeps: the SQLite file with its WAL and shared
/// memory files, or a `pg_dump` of the test schema.
async fn raw_bytes(db: &TestDb) -> Vec<u8> {
    match db.kind {
        Kind::Sqlite => {
            let path = db.options.url.trim_start_matches("sqlite://").to_owned();
            let mut all = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                    all.extend_from_slice(&b);
                }
            }
            all
        }
        Kind::Postgres => {
            let url = std::env::var("PROMPTVAULT_TEST_DATABASE_URL").expect("postgres url");
            let out = std::process::Command::new("pg_dump")
                .arg("--schema")
                .arg(&db.options.pg_schema)
                .arg(&url)
                .output()
                .expect("pg_dump runs");
            assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        }
    }
}

pub async fn confidential_content_never_reaches_the_disk_in_the_clear(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    for (name, class, text) in [
        ("vault/secret", "confidential", format!("Confidential {SEALED}: {{{{ who }}}}")),
        ("vault/top", "restricted", format!("Restricted {SEALED}: {{{{ who }}}}")),
        ("open/plain", "internal", format!("Internal {PLAIN}: {{{{ who }}}}")),
    ] {
        let body = json!({
            "name": name,
            "security_classification": class,
            "template_text": text,
            "parameter_schema": {"type": "object", "properties": {"who": {"type": "string"}}, "required": ["who"]},
        });
        s.post("templates", &body).await.ok(201);
    }
    for (name, who) in [("vault/secret", PARAM), ("open/plain", PLAIN_PARAM)] {
        let r = s
            .post(&format!("templates/{name}/render"), &json!({"version": 1, "parameters": {"who": who}}))
            .await;
        r.ok(200);
    }
    // Through the API: present.
    let r = s.get("templates/vault/secret/versions/1").await;
    assert!(r.ok(200).to_string().contains(SEALED));
    let r = s.post("templates/vault/secret/render", &json!({"version": 1, "parameters": {"who": "x"}})).await;
    assert!(r.ok(200)["text"].as_str().unwrap().contains(SEALED));
    // Search: the sealed templates are found by name, not by their text.
    let found = s.get(&format!("templates?q={SEALED}")).await;
    assert_eq!(found.ok(200)["items"].as_array().unwrap().len(), 0, "{:?}", found.body);
    let found = s.get("templates?q=vault").await;
    assert_eq!(found.ok(200)["items"].as_array().unwrap().len(), 2);

    // Renders are written by the usage writer: stop the server so every
    // record is on disk, then look at the raw bytes.
    s.stop().await;
    let raw = raw_bytes(&db).await;
    assert!(contains(&raw, PLAIN), "the internal template is stored plain (the search must see bytes)");
    assert!(contains(&raw, "vault/secret"), "names stay readable");
    assert!(!contains(&raw, SEALED), "confidential/restricted template text found in the raw database");
    // Render parameters and rendered text: sealed for the confidential
    // template, plain for the internal one.
    assert!(contains(&raw, PLAIN_PARAM), "the internal render is stored plain");
    assert!(!contains(&raw, PARAM), "a confidential render's parameters found in the raw database");
    // And both renders were recorded (read back through the API).
    let s = TestServer::start(&db).await;
    let prompts = s.get("templates/vault/secret/metrics").await;
    assert_eq!(prompts.ok(200)["total"]["times_used"], 2);
}

pub async fn a_wrong_or_exposed_master_key_stops_the_start(db: Arc<TestDb>) {
    let mut s = TestServer::start(&db).await;
    s.template("kept", "Hello {{ name }}", &["name"]).await;
    s.stop().await;
    let key_file = db.dir.path().join("master.key");
    let original = std::fs::read_to_string(&key_file).expect("a master key was made next to the data");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        // Readable by others: refused.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = promptvault_server::start(settings(&db)).await.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("readable by others"), "{err}");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Another key: refused, naming the expected fingerprint.
    let expected = promptvault_store::MasterKey::parse(&original).unwrap().fingerprint();
    let other = db.dir.path().join("other.key");
    promptvault_server::encryption::write_key_file(&other, &promptvault_store::MasterKey::generate())
        .unwrap();
    let mut with_other = settings(&db);
    with_other.encryption.master_key_file = Some(other.clone());
    let err = promptvault_server::start(with_other.clone()).await.map(|_| ()).unwrap_err().to_string();
    assert!(err.contains(&expected), "{err}");
    // Told to re-key (the previous key given): starts, and the data is there.
    with_other.encryption.previous_master_key_file = Some(key_file.clone());
    let s = TestServer::start_with(with_other.clone()).await;
    assert!(s.get("templates/kept/versions/1").await.ok(200).to_string().contains("Hello"));
    drop(s);
}

pub async fn data_keys_rotate_through_the_api(db: Arc<TestDb>) {
    let s = TestServer::start(&db).await;
    for i in 0..3 {
        let body = json!({"name": format!("c/{i}"), "security_classification": "confidential", "template_text": "Secret {{ x }}",
            "parameter_schema": {"type": "object", "properties": {"x": {"type": "string"}}}});
        s.post("templates", &body).await.ok(201);
    }
    let before = s.get("admin/encryption").await.ok(200).clone();
    assert_eq!(before["enabled"], true);
    assert!(before["master_fingerprint"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(before["sealed_rows"], 3);
    let r = s.post("admin/encryption/rotate", &json!({})).await;
    assert_eq!(r.status, 202);
    let new_key = r.body["active_key"].as_str().unwrap().to_owned();
    assert_ne!(Some(new_key.as_str()), before["active_key"].as_str());
    // The worker re-encrypts in the background; follow its progress.
    let mut status = serde_json::Value::Null;
    for _ in 0..200 {
        status = s.get("admin/encryption").await.ok(200).clone();
        if status["pending_rows"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["pending_rows"], 0, "{status}");
    let active = status["keys"].as_array().unwrap().iter().find(|k| k["active"] == true).unwrap();
    assert_eq!(active["id"], new_key.as_str());
    assert_eq!(active["rows"], 3);
    s.get("templates/c/1/versions/1").await.ok(200);
    // Only holders of encryption permissions see or rotate keys.
    let anon = s.anonymous();
    assert_eq!(anon.get("admin/encryption").await.status, 401);
}

pub async fn renders_carry_a_signature_the_public_key_verifies(db: Arc<TestDb>) {
    let s = TestServer::start(&db).await;
    s.template("signed", "Hello {{ name }}", &["name"]).await;
    let key = s.anonymous().get("/.well-known/promptvault/signing-key").await;
    let key = key.ok(200).clone();
    assert_eq!(key["algorithm"], "Ed25519");
    let public =
        base64::engine::general_purpose::STANDARD.decode(key["public_key"].as_str().unwrap()).unwrap();
    let public = ed25519_dalek::VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();

    let r = s
        .post("templates/signed/render", &json!({"version": 1, "parameters": {"name": "Ada"}, "sign": true}))
        .await;
    let body = r.ok(200).clone();
    let sig = &body["signature"];
    assert_eq!(sig["key_id"], key["key_id"]);
    let m = &sig["manifest"];
    assert_eq!(m["content_hash"], body["content_hash"]);
    let payload = format!(
        "promptvault-manifest-v1\n{}\n{}\n{}\n{}\n{}",
        m["name"].as_str().unwrap(),
        m["version"].as_str().unwrap(),
        m["seq"],
        m["content_hash"].as_str().unwrap(),
        m["classification"].as_str().unwrap()
    );
    let bytes = base64::engine::general_purpose::STANDARD.decode(sig["signature"].as_str().unwrap()).unwrap();
    let signature = ed25519_dalek::Signature::from_bytes(&bytes.try_into().unwrap());
    public.verify_strict(payload.as_bytes(), &signature).expect("the signature verifies");
    // A changed manifest does not.
    let forged = payload.replace("internal", "public");
    assert!(public.verify_strict(forged.as_bytes(), &signature).is_err());
    // Without `sign`, no signature.
    let r = s.post("templates/signed/render", &json!({"version": 1, "parameters": {"name": "Ada"}})).await;
    assert!(r.ok(200).get("signature").is_none());
}

pub async fn forged_retention_checkpoints_fail_verification(db: Arc<TestDb>) {
    let s = TestServer::start(&db).await;
    s.template("audited", "Hello {{ name }}", &["name"]).await;
    // Everything so far becomes old enough to purge (the events are read
    // first, so the audit writer has flushed them).
    s.get("audit/events").await.ok(200);
    db.exec("UPDATE audit_event SET at = '2020-01-01T00:00:00.000000Z'").await;
    let r = s.post("audit/purge", &json!({"older_than_days": 1})).await;
    assert!(r.ok(200)["purged"].as_u64().unwrap() > 0, "{:?}", r.body);
    let v = s.get("audit/verify").await.ok(200).clone();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["checkpoint_signature"], "valid", "{v}");
    // A checkpoint changed behind the server's back: refused.
    db.exec("UPDATE audit_checkpoint SET purged = purged + 1").await;
    let v = s.get("audit/verify").await.ok(200).clone();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["checkpoint_signature"], "invalid", "{v}");
    assert_eq!(v["broken"]["kind"], "checkpoint_signature", "{v}");
}
