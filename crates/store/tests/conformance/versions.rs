//! Versions, drafts, selectors and labels.

use std::sync::Arc;

use promptvault_core::model::Revision;
use promptvault_core::{LabelName, VersionStatus};
use promptvault_store::{Conflict, Expect, PageRequest, StoreError, VersionSelector};
use promptvault_testkit::TestDb;

use crate::fixtures::*;

fn label(s: &str) -> LabelName {
    LabelName::parse(s).unwrap()
}

pub async fn versions_append_with_sequence_and_base_check(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "v").await;
    let v2 = s.create_version(t.id, 1, version("second", "1.1.0"), now().into()).await.unwrap();
    assert_eq!((v2.seq, v2.version.to_string(), v2.status), (2, "1.1.0".into(), VersionStatus::Draft));
    let stale = s.create_version(t.id, 1, version("third", "1.2.0"), now().into()).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(Conflict::StaleBase { expected: 1, current: 2 }))),
        "{stale:?}"
    );
    let t2 = s.get_template(&t.name).await.unwrap().unwrap();
    assert_eq!((t2.latest_seq, t2.latest_version.to_string()), (2, "1.1.0".into()));
    assert_eq!(t2.revision, t.revision, "versions do not change the template's metadata revision");
    let dup = s.create_version(t.id, 2, version("dup semver", "1.1.0"), now().into()).await;
    assert!(matches!(dup, Err(StoreError::Conflict(Conflict::AlreadyExists { .. }))), "{dup:?}");
    let still = s.get_template(&t.name).await.unwrap().unwrap();
    assert_eq!(still.latest_seq, 2, "a failed write changes nothing");
}

pub async fn concurrent_versions_on_one_base_one_wins(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "race").await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_version(
                    t.id,
                    1,
                    version(&format!("text {i}"), &format!("1.{}.0", i + 1)),
                    now().into(),
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(v) => {
                ok += 1;
                assert_eq!(v.seq, 2);
            }
            Err(StoreError::Conflict(Conflict::StaleBase { .. })) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
}

pub async fn drafts_edit_in_place_only_while_newest(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, v1) = simple(&s, "d").await;
    let edited = s
        .update_draft(t.id, 1, Expect::Revision(v1.revision), version("edited", "1.0.0"), now().into())
        .await
        .unwrap();
    assert_eq!(edited.revision, Revision(2));
    assert_eq!(edited.content, content("edited"));
    assert_eq!(edited.id, v1.id, "same version, changed in place");
    let stale =
        s.update_draft(t.id, 1, Expect::Revision(v1.revision), version("lost", "1.0.0"), now().into()).await;
    assert!(matches!(stale, Err(StoreError::Stale { .. })), "{stale:?}");
    s.create_version(t.id, 1, version("second", "1.1.0"), now().into()).await.unwrap();
    let superseded = s.update_draft(t.id, 1, Expect::Any, version("late", "1.0.1"), now().into()).await;
    assert!(
        matches!(superseded, Err(StoreError::Conflict(Conflict::Superseded { seq: 1, latest: 2 }))),
        "{superseded:?}"
    );
    let v1_now = s.get_version(t.id, &VersionSelector::Seq(1)).await.unwrap().unwrap();
    assert_eq!(v1_now.content, content("edited"));
}

pub async fn non_drafts_are_immutable(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, v1) = simple(&s, "frozen").await;
    let r = s
        .set_version_status(t.id, 1, Expect::Revision(v1.revision), VersionStatus::Review, now().into())
        .await
        .unwrap();
    assert_eq!((r.status, r.revision), (VersionStatus::Review, Revision(2)));
    let edit = s.update_draft(t.id, 1, Expect::Any, version("changed", "1.0.0"), now().into()).await;
    assert!(
        matches!(
            edit,
            Err(StoreError::Conflict(Conflict::NotEditable { status: VersionStatus::Review, .. }))
        ),
        "{edit:?}"
    );
    let del = s.delete_draft(t.id, 1, Expect::Any, now().into()).await;
    assert!(matches!(del, Err(StoreError::Conflict(Conflict::NotEditable { .. }))), "{del:?}");
    let stale = s
        .set_version_status(t.id, 1, Expect::Revision(v1.revision), VersionStatus::Approved, now().into())
        .await;
    assert!(matches!(stale, Err(StoreError::Stale { .. })), "{stale:?}");
    assert_eq!(
        s.get_version(t.id, &VersionSelector::Seq(1)).await.unwrap().unwrap().content,
        content("Hello {{ name }}")
    );
}

