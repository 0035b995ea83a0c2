//! Property tests for semantic-version inference: whatever the content, the
//! computed bump follows product.md's rules.

use std::collections::BTreeMap;

use promptvault_core::versioning::{BumpError, analyze, choose_bump};
use promptvault_core::{Bump, Config, ParameterSchema, TemplateBody, VersionContent};
use proptest::prelude::*;
use serde_json::{Value, json};

fn prop_schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "string"})),
        Just(json!({"type": "integer", "minimum": 0})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "array", "items": {"type": "string"}})),
        Just(json!({"type": "string", "enum": ["a", "b", "c"]})),
        Just(json!({"type": ["string", "null"]})),
    ]
}

/// A parameter schema: up to six named parameters, some required.
fn schema() -> impl Strategy<Value = (BTreeMap<String, Value>, Vec<String>)> {
    prop::collection::btree_map("[a-h]", prop_schema(), 0..6).prop_flat_map(|props| {
        let names: Vec<String> = props.keys().cloned().collect();
        let n = names.len();
        (Just(props), prop::collection::vec(any::<bool>(), n)).prop_map(move |(props, picks)| {
            let required = names.iter().zip(picks).filter(|(_, p)| *p).map(|(n, _)| n.clone()).collect();
            (props, required)
        })
    })
}

fn to_schema(props: &BTreeMap<String, Value>, required: &[String]) -> ParameterSchema {
    ParameterSchema::parse(json!({"type": "object", "properties": props, "required": required})).unwrap()
}

fn words() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z]{3,9}", 1..30)
}

fn content(text: String, schema: ParameterSchema) -> VersionContent {
    VersionContent { body: TemplateBody::Text(text), parameter_schema: schema, config: Config::default() }
}

fn required(a: &VersionContent, b: &VersionContent) -> Option<Bump> {
    analyze(a, b).required_bump()
}

/// Joins words with arbitrary whitespace runs.
fn spaced(words: &[String], gaps: &[usize]) -> String {
    let seps = [" ", "  ", "\n", "\t", " \n "];
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push_str(seps[gaps.get(i).copied().unwrap_or(0) % seps.len()]);
        }
        out.push_str(w);
    }
    out
}

