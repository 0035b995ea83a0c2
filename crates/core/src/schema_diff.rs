//! Compares two parameter schemas and says what a caller would notice.
//!
//! Each change carries the least version bump it needs: a change that can make
//! a previously valid call invalid (a parameter removed or newly required, a
//! type narrowed, enum values removed, a bound tightened) is incompatible and
//! needs a major bump; a change that only accepts more needs a minor bump;
//! documentation-only changes are patches. Keywords this module does not
//! understand are treated as incompatible when they change: guessing
//! "compatible" would be the unsafe mistake.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::versioning::Bump;

/// One observable change between two parameter schemas.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    /// Dotted path of the parameter (`user.name`, `items[]`); empty for the root.
    pub path: String,
    pub kind: SchemaChangeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChangeKind {
    Added { required: bool, types: Option<Vec<String>> },
    Removed,
    BecameRequired,
    BecameOptional,
    TypeNarrowed { from: Option<Vec<String>>, to: Option<Vec<String>> },
    TypeWidened { from: Option<Vec<String>>, to: Option<Vec<String>> },
    TypeChanged { from: Option<Vec<String>>, to: Option<Vec<String>> },
    EnumRestricted,
    EnumLifted,
    EnumValuesRemoved(Vec<Value>),
    EnumValuesAdded(Vec<Value>),
    Tightened { keyword: String, from: Option<Value>, to: Option<Value> },
    Relaxed { keyword: String, from: Option<Value>, to: Option<Value> },
    AdditionalForbidden,
    AdditionalAllowed,
    DefaultChanged { from: Option<Value>, to: Option<Value> },
    Documentation { keyword: String },
    Other { keyword: String },
}

impl SchemaChange {
    /// The least bump this change needs.
    #[must_use]
    pub fn impact(&self) -> Bump {
        use SchemaChangeKind::*;
        match &self.kind {
            Added { required: true, .. }
            | Removed
            | BecameRequired
            | TypeNarrowed { .. }
            | TypeChanged { .. }
            | EnumRestricted
            | EnumValuesRemoved(_)
            | Tightened { .. }
            | AdditionalForbidden
            | Other { .. } => Bump::Major,
            Added { required: false, .. }
            | BecameOptional
            | TypeWidened { .. }
            | EnumLifted
            | EnumValuesAdded(_)
            | Relaxed { .. }
            | AdditionalAllowed
            | DefaultChanged { .. } => Bump::Minor,
            Documentation { .. } => Bump::Patch,
        }
    }
}

struct Types<'a>(&'a Option<Vec<String>>);

impl fmt::Display for Types<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("any type"),
            Some(t) => f.write_str(&t.join(" | ")),
        }
    }
}

struct Opt<'a>(&'a Option<Value>);

impl fmt::Display for Opt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("none"),
            Some(v) => write!(f, "{v}"),
        }
    }
}

fn values(v: &[Value]) -> String {
    v.iter().map(Value::to_string).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SchemaChangeKind::*;
        let p = if self.path.is_empty() {
            "the parameter object".to_owned()
        } else {
            format!("parameter `{}`", self.path)
        };
        match &self.kind {
            Added { required, types } => {
                write!(f, "{p} added ({}, {})", if *required { "required" } else { "optional" }, Types(types))
            }
            Removed => write!(f, "{p} removed"),
            BecameRequired => write!(f, "{p} is now required"),
            BecameOptional => write!(f, "{p} is now optional"),
            TypeNarrowed { from, to } => {
                write!(f, "{p} type narrowed from {} to {}", Types(from), Types(to))
            }
            TypeWidened { from, to } => {
                write!(f, "{p} type widened from {} to {}", Types(from), Types(to))
            }
            TypeChanged { from, to } => {
                write!(f, "{p} type changed from {} to {}", Types(from), Types(to))
            }
            EnumRestricted => write!(f, "{p} is now limited to a list of values"),
            EnumLifted => write!(f, "{p} is no longer limited to a list of values"),
            EnumValuesRemoved(v) => write!(f, "{p} no longer accepts {}", values(v)),
            EnumValuesAdded(v) => write!(f, "{p} now also accepts {}", values(v)),
            Tightened { keyword, from, to } => {
                write!(f, "{p} `{keyword}` tightened from {} to {}", Opt(from), Opt(to))
            }
            Relaxed { keyword, from, to } => {
                write!(f, "{p} `{keyword}` relaxed from {} to {}", Opt(from), Opt(to))
            }
            AdditionalForbidden => write!(f, "{p} no longer accepts undeclared parameters"),
            AdditionalAllowed => write!(f, "{p} now accepts undeclared parameters"),
            DefaultChanged { from, to } => {
                write!(f, "{p} default changed from {} to {}", Opt(from), Opt(to))
            }
            Documentation { keyword } => write!(f, "{p} `{keyword}` changed"),
            Other { keyword } => write!(f, "{p} `{keyword}` changed (not analysed; treated as incompatible)"),
        }
    }
}