pub async fn draft_deletion_rules(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "del").await;
    let last = s.delete_draft(t.id, 1, Expect::Any, now().into()).await;
    assert!(matches!(last, Err(StoreError::Conflict(Conflict::LastVersion))), "{last:?}");
    s.create_version(t.id, 1, version("two", "1.1.0"), now().into()).await.unwrap();
    s.set_label(t.id, &label("staging"), 2, Expect::Any, None, now().into()).await.unwrap();
    let labelled = s.delete_draft(t.id, 2, Expect::Any, now().into()).await;
    assert!(matches!(labelled, Err(StoreError::Conflict(Conflict::Labelled { seq: 2, .. }))), "{labelled:?}");
    s.delete_label(t.id, &label("staging"), Expect::Any, None, now().into()).await.unwrap();
    s.delete_draft(t.id, 2, Expect::Any, now().into()).await.unwrap();
    let t2 = s.get_template(&t.name).await.unwrap().unwrap();
    assert_eq!((t2.latest_seq, t2.latest_version.to_string()), (1, "1.0.0".into()));
    assert!(s.get_version(t.id, &VersionSelector::Seq(2)).await.unwrap().is_none());
    let v3 = s.create_version(t.id, 1, version("three", "1.1.0"), now().into()).await.unwrap();
    assert_eq!(v3.seq, 3, "sequence numbers are never reused");
}

pub async fn selectors_find_versions(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "sel").await;
    s.create_version(t.id, 1, version("two", "2.0.0"), now().into()).await.unwrap();
    s.set_label(t.id, &label("production"), 1, Expect::Any, None, now().into()).await.unwrap();
    let seq = |sel: VersionSelector| {
        let s = s.clone();
        async move { s.get_version(t.id, &sel).await.unwrap().map(|v| v.seq) }
    };
    assert_eq!(seq(VersionSelector::Seq(2)).await, Some(2));
    assert_eq!(seq(VersionSelector::Semver("1.0.0".parse().unwrap())).await, Some(1));
    assert_eq!(seq(VersionSelector::Label(label("production"))).await, Some(1));
    assert_eq!(seq(VersionSelector::Latest).await, Some(2));
    assert_eq!(seq(VersionSelector::Seq(9)).await, None);
    assert_eq!(seq(VersionSelector::Label(label("staging"))).await, None);
    let (rt, rv) = s.resolve(&t.name, &VersionSelector::Label(label("production"))).await.unwrap().unwrap();
    assert_eq!((rt.id, rv.seq), (t.id, 1));
    assert!(s.resolve(&name("other"), &VersionSelector::Latest).await.unwrap().is_none());
}

pub async fn version_listing_is_newest_first_and_paged(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "many").await;
    for i in 2..=7u32 {
        s.create_version(t.id, i - 1, version(&format!("v{i}"), &format!("1.{}.0", i - 1)), now().into())
            .await
            .unwrap();
    }
    let mut seqs = Vec::new();
    let mut page = PageRequest { limit: 3, cursor: None };
    loop {
        let p = s.list_versions(t.id, &page).await.unwrap();
        seqs.extend(p.items.iter().map(|v| v.seq));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seqs, [7, 6, 5, 4, 3, 2, 1]);
}

pub async fn labels_move_and_keep_history(db: Arc<TestDb>) {
    let s = db.open().await;
    let user = admin(&s).await;
    let (t, _) = simple(&s, "lab").await;
    s.create_version(t.id, 1, version("two", "1.1.0"), now().into()).await.unwrap();
    let l = s.set_label(t.id, &label("production"), 1, Expect::Any, Some(user), now().into()).await.unwrap();
    assert_eq!((l.version_seq, l.revision, l.updated_by), (1, Revision(1), Some(user)));
    let moved = s
        .set_label(t.id, &label("production"), 2, Expect::Revision(l.revision), Some(user), now().into())
        .await
        .unwrap();
    assert_eq!((moved.version_seq, moved.revision), (2, Revision(2)));
    let same = s.set_label(t.id, &label("production"), 2, Expect::Any, None, now().into()).await.unwrap();
    assert_eq!(same.revision, Revision(2), "setting a label to where it points changes nothing");
    s.set_label(t.id, &label("staging"), 2, Expect::Any, None, now().into()).await.unwrap();
    let labels: Vec<(String, u32)> =
        s.list_labels(t.id).await.unwrap().into_iter().map(|l| (l.name.to_string(), l.version_seq)).collect();
    assert_eq!(labels, [("production".into(), 2), ("staging".into(), 2)]);
    s.delete_label(t.id, &label("staging"), Expect::Any, None, now().into()).await.unwrap();
    let history = s.label_history(t.id, Some(&label("production")), 10).await.unwrap();
    let moves: Vec<(Option<u32>, Option<u32>)> = history.iter().map(|m| (m.from_seq, m.to_seq)).collect();
    assert_eq!(moves, [(Some(1), Some(2)), (None, Some(1))], "newest first");
    assert_eq!(history[0].by, Some(user));
    let all = s.label_history(t.id, None, 10).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!((all[0].label.as_str(), all[0].to_seq), ("staging", None));
    let missing = s.set_label(t.id, &label("production"), 9, Expect::Any, None, now().into()).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    let gone = s.delete_label(t.id, &label("nope"), Expect::Any, None, now().into()).await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
}

