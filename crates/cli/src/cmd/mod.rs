//! The verbs.

pub mod audit;
pub mod catalog;
pub mod encryption;
pub mod governance;
pub mod identity;
pub mod lifecycle;
pub mod render;
pub mod serve;
pub mod session;
pub mod versions;

use std::io::{IsTerminal, Read};
use std::path::Path;

use serde_json::{Map, Value};

use crate::client::{CliError, Result};

/// Reads a file, or standard input for `-`.
pub fn read_source(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::invalid(format!("cannot read standard input: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::invalid(format!("cannot read {}: {e}", path.display())))
}

/// Standard input when it is piped in, otherwise `None`.
pub fn piped_stdin() -> Result<Option<String>> {
    if std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let s = read_source(Path::new("-"))?;
    Ok((!s.trim().is_empty()).then_some(s))
}

/// Reads and parses a JSON file (or `-`).
pub fn read_json(path: &Path) -> Result<Value> {
    let text = read_source(path)?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::invalid(format!("{} is not valid JSON: {e}", path.display())))
}

/// Parses `--var` values: `key=text` sets a string, `key:=json` a JSON value.
pub fn parse_vars(vars: &[String]) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for v in vars {
        let (key, value) = if let Some((k, json)) = v.split_once(":=") {
            let parsed: Value = serde_json::from_str(json)
                .map_err(|e| CliError::usage(format!("--var {k}:= needs JSON after ':=': {e}")))?;
            (k, parsed)
        } else if let Some((k, text)) = v.split_once('=') {
            (k, Value::String(text.to_owned()))
        } else {
            return Err(CliError::usage(format!("--var {v:?}: write key=value (text) or key:=json")));
        };
        if key.is_empty() {
            return Err(CliError::usage(format!("--var {v:?}: the name is empty")));
        }
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vars_are_text_or_json() {
        let m =
            parse_vars(&["name=Ada".into(), "n:=3".into(), "tags:=[\"a\"]".into(), "eq=a=b".into()]).unwrap();
        assert_eq!(Value::Object(m), json!({"name": "Ada", "n": 3, "tags": ["a"], "eq": "a=b"}));
        assert!(parse_vars(&["novalue".into()]).is_err());
        assert!(parse_vars(&["x:={bad".into()]).is_err());
        assert!(parse_vars(&["=v".into()]).is_err());
    }
}
