//! Encryption at rest: sealed content, bound ciphertexts, master keys,
//! rotation and reclassification.

use std::sync::Arc;

use promptvault_core::model::{PromptRecord, RenderMetadata};
use promptvault_core::{DeploymentModel, PromptId, SecurityClassification};
use promptvault_store::{
    MasterKey, PageRequest, StoreError, TemplateFilter, TemplatePatch, UsageEvent, VersionSelector,
};
use promptvault_testkit::TestDb;
use serde_json::json;

use crate::fixtures::*;

const MARKER: &str = "PVMARKER7Q2Z";

fn render_of(
    t: &promptvault_core::model::Template,
    v: &promptvault_core::model::Version,
    text: &str,
) -> UsageEvent {
    UsageEvent::Render(Box::new(PromptRecord {
        id: PromptId::new(),
        template_id: t.id,
        prompt_type_id: t.prompt_type_id,
        version_id: v.id,
        version_seq: v.seq,
        data: json!({"secret": text}),
        prompt_text: format!("rendered {text}"),
        sender_id: None,
        created_at: now(),
        metadata: RenderMetadata {
            session_id: None,
            request_id: None,
            agent_id: None,
            deployment_model: DeploymentModel::WebApplication,
        },
        outcome: None,
    }))
}

async fn classified(
    s: &Arc<dyn promptvault_store::Store>,
    n: &str,
    class: SecurityClassification,
    text: &str,
) -> (promptvault_core::model::Template, promptvault_core::model::Version) {
    template(s, TemplateSpec { name: n, classification: class, text, ..TemplateSpec::default() }).await
}

/// Rows whose plain columns still hold the marker.
async fn plain_markers(db: &TestDb) -> i64 {
    db.count(&format!(
        "SELECT (SELECT COUNT(*) FROM prompt_template_version WHERE template_text LIKE '%{MARKER}%') + \
         (SELECT COUNT(*) FROM prompt WHERE prompt_text LIKE '%{MARKER}%')"
    ))
    .await
}

pub async fn confidential_content_is_sealed_and_reads_back(db: Arc<TestDb>) {
    let s = db.open().await;
    let text = format!("Top secret {MARKER} for {{{{ name }}}}");
    let (t, v) = classified(&s, "sealed/one", SecurityClassification::Confidential, &text).await;
    let (pt, pv) = classified(&s, "plain/one", SecurityClassification::Internal, &text).await;
    s.record_usage(vec![render_of(&t, &v, MARKER), render_of(&pt, &pv, MARKER)]).await.unwrap();

    // Through the store: the same content, hash verified.
    let back = s.get_version(t.id, &VersionSelector::Latest).await.unwrap().unwrap();
    assert_eq!(back.content, v.content);
    assert!(matches!(&back.content.body, promptvault_core::TemplateBody::Text(x) if x.contains(MARKER)));
    // In the rows: the confidential template's text and render are sealed,
    // the internal one's are not.
    assert_eq!(plain_markers(&db).await, 2, "only the internal template's rows are plain");
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM prompt_template_version WHERE template_id = '{}' AND sealed IS NOT NULL \
             AND template_text IS NULL",
            t.id
        ))
        .await,
        1
    );
    // Search finds the sealed template by name, never by its text.
    let by_text = s
        .list_templates(
            &TemplateFilter { query: Some(MARKER.into()), ..TemplateFilter::default() },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    let names: Vec<String> = by_text.items.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, vec!["plain/one".to_owned()], "search by sealed text must not find it");
    let by_name = s
        .list_templates(
            &TemplateFilter { query: Some("sealed".into()), ..TemplateFilter::default() },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
}

pub async fn a_ciphertext_copied_to_another_row_does_not_open(db: Arc<TestDb>) {
    let s = db.open().await;
    let (a, _) = classified(&s, "victim", SecurityClassification::Restricted, "A: launch codes").await;
    let (b, _) = classified(&s, "attacker", SecurityClassification::Restricted, "B: harmless").await;
    db.exec(&format!(
        "UPDATE prompt_template_version SET sealed = (SELECT sealed FROM prompt_template_version WHERE template_id = '{a}'), \
         sealed_key = (SELECT sealed_key FROM prompt_template_version WHERE template_id = '{a}'), \
         content_hash = (SELECT content_hash FROM prompt_template_version WHERE template_id = '{a}') \
         WHERE template_id = '{b}'",
        a = a.id,
        b = b.id
    ))
    .await;
    let res = s.get_version(b.id, &VersionSelector::Latest).await;
    assert!(matches!(&res, Err(StoreError::Corrupt(m)) if m.contains("does not decrypt")), "{res:?}");
    // The original still opens.
    let ok = s.get_version(a.id, &VersionSelector::Latest).await.unwrap().unwrap();
    assert!(matches!(&ok.content.body, promptvault_core::TemplateBody::Text(x) if x == "A: launch codes"));
}

