//! Checks on free text.

use serde_json::{Map, Value};

/// The JSON pointer of the first string (or key) holding a NUL character.
#[must_use]
pub fn find_nul(v: &Value) -> Option<String> {
    if !has_nul(v) {
        return None;
    }
    let mut path = String::new();
    pointer_to_nul(v, &mut path);
    Some(if path.is_empty() { "/".to_owned() } else { path })
}

/// [`find_nul`] for the members of an object, without building a `Value`.
#[must_use]
pub fn find_nul_in(map: &Map<String, Value>) -> Option<String> {
    let (key, value) = map.iter().find(|(k, v)| k.contains('\0') || has_nul(v))?;
    let mut path = format!("/{}", escape(key));
    if !key.contains('\0') {
        pointer_to_nul(value, &mut path);
    }
    Some(path)
}

/// Whether any string or key holds a NUL; allocates nothing.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, item)| k.contains('\0') || has_nul(item)),
        _ => false,
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Appends the path to the first NUL below `v` (which has one).
fn pointer_to_nul(v: &Value, path: &mut String) {
    match v {
        Value::Array(items) => {
            if let Some((i, item)) = items.iter().enumerate().find(|(_, item)| has_nul(item)) {
                path.push_str(&format!("/{i}"));
                pointer_to_nul(item, path);
            }
        }
        Value::Object(map) => {
            if let Some((k, item)) = map.iter().find(|(k, item)| k.contains('\0') || has_nul(item)) {
                path.push('/');
                path.push_str(&escape(k));
                if !k.contains('\0') {
                    pointer_to_nul(item, path);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_first_nul_with_its_pointer() {
        assert_eq!(find_nul(&json!({"a": ["ok", "x\u{0}"]})), Some("/a/1".into()));
        assert_eq!(find_nul(&json!({"a/b": "\u{0}"})), Some("/a~1b".into()));
        assert_eq!(find_nul(&json!({"k\u{0}": 1})), Some("/k\u{0}".into()));
        assert_eq!(find_nul(&json!("\u{0}")), Some("/".into()));
        assert_eq!(find_nul(&json!({"a": [1, "fine"]})), None);
        let map = json!({"ok": 1, "b": {"c": "\u{0}"}});
        assert_eq!(find_nul_in(map.as_object().unwrap()), Some("/b/c".into()));
        assert_eq!(find_nul_in(json!({"ok": "x"}).as_object().unwrap()), None);
    }
}
