use super::*;

fn principal(roles: &[&str]) -> Principal {
    Principal {
        user_id: UserId::new(),
        display: "ada@example.com".into(),
        credential: Credential::ApiKey(ApiKeyId::new()),
        roles: roles.iter().map(|r| builtin::role_named(r).expect("built-in")).collect(),
        deployment: None,
        origin: Origin::default(),
        authenticated_at: None,
    }
}

fn custom(name: &str, perms: &[&str]) -> RoleDef {
    RoleDef {
        name: name.into(),
        description: String::new(),
        permissions: perms.iter().map(|p| p.parse().expect("permission")).collect(),
        builtin: false,
    }
}

fn name(s: &str) -> TemplateName {
    TemplateName::parse(s).expect("name")
}

fn facts<'a>(
    name: &'a TemplateName,
    owner: Option<UserId>,
    c: SecurityClassification,
    access: &'a TemplateAccess,
) -> Target<'a> {
    Target { template: Some(TemplateFacts { name, owner, classification: c, access }), ..Target::default() }
}

#[test]
fn admin_may_do_everything_and_nobody_without_roles_anything() {
    let n = name("a/b");
    let access = TemplateAccess::default();
    let t = facts(&n, None, SecurityClassification::Restricted, &access);
    for r in Resource::ALL {
        for a in Action::ALL {
            assert!(decide(&principal(&["admin"]), a, r, &t).allowed, "{r}:{a}");
            let d = decide(&principal(&[]), a, r, &t);
            assert!(!d.allowed, "{r}:{a}");
            assert!(d.reason.contains(&format!("{r}:{a}")), "{}", d.reason);
            assert!(d.reason.contains("no roles"), "{}", d.reason);
        }
    }
}

#[test]
fn consumer_renders_and_reads_but_writes_nothing() {
    let c = principal(&["consumer"]);
    let t = Target::default();
    assert!(decide(&c, Action::Execute, Resource::Template, &t).allowed);
    assert!(decide(&c, Action::Read, Resource::Template, &t).allowed);
    for r in Resource::ALL {
        for a in [Action::Create, Action::Delete, Action::Approve, Action::Publish] {
            assert!(!decide(&c, a, r, &t).allowed, "{r}:{a}");
        }
    }
    assert!(!decide(&c, Action::Update, Resource::Template, &t).allowed);
    assert!(!decide(&c, Action::Update, Resource::Label, &t).allowed);
}

#[test]
fn author_may_not_approve_or_publish() {
    let a = principal(&["author"]);
    let t = Target::default();
    assert!(decide(&a, Action::Update, Resource::Template, &t).allowed);
    assert!(decide(&a, Action::Update, Resource::Label, &t).allowed);
    let d = decide(&a, Action::Approve, Resource::Template, &t);
    assert!(!d.allowed);
    assert!(d.reason.contains("template:approve") && d.reason.contains("author"), "{}", d.reason);
    assert!(!decide(&a, Action::Publish, Resource::Label, &t).allowed);
}

#[test]
fn scopes_cover_only_their_targets() {
    let key = PromptTypeKey::parse("support").unwrap();
    let other = PromptTypeKey::parse("sales").unwrap();
    let mut p = principal(&[]);
    p.roles.push(custom("support-author", &["template:update@type=support", "template:read@folder=billing"]));
    let n = name("billing/invoice");
    let access = TemplateAccess::default();
    let mut t = facts(&n, None, SecurityClassification::Internal, &access);
    t.type_key = Some(&key);
    assert!(decide(&p, Action::Update, Resource::Template, &t).allowed);
    assert!(decide(&p, Action::Read, Resource::Template, &t).allowed);
    t.type_key = Some(&other);
    let d = decide(&p, Action::Update, Resource::Template, &t);
    assert!(!d.allowed);
    assert!(d.reason.contains("does not cover"), "{}", d.reason);
    let n2 = name("billingx/invoice");
    let t2 = facts(&n2, None, SecurityClassification::Internal, &access);
    assert!(
        !decide(&p, Action::Read, Resource::Template, &t2).allowed,
        "folder is a path prefix, not a string prefix"
    );
    // A scoped grant never covers a collection-wide operation.
    assert!(!decide(&p, Action::Update, Resource::Template, &Target::default()).allowed);
}

#[test]
fn classification_limits() {
    let mut p = principal(&[]);
    p.roles.push(custom("internal-reader", &["template:read<=internal"]));
    let n = name("x");
    let access = TemplateAccess::default();
    assert!(
        decide(
            &p,
            Action::Read,
            Resource::Template,
            &facts(&n, None, SecurityClassification::Internal, &access)
        )
        .allowed
    );
    let d = decide(
        &p,
        Action::Read,
        Resource::Template,
        &facts(&n, None, SecurityClassification::Confidential, &access),
    );
    assert!(!d.allowed);
    assert!(d.reason.contains("confidential"), "{}", d.reason);
    // Creation: the new template's classification counts.
    p.roles.push(custom("internal-author", &["template:create<=internal"]));
    let t = Target { new_classification: Some(SecurityClassification::Restricted), ..Target::default() };
    assert!(!decide(&p, Action::Create, Resource::Template, &t).allowed);
}

