//! Identities: users with their seed fields, custom roles, API keys, web
//! sessions, and the audit events their writes carry.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use promptvault_core::audit::{AuditOutcome, NewAuditEvent};
use promptvault_core::authz::{Permission, RoleDef};
use promptvault_core::model::Revision;
use promptvault_core::{ApiKeyId, UserId};
use promptvault_store::{
    AuditFilter, Conflict, Expect, NewApiKey, NewUser, Store, StoreError, TemplatePatch, UserPatch, Write,
};
use promptvault_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::{now, simple};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn user(email: &str) -> NewUser {
    NewUser { email: Some(email.to_owned()), ..NewUser::default() }
}

fn full_user() -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Some("Ada.Lovelace@Example.com".into()),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        roles: vec!["viewer".into(), "author".into(), "viewer".into()],
        supabase_user_id: Some(Uuid::new_v4()),
        did: Some("did:plc:ewvi7nxzyoun6zhxrhs64oiz".into()),
        external_user_id: Some("ext-ada-1815".into()),
        at_protocol_handle: Some("ada.bsky.social".into()),
        data: Some(json!({"team": "engines", "tags": ["analytical", 1843], "nested": {"ok": true}})),
        password_hash: Some(HASH.into()),
    }
}

fn key(user: UserId, prefix: &str) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::new(),
        user_id: user,
        name: format!("key {prefix}"),
        prefix: prefix.to_owned(),
        secret_hash: [3; 32],
        expires_at: None,
        deployment: None,
    }
}

fn role(name: &str, permissions: &[&str]) -> RoleDef {
    RoleDef {
        name: name.to_owned(),
        description: format!("the {name} role"),
        permissions: permissions.iter().map(|p| p.parse::<Permission>().unwrap()).collect(),
        builtin: false,
    }
}

fn token(n: u8) -> [u8; 32] {
    let mut t = [0xA5; 32];
    t[0] = n;
    t
}

fn audited(action: &str) -> Write {
    let mut e = NewAuditEvent::new(now(), "admin@example.com", action, "identity", AuditOutcome::Success);
    e.details = json!({"case": action});
    Write::audited(now(), e)
}

