//! Prompt types, templates, listing and search.

use std::collections::BTreeSet;
use std::sync::Arc;

use promptvault_core::model::{PromptRecord, RenderMetadata};
use promptvault_core::{PromptId, SecurityClassification, Tag, UserId, VersionStatus};
use promptvault_store::{
    Conflict, Expect, NewPromptType, NewTemplate, PageRequest, PromptTypePatch, StoreError, TemplateFilter,
    TemplatePatch, UsageEvent, VersionSelector,
};
use promptvault_testkit::TestDb;
use serde_json::json;

use crate::fixtures::*;

pub async fn prompt_types_round_trip(db: Arc<TestDb>) {
    let s = db.open().await;
    let at = now();
    let created = s
        .create_prompt_type(
            NewPromptType {
                key: key("agent"),
                name: "Agent system prompts".into(),
                schema: Some(json!({"required": ["agent_name"]})),
                policy: Default::default(),
            },
            at.into(),
        )
        .await
        .unwrap();
    assert_eq!(created.revision.0, 1);
    assert_eq!(created.created_at, at);
    let got = s.get_prompt_type(&key("agent")).await.unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(s.get_prompt_type_by_id(created.id).await.unwrap().unwrap(), created);
    assert!(s.get_prompt_type(&key("missing")).await.unwrap().is_none());
    prompt_type(&s, "basic").await;
    let keys: Vec<String> =
        s.list_prompt_types().await.unwrap().into_iter().map(|t| t.key.to_string()).collect();
    assert_eq!(keys, ["agent", "basic"]);
    let updated = s
        .update_prompt_type(
            &key("agent"),
            Expect::Revision(created.revision),
            PromptTypePatch { name: Some("Agents".into()), schema: Some(None), policy: Default::default() },
            now().into(),
        )
        .await
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.schema.clone(), updated.revision.0), ("Agents", None, 2));
    assert!(updated.updated_at.is_some());
}

pub async fn prompt_type_conflicts_and_stale_writes(db: Arc<TestDb>) {
    let s = db.open().await;
    let t = prompt_type(&s, "agent").await;
    let dup_key = s
        .create_prompt_type(
            NewPromptType {
                key: key("agent"),
                name: "Other".into(),
                schema: None,
                policy: Default::default(),
            },
            now().into(),
        )
        .await;
    assert!(matches!(dup_key, Err(StoreError::Conflict(Conflict::AlreadyExists { .. }))), "{dup_key:?}");
    let dup_name = s
        .create_prompt_type(
            NewPromptType {
                key: key("other"),
                name: t.name.clone(),
                schema: None,
                policy: Default::default(),
            },
            now().into(),
        )
        .await;
    assert!(matches!(dup_name, Err(StoreError::Conflict(Conflict::AlreadyExists { .. }))), "{dup_name:?}");
    s.update_prompt_type(
        &key("agent"),
        Expect::Revision(t.revision),
        PromptTypePatch { name: Some("A2".into()), schema: None, policy: Default::default() },
        now().into(),
    )
    .await
    .unwrap();
    let stale = s
        .update_prompt_type(
            &key("agent"),
            Expect::Revision(t.revision),
            PromptTypePatch { name: Some("A3".into()), schema: None, policy: Default::default() },
            now().into(),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Stale { .. })), "{stale:?}");
    assert_eq!(s.get_prompt_type(&key("agent")).await.unwrap().unwrap().name, "A2");
    let missing =
        s.update_prompt_type(&key("nope"), Expect::Any, PromptTypePatch::default(), now().into()).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
}

pub async fn prompt_type_in_use_cannot_be_deleted(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "a").await;
    let res = s.delete_prompt_type(&t.type_key, Expect::Any, now().into()).await;
    assert!(matches!(res, Err(StoreError::Conflict(Conflict::InUse { count: 1, .. }))), "{res:?}");
    s.delete_template(&t.name, Expect::Any, now().into()).await.unwrap();
    s.delete_prompt_type(&t.type_key, Expect::Any, now().into()).await.unwrap();
    assert!(s.get_prompt_type(&t.type_key).await.unwrap().is_none());
}

