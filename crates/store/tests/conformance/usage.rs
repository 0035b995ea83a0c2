//! Renders, outcomes, metrics, keys and time.

use std::sync::Arc;

use promptvault_core::model::{Outcome, OutcomeRecord, PromptRecord, RenderMetadata};
use promptvault_core::{ApiKeyId, DeploymentModel, PromptId, UserId};
use promptvault_store::{NewApiKey, NewUser, OutcomeResult, UsageEvent, VersionSelector};
use promptvault_testkit::TestDb;
use serde_json::json;

use crate::fixtures::*;

fn render(
    t: &promptvault_core::model::Template,
    v: &promptvault_core::model::Version,
    at: chrono::DateTime<chrono::Utc>,
) -> PromptRecord {
    PromptRecord {
        id: PromptId::new(),
        template_id: t.id,
        prompt_type_id: t.prompt_type_id,
        version_id: v.id,
        version_seq: v.seq,
        data: json!({"name": "Ada"}),
        prompt_text: "Hello Ada".into(),
        sender_id: None,
        created_at: at,
        metadata: RenderMetadata {
            session_id: Some("s-1".into()),
            request_id: Some("r-1".into()),
            agent_id: Some("agent-7".into()),
            deployment_model: DeploymentModel::ElectronLocal,
        },
        outcome: None,
    }
}

fn outcome(id: PromptId, o: Outcome) -> UsageEvent {
    UsageEvent::Outcome {
        prompt_id: id,
        outcome: OutcomeRecord { outcome: o, detail: Some("judged".into()), at: now() },
    }
}

pub async fn usage_records_renders_outcomes_and_metrics(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, v1) = simple(&s, "used").await;
    let v2 = s.create_version(t.id, 1, version("two", "1.1.0"), now().into()).await.unwrap();
    let t0 = now();
    let a = render(&t, &v1, t0);
    let b = render(&t, &v2, t0 + chrono::Duration::seconds(1));
    let c = render(&t, &v2, t0 + chrono::Duration::seconds(2));
    let (ia, ib, ic) = (a.id, b.id, c.id);
    let results = s
        .record_usage(vec![
            UsageEvent::Render(Box::new(a.clone())),
            UsageEvent::Render(Box::new(b)),
            outcome(ia, Outcome::Success),
            UsageEvent::Render(Box::new(c)),
            outcome(ib, Outcome::Failure),
            outcome(ic, Outcome::Success),
            outcome(ia, Outcome::Failure),
            outcome(PromptId::new(), Outcome::Success),
        ])
        .await
        .unwrap();
    assert_eq!(
        results,
        [
            OutcomeResult::Recorded,
            OutcomeResult::Recorded,
            OutcomeResult::Recorded,
            OutcomeResult::AlreadyReported,
            OutcomeResult::UnknownPrompt
        ]
    );
    let stored = s.get_prompt(ia).await.unwrap().unwrap();
    assert_eq!(stored.metadata, a.metadata);
    assert_eq!((stored.data.clone(), stored.prompt_text.as_str()), (json!({"name": "Ada"}), "Hello Ada"));
    assert_eq!(stored.outcome.as_ref().map(|o| o.outcome), Some(Outcome::Success), "the first report stands");
    let m = s.template_metrics(t.id).await.unwrap();
    assert_eq!((m.total.times_used, m.total.successes, m.total.failures), (3, 2, 1));
    assert_eq!(m.total.last_used, Some(t0 + chrono::Duration::seconds(2)));
    let per: Vec<(u32, u64)> = m.versions.iter().map(|(s, m)| (*s, m.times_used)).collect();
    assert_eq!(per, [(2, 2), (1, 1)]);
    assert_eq!(m.versions[0].1.success_rate(), Some(0.5));
    // A second batch adds to the counters.
    s.record_usage(vec![UsageEvent::Render(Box::new(render(&t, &v1, t0)))]).await.unwrap();
    let m = s.template_metrics(t.id).await.unwrap();
    assert_eq!(m.total.times_used, 4);
    assert_eq!(
        m.total.last_used,
        Some(t0 + chrono::Duration::seconds(2)),
        "an older render does not move last_used back"
    );
    assert!(s.get_prompt(PromptId::new()).await.unwrap().is_none());
}