async fn actions(s: &Arc<dyn Store>) -> Vec<String> {
    s.list_audit(&AuditFilter { limit: 1000, ..AuditFilter::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

fn already_exists<T: std::fmt::Debug>(res: Result<T, StoreError>, what: &str) {
    match res {
        Err(StoreError::Conflict(Conflict::AlreadyExists { what: w, .. })) if w == what => {}
        other => panic!("expected AlreadyExists {{ what: {what:?} }}, got {other:?}"),
    }
}

fn not_found<T: std::fmt::Debug>(res: Result<T, StoreError>) {
    assert!(matches!(res, Err(StoreError::NotFound(_))), "expected NotFound, got {res:?}");
}

pub async fn users_round_trip_with_every_seed_field(db: Arc<TestDb>) {
    let s = db.open().await;
    let new = full_user();
    assert!(!format!("{new:?}").contains("argon2"), "NewUser's Debug shows the password hash");
    let at = now() - Duration::minutes(3);
    let created = s.create_user(new.clone(), at.into()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.email, new.email);
    assert_eq!(
        (created.first_name.as_deref(), created.last_name.as_deref()),
        (Some("Ada"), Some("Lovelace"))
    );
    assert_eq!(created.supabase_user_id, new.supabase_user_id);
    assert_eq!(created.did, new.did);
    assert_eq!(created.external_user_id, new.external_user_id);
    assert_eq!(created.at_protocol_handle, new.at_protocol_handle);
    assert_eq!(created.data, new.data);
    assert_eq!(created.roles, ["author", "viewer"], "roles sorted, without duplicates");
    assert_eq!((created.created_at, created.updated_at, created.disabled_at), (at, None, None));
    assert_eq!(s.get_user(new.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(s.user_password_hash(new.id).await.unwrap().as_deref(), Some(HASH));

    // Found by every identity, the e-mail in any case.
    for email in ["ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", "Ada.Lovelace@Example.com"] {
        assert_eq!(s.find_user_by_email(email).await.unwrap().as_ref(), Some(&created), "{email}");
    }
    assert_eq!(s.find_user_by_external_id("ext-ada-1815").await.unwrap().as_ref(), Some(&created));
    assert_eq!(
        s.find_user_by_supabase_id(new.supabase_user_id.unwrap()).await.unwrap().as_ref(),
        Some(&created)
    );
    assert!(s.find_user_by_email("ada@example.com").await.unwrap().is_none());
    assert!(s.find_user_by_external_id("EXT-ADA-1815").await.unwrap().is_none(), "external ids are exact");
    assert!(s.find_user_by_supabase_id(Uuid::new_v4()).await.unwrap().is_none());
    assert!(s.get_user(UserId::new()).await.unwrap().is_none());
    assert!(s.user_password_hash(UserId::new()).await.unwrap().is_none());

    // Each identity belongs to one user; e-mails compare case-insensitively.
    already_exists(s.create_user(user("ADA.lovelace@EXAMPLE.com"), now().into()).await, "user");
    let dup_external =
        NewUser { external_user_id: new.external_user_id.clone(), ..user("other@example.com") };
    already_exists(s.create_user(dup_external, now().into()).await, "user with external id");
    let dup_supabase = NewUser { supabase_user_id: new.supabase_user_id, ..user("other@example.com") };
    already_exists(s.create_user(dup_supabase, now().into()).await, "user with Supabase id");
    already_exists(s.create_user(NewUser { id: new.id, ..NewUser::default() }, now().into()).await, "user");
    // Roles must exist.
    not_found(
        s.create_user(NewUser { roles: vec!["nope".into()], ..user("x@example.com") }, now().into()).await,
    );
    assert!(s.find_user_by_email("x@example.com").await.unwrap().is_none(), "a refused user is not stored");

    // Users without e-mail or password are fine, as many as needed.
    let bare1 = s.create_user(NewUser::default(), now().into()).await.unwrap();
    let bare2 = s.create_user(NewUser::default(), now().into()).await.unwrap();
    assert!(bare1.roles.is_empty() && bare1.email.is_none() && bare1.data.is_none());
    assert!(s.user_password_hash(bare1.id).await.unwrap().is_none());
    let bob = s.create_user(user("bob@example.com"), now().into()).await.unwrap();
    let aaron = s.create_user(user("aaron@example.com"), now().into()).await.unwrap();

    // Listed by e-mail, then id; users without an e-mail last.
    let listed: Vec<UserId> = s.list_users().await.unwrap().iter().map(|u| u.id).collect();
    let mut bare = [bare1.id, bare2.id];
    bare.sort();
    assert_eq!(listed, [created.id, aaron.id, bob.id, bare[0], bare[1]]);
}

pub async fn user_patches_leave_set_or_clear_each_field(db: Arc<TestDb>) {
    let s = db.open().await;
    let new = full_user();
    let created = s.create_user(new.clone(), now().into()).await.unwrap();
    let other = s.create_user(user("grace@example.com"), now().into()).await.unwrap();

    // An empty patch changes nothing but the update time.
    let t1 = now() + Duration::seconds(1);
    let same = s.update_user(new.id, UserPatch::default(), t1.into()).await.unwrap();
    assert_eq!(same.updated_at, Some(t1));
    assert_eq!(UserPatchView::of(&same), UserPatchView::of(&created));
    assert_eq!(s.user_password_hash(new.id).await.unwrap().as_deref(), Some(HASH));

    // Some(Some) sets, Some(None) clears, None leaves alone.
    let t2 = now() + Duration::seconds(2);
    let patch = UserPatch {
        first_name: Some(Some("Augusta".into())),
        did: Some(None),
        data: Some(None),
        at_protocol_handle: Some(Some("augusta.bsky.social".into())),
        password_hash: Some(Some("$argon2id$new".into())),
        ..UserPatch::default()
    };
    assert!(!format!("{patch:?}").contains("argon2"), "UserPatch's Debug shows the password hash");
    let patched = s.update_user(new.id, patch, t2.into()).await.unwrap();
    assert_eq!(patched.first_name.as_deref(), Some("Augusta"));
    assert_eq!((patched.did.as_ref(), patched.data.as_ref()), (None, None));
    assert_eq!(patched.at_protocol_handle.as_deref(), Some("augusta.bsky.social"));
    assert_eq!(patched.last_name.as_deref(), Some("Lovelace"));
    assert_eq!(patched.email, created.email);
    assert_eq!(patched.external_user_id, created.external_user_id);
    assert_eq!(patched.supabase_user_id, created.supabase_user_id);
    assert_eq!(patched.roles, created.roles, "a patch does not touch roles");
    assert_eq!((patched.created_at, patched.updated_at), (created.created_at, Some(t2)));
    assert_eq!(s.get_user(new.id).await.unwrap().as_ref(), Some(&patched));
    assert_eq!(s.user_password_hash(new.id).await.unwrap().as_deref(), Some("$argon2id$new"));
    let cleared = UserPatch { password_hash: Some(None), ..UserPatch::default() };
    s.update_user(new.id, cleared, now().into()).await.unwrap();
    assert!(s.user_password_hash(new.id).await.unwrap().is_none());

    // Identities stay unique; a user may change the case of its own e-mail.
    let take = |email: &str| UserPatch { email: Some(Some(email.to_owned())), ..UserPatch::default() };
    already_exists(s.update_user(other.id, take("ADA.LOVELACE@example.com"), now().into()).await, "user");
    let take_external =
        UserPatch { external_user_id: Some(Some("ext-ada-1815".into())), ..UserPatch::default() };
    already_exists(
        s.update_user(other.id, take_external.clone(), now().into()).await,
        "user with external id",
    );
    let take_supabase = UserPatch { supabase_user_id: Some(new.supabase_user_id), ..UserPatch::default() };
    already_exists(s.update_user(other.id, take_supabase, now().into()).await, "user with Supabase id");
    assert_eq!(s.get_user(other.id).await.unwrap().unwrap().email.as_deref(), Some("grace@example.com"));
    let recased = s.update_user(new.id, take("ADA.LOVELACE@EXAMPLE.COM"), now().into()).await.unwrap();
    assert_eq!(recased.email.as_deref(), Some("ADA.LOVELACE@EXAMPLE.COM"));
    // Once released, an identity can be taken.
    let release = UserPatch { external_user_id: Some(None), email: Some(None), ..UserPatch::default() };
    s.update_user(new.id, release, now().into()).await.unwrap();
    let moved = s.update_user(other.id, take_external, now().into()).await.unwrap();
    assert_eq!(moved.external_user_id.as_deref(), Some("ext-ada-1815"));
    assert_eq!(s.find_user_by_external_id("ext-ada-1815").await.unwrap().map(|u| u.id), Some(other.id));
    assert!(s.find_user_by_email("ada.lovelace@example.com").await.unwrap().is_none());

    not_found(s.update_user(UserId::new(), UserPatch::default(), now().into()).await);
}

/// The fields a patch can change, to compare users across patches.
#[derive(Debug, PartialEq)]
struct UserPatchView {
    fields: Vec<Option<String>>,
    supabase: Option<Uuid>,
    data: Option<serde_json::Value>,
    disabled_at: Option<DateTime<Utc>>,
    roles: Vec<String>,
}

impl UserPatchView {
    fn of(u: &promptvault_store::User) -> Self {
        Self {
            fields: vec![
                u.email.clone(),
                u.first_name.clone(),
                u.last_name.clone(),
                u.did.clone(),
                u.external_user_id.clone(),
                u.at_protocol_handle.clone(),
            ],
            supabase: u.supabase_user_id,
            data: u.data.clone(),
            disabled_at: u.disabled_at,
            roles: u.roles.clone(),
        }
    }
}

pub async fn disabled_users_are_reported_and_lose_their_sessions(db: Arc<TestDb>) {
    let s = db.open().await;
    let u = s
        .create_user(NewUser { roles: vec!["consumer".into()], ..user("eve@example.com") }, now().into())
        .await
        .unwrap();
    s.create_api_key(key(u.id, "pv_eve"), now().into()).await.unwrap();
    let t0 = now();
    s.create_session(token(1), u.id, t0, t0 + Duration::hours(1), now().into()).await.unwrap();
    assert!(!s.find_api_key("pv_eve").await.unwrap().unwrap().user_disabled);

    let disable = UserPatch { disabled: Some(true), ..UserPatch::default() };
    let t1 = now() + Duration::seconds(5);
    let disabled = s.update_user(u.id, disable.clone(), t1.into()).await.unwrap();
    assert_eq!(disabled.disabled_at, Some(t1));
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().disabled_at, Some(t1));
    assert!(s.find_session(&token(1)).await.unwrap().is_none(), "disabling ends web sessions");
    let k = s.find_api_key("pv_eve").await.unwrap().unwrap();
    assert!(k.user_disabled, "find_api_key reports the disabled user");
    assert_eq!(k.roles, ["consumer"]);
    assert!(k.revoked_at.is_none(), "keys are not revoked, their user is disabled");

    // Disabling again keeps the first time.
    let again = s.update_user(u.id, disable, (t1 + Duration::seconds(5)).into()).await.unwrap();
    assert_eq!(again.disabled_at, Some(t1));

    let enable = UserPatch { disabled: Some(false), ..UserPatch::default() };
    let enabled = s.update_user(u.id, enable, now().into()).await.unwrap();
    assert!(enabled.disabled_at.is_none());
    assert!(!s.find_api_key("pv_eve").await.unwrap().unwrap().user_disabled);
    assert!(!s.get_api_key(k.id).await.unwrap().unwrap().user_disabled);
}

pub async fn user_role_sets_replace_and_users_delete_with_their_things(db: Arc<TestDb>) {
    let s = db.open().await;
    s.create_role(role("translator", &["template:update@folder=i18n"]), now().into()).await.unwrap();
    let u = s.create_user(user("lin@example.com"), now().into()).await.unwrap();
    assert!(u.roles.is_empty());
    s.create_api_key(key(u.id, "pv_lin"), now().into()).await.unwrap();

    let t1 = now() + Duration::seconds(1);
    let roles = vec!["viewer".into(), "translator".into(), "admin".into(), "viewer".into()];
    let set = s.set_user_roles(u.id, roles, t1.into()).await.unwrap();
    assert_eq!(set.roles, ["admin", "translator", "viewer"]);
    assert_eq!(set.updated_at, Some(t1));
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().roles, set.roles);
    assert_eq!(s.find_api_key("pv_lin").await.unwrap().unwrap().roles, set.roles);

    // The new set replaces the old one; it is not merged.
    let set = s.set_user_roles(u.id, vec!["author".into()], now().into()).await.unwrap();
    assert_eq!(set.roles, ["author"]);
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().roles, ["author"]);
    assert_eq!(s.find_api_key("pv_lin").await.unwrap().unwrap().roles, ["author"]);

    // An unknown role refuses the whole set.
    not_found(s.set_user_roles(u.id, vec!["viewer".into(), "ghost".into()], now().into()).await);
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().roles, ["author"]);
    not_found(s.set_user_roles(UserId::new(), vec!["viewer".into()], now().into()).await);

    let set = s.set_user_roles(u.id, vec!["translator".into()], now().into()).await.unwrap();
    assert_eq!(set.roles, ["translator"]);
    let none = s.set_user_roles(u.id, vec![], now().into()).await.unwrap();
    assert!(none.roles.is_empty());
    s.set_user_roles(u.id, vec!["translator".into()], now().into()).await.unwrap();

    // Deleting a user takes its keys, roles and sessions; what it owns stays.
    let (t, _) = simple(&s, "owned").await;
    let owner = TemplatePatch { owner_id: Some(Some(u.id)), ..TemplatePatch::default() };
    s.update_template(&t.name, Expect::Any, owner, now().into()).await.unwrap();
    s.create_session(token(7), u.id, now(), now() + Duration::hours(1), now().into()).await.unwrap();
    let keep = s.create_user(user("kept@example.com"), now().into()).await.unwrap();
    s.create_api_key(key(keep.id, "pv_kept"), now().into()).await.unwrap();
    s.delete_user(u.id, now().into()).await.unwrap();
    assert!(s.get_user(u.id).await.unwrap().is_none());
    assert!(s.find_api_key("pv_lin").await.unwrap().is_none());
    assert!(s.list_api_keys(Some(u.id)).await.unwrap().is_empty());
    assert!(s.find_session(&token(7)).await.unwrap().is_none());
    assert_eq!(s.get_template(&t.name).await.unwrap().unwrap().owner_id, None);
    s.delete_role("translator", now().into()).await.unwrap();
    assert!(s.find_api_key("pv_kept").await.unwrap().is_some(), "others keep theirs");
    not_found(s.delete_user(u.id, now().into()).await);
}

pub async fn custom_roles_crud_with_revisions_and_in_use_refusal(db: Arc<TestDb>) {
    let s = db.open().await;
    let t0 = now();
    let mut def = role(
        "editor",
        &["template:read", "template:update@type=support<=internal", "label:update@folder=billing"],
    );
    def.builtin = true;
    let created = s.create_role(def.clone(), t0.into()).await.unwrap();
    assert_eq!(created.def.name, "editor");
    assert_eq!(created.def.description, "the editor role");
    assert_eq!(created.def.permissions, def.permissions);
    assert!(!created.def.builtin, "stored roles are never built in");
    assert_eq!((created.revision, created.created_at, created.updated_at), (Revision(1), t0, None));
    assert_eq!(s.get_role("editor").await.unwrap().as_ref(), Some(&created));
    assert!(s.get_role("Editor").await.unwrap().is_none());

    already_exists(s.create_role(role("editor", &[]), now().into()).await, "role");
    already_exists(s.create_role(role("admin", &["template:read"]), now().into()).await, "role");
    assert!(s.get_role("admin").await.unwrap().is_none(), "built-in roles are not stored");

    s.create_role(role("zeta", &[]), now().into()).await.unwrap();
    s.create_role(role("alpha", &["audit:read"]), now().into()).await.unwrap();
    let names: Vec<String> = s.list_roles().await.unwrap().into_iter().map(|r| r.def.name).collect();
    assert_eq!(names, ["alpha", "editor", "zeta"]);

    // Updates check the revision.
    let t1 = now() + Duration::seconds(1);
    let perms: Vec<Permission> = vec!["template:execute@folder=support".parse().unwrap()];
    let updated = s
        .update_role(
            "editor",
            Expect::Revision(Revision(1)),
            "edits support".into(),
            perms.clone(),
            t1.into(),
        )
        .await
        .unwrap();
    assert_eq!((updated.revision, updated.updated_at, updated.created_at), (Revision(2), Some(t1), t0));
    assert_eq!((updated.def.description.as_str(), &updated.def.permissions), ("edits support", &perms));
    assert_eq!(s.get_role("editor").await.unwrap().as_ref(), Some(&updated));
    let stale =
        s.update_role("editor", Expect::Revision(Revision(1)), "lost".into(), vec![], now().into()).await;
    assert!(
        matches!(stale, Err(StoreError::Stale { what: "role", current: Some(Revision(2)) })),
        "{stale:?}"
    );
    assert_eq!(s.get_role("editor").await.unwrap().unwrap().def.description, "edits support");
    let any = s.update_role("editor", Expect::Any, "any".into(), vec![], now().into()).await.unwrap();
    assert_eq!((any.revision, any.def.permissions.len()), (Revision(3), 0));
    not_found(s.update_role("ghost", Expect::Any, String::new(), vec![], now().into()).await);

    // A role held by users cannot go.
    let a = s
        .create_user(NewUser { roles: vec!["editor".into()], ..user("a@example.com") }, now().into())
        .await
        .unwrap();
    let b = s.create_user(user("b@example.com"), now().into()).await.unwrap();
    s.set_user_roles(b.id, vec!["editor".into(), "viewer".into()], now().into()).await.unwrap();
    let in_use = s.delete_role("editor", now().into()).await;
    assert!(
        matches!(
            in_use,
            Err(StoreError::Conflict(Conflict::InUse { what: "role", count: 2, by: "user(s)" }))
        ),
        "{in_use:?}"
    );
    assert!(s.get_role("editor").await.unwrap().is_some());
    s.set_user_roles(a.id, vec![], now().into()).await.unwrap();
    let in_use = s.delete_role("editor", now().into()).await;
    assert!(matches!(in_use, Err(StoreError::Conflict(Conflict::InUse { count: 1, .. }))), "{in_use:?}");
    s.set_user_roles(b.id, vec!["viewer".into()], now().into()).await.unwrap();
    s.delete_role("editor", now().into()).await.unwrap();
    assert!(s.get_role("editor").await.unwrap().is_none());
    not_found(s.delete_role("editor", now().into()).await);
    not_found(s.delete_role("viewer", now().into()).await);

    // Permissions that no longer decode are an error, never a wrong answer;
    // replacing them repairs the role.
    db.exec(r#"UPDATE role SET permissions = '[{"resource": "spaceship", "action": "fly"}]' WHERE name = 'alpha'"#)
        .await;
    let corrupt = s.get_role("alpha").await;
    assert!(matches!(corrupt, Err(StoreError::Corrupt(_))), "{corrupt:?}");
    let corrupt = s.list_roles().await;
    assert!(matches!(corrupt, Err(StoreError::Corrupt(_))), "{corrupt:?}");
    let perms: Vec<Permission> = vec!["audit:read".parse().unwrap()];
    let repaired =
        s.update_role("alpha", Expect::Any, "fixed".into(), perms.clone(), now().into()).await.unwrap();
    assert_eq!(repaired.def.permissions, perms);
    assert_eq!(s.list_roles().await.unwrap().len(), 2);
}

pub async fn api_keys_create_list_revoke_and_authenticate(db: Arc<TestDb>) {
    let s = db.open().await;
    let a = s
        .create_user(NewUser { roles: vec!["viewer".into()], ..user("a@example.com") }, now().into())
        .await
        .unwrap();
    let b = s.create_user(user("b@example.com"), now().into()).await.unwrap();
    let t0 = now();
    let expires = t0 + Duration::days(30);
    let new_a1 = NewApiKey {
        deployment: Some("electron_local".into()),
        expires_at: Some(expires),
        secret_hash: [9; 32],
        ..key(a.id, "pv_a1")
    };
    let a1 = s.create_api_key(new_a1.clone(), t0.into()).await.unwrap();
    assert_eq!(
        (a1.id, a1.user_id, a1.name.as_str(), a1.prefix.as_str()),
        (new_a1.id, a.id, "key pv_a1", "pv_a1")
    );
    assert_eq!((a1.secret_hash, a1.created_at, a1.expires_at), ([9; 32], t0, Some(expires)));
    assert_eq!(a1.deployment.as_deref(), Some("electron_local"));
    assert_eq!((a1.roles.clone(), a1.user_disabled), (vec!["viewer".to_string()], false));
    assert_eq!((a1.revoked_at, a1.last_used_at), (None, None));
    let a2 = s.create_api_key(key(a.id, "pv_a2"), (t0 + Duration::seconds(1)).into()).await.unwrap();
    let b1 = s.create_api_key(key(b.id, "pv_b1"), (t0 + Duration::seconds(2)).into()).await.unwrap();
    assert!(b1.roles.is_empty() && b1.deployment.is_none());

    already_exists(s.create_api_key(key(b.id, "pv_a1"), now().into()).await, "API key");
    not_found(s.create_api_key(key(UserId::new(), "pv_nobody"), now().into()).await);
    assert!(s.find_api_key("pv_nobody").await.unwrap().is_none());

    // Newest first, everyone's or one user's.
    let ids = |keys: Vec<promptvault_store::ApiKeyRecord>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_api_keys(None).await.unwrap()), [b1.id, a2.id, a1.id]);
    assert_eq!(ids(s.list_api_keys(Some(a.id)).await.unwrap()), [a2.id, a1.id]);
    assert!(s.list_api_keys(Some(UserId::new())).await.unwrap().is_empty());
    assert_eq!(s.get_api_key(a1.id).await.unwrap().as_ref(), Some(&a1));
    assert_eq!(s.find_api_key("pv_a1").await.unwrap().as_ref(), Some(&a1));
    assert!(s.get_api_key(ApiKeyId::new()).await.unwrap().is_none());

    // Revoking sets the time once.
    let r1 = now() + Duration::seconds(10);
    let revoked = s.revoke_api_key(a1.id, r1, now().into()).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(r1));
    let again = s.revoke_api_key(a1.id, r1 + Duration::hours(1), now().into()).await.unwrap();
    assert_eq!(again.revoked_at, Some(r1), "a second revocation keeps the first time");
    assert_eq!(s.find_api_key("pv_a1").await.unwrap().unwrap().revoked_at, Some(r1));
    assert!(s.get_api_key(a2.id).await.unwrap().unwrap().revoked_at.is_none(), "other keys stay");
    not_found(s.revoke_api_key(ApiKeyId::new(), now(), now().into()).await);

    // What authentication reads follows the user.
    s.set_user_roles(b.id, vec!["publisher".into(), "author".into()], now().into()).await.unwrap();
    let found = s.find_api_key("pv_b1").await.unwrap().unwrap();
    assert_eq!(found.roles, ["author", "publisher"]);
    s.update_user(b.id, UserPatch { disabled: Some(true), ..UserPatch::default() }, now().into())
        .await
        .unwrap();
    assert!(s.find_api_key("pv_b1").await.unwrap().unwrap().user_disabled);
    let listed = s.list_api_keys(None).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.user_disabled).collect::<Vec<_>>(), [true, false, false]);
    assert_eq!(listed[1].roles, ["viewer"]);
}