/// Every change from `old` to `new`, in a stable order.
#[must_use]
pub fn diff_schemas(old: &Value, new: &Value) -> Vec<SchemaChange> {
    let mut out = Vec::new();
    diff_node("", old, new, &mut out);
    out
}

/// Keywords that only document; changing them is a patch.
const DOC_KEYWORDS: &[&str] = &[
    "title",
    "description",
    "examples",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$schema",
    "$id",
    "x-sensitive",
];

/// Keywords this module compares itself.
const HANDLED: &[&str] =
    &["type", "enum", "const", "properties", "required", "additionalProperties", "items", "default"];

/// Lower bounds: raising one (or adding it) rejects inputs accepted before.
const LOWER: &[&str] =
    &["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains"];
/// Upper bounds: lowering one (or adding it) rejects inputs accepted before.
const UPPER: &[&str] =
    &["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains"];
/// Constraints where any addition or change can reject, and removal only accepts more.
const ANY_CHANGE_TIGHTENS: &[&str] = &["pattern", "format", "multipleOf"];

fn diff_node(path: &str, old: &Value, new: &Value, out: &mut Vec<SchemaChange>) {
    if old == new {
        return;
    }
    let push = |out: &mut Vec<SchemaChange>, kind| {
        out.push(SchemaChange { path: path.to_owned(), kind });
    };
    let (old, new) = match (old, new) {
        (Value::Object(o), Value::Object(n)) => (o, n),
        // Boolean schemas: `true` accepts everything, `false` nothing.
        (Value::Bool(true), _) | (_, Value::Bool(false)) => {
            push(out, SchemaChangeKind::Other { keyword: "schema".into() });
            return;
        }
        _ => {
            push(
                out,
                SchemaChangeKind::Relaxed {
                    keyword: "schema".into(),
                    from: Some(old.clone()),
                    to: Some(new.clone()),
                },
            );
            return;
        }
    };

    diff_types(old, new, &mut |k| push(out, k));
    diff_enum(old, new, &mut |k| push(out, k));
    diff_bounds(old, new, &mut |k| push(out, k));
    if old.get("default") != new.get("default") {
        push(
            out,
            SchemaChangeKind::DefaultChanged {
                from: old.get("default").cloned(),
                to: new.get("default").cloned(),
            },
        );
    }
    diff_properties(path, old, new, out);
    match (old.get("items"), new.get("items")) {
        (Some(o), Some(n)) => diff_node(&format!("{path}[]"), o, n, out),
        (None, Some(_)) => push(out, SchemaChangeKind::Other { keyword: "items".into() }),
        (Some(_), None) => push(
            out,
            SchemaChangeKind::Relaxed { keyword: "items".into(), from: old.get("items").cloned(), to: None },
        ),
        (None, None) => {}
    }

    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let k = key.as_str();
        if HANDLED.contains(&k)
            || LOWER.contains(&k)
            || UPPER.contains(&k)
            || ANY_CHANGE_TIGHTENS.contains(&k)
            || k == "uniqueItems"
            || old.get(k) == new.get(k)
        {
            continue;
        }
        let kind = if DOC_KEYWORDS.contains(&k) || k.starts_with("x-") {
            SchemaChangeKind::Documentation { keyword: key.clone() }
        } else {
            SchemaChangeKind::Other { keyword: key.clone() }
        };
        push(out, kind);
    }
}

