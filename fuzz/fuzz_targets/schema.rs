//! Parameter schemas: parsing, compiling, defaults, validation, and the
//! schema diff that drives semantic-version inference.
//!
//! Input: `schema-json \xFF value-json [\xFF other-schema-json]`.
//! Properties: no panic; a value that validated still validates (validation
//! is deterministic); a schema diffed with itself shows no change; every
//! violation carries a JSON pointer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptvault_core::ParameterSchema;
use promptvault_core::schema_diff::diff_schemas;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0xFF);
    let Ok(schema) = serde_json::from_slice::<Value>(parts.next().unwrap_or_default()) else { return };
    let value = serde_json::from_slice::<Value>(parts.next().unwrap_or_default()).unwrap_or(Value::Null);
    let other = parts.next().and_then(|p| serde_json::from_slice::<Value>(p).ok());

    assert!(diff_schemas(&schema, &schema).is_empty(), "a schema differs from itself");
    if let Some(other) = &other {
        for change in diff_schemas(&schema, other) {
            let _ = change.impact();
        }
    }

    let Ok(parsed) = ParameterSchema::parse(schema) else { return };
    let _ = parsed.declared();
    let _ = parsed.required();
    if let Some(other) = &other {
        let _ = parsed.contract_violations(other);
    }
    let Ok(compiled) = parsed.compile() else { return };
    let mut value = value;
    if let Value::Object(map) = &mut value {
        compiled.apply_defaults(map);
    }
    match compiled.validate(&value) {
        Ok(()) => assert!(compiled.validate(&value).is_ok(), "validation is not deterministic"),
        Err(violations) => {
            assert!(!violations.is_empty(), "an error without violations");
            for v in &violations {
                assert!(v.pointer.is_empty() || v.pointer.starts_with('/'), "bad pointer {:?}", v.pointer);
            }
        }
    }
});