pub async fn sessions_create_find_touch_expire_and_delete(db: Arc<TestDb>) {
    let s = db.open().await;
    let u = s.create_user(user("sam@example.com"), now().into()).await.unwrap();
    let t0 = now();
    let created = s.create_session(token(1), u.id, t0, t0 + Duration::hours(8), now().into()).await.unwrap();
    assert_eq!(created.user_id, u.id);
    assert_eq!(
        (created.created_at, created.last_seen_at, created.expires_at),
        (t0, t0, t0 + Duration::hours(8))
    );
    assert_eq!(s.find_session(&token(1)).await.unwrap().as_ref(), Some(&created));
    assert!(s.find_session(&token(2)).await.unwrap().is_none());

    already_exists(
        s.create_session(token(1), u.id, t0, t0 + Duration::hours(1), now().into()).await,
        "session",
    );
    not_found(s.create_session(token(2), UserId::new(), t0, t0 + Duration::hours(1), now().into()).await);
    assert!(s.find_session(&token(2)).await.unwrap().is_none());

    // Touching records activity and never moves it back.
    s.touch_session(&token(1), t0 + Duration::minutes(5)).await.unwrap();
    assert_eq!(s.find_session(&token(1)).await.unwrap().unwrap().last_seen_at, t0 + Duration::minutes(5));
    s.touch_session(&token(1), t0 + Duration::minutes(1)).await.unwrap();
    let seen = s.find_session(&token(1)).await.unwrap().unwrap();
    assert_eq!((seen.last_seen_at, seen.created_at), (t0 + Duration::minutes(5), t0));
    s.touch_session(&token(9), t0).await.unwrap();
    assert!(s.find_session(&token(9)).await.unwrap().is_none(), "touching creates nothing");

    // Re-authentication moves the authentication time (and counts as
    // activity); an unknown session is not found.
    assert_eq!(created.authenticated_at, t0, "sign-in is the first authentication");
    s.reauthenticate_session(&token(1), t0 + Duration::minutes(10), now().into()).await.unwrap();
    let re = s.find_session(&token(1)).await.unwrap().unwrap();
    assert_eq!(
        (re.authenticated_at, re.last_seen_at),
        (t0 + Duration::minutes(10), t0 + Duration::minutes(10))
    );
    s.reauthenticate_session(&token(1), t0 + Duration::minutes(7), now().into()).await.unwrap();
    let re = s.find_session(&token(1)).await.unwrap().unwrap();
    assert_eq!(re.last_seen_at, t0 + Duration::minutes(10), "activity never moves back");
    assert_eq!((re.created_at, re.expires_at), (t0, t0 + Duration::hours(8)));
    not_found(s.reauthenticate_session(&token(9), t0, now().into()).await);

    // Expired sessions are still found until swept; the sweep takes those
    // expired at or before `now`.
    s.create_session(token(3), u.id, t0 - Duration::hours(2), t0 - Duration::hours(1), now().into())
        .await
        .unwrap();
    s.create_session(token(4), u.id, t0 - Duration::hours(2), t0, now().into()).await.unwrap();
    s.create_session(token(5), u.id, t0, t0 + Duration::microseconds(1), now().into()).await.unwrap();
    assert!(s.find_session(&token(3)).await.unwrap().is_some());
    assert_eq!(s.delete_expired_sessions(t0).await.unwrap(), 2);
    assert!(s.find_session(&token(3)).await.unwrap().is_none());
    assert!(s.find_session(&token(4)).await.unwrap().is_none());
    assert!(s.find_session(&token(5)).await.unwrap().is_some());
    assert!(s.find_session(&token(1)).await.unwrap().is_some());
    assert_eq!(s.delete_expired_sessions(t0).await.unwrap(), 0);

    s.delete_session(&token(1), now().into()).await.unwrap();
    assert!(s.find_session(&token(1)).await.unwrap().is_none());
    assert!(s.find_session(&token(5)).await.unwrap().is_some());
    not_found(s.delete_session(&token(1), now().into()).await);
}