/// The set of JSON types a schema accepts; `None` means any.
fn types_of(schema: &Map<String, Value>) -> Option<Vec<String>> {
    let mut types: Vec<String> = match schema.get("type")? {
        Value::String(t) => vec![t.clone()],
        Value::Array(a) => a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
        _ => return None,
    };
    types.sort();
    types.dedup();
    Some(types)
}

/// Does the type set `a` accept every value that `b` accepts?
fn covers(a: &Option<Vec<String>>, b: &Option<Vec<String>>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => {
            b.iter().all(|t| a.contains(t) || (t == "integer" && a.iter().any(|x| x == "number")))
        }
    }
}

fn diff_types(old: &Map<String, Value>, new: &Map<String, Value>, push: &mut dyn FnMut(SchemaChangeKind)) {
    let (from, to) = (types_of(old), types_of(new));
    if from == to {
        return;
    }
    let kind = match (covers(&to, &from), covers(&from, &to)) {
        (true, _) => SchemaChangeKind::TypeWidened { from, to },
        (false, true) => SchemaChangeKind::TypeNarrowed { from, to },
        (false, false) => SchemaChangeKind::TypeChanged { from, to },
    };
    push(kind);
}

/// `const` is treated as a one-value `enum`.
fn allowed_values(schema: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Some(values.clone());
    }
    schema.get("const").map(|v| vec![v.clone()])
}

fn diff_enum(old: &Map<String, Value>, new: &Map<String, Value>, push: &mut dyn FnMut(SchemaChangeKind)) {
    match (allowed_values(old), allowed_values(new)) {
        (None, None) => {}
        (None, Some(_)) => push(SchemaChangeKind::EnumRestricted),
        (Some(_), None) => push(SchemaChangeKind::EnumLifted),
        (Some(o), Some(n)) => {
            let removed: Vec<Value> = o.iter().filter(|v| !n.contains(v)).cloned().collect();
            let added: Vec<Value> = n.iter().filter(|v| !o.contains(v)).cloned().collect();
            if !removed.is_empty() {
                push(SchemaChangeKind::EnumValuesRemoved(removed));
            }
            if !added.is_empty() {
                push(SchemaChangeKind::EnumValuesAdded(added));
            }
        }
    }
}

fn diff_bounds(old: &Map<String, Value>, new: &Map<String, Value>, push: &mut dyn FnMut(SchemaChangeKind)) {
    for &keyword in LOWER.iter().chain(UPPER).chain(ANY_CHANGE_TIGHTENS) {
        let (from, to) = (old.get(keyword), new.get(keyword));
        if from == to {
            continue;
        }
        let tightened = match (from.and_then(Value::as_f64), to.and_then(Value::as_f64)) {
            _ if ANY_CHANGE_TIGHTENS.contains(&keyword) => to.is_some(),
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(f), Some(t)) if LOWER.contains(&keyword) => t > f,
            (Some(f), Some(t)) => t < f,
        };
        let (from, to, keyword) = (from.cloned(), to.cloned(), keyword.to_owned());
        push(if tightened {
            SchemaChangeKind::Tightened { keyword, from, to }
        } else {
            SchemaChangeKind::Relaxed { keyword, from, to }
        });
    }
    let unique = |m: &Map<String, Value>| m.get("uniqueItems").and_then(Value::as_bool) == Some(true);
    match (unique(old), unique(new)) {
        (false, true) => push(SchemaChangeKind::Tightened {
            keyword: "uniqueItems".into(),
            from: None,
            to: Some(Value::Bool(true)),
        }),
        (true, false) => push(SchemaChangeKind::Relaxed {
            keyword: "uniqueItems".into(),
            from: Some(Value::Bool(true)),
            to: None,
        }),
        _ => {}
    }
}

