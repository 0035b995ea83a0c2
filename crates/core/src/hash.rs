//! Content hashes: SHA-256 over a canonical JSON form of a version's content.
//!
//! The canonical form is JSON with object keys sorted by their UTF-8 bytes,
//! no insignificant whitespace, and serde_json's shortest number and string
//! encodings. The same content always gives the same hash, on any backend.

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::content::{TemplateBody, VersionContent};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    #[must_use]
    pub fn of(content: &VersionContent) -> Self {
        let mut doc = json!({
            "kind": content.body.kind().as_str(),
            "parameter_schema": content.parameter_schema.as_value(),
            "config": content.config.to_value(),
        });
        match &content.body {
            TemplateBody::Text(t) => doc["template_text"] = Value::String(t.clone()),
            TemplateBody::Chat(items) => {
                doc["messages"] = serde_json::to_value(items).unwrap_or(Value::Null);
            }
        }
        let mut canonical = String::new();
        write_canonical(&doc, &mut canonical);
        Self(Sha256::digest(canonical.as_bytes()).into())
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a content hash looks like sha256:<64 hex digits>")]
pub struct BadHash;

impl FromStr for ContentHash {
    type Err = BadHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("sha256:").ok_or(BadHash)?;
        let bytes = hex::decode(hex_part).map_err(|_| BadHash)?;
        Ok(Self(bytes.try_into().map_err(|_| BadHash)?))
    }
}

/// Writes `v` in canonical form.
pub fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Config;
    use crate::schema::ParameterSchema;

    fn content(text: &str, config: Value) -> VersionContent {
        VersionContent {
            body: TemplateBody::Text(text.into()),
            parameter_schema: ParameterSchema::default(),
            config: Config::parse(config).unwrap(),
        }
    }

    #[test]
    fn key_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        let (mut ca, mut cb) = (String::new(), String::new());
        write_canonical(&a, &mut ca);
        write_canonical(&b, &mut cb);
        assert_eq!(ca, cb);
        assert_eq!(ca, r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
    }

    #[test]
    fn hash_covers_text_and_config() {
        let a = ContentHash::of(&content("hi", json!({"t": 1})));
        assert_eq!(a, ContentHash::of(&content("hi", json!({"t": 1}))));
        assert_ne!(a, ContentHash::of(&content("hi ", json!({"t": 1}))));
        assert_ne!(a, ContentHash::of(&content("hi", json!({"t": 2}))));
    }

    #[test]
    fn hash_text_round_trip() {
        let h = ContentHash::of(&content("x", json!({})));
        let s = h.to_string();
        assert!(s.starts_with("sha256:") && s.len() == 7 + 64);
        assert_eq!(s.parse::<ContentHash>().unwrap(), h);
        assert!("md5:00".parse::<ContentHash>().is_err());
    }
}