pub async fn usage_keeps_renders_of_deleted_versions(db: Arc<TestDb>) {
    let s = db.open().await;
    let (t, _) = simple(&s, "del-used").await;
    let v2 = s.create_version(t.id, 1, version("two", "1.1.0"), now().into()).await.unwrap();
    let r = render(&t, &v2, now());
    s.delete_draft(t.id, 2, promptvault_store::Expect::Any, now().into()).await.unwrap();
    let results = s
        .record_usage(vec![UsageEvent::Render(Box::new(r.clone())), outcome(r.id, Outcome::Success)])
        .await
        .unwrap();
    assert_eq!(results, [OutcomeResult::Recorded]);
    assert_eq!(s.get_prompt(r.id).await.unwrap().unwrap().prompt_text, "Hello Ada");
    assert_eq!(s.template_metrics(t.id).await.unwrap().total.times_used, 0);
    assert!(s.get_version(t.id, &VersionSelector::Seq(2)).await.unwrap().is_none());
}

pub async fn bootstrap_admin_happens_once(db: Arc<TestDb>) {
    let s = db.open().await;
    let user = admin(&s).await;
    let again = s
        .bootstrap_admin(
            NewUser { id: UserId::new(), roles: vec!["admin".into()], ..NewUser::default() },
            NewApiKey {
                id: ApiKeyId::new(),
                user_id: UserId::new(),
                name: "second".into(),
                prefix: "pv_second".into(),
                secret_hash: [1; 32],
                expires_at: None,
                deployment: None,
            },
        )
        .await
        .unwrap();
    assert!(!again);
    let prefix = format!("pv_{}", &user.to_string()[..8]);
    let key = s.find_api_key(&prefix).await.unwrap().unwrap();
    assert_eq!((key.user_id, key.roles.clone(), key.secret_hash), (user, vec!["admin".to_string()], [7; 32]));
    assert!(key.last_used_at.is_none());
    let at = now();
    s.touch_api_key(key.id, at).await.unwrap();
    assert_eq!(s.find_api_key(&prefix).await.unwrap().unwrap().last_used_at, Some(at));
    assert!(s.find_api_key("pv_second").await.unwrap().is_none());
    let u = s.get_user(user).await.unwrap().unwrap();
    assert_eq!((u.email.as_deref(), u.roles), (Some("admin@example.com"), vec!["admin".to_string()]));
}

pub async fn timestamps_round_trip_to_the_microsecond(db: Arc<TestDb>) {
    let s = db.open().await;
    let at = now();
    let (t, v) = {
        let (t, v) = simple(&s, "time").await;
        (t, v)
    };
    assert_eq!(s.get_template(&t.name).await.unwrap().unwrap().created_at, t.created_at);
    let v2 = s.create_version(t.id, 1, version("later", "1.1.0"), at.into()).await.unwrap();
    assert_eq!(v2.created_at, at);
    assert!(v.created_at <= v2.created_at + chrono::Duration::seconds(5));
}

pub async fn usage_races_with_draft_deletion(db: Arc<TestDb>) {
    // Renders of a draft being deleted at the same moment: whichever commits
    // first, the batch succeeds and every render is kept (attached or
    // detached), never an error.
    let s = db.open().await;
    let (t, _) = simple(&s, "race-used").await;
    for round in 0..20u32 {
        let latest = s.get_template(&t.name).await.unwrap().unwrap();
        let v = s
            .create_version(
                t.id,
                latest.latest_seq,
                version(&format!("round {round}"), &format!("2.{round}.0")),
                now().into(),
            )
            .await
            .unwrap();
        let renders: Vec<PromptRecord> = (0..5).map(|_| render(&t, &v, now())).collect();
        let batch = renders.iter().cloned().map(|r| UsageEvent::Render(Box::new(r))).collect();
        let (s1, s2) = (s.clone(), s.clone());
        let usage = tokio::spawn(async move { s1.record_usage(batch).await });
        let delete = tokio::spawn(async move {
            s2.delete_draft(t.id, v.seq, promptvault_store::Expect::Any, now().into()).await
        });
        usage.await.unwrap().unwrap();
        delete.await.unwrap().unwrap();
        for r in &renders {
            assert_eq!(s.get_prompt(r.id).await.unwrap().unwrap().prompt_text, "Hello Ada");
        }
    }
    assert_eq!(
        s.template_metrics(t.id).await.unwrap().total.times_used,
        0,
        "counters of deleted versions go with them"
    );
}
