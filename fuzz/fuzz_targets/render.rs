//! Template parsing and rendering under the default limits.
//!
//! Input: `source[\xFF params-json[\xFF include-source]]`. A first byte with
//! the low bit set makes a chat template whose messages are split at `\xFE`.
//! Properties: no panic; analysis and compilation agree on whether the
//! source compiles; a successful render stays within `max_output_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptvault_core::render::{CompiledTemplate, RenderLimits, RenderedBody, TemplateError, analyze_body};
use promptvault_core::{ChatItem, ChatMessage, ParameterSchema, Role, TemplateBody};
use serde_json::{Map, Value, json};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |b| *b == 0xFF);
    let source = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let params_raw = parts.next().unwrap_or_default();
    let include = parts.next().map(|s| String::from_utf8_lossy(s).into_owned());

    let body = if mode & 1 == 1 {
        let role = Role::parse("user").expect("static role");
        TemplateBody::Chat(
            source
                .split('\u{FFFD}')
                .map(|content| {
                    ChatItem::Message(ChatMessage { role: role.clone(), content: content.to_owned() })
                })
                .collect(),
        )
    } else {
        TemplateBody::Text(source)
    };
    let params = match serde_json::from_slice::<Value>(params_raw) {
        Ok(Value::Object(m)) => Value::Object(m),
        Ok(other) => json!({ "name": other.clone(), "items": [other.clone(), other], "x": "x" }),
        Err(_) => json!({ "name": String::from_utf8_lossy(params_raw), "items": [1, 2, 3] }),
    };
    let includes: Vec<(String, String)> = include.into_iter().map(|s| ("lib/part".to_owned(), s)).collect();

    let analyzed = analyze_body(&body);
    let limits = RenderLimits::default();
    let compiled = CompiledTemplate::compile(
        "fuzz/render",
        &body,
        &ParameterSchema::default(),
        includes.clone(),
        limits,
    );
    // Analysis also checks the include references (compilation is handed
    // them resolved), so: a body that analyses cleanly compiles (when no
    // include source is added), and a body that compiles fails analysis
    // only over a reference.
    if includes.is_empty() && analyzed.is_ok() {
        assert!(compiled.is_ok(), "analysis passed, compilation failed: {:?}", compiled.as_ref().err());
    }
    if compiled.is_ok() {
        assert!(
            matches!(analyzed, Ok(_) | Err(TemplateError::Reference(_))),
            "compiled, but analysis found {:?}",
            analyzed.as_ref().err()
        );
    }
    let Ok(compiled) = compiled else { return };
    if let Ok(rendered) = compiled.render(params, &Map::new()) {
        let size = match &rendered.body {
            RenderedBody::Text(t) => t.len(),
            RenderedBody::Chat(m) => m.iter().map(|m| m.content.len() + m.role.len()).sum(),
        };
        assert!(size <= limits.max_output_bytes, "output of {size} bytes passed the limit");
    }
});