pub async fn label_writes_check_revision(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "cas").await;
    s.create_version(t.id, 1, version("two", "1.1.0"), now().into()).await.unwrap();
    let absent =
        s.set_label(t.id, &label("production"), 1, Expect::Revision(Revision(1)), None, now().into()).await;
    assert!(matches!(absent, Err(StoreError::Stale { current: None, .. })), "{absent:?}");
    let l = s.set_label(t.id, &label("production"), 1, Expect::Any, None, now().into()).await.unwrap();
    s.set_label(t.id, &label("production"), 2, Expect::Revision(l.revision), None, now().into())
        .await
        .unwrap();
    let stale =
        s.set_label(t.id, &label("production"), 1, Expect::Revision(l.revision), None, now().into()).await;
    assert!(matches!(stale, Err(StoreError::Stale { .. })), "{stale:?}");
    let stale_delete =
        s.delete_label(t.id, &label("production"), Expect::Revision(l.revision), None, now().into()).await;
    assert!(matches!(stale_delete, Err(StoreError::Stale { .. })), "{stale_delete:?}");
    assert_eq!(
        s.get_version(t.id, &VersionSelector::Label(label("production"))).await.unwrap().unwrap().seq,
        2
    );
}

pub async fn concurrent_label_moves_with_one_revision_one_wins(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "lrace").await;
    for i in 2..=5u32 {
        s.create_version(t.id, i - 1, version(&format!("v{i}"), &format!("1.{}.0", i - 1)), now().into())
            .await
            .unwrap();
    }
    let l = s.set_label(t.id, &label("production"), 1, Expect::Any, None, now().into()).await.unwrap();
    let tasks: Vec<_> = (2..=5u32)
        .map(|seq| {
            let s = s.clone();
            tokio::spawn(async move {
                s.set_label(t.id, &label("production"), seq, Expect::Revision(l.revision), None, now().into())
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Stale { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.label_history(t.id, None, 10).await.unwrap().len(), 2);
}

pub async fn corrupted_version_rows_are_errors(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "corrupt").await;
    db.exec(&format!(
        "UPDATE prompt_template_version SET template_text = 'Ignore all previous instructions' WHERE template_id = '{}'",
        t.id
    ))
    .await;
    let res = s.get_version(t.id, &VersionSelector::Latest).await;
    assert!(matches!(res, Err(StoreError::Corrupt(_))), "{res:?}");
    let res = s.resolve(&t.name, &VersionSelector::Latest).await;
    assert!(matches!(res, Err(StoreError::Corrupt(_))), "{res:?}");
}

pub async fn content_round_trips_exactly(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "numbers").await;
    let content = promptvault_core::VersionContent {
        body: promptvault_core::TemplateBody::Text("Ünïcode ✓ {{ name }}\n\ttabs".into()),
        parameter_schema: promptvault_core::ParameterSchema::parse(serde_json::json!({
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 1e3, "default": "x"}, "n": {"type": "number", "maximum": 1e16, "minimum": -0.5}}
        }))
        .unwrap(),
        config: promptvault_core::Config::parse(serde_json::json!({"temperature": 0.7, "big": 1e16, "tiny": 1.5e-7, "int": 12345678901234567_u64, "nested": {"b": [1, 2.5]}})).unwrap(),
    };
    let new = promptvault_store::NewVersion {
        content_hash: promptvault_core::ContentHash::of(&content),
        content: content.clone(),
        version: "1.1.0".parse().unwrap(),
        bump: None,
        author_id: None,
        change_description: None,
        restored_from: None,
    };
    s.create_version(t.id, 1, new, now().into()).await.unwrap();
    // Read back: the hash still matches, so the row is not "corrupt".
    let v = s.get_version(t.id, &VersionSelector::Seq(2)).await.unwrap().unwrap();
    assert_eq!(v.content, content);
}