pub async fn identity_writes_carry_their_audit_events(db: Arc<TestDb>) {
    let s = db.open().await;
    let mut expected: Vec<String> = Vec::new();
    // Each write is made with an audited `Write`: `ok` ones append their
    // event, refused ones leave the trail as it was.
    macro_rules! ok {
        ($action:literal, $call:expr) => {{
            let out = $call.await.unwrap();
            expected.push($action.to_owned());
            assert_eq!(actions(&s).await, expected, "after {}", $action);
            out
        }};
    }
    macro_rules! refused {
        ($action:literal, $call:expr) => {{
            let out = $call.await;
            assert!(out.is_err(), "{} should be refused: {out:?}", $action);
            assert_eq!(actions(&s).await, expected, "a refused {} left its event", $action);
        }};
    }

    // Users.
    let u = ok!("user.create", s.create_user(user("ida@example.com"), audited("user.create")));
    refused!("user.create", s.create_user(user("IDA@example.com"), audited("user.create")));
    let patch = UserPatch { first_name: Some(Some("Ida".into())), ..UserPatch::default() };
    ok!("user.update", s.update_user(u.id, patch.clone(), audited("user.update")));
    refused!("user.update", s.update_user(UserId::new(), patch, audited("user.update")));
    ok!("user.roles", s.set_user_roles(u.id, vec!["viewer".into()], audited("user.roles")));
    refused!("user.roles", s.set_user_roles(u.id, vec!["ghost".into()], audited("user.roles")));
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().roles, ["viewer"]);

    // Custom roles.
    ok!("role.create", s.create_role(role("ops", &["webhook:update"]), audited("role.create")));
    refused!("role.create", s.create_role(role("ops", &[]), audited("role.create")));
    ok!(
        "role.update",
        s.update_role("ops", Expect::Revision(Revision(1)), "x".into(), vec![], audited("role.update"))
    );
    refused!(
        "role.update",
        s.update_role("ops", Expect::Revision(Revision(1)), "y".into(), vec![], audited("role.update"))
    );
    s.set_user_roles(u.id, vec!["ops".into()], now().into()).await.unwrap();
    refused!("role.delete", s.delete_role("ops", audited("role.delete")));
    s.set_user_roles(u.id, vec![], now().into()).await.unwrap();
    ok!("role.delete", s.delete_role("ops", audited("role.delete")));

    // API keys.
    let k = ok!("key.create", s.create_api_key(key(u.id, "pv_ida"), audited("key.create")));
    refused!("key.create", s.create_api_key(key(u.id, "pv_ida"), audited("key.create")));
    ok!("key.revoke", s.revoke_api_key(k.id, now(), audited("key.revoke")));
    refused!("key.revoke", s.revoke_api_key(ApiKeyId::new(), now(), audited("key.revoke")));

    // Web sessions.
    let t0 = now();
    ok!(
        "session.create",
        s.create_session(token(1), u.id, t0, t0 + Duration::hours(1), audited("session.create"))
    );
    refused!(
        "session.create",
        s.create_session(token(1), u.id, t0, t0 + Duration::hours(1), audited("session.create"))
    );
    ok!("session.delete", s.delete_session(&token(1), audited("session.delete")));
    refused!("session.delete", s.delete_session(&token(1), audited("session.delete")));

    // Deleting the user.
    ok!("user.delete", s.delete_user(u.id, audited("user.delete")));
    refused!("user.delete", s.delete_user(u.id, audited("user.delete")));

    // The events are whole, and chained.
    let events = s.list_audit(&AuditFilter { limit: 1000, ..AuditFilter::default() }).await.unwrap();
    assert_eq!(events.len(), expected.len());
    assert_eq!(events[0].details, json!({"case": "user.create"}));
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=expected.len() as i64).collect::<Vec<_>>()
    );
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
}