pub async fn template_create_get_and_first_version(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, v) = template(
        &s,
        TemplateSpec {
            name: "support/en/greeting",
            tags: &["b", "a", "b"],
            description: Some("Greets"),
            ..TemplateSpec::default()
        },
    )
    .await;
    assert_eq!(t.name.as_str(), "support/en/greeting");
    assert_eq!(t.tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!((t.latest_seq, t.latest_version.to_string(), t.revision.0), (1, "1.0.0".into(), 1));
    assert_eq!((v.seq, v.status, v.template_id), (1, VersionStatus::Draft, t.id));
    assert_eq!(v.content, content("Hello {{ name }}"));
    assert_eq!(s.get_template(&t.name).await.unwrap().unwrap(), t);
    let (rt, rv) = s.resolve(&t.name, &VersionSelector::Latest).await.unwrap().unwrap();
    assert_eq!((rt, rv), (t.clone(), v));
    assert!(s.get_template(&name("support/en/missing")).await.unwrap().is_none());
    assert_eq!(s.get_template_by_id(t.id).await.unwrap().unwrap(), t);
    assert!(s.get_template_by_id(promptvault_core::TemplateId::new()).await.unwrap().is_none());
}

pub async fn template_names_are_unique(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "dup").await;
    let res = s
        .create_template(
            NewTemplate {
                name: t.name.clone(),
                prompt_type_id: t.prompt_type_id,
                description: None,
                long_description_markdown: None,
                creator_id: None,
                owner_id: None,
                tags: vec![],
                security_classification: SecurityClassification::Public,
                access: Default::default(),
            },
            version("x", "1.0.0"),
            now().into(),
        )
        .await;
    assert!(matches!(res, Err(StoreError::Conflict(Conflict::AlreadyExists { .. }))), "{res:?}");
    // The failed write left nothing behind.
    let page = s.list_templates(&TemplateFilter::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(page.items.len(), 1);
}

pub async fn template_update_checks_revision(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "meta").await;
    let other = prompt_type(&s, "other").await;
    let patch = TemplatePatch {
        prompt_type_id: Some(other.id),
        description: Some(Some("now described".into())),
        long_description_markdown: Some(Some("# Title".into())),
        owner_id: None,
        tags: Some(vec![Tag::parse("z").unwrap()]),
        security_classification: Some(SecurityClassification::Confidential),
        access: Default::default(),
    };
    let u =
        s.update_template(&t.name, Expect::Revision(t.revision), patch.clone(), now().into()).await.unwrap();
    assert_eq!(u.revision.0, 2);
    assert_eq!(u.type_key.as_str(), "other");
    assert_eq!(u.description.as_deref(), Some("now described"));
    assert_eq!(u.security_classification, SecurityClassification::Confidential);
    assert_eq!(u.tags, vec![Tag::parse("z").unwrap()]);
    let stale = s
        .update_template(&t.name, Expect::Revision(t.revision), TemplatePatch::default(), now().into())
        .await;
    assert!(matches!(stale, Err(StoreError::Stale { current: Some(r), .. }) if r.0 == 2), "{stale:?}");
    assert_eq!(s.get_template(&t.name).await.unwrap().unwrap(), u);
    let cleared = s
        .update_template(
            &t.name,
            Expect::Any,
            TemplatePatch { description: Some(None), ..TemplatePatch::default() },
            now().into(),
        )
        .await
        .unwrap();
    assert_eq!(cleared.description, None);
    assert_eq!(cleared.long_description_markdown.as_deref(), Some("# Title"));
}

