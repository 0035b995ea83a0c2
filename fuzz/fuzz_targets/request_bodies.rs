//! Request bodies: the JSON the server accepts for templates, versions,
//! labels and renders, taken apart the way the handlers do it and handed to
//! the core parsers they call (names, type keys, tags, labels, roles,
//! classifications, deployment models, bumps, semantic versions, template
//! references, chat messages, configs, schemas, content shape), then the
//! version arithmetic a new version goes through (change analysis, bump).
//!
//! The server crate itself is not linked (it pulls in tokio, sqlx and axum);
//! its DTO conversions are thin and call exactly these functions.
//!
//! Properties: no panic; every accepted name parses again to itself;
//! a reference's name is a valid template name; semantic versions print and
//! parse back to themselves; content analysis of a body against itself
//! finds nothing to bump.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use promptvault_core::content::Config;
use promptvault_core::refs::{find_references, parse_ref};
use promptvault_core::versioning::{analyze, choose_bump};
use promptvault_core::{
    Bump, ChatItem, DeploymentModel, Identifier, LabelName, ParameterSchema, PromptTypeKey, Role,
    SecurityClassification, Tag, TemplateBody, TemplateName, VersionContent,
};
use serde_json::Value;

macro_rules! roundtrip {
    ($ty:ty, $s:expr) => {
        if let Ok(parsed) = <$ty>::parse($s) {
            let again = <$ty>::parse(parsed.as_str()).expect("an accepted name parses again");
            assert_eq!(again, parsed);
        }
    };
}

fn names(s: &str) {
    roundtrip!(TemplateName, s);
    roundtrip!(PromptTypeKey, s);
    roundtrip!(LabelName, s);
    roundtrip!(Tag, s);
    roundtrip!(Role, s);
    roundtrip!(Identifier, s);
    let _ = SecurityClassification::from_str(s);
    let _ = DeploymentModel::from_str(s);
    let _ = Bump::from_str(s);
    if let Ok(v) = semver::Version::parse(s) {
        assert_eq!(semver::Version::parse(&v.to_string()).expect("printed version parses"), v);
    }
    if let Ok(r) = parse_ref(s) {
        assert_eq!(r.literal, s);
        assert!(TemplateName::parse(r.name.as_str()).is_ok());
    }
    if let Ok(refs) = find_references(s) {
        for r in refs {
            assert!(s.contains(r.literal.as_str()), "a reference not in the source");
        }
    }
}

fn str_field<'a>(body: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

fn content(body: &serde_json::Map<String, Value>) -> Option<VersionContent> {
    let template_body = match (str_field(body, "template_text"), body.get("messages")) {
        (Some(t), None) => TemplateBody::Text(t.to_owned()),
        (None, Some(m)) => TemplateBody::Chat(serde_json::from_value::<Vec<ChatItem>>(m.clone()).ok()?),
        _ => return None,
    };
    VersionContent::check_shape(&template_body).ok()?;
    let _ = promptvault_core::refs::body_references(&template_body);
    let parameter_schema = match body.get("parameter_schema") {
        Some(s) => ParameterSchema::parse(s.clone()).ok()?,
        None => ParameterSchema::default(),
    };
    let config = match body.get("config") {
        Some(c) => Config::parse(c.clone()).ok()?,
        None => Config::default(),
    };
    Some(VersionContent { body: template_body, parameter_schema, config })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        names(s);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else { return };
    for key in ["name", "type", "security_classification", "bump", "label", "version", "deployment_model"] {
        if let Some(s) = str_field(&body, key) {
            names(s);
        }
    }
    if let Some(Value::Array(tags)) = body.get("tags") {
        for t in tags.iter().filter_map(Value::as_str) {
            roundtrip!(Tag, t);
        }
    }
    if let Some(Value::Object(params)) = body.get("parameters") {
        let _ = promptvault_core::text::find_nul_in(params);
    }
    let Some(next) = content(&body) else { return };
    let previous = semver::Version::new(1, 0, 0);
    let same = analyze(&next, &next);
    assert!(same.required_bump().is_none(), "a version differs from itself: {same:?}");
    assert!(choose_bump(&previous, &same, None).is_err());
    if let Some(Value::Object(prev)) = body.get("previous") {
        if let Some(prev) = content(prev) {
            let changes = analyze(&prev, &next);
            let requested = str_field(&body, "bump").and_then(|b| Bump::from_str(b).ok());
            if let Ok(bump) = choose_bump(&previous, &changes, requested) {
                assert!(Some(bump) >= changes.required_bump());
            }
        }
    }
});