pub async fn concurrent_identity_writes_keep_identities_unique_and_roles_held(db: Arc<TestDb>) {
    let s = db.open().await;
    // Many first logins of one person at once: one user is created.
    for round in 0..20 {
        let supabase = Uuid::new_v4();
        let email = format!("same{round}@example.com");
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (s, barrier) = (s.clone(), barrier.clone());
            let new = if i % 2 == 0 {
                NewUser { supabase_user_id: Some(supabase), ..user(&format!("p{round}-{i}@example.com")) }
            } else {
                user(&email)
            };
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                s.create_user(new, now().into()).await
            }));
        }
        let (mut created, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => created += 1,
                Err(StoreError::Conflict(Conflict::AlreadyExists { .. })) => refused += 1,
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!((created, refused), (2, 6), "round {round}: one user per Supabase id, one per e-mail");
        assert!(s.find_user_by_supabase_id(supabase).await.unwrap().is_some());
    }

    // A role granted while it is being deleted: either the grant or the
    // delete is refused, and no user is left holding a role that is gone.
    let u = s.create_user(user("racer@example.com"), now().into()).await.unwrap();
    for round in 0..10 {
        let name = format!("temp{round}");
        s.create_role(role(&name, &["template:read"]), now().into()).await.unwrap();
        let (s1, s2) = (s.clone(), s.clone());
        let (n1, n2) = (name.clone(), name.clone());
        let grant = tokio::spawn(async move { s1.set_user_roles(u.id, vec![n1], now().into()).await });
        let delete = tokio::spawn(async move { s2.delete_role(&n2, now().into()).await });
        let (granted, deleted) = (grant.await.unwrap(), delete.await.unwrap());
        assert!(granted.is_ok() != deleted.is_ok(), "round {round}: {granted:?} / {deleted:?}");
        let holds = s.get_user(u.id).await.unwrap().unwrap().roles.contains(&name);
        let exists = s.get_role(&name).await.unwrap().is_some();
        assert_eq!((holds, exists), (granted.is_ok(), granted.is_ok()), "round {round}");
        s.set_user_roles(u.id, vec![], now().into()).await.unwrap();
    }
}
