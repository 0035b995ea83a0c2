//! `promptvault encryption`: status and rotation through the API, new master
//! keys, and re-keying the database directly.

use crate::support::{Call, Cli, Db};

pub async fn encryption_keys_from_the_command_line(db: Db) {
    let cli = Cli::start(&db).await;
    let text = cli.file("secret.txt", "Sealed text, no variables.");
    let r = cli
        .run(&["templates", "create", "cli/secret", "--classification", "confidential", "--file", &text])
        .await;
    r.success();
    let r = cli.run(&["--json", "encryption", "status"]).await;
    let before = r.json();
    assert_eq!(before["enabled"], true, "{r}");
    assert_eq!(before["sealed_rows"], 1, "{r}");
    let r = cli.run(&["encryption", "rotate"]).await;
    assert!(r.ok().contains("active key"), "{r}");

    // A new master key: written 0600, never over an existing file.
    let dir = tempfile::tempdir().unwrap();
    let new_key = dir.path().join("new.key");
    let new_key = new_key.to_str().unwrap();
    let r = Call::new(&["encryption", "generate-key", "--out", new_key]).run().await;
    assert!(r.ok().contains("wrote master key sha256:"), "{r}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(new_key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let r = Call::new(&["encryption", "generate-key", "--out", new_key]).run().await;
    assert!(r.fails(1).contains("cannot create key file"), "{r}");

    // Re-key the database while the server runs; it keeps serving.
    let data_dir = db.dir.path().to_str().unwrap().to_owned();
    let mut rekey = Call::new(&[
        "encryption",
        "rekey",
        "--new-key-file",
        new_key,
        "--data-dir",
        &data_dir,
        "--database-url",
        &db.options.url,
    ]);
    if db.kind == promptvault_testkit::Kind::Postgres {
        rekey = rekey.env("PROMPTVAULT_PG_SCHEMA", &db.options.pg_schema);
    }
    let r = rekey.run().await;
    assert!(r.ok().contains("data keys re-wrapped"), "{r}");
    let r = cli.run(&["--json", "encryption", "status"]).await;
    let fp = promptvault_store::MasterKey::parse(&std::fs::read_to_string(new_key).unwrap())
        .unwrap()
        .fingerprint();
    assert_eq!(r.json()["master_fingerprint"], fp.as_str(), "{r}");
    let r = cli.run(&["versions", "show", "cli/secret", "1"]).await;
    assert!(r.ok().contains("Sealed"), "{r}");
    // A key file others may read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(new_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = Call::new(&["encryption", "rekey", "--new-key-file", new_key, "--data-dir", &data_dir])
            .run()
            .await;
        assert!(r.fails(6).contains("readable by others"), "{r}");
    }
    cli.stop().await;
}