pub async fn another_master_key_is_refused_unless_rekeying(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, v) = classified(&s, "keyed", SecurityClassification::Confidential, "sealed text").await;
    s.close().await;
    let old = db.options.encryption.master.clone().unwrap();

    // A wrong key, and no key at all: refused, naming the fingerprint.
    let mut wrong = db.options.clone();
    wrong.encryption.master = Some(MasterKey::generate());
    let err = promptvault_store::connect(&wrong).await.map(|_| ()).unwrap_err();
    assert!(err.to_string().contains(&old.fingerprint()), "{err}");
    let mut none = db.options.clone();
    none.encryption.master = None;
    let err = promptvault_store::connect(&none).await.map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("no master key"), "{err}");

    // A new key with the previous one: re-wrapped, content opens.
    let new = MasterKey::generate();
    let mut rekey = db.options.clone();
    rekey.encryption.master = Some(new.clone());
    rekey.encryption.previous = Some(old.clone());
    let s2 = promptvault_store::connect(&rekey).await.unwrap();
    assert_eq!(s2.get_version(t.id, &VersionSelector::Latest).await.unwrap().unwrap().content, v.content);
    assert_eq!(s2.encryption_status().await.unwrap().master_fingerprint, Some(new.fingerprint()));
    s2.close().await;

    // Now the old key alone is the wrong one.
    let err = promptvault_store::connect(&db.options).await.map(|_| ()).unwrap_err();
    assert!(err.to_string().contains(&new.fingerprint()), "{err}");
    let mut again = db.options.clone();
    again.encryption.master = Some(new.clone());
    let s3 = promptvault_store::connect(&again).await.unwrap();
    assert_eq!(s3.get_version(t.id, &VersionSelector::Latest).await.unwrap().unwrap().content, v.content);

    // Online re-wrap through a running store.
    let newer = MasterKey::generate();
    s3.rewrap_master(newer.clone()).await.unwrap();
    assert_eq!(s3.encryption_status().await.unwrap().master_fingerprint, Some(newer.fingerprint()));
    // This store still serves with the keys it holds.
    assert_eq!(s3.get_version(t.id, &VersionSelector::Latest).await.unwrap().unwrap().content, v.content);
    // But it may not mint keys under a master key that is no longer current.
    assert!(s3.rotate_data_key().await.is_err());
    s3.close().await;
    let mut newest = db.options.clone();
    newest.encryption.master = Some(newer);
    let s4 = promptvault_store::connect(&newest).await.unwrap();
    assert_eq!(s4.get_version(t.id, &VersionSelector::Latest).await.unwrap().unwrap().content, v.content);
}

pub async fn rotation_reencrypts_in_resumable_steps(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = classified(&s, "rotating", SecurityClassification::Confidential, "v1 text").await;
    let mut last = s.get_version(t.id, &VersionSelector::Latest).await.unwrap().unwrap();
    for i in 2..=5 {
        let v = s
            .create_version(
                t.id,
                i - 1,
                version(&format!("v{i} text"), &format!("1.{}.0", i - 1)),
                now().into(),
            )
            .await
            .unwrap();
        last = v;
    }
    let renders: Vec<UsageEvent> = (0..7).map(|i| render_of(&t, &last, &format!("r{i}"))).collect();
    s.record_usage(renders).await.unwrap();
    let before = s.encryption_status().await.unwrap();
    assert_eq!(before.sealed_rows, 12);
    assert_eq!(before.pending_rows, 0);
    let old_key = before.active_key.clone().unwrap();

    let new_key = s.rotate_data_key().await.unwrap();
    assert_ne!(new_key, old_key);
    let st = s.encryption_status().await.unwrap();
    assert_eq!(st.pending_rows, 12);
    assert_eq!(st.active_key.as_deref(), Some(new_key.as_str()));

    // Two steps, then the process "dies": a fresh store carries on.
    assert!(s.reseal_batch(2).await.unwrap() > 0);
    assert!(s.reseal_batch(2).await.unwrap() > 0);
    let mid = s.encryption_status().await.unwrap().pending_rows;
    assert!(mid < 12 && mid > 0, "{mid}");
    drop(s);
    let s = db.open().await;
    let mut steps = 0;
    while s.reseal_batch(2).await.unwrap() > 0 {
        steps += 1;
        assert!(steps < 50, "re-encryption does not finish");
    }
    let st = s.encryption_status().await.unwrap();
    assert_eq!(st.pending_rows, 0);
    assert_eq!(st.sealed_rows, 12);
    let old = st.keys.iter().find(|k| k.id == old_key).unwrap();
    assert_eq!(old.rows, 0);
    assert!(old.retired_at.is_some(), "an unused old key is retired");
    // Nothing was lost.
    for seq in 1..=5 {
        let v = s.get_version(t.id, &VersionSelector::Seq(seq)).await.unwrap().unwrap();
        assert!(
            matches!(&v.content.body, promptvault_core::TemplateBody::Text(x) if x == &format!("v{seq} text"))
        );
    }
}