pub async fn template_delete_keeps_renders_detached(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, v) = simple(&s, "gone").await;
    let id = PromptId::new();
    s.record_usage(vec![UsageEvent::Render(Box::new(PromptRecord {
        id,
        template_id: t.id,
        prompt_type_id: t.prompt_type_id,
        version_id: v.id,
        version_seq: 1,
        data: json!({"name": "x"}),
        prompt_text: "Hello x".into(),
        sender_id: None,
        created_at: now(),
        metadata: RenderMetadata::default(),
        outcome: None,
    }))])
    .await
    .unwrap();
    let stale = s
        .delete_template(&t.name, Expect::Revision(promptvault_core::model::Revision(9)), now().into())
        .await;
    assert!(matches!(stale, Err(StoreError::Stale { .. })), "{stale:?}");
    s.delete_template(&t.name, Expect::Revision(t.revision), now().into()).await.unwrap();
    assert!(s.get_template(&t.name).await.unwrap().is_none());
    assert!(s.resolve(&t.name, &VersionSelector::Latest).await.unwrap().is_none());
    let kept = s.get_prompt(id).await.unwrap().unwrap();
    assert_eq!(kept.prompt_text, "Hello x");
    let again = s.delete_template(&t.name, Expect::Any, now().into()).await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    // The name is free again.
    simple(&s, "gone").await;
}

pub async fn listing_pages_cover_everything_once(db: Arc<TestDb>) {
    let s = db.open().await;
    let mut names = BTreeSet::new();
    for i in 0..23 {
        let n = format!("t{i:02}");
        simple(&s, &n).await;
        names.insert(n);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest { limit: 5, cursor: None };
    loop {
        let p = s.list_templates(&TemplateFilter::default(), &page).await.unwrap();
        assert!(p.items.len() <= 5);
        seen.extend(p.items.into_iter().map(|t| t.name.to_string()));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), names);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "name order");
}

fn names(p: &promptvault_store::Page<promptvault_core::model::Template>) -> Vec<&str> {
    p.items.iter().map(|t| t.name.as_str()).collect()
}

pub async fn listing_filters(db: Arc<TestDb>) {
    let s = db.open().await;
    template(
        &s,
        TemplateSpec { name: "support/a", type_key: "chat", tags: &["en"], ..TemplateSpec::default() },
    )
    .await;
    template(
        &s,
        TemplateSpec {
            name: "support/en/b",
            tags: &["en", "faq"],
            classification: SecurityClassification::Confidential,
            ..TemplateSpec::default()
        },
    )
    .await;
    template(&s, TemplateSpec { name: "support2/c", ..TemplateSpec::default() }).await;
    let (d, _) =
        template(&s, TemplateSpec { name: "sales/d", type_key: "chat", ..TemplateSpec::default() }).await;
    let owner = admin(&s).await;
    s.update_template(
        &name("support/a"),
        Expect::Any,
        TemplatePatch { owner_id: Some(Some(owner)), ..TemplatePatch::default() },
        now().into(),
    )
    .await
    .unwrap();
    s.set_version_status(d.id, 1, Expect::Any, VersionStatus::Review, now().into()).await.unwrap();
    let all = PageRequest::default();
    let list = |f: TemplateFilter| {
        let s = s.clone();
        let all = all.clone();
        async move { s.list_templates(&f, &all).await.unwrap() }
    };
    assert_eq!(
        names(&list(TemplateFilter { folder: Some("support".into()), ..Default::default() }).await),
        ["support/a", "support/en/b"]
    );
    assert_eq!(
        names(&list(TemplateFilter { folder: Some("support/en/".into()), ..Default::default() }).await),
        ["support/en/b"]
    );
    assert_eq!(
        names(&list(TemplateFilter { type_key: Some(key("chat")), ..Default::default() }).await),
        ["sales/d", "support/a"]
    );
    assert_eq!(
        names(&list(TemplateFilter { tag: Some(Tag::parse("faq").unwrap()), ..Default::default() }).await),
        ["support/en/b"]
    );
    assert_eq!(
        names(
            &list(TemplateFilter {
                tag: Some(Tag::parse("en").unwrap()),
                type_key: Some(key("general")),
                ..Default::default()
            })
            .await
        ),
        ["support/en/b"]
    );
    assert_eq!(
        names(
            &list(TemplateFilter {
                classification: Some(SecurityClassification::Confidential),
                ..Default::default()
            })
            .await
        ),
        ["support/en/b"]
    );
    assert_eq!(
        names(&list(TemplateFilter { status: Some(VersionStatus::Review), ..Default::default() }).await),
        ["sales/d"]
    );
    assert_eq!(
        names(
            &list(TemplateFilter {
                status: Some(VersionStatus::Draft),
                folder: Some("sales".into()),
                ..Default::default()
            })
            .await
        ),
        Vec::<&str>::new()
    );
    assert_eq!(
        names(&list(TemplateFilter { owner_id: Some(owner), ..Default::default() }).await),
        ["support/a"]
    );
    assert!(
        list(TemplateFilter { owner_id: Some(UserId::new()), ..Default::default() }).await.items.is_empty()
    );
}