#[test]
fn template_settings_narrow_roles() {
    let owner = principal(&["author"]);
    let other = principal(&["author", "publisher"]);
    let n = name("secret/plan");
    let access = TemplateAccess { owner_only: true, ..TemplateAccess::default() };
    let t = facts(&n, Some(owner.user_id), SecurityClassification::Internal, &access);
    assert!(decide(&owner, Action::Update, Resource::Template, &t).allowed);
    let d = decide(&other, Action::Update, Resource::Template, &t);
    assert!(!d.allowed && d.reason.contains("owner-only"), "{}", d.reason);
    assert!(!decide(&other, Action::Publish, Resource::Label, &t).allowed);
    assert!(decide(&other, Action::Read, Resource::Template, &t).allowed, "reading is not a change");
    assert!(decide(&principal(&["admin"]), Action::Update, Resource::Template, &t).allowed);

    let access = TemplateAccess { allowed_roles: vec!["finance".into()], ..TemplateAccess::default() };
    let t = facts(&n, None, SecurityClassification::Internal, &access);
    let d = decide(&principal(&["viewer"]), Action::Read, Resource::Template, &t);
    assert!(!d.allowed && d.reason.contains("finance"), "{}", d.reason);
    let mut fin = principal(&["viewer"]);
    fin.roles.push(custom("finance", &[]));
    assert!(decide(&fin, Action::Read, Resource::Template, &t).allowed);
}

#[test]
fn deployment_restrictions_bind_everyone() {
    let n = name("x");
    let access = TemplateAccess {
        restricted_deployments: vec![DeploymentModel::WebApplication],
        ..TemplateAccess::default()
    };
    let t = facts(&n, None, SecurityClassification::Restricted, &access);
    let mut p = principal(&["admin"]);
    p.deployment = Some(DeploymentModel::ElectronLocal);
    let d = decide(&p, Action::Read, Resource::Template, &t);
    assert!(!d.allowed && d.reason.contains("electron_local"), "{}", d.reason);
    p.deployment = Some(DeploymentModel::WebApplication);
    assert!(decide(&p, Action::Read, Resource::Template, &t).allowed);
}

#[test]
fn classification_rules_bind_everyone_in_decide() {
    let n = name("hr/salaries");
    let plain = TemplateAccess::default();
    let offline = TemplateAccess { offline_allowed: true, ..TemplateAccess::default() };
    let mut p = principal(&["admin"]);
    p.deployment = Some(DeploymentModel::ElectronLocal);
    let restricted = facts(&n, None, SecurityClassification::Restricted, &offline);
    let d = decide(&p, Action::Execute, Resource::Template, &restricted);
    assert!(
        !d.allowed && d.reason.contains("restricted") && d.reason.contains("electron_local"),
        "{}",
        d.reason
    );
    let confidential = facts(&n, None, SecurityClassification::Confidential, &plain);
    assert!(!decide(&p, Action::Read, Resource::Template, &confidential).allowed);
    let confidential_offline = facts(&n, None, SecurityClassification::Confidential, &offline);
    assert!(decide(&p, Action::Read, Resource::Template, &confidential_offline).allowed);
    // The central deployment receives everything its roles allow.
    p.deployment = None;
    assert!(decide(&p, Action::Read, Resource::Template, &restricted).allowed);
    // Configured rules replace the built-in ones.
    let open = delivery::DeliveryRules {
        restricted: delivery::ClassRule {
            deployments: DeploymentModel::ALL.to_vec(),
            when_offline_allowed: vec![],
        },
        ..delivery::DeliveryRules::default()
    };
    p.deployment = Some(DeploymentModel::ElectronLocal);
    let with_rules = Target { delivery: Some(&open), ..restricted };
    assert!(decide(&p, Action::Read, Resource::Template, &with_rules).allowed);
}

#[test]
fn restricted_creation_per_type() {
    let key = PromptTypeKey::parse("legal").unwrap();
    let policy = TypePolicy {
        restricted_creation: true,
        allowed_roles: vec!["legal-author".into()],
        ..TypePolicy::default()
    };
    let t = Target { type_key: Some(&key), type_policy: Some(&policy), ..Target::default() };
    let d = decide(&principal(&["author"]), Action::Create, Resource::Template, &t);
    assert!(!d.allowed && d.reason.contains("legal-author"), "{}", d.reason);
    let mut p = principal(&["author"]);
    p.roles.push(custom("legal-author", &[]));
    assert!(decide(&p, Action::Create, Resource::Template, &t).allowed);
}

#[test]
fn own_keys_are_self_service() {
    let p = principal(&["consumer"]);
    let own = Target { owner: Some(p.user_id), ..Target::default() };
    let theirs = Target { owner: Some(UserId::new()), ..Target::default() };
    assert!(decide(&p, Action::Create, Resource::Key, &own).allowed);
    assert!(decide(&p, Action::Delete, Resource::Key, &own).allowed);
    assert!(!decide(&p, Action::Delete, Resource::Key, &theirs).allowed);
    assert!(decide(&p, Action::Read, Resource::User, &own).allowed);
    assert!(!decide(&p, Action::Update, Resource::User, &own).allowed, "nobody grants themselves roles");
}

#[test]
fn permissions_parse_and_print() {
    for s in [
        "template:read",
        "template:update@type=support",
        "template:execute@folder=billing<=internal",
        "audit:read@template=a/b",
    ] {
        let p: Permission = s.parse().unwrap();
        assert_eq!(p.to_string(), s);
    }
    for bad in [
        "template",
        "tmpl:read",
        "template:fly",
        "template:read@planet=x",
        "template:read<=secret",
        "template:read@type=Bad Key",
    ] {
        let e = bad.parse::<Permission>().unwrap_err();
        assert!(!e.reason.is_empty(), "{bad}");
    }
    let json = serde_json::to_value("template:update@type=support".parse::<Permission>().unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"resource": "template", "action": "update", "scope": {"kind": "type", "value": "support"}})
    );
}

#[test]
fn builtin_roles_are_complete() {
    let roles = builtin::roles();
    assert_eq!(roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), builtin::NAMES);
    assert!(roles.iter().all(|r| r.builtin));
    assert_eq!(roles.iter().filter(|r| r.is_admin()).count(), 1);
}
