//! Checks on free text.

use serde_json::Value;

/// The JSON pointer of the first string (or key) holding a NUL character.
#[must_use]
pub fn find_nul(v: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                let found = k.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(v, &mut path).then(|| if path.is_empty() { "/".to_owned() } else { path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_first_nul_with_its_pointer() {
        assert_eq!(find_nul(&json!({"a": ["ok", "x\u{0}"]})), Some("/a/1".into()));
        assert_eq!(find_nul(&json!({"a/b": "\u{0}"})), Some("/a~1b".into()));
        assert_eq!(find_nul(&json!("\u{0}")), Some("/".into()));
        assert_eq!(find_nul(&json!({"a": [1, "fine"]})), None);
    }
}