proptest! {
    #[test]
    fn identical_content_needs_no_bump((props, req) in schema(), w in words()) {
        let c = content(w.join(" "), to_schema(&props, &req));
        prop_assert_eq!(required(&c, &c), None);
        let v = semver::Version::new(1, 2, 3);
        let unchanged = matches!(choose_bump(&v, &analyze(&c, &c), None), Err(BumpError::Unchanged { .. }));
        prop_assert!(unchanged);
    }

    #[test]
    fn whitespace_only_edits_are_patches((props, req) in schema(), w in words(), gaps in prop::collection::vec(0usize..5, 30), trailing in "[ \n]{0,3}") {
        let s = to_schema(&props, &req);
        let a = content(w.join(" "), s.clone());
        let b = content(spaced(&w, &gaps) + &trailing, s);
        let expected = if a == b { None } else { Some(Bump::Patch) };
        prop_assert_eq!(required(&a, &b), expected);
    }

    #[test]
    fn new_optional_parameters_are_minor((props, req) in schema(), w in words(), extra in prop_schema()) {
        let mut more = props.clone();
        more.insert("zz_new".into(), extra);
        let a = content(w.join(" "), to_schema(&props, &req));
        let b = content(w.join(" "), to_schema(&more, &req));
        prop_assert_eq!(required(&a, &b), Some(Bump::Minor));
    }

    #[test]
    fn new_required_parameters_are_major((props, req) in schema(), w in words(), extra in prop_schema()) {
        let mut more = props.clone();
        more.insert("zz_new".into(), extra);
        let mut req2 = req.clone();
        req2.push("zz_new".into());
        let a = content(w.join(" "), to_schema(&props, &req));
        let b = content(w.join(" "), to_schema(&more, &req2));
        prop_assert_eq!(required(&a, &b), Some(Bump::Major));
    }

    #[test]
    fn removing_any_parameter_is_major((props, req) in schema().prop_filter("needs a parameter", |(p, _)| !p.is_empty()), w in words(), pick in any::<prop::sample::Index>()) {
        let names: Vec<&String> = props.keys().collect();
        let gone = names[pick.index(names.len())].clone();
        let mut fewer = props.clone();
        fewer.remove(&gone);
        let req2: Vec<String> = req.iter().filter(|r| **r != gone).cloned().collect();
        let a = content(w.join(" "), to_schema(&props, &req));
        let b = content(w.join(" "), to_schema(&fewer, &req2));
        prop_assert_eq!(required(&a, &b), Some(Bump::Major));
    }

    #[test]
    fn requiring_is_major_and_relaxing_is_minor((props, _) in schema().prop_filter("needs a parameter", |(p, _)| !p.is_empty()), w in words(), pick in any::<prop::sample::Index>()) {
        let names: Vec<String> = props.keys().cloned().collect();
        let one = names[pick.index(names.len())].clone();
        let optional = content(w.join(" "), to_schema(&props, &[]));
        let mandatory = content(w.join(" "), to_schema(&props, std::slice::from_ref(&one)));
        prop_assert_eq!(required(&optional, &mandatory), Some(Bump::Major));
        prop_assert_eq!(required(&mandatory, &optional), Some(Bump::Minor));
    }

    #[test]
    fn narrowing_one_way_is_widening_the_other(w in words()) {
        let wide = ParameterSchema::parse(json!({"type": "object", "properties": {"x": {"type": ["string", "null"]}}})).unwrap();
        let narrow = ParameterSchema::parse(json!({"type": "object", "properties": {"x": {"type": "string"}}})).unwrap();
        let a = content(w.join(" "), wide);
        let b = content(w.join(" "), narrow);
        prop_assert_eq!(required(&a, &b), Some(Bump::Major));
        prop_assert_eq!(required(&b, &a), Some(Bump::Minor));
    }

    #[test]
    fn the_required_bump_covers_every_change((props, req) in schema(), (props2, req2) in schema(), w in words(), w2 in words()) {
        let a = content(w.join(" "), to_schema(&props, &req));
        let b = content(w2.join(" "), to_schema(&props2, &req2));
        let set = analyze(&a, &b);
        let worst = set.changes.iter().map(|c| c.impact).max();
        prop_assert_eq!(set.required_bump(), worst);
    }

    #[test]
    fn a_caller_may_ask_for_more_never_less((props, req) in schema(), (props2, req2) in schema(), w in words(), w2 in words(), ask in prop_oneof![Just(Bump::Patch), Just(Bump::Minor), Just(Bump::Major)]) {
        let a = content(w.join(" "), to_schema(&props, &req));
        let b = content(w2.join(" "), to_schema(&props2, &req2));
        let set = analyze(&a, &b);
        let prev = semver::Version::new(2, 5, 7);
        match (set.required_bump(), choose_bump(&prev, &set, Some(ask))) {
            (None, Err(BumpError::Unchanged { .. })) => {}
            (Some(need), Ok(got)) => { prop_assert!(ask >= need); prop_assert_eq!(got, ask); }
            (Some(need), Err(BumpError::TooSmall { requested, required, reasons })) => {
                prop_assert!(ask < need);
                prop_assert_eq!((requested, required), (ask, need));
                prop_assert!(!reasons.is_empty());
            }
            (need, got) => prop_assert!(false, "need {:?} got {:?}", need, got),
        }
        if let Some(need) = set.required_bump() {
            prop_assert_eq!(choose_bump(&prev, &set, None).ok(), Some(need));
        }
    }

    #[test]
    fn applying_a_bump_always_moves_forward(major in 0u64..1000, minor in 0u64..1000, patch in 0u64..1000, b in prop_oneof![Just(Bump::Patch), Just(Bump::Minor), Just(Bump::Major)]) {
        let v = semver::Version::new(major, minor, patch);
        let next = b.apply(&v);
        prop_assert!(next > v);
        match b {
            Bump::Major => prop_assert_eq!((next.minor, next.patch), (0, 0)),
            Bump::Minor => prop_assert_eq!((next.major, next.patch), (major, 0)),
            Bump::Patch => prop_assert_eq!((next.major, next.minor), (major, minor)),
        }
    }
}