pub async fn reclassified_templates_are_sealed(db: Arc<TestDb>) {
    let s = db.open().await;
    let text = format!("Was internal {MARKER}");
    let (t, v) = classified(&s, "rising", SecurityClassification::Internal, &text).await;
    s.record_usage(vec![render_of(&t, &v, MARKER)]).await.unwrap();
    assert_eq!(plain_markers(&db).await, 2);
    s.update_template(
        &t.name,
        promptvault_store::Expect::Any,
        TemplatePatch {
            security_classification: Some(SecurityClassification::Confidential),
            ..TemplatePatch::default()
        },
        now().into(),
    )
    .await
    .unwrap();
    // Versions at once (same transaction); renders by the worker's steps.
    assert_eq!(plain_markers(&db).await, 1);
    while s.reseal_batch(100).await.unwrap() > 0 {}
    assert_eq!(plain_markers(&db).await, 0);
    assert_eq!(s.get_version(t.id, &VersionSelector::Latest).await.unwrap().unwrap().content, v.content);
    assert_eq!(db.count("SELECT COUNT(*) FROM seal_pending").await, 0);
}

pub async fn without_a_master_key_confidential_content_is_refused(db: Arc<TestDb>) {
    let mut plain = db.options.clone();
    plain.encryption.master = None;
    let s = promptvault_store::connect(&plain).await.unwrap();
    // Internal content is stored (plain); confidential is refused, not
    // written in the clear.
    classified(&s, "fine", SecurityClassification::Internal, "x").await;
    let ty = prompt_type(&s, "general").await;
    let res = s
        .create_template(
            promptvault_store::NewTemplate {
                name: name("refused"),
                prompt_type_id: ty.id,
                description: None,
                long_description_markdown: None,
                creator_id: None,
                owner_id: None,
                tags: vec![],
                security_classification: SecurityClassification::Confidential,
                access: Default::default(),
            },
            version("secret", "1.0.0"),
            now().into(),
        )
        .await;
    assert!(matches!(&res, Err(StoreError::Setup(m)) if m.contains("no master key")), "{res:?}");
    assert!(s.get_template(&name("refused")).await.unwrap().is_none());
}

pub async fn retention_checkpoints_are_signed_with_the_instance_key(db: Arc<TestDb>) {
    use base64::Engine as _;
    use ed25519_dalek::Verifier as _;
    let s = db.open().await;
    let old = now() - chrono::Duration::days(40);
    let ev = |i: i64| {
        let mut e = promptvault_core::audit::NewAuditEvent::new(
            old + chrono::Duration::seconds(i),
            "tester",
            "template.read",
            "template",
            promptvault_core::audit::AuditOutcome::Success,
        );
        e.resource = Some(format!("t{i}"));
        e
    };
    // No instance key yet: the checkpoint is unsigned.
    s.append_audit((0..3).map(ev).collect()).await.unwrap();
    let r = s.purge_audit(now() - chrono::Duration::days(30), now()).await.unwrap();
    assert!(r.checkpoint.unwrap().signature.is_none());

    let secret: [u8; 32] = rand_bytes();
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    let stored = s
        .instance_key(promptvault_store::InstanceKey {
            id: "pvk-test".into(),
            public_key: key.verifying_key().to_bytes().to_vec(),
            secret: zeroize::Zeroizing::new(secret.to_vec()),
            created_at: now(),
        })
        .await
        .unwrap();
    assert_eq!(stored.public_key, key.verifying_key().to_bytes().to_vec());
    s.append_audit((10..13).map(ev).collect()).await.unwrap();
    let r = s.purge_audit(now() - chrono::Duration::days(30), now()).await.unwrap();
    let cp = r.checkpoint.unwrap();
    let sig = cp.signature.clone().expect("signed with the instance key");
    assert_eq!(sig.key_id, "pvk-test");
    let check = |cp: &promptvault_core::audit::Checkpoint| {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&sig.signature).unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(&bytes.try_into().unwrap());
        key.verifying_key().verify(cp.payload().as_bytes(), &sig).is_ok()
    };
    assert!(check(&cp));
    // As read back: the same checkpoint, still verifying.
    let head = s.audit_head().await.unwrap().checkpoint.unwrap();
    assert_eq!(head, cp);
    assert!(check(&head));
    // An altered checkpoint no longer does.
    db.exec("UPDATE audit_checkpoint SET purged = purged + 1").await;
    let head = s.audit_head().await.unwrap().checkpoint.unwrap();
    assert!(!check(&head));
}

fn rand_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    let seed = uuid::Uuid::new_v4();
    let seed2 = uuid::Uuid::new_v4();
    out[..16].copy_from_slice(seed.as_bytes());
    out[16..].copy_from_slice(seed2.as_bytes());
    out
}