pub async fn search_finds_words_and_follows_new_versions(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = template(
        &s,
        TemplateSpec {
            name: "support/refund-policy",
            description: Some("Explains refunds to customers"),
            tags: &["billing"],
            text: "You are a patient agent. Mention the thirty day window.",
            ..TemplateSpec::default()
        },
    )
    .await;
    template(
        &s,
        TemplateSpec {
            name: "marketing/launch",
            text: "Write an upbeat announcement.",
            ..TemplateSpec::default()
        },
    )
    .await;
    let search = |q: &str| {
        let s = s.clone();
        let f = TemplateFilter { query: Some(q.to_owned()), ..Default::default() };
        async move { s.list_templates(&f, &PageRequest::default()).await.unwrap() }
    };
    assert_eq!(names(&search("refund").await), ["support/refund-policy"], "name word");
    assert_eq!(names(&search("customers").await), ["support/refund-policy"], "description");
    assert_eq!(names(&search("billing").await), ["support/refund-policy"], "tag");
    assert_eq!(names(&search("thirty window").await), ["support/refund-policy"], "body, all words");
    assert_eq!(names(&search("upbe").await), ["marketing/launch"], "prefix");
    assert!(search("thirty upbeat").await.items.is_empty(), "all words must match");
    assert!(search("   ").await.items.is_empty());
    s.create_version(t.id, 1, version("Be brief about the fourteen day window.", "1.1.0"), now().into())
        .await
        .unwrap();
    assert!(search("thirty").await.items.is_empty(), "old text is no longer indexed");
    assert_eq!(names(&search("fourteen").await), ["support/refund-policy"]);
    let filtered = s
        .list_templates(
            &TemplateFilter {
                query: Some("window".into()),
                folder: Some("marketing".into()),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert!(filtered.items.is_empty(), "filters apply to search");
}

pub async fn search_queries_cannot_inject_syntax(db: Arc<TestDb>) {
    let s = db.open().await;
    template(&s, TemplateSpec { name: "x", text: "alpha beta", ..TemplateSpec::default() }).await;
    for q in [
        "\"alpha",
        "alpha OR",
        "NEAR(alpha",
        "alpha* & !",
        "'; DROP TABLE prompt_template; --",
        "a:*|b",
        "\\",
        "(((",
        "-alpha",
        "alpha AND NOT beta",
    ] {
        let res = s
            .list_templates(
                &TemplateFilter { query: Some(q.into()), ..Default::default() },
                &PageRequest::default(),
            )
            .await;
        assert!(res.is_ok(), "{q}: {res:?}");
    }
    assert_eq!(
        s.list_templates(&TemplateFilter::default(), &PageRequest::default()).await.unwrap().items.len(),
        1
    );
}

pub async fn invalid_cursors_are_refused(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "a").await;
    for cursor in ["garbage", "e30", "!!"] {
        let p = PageRequest { limit: 5, cursor: Some(cursor.into()) };
        assert!(
            matches!(s.list_templates(&TemplateFilter::default(), &p).await, Err(StoreError::InvalidCursor)),
            "{cursor}"
        );
        assert!(matches!(s.list_versions(t.id, &p).await, Err(StoreError::InvalidCursor)), "{cursor}");
    }
}
