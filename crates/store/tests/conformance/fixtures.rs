//! Builders for conformance cases.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use promptvault_core::model::{Template, Version, truncate_to_micros};
use promptvault_core::{
    Config, ContentHash, ParameterSchema, PromptTypeKey, SecurityClassification, Tag, TemplateBody,
    TemplateName, VersionContent,
};
use promptvault_store::{NewPromptType, NewTemplate, NewVersion, Store};
use serde_json::json;

pub fn now() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

pub fn name(s: &str) -> TemplateName {
    TemplateName::parse(s).unwrap()
}

pub fn key(s: &str) -> PromptTypeKey {
    PromptTypeKey::parse(s).unwrap()
}

pub fn content(text: &str) -> VersionContent {
    VersionContent {
        body: TemplateBody::Text(text.to_owned()),
        parameter_schema: ParameterSchema::parse(
            json!({"type": "object", "properties": {"name": {"type": "string"}}}),
        )
        .unwrap(),
        config: Config::parse(json!({"model": "m1"})).unwrap(),
    }
}

pub fn version(text: &str, semver: &str) -> NewVersion {
    let content = content(text);
    NewVersion {
        content_hash: ContentHash::of(&content),
        content,
        version: semver.parse().unwrap(),
        bump: None,
        author_id: None,
        change_description: Some(format!("set text to {text:?}")),
        restored_from: None,
    }
}

pub async fn prompt_type(store: &Arc<dyn Store>, k: &str) -> promptvault_core::model::PromptType {
    match store.get_prompt_type(&key(k)).await.unwrap() {
        Some(t) => t,
        None => store
            .create_prompt_type(
                NewPromptType {
                    key: key(k),
                    name: format!("Type {k}"),
                    schema: None,
                    policy: Default::default(),
                },
                now().into(),
            )
            .await
            .unwrap(),
    }
}

pub struct TemplateSpec<'a> {
    pub name: &'a str,
    pub type_key: &'a str,
    pub tags: &'a [&'a str],
    pub classification: SecurityClassification,
    pub description: Option<&'a str>,
    pub text: &'a str,
}

impl Default for TemplateSpec<'_> {
    fn default() -> Self {
        Self {
            name: "greeting",
            type_key: "general",
            tags: &[],
            classification: SecurityClassification::Internal,
            description: None,
            text: "Hello {{ name }}",
        }
    }
}

pub async fn template(store: &Arc<dyn Store>, spec: TemplateSpec<'_>) -> (Template, Version) {
    let t = prompt_type(store, spec.type_key).await;
    store
        .create_template(
            NewTemplate {
                name: name(spec.name),
                prompt_type_id: t.id,
                description: spec.description.map(str::to_owned),
                long_description_markdown: None,
                creator_id: None,
                owner_id: None,
                tags: spec.tags.iter().map(|s| Tag::parse(s).unwrap()).collect(),
                security_classification: spec.classification,
                access: Default::default(),
            },
            version(spec.text, "1.0.0"),
            now().into(),
        )
        .await
        .unwrap()
}

pub async fn simple(store: &Arc<dyn Store>, n: &str) -> (Template, Version) {
    template(store, TemplateSpec { name: n, ..TemplateSpec::default() }).await
}

/// Creates the bootstrap admin (once) and returns its user id.
pub async fn admin(store: &Arc<dyn Store>) -> promptvault_core::UserId {
    let user = promptvault_core::UserId::new();
    let created = store
        .bootstrap_admin(
            promptvault_store::NewUser {
                id: user,
                email: Some("admin@example.com".into()),
                roles: vec!["admin".into()],
                ..promptvault_store::NewUser::default()
            },
            promptvault_store::NewApiKey {
                id: promptvault_core::ApiKeyId::new(),
                user_id: user,
                name: "bootstrap".into(),
                prefix: format!("pv_{}", &user.to_string()[..8]),
                secret_hash: [7; 32],
                expires_at: None,
                deployment: None,
            },
        )
        .await
        .unwrap();
    assert!(created, "admin() may be called once per store");
    user
}