fn properties(schema: &Map<String, Value>) -> BTreeMap<&str, &Value> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

fn required(schema: &Map<String, Value>) -> BTreeSet<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether undeclared properties are accepted: absent or `true` accepts them;
/// `false` refuses them; a schema accepts some, which we compare as a whole.
fn additional(schema: &Map<String, Value>) -> Option<&Value> {
    schema.get("additionalProperties")
}

fn diff_properties(
    path: &str,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    out: &mut Vec<SchemaChange>,
) {
    let (old_props, new_props) = (properties(old), properties(new));
    let (old_req, new_req) = (required(old), required(new));
    let child = |name: &str| {
        if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
    };
    let names: BTreeSet<&str> = old_props
        .keys()
        .chain(new_props.keys())
        .chain(old_req.iter())
        .chain(new_req.iter())
        .copied()
        .collect();
    for name in names {
        let p = child(name);
        match (old_props.get(name), new_props.get(name)) {
            (None, None) => {}
            (Some(_), None) => out.push(SchemaChange { path: p.clone(), kind: SchemaChangeKind::Removed }),
            (None, Some(schema)) => {
                let types = schema.as_object().and_then(types_of);
                out.push(SchemaChange {
                    path: p.clone(),
                    kind: SchemaChangeKind::Added { required: new_req.contains(name), types },
                });
                continue;
            }
            (Some(o), Some(n)) => diff_node(&p, o, n, out),
        }
        if old_props.contains_key(name) != new_props.contains_key(name) {
            // Added or removed: reported above, whatever `required` says.
            continue;
        }
        match (old_req.contains(name), new_req.contains(name)) {
            (false, true) => out.push(SchemaChange { path: p, kind: SchemaChangeKind::BecameRequired }),
            (true, false) => out.push(SchemaChange { path: p, kind: SchemaChangeKind::BecameOptional }),
            _ => {}
        }
    }

    let (a, b) = (additional(old), additional(new));
    if a != b {
        let accepts_all = |v: Option<&Value>| matches!(v, None | Some(Value::Bool(true)));
        let kind = match (accepts_all(a), accepts_all(b)) {
            (true, true) => return,
            (false, true) => SchemaChangeKind::AdditionalAllowed,
            _ if b == Some(&Value::Bool(false)) => SchemaChangeKind::AdditionalForbidden,
            _ => SchemaChangeKind::Other { keyword: "additionalProperties".into() },
        };
        out.push(SchemaChange { path: path.to_owned(), kind });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 50},
                "tone": {"type": "string", "enum": ["warm", "formal"]},
                "count": {"type": "integer", "minimum": 1}
            },
            "required": ["name"]
        })
    }

    fn with(f: impl FnOnce(&mut Value)) -> Value {
        let mut v = base();
        f(&mut v);
        v
    }

    fn worst(old: &Value, new: &Value) -> Option<Bump> {
        diff_schemas(old, new).iter().map(SchemaChange::impact).max()
    }

    #[rstest]
    #[case::remove(|v: &mut Value| { v["properties"].as_object_mut().unwrap().remove("count"); }, Bump::Major, "parameter `count` removed")]
    #[case::add_required(|v: &mut Value| { v["properties"]["lang"] = json!({"type":"string"}); v["required"] = json!(["name","lang"]); }, Bump::Major, "parameter `lang` added (required, string)")]
    #[case::add_optional(|v: &mut Value| { v["properties"]["lang"] = json!({"type":"string"}); }, Bump::Minor, "parameter `lang` added (optional, string)")]
    #[case::now_required(|v: &mut Value| { v["required"] = json!(["name","count"]); }, Bump::Major, "parameter `count` is now required")]
    #[case::now_optional(|v: &mut Value| { v["required"] = json!([]); }, Bump::Minor, "parameter `name` is now optional")]
    #[case::number_to_integer(|v: &mut Value| { v["properties"]["count"]["type"] = json!("number"); }, Bump::Minor, "parameter `count` type widened from integer to number")]
    #[case::nullable(|v: &mut Value| { v["properties"]["name"]["type"] = json!(["string", "null"]); }, Bump::Minor, "type widened from string to null | string")]
    #[case::type_changed(|v: &mut Value| { v["properties"]["name"]["type"] = json!("integer"); }, Bump::Major, "type changed from string to integer")]
    #[case::enum_removed_value(|v: &mut Value| { v["properties"]["tone"]["enum"] = json!(["warm"]); }, Bump::Major, "parameter `tone` no longer accepts \"formal\"")]
    #[case::enum_added_value(|v: &mut Value| { v["properties"]["tone"]["enum"] = json!(["warm", "formal", "playful"]); }, Bump::Minor, "now also accepts \"playful\"")]
    #[case::max_shrunk(|v: &mut Value| { v["properties"]["name"]["maxLength"] = json!(20); }, Bump::Major, "`maxLength` tightened from 50 to 20")]
    #[case::max_grown(|v: &mut Value| { v["properties"]["name"]["maxLength"] = json!(80); }, Bump::Minor, "`maxLength` relaxed from 50 to 80")]
    #[case::min_raised(|v: &mut Value| { v["properties"]["count"]["minimum"] = json!(2); }, Bump::Major, "`minimum` tightened")]
    #[case::pattern_added(|v: &mut Value| { v["properties"]["name"]["pattern"] = json!("^[A-Z]"); }, Bump::Major, "`pattern` tightened")]
    #[case::description(|v: &mut Value| { v["properties"]["name"]["description"] = json!("Who we greet"); }, Bump::Patch, "`description` changed")]
    #[case::default(|v: &mut Value| { v["properties"]["tone"]["default"] = json!("warm"); }, Bump::Minor, "default changed")]
    #[case::closed(|v: &mut Value| { v["additionalProperties"] = json!(false); }, Bump::Major, "no longer accepts undeclared parameters")]
    #[case::unknown_keyword(|v: &mut Value| { v["properties"]["name"]["oneOf"] = json!([{"minLength": 1}]); }, Bump::Major, "`oneOf` changed (not analysed")]
    fn impacts(#[case] edit: fn(&mut Value), #[case] bump: Bump, #[case] text: &str) {
        let new = with(edit);
        let changes = diff_schemas(&base(), &new);
        assert_eq!(worst(&base(), &new), Some(bump), "{changes:?}");
        let rendered: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert!(rendered.iter().any(|r| r.contains(text)), "{rendered:?} should mention {text:?}");
    }

    #[test]
    fn identical_schemas_have_no_changes() {
        assert!(diff_schemas(&base(), &base()).is_empty());
    }

    #[test]
    fn nested_objects_are_compared_by_path() {
        let old = json!({"type":"object","properties":{"user":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}}});
        let new = json!({"type":"object","properties":{"user":{"type":"object","properties":{}}}});
        let changes = diff_schemas(&old, &new);
        assert_eq!(changes[0].path, "user.name");
        assert_eq!(changes[0].kind, SchemaChangeKind::Removed);
    }

    #[test]
    fn array_items_are_compared() {
        let old = json!({"type":"object","properties":{"tags":{"type":"array","items":{"type":"string"}}}});
        let new = json!({"type":"object","properties":{"tags":{"type":"array","items":{"type":"integer"}}}});
        let changes = diff_schemas(&old, &new);
        assert_eq!(changes[0].path, "tags[]");
        assert_eq!(changes[0].impact(), Bump::Major);
    }

    #[test]
    fn narrowing_one_way_is_widening_the_other() {
        let a = json!({"type":"object","properties":{"x":{"type":["string","null"]}}});
        let b = json!({"type":"object","properties":{"x":{"type":"string"}}});
        assert_eq!(worst(&a, &b), Some(Bump::Major));
        assert_eq!(worst(&b, &a), Some(Bump::Minor));
    }
}
