use serde_json::{Map, Value, json};

use super::*;
use crate::content::ChatMessage;

fn schema(v: Value) -> ParameterSchema {
    ParameterSchema::parse(v).unwrap()
}

fn greeting_schema() -> ParameterSchema {
    schema(json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tone": {"type": "string", "enum": ["warm", "formal"]},
            "items": {"type": "array", "items": {"type": "string"}},
            "nickname": {"type": "string"}
        },
        "required": ["name"]
    }))
}

fn compile(text: &str) -> CompiledTemplate {
    CompiledTemplate::compile(
        "greeting",
        &TemplateBody::Text(text.into()),
        &greeting_schema(),
        vec![],
        RenderLimits::default(),
    )
    .unwrap()
}

fn text(r: Rendered) -> String {
    match r.body {
        RenderedBody::Text(t) => t,
        RenderedBody::Chat(_) => panic!("expected text"),
    }
}

fn none() -> Map<String, Value> {
    Map::new()
}

#[test]
fn renders_variables_conditionals_and_loops() {
    let t = compile(
        "Hello {{ name }}!{% if tone == 'formal' %} Good day.{% endif %}\n{% for i in items %}- {{ i }}\n{% endfor %}",
    );
    let out = t.render(json!({"name": "Ada", "tone": "formal", "items": ["a", "b"]}), &none()).unwrap();
    assert_eq!(text(out), "Hello Ada! Good day.\n- a\n- b\n");
}

#[test]
fn langfuse_style_variables_render_unchanged() {
    let t = compile("Hi {{name}}, welcome.\n");
    assert_eq!(text(t.render(json!({"name": "Bo"}), &none()).unwrap()), "Hi Bo, welcome.\n");
}

#[test]
fn html_is_never_escaped() {
    let t = CompiledTemplate::compile(
        "page.html",
        &TemplateBody::Text("{{ name }}".into()),
        &greeting_schema(),
        vec![],
        RenderLimits::default(),
    )
    .unwrap();
    assert_eq!(text(t.render(json!({"name": "<b>&</b>"}), &none()).unwrap()), "<b>&</b>");
}

#[test]
fn parameters_are_validated_before_rendering() {
    let t = compile("Hello {{ name }}");
    let err = t.render(json!({"tone": "rude", "name": 5}), &none()).unwrap_err();
    let RenderError::InvalidParameters(v) = err else { panic!("{err:?}") };
    let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
    assert!(pointers.contains(&"/name") && pointers.contains(&"/tone"), "{v:?}");
    assert_eq!(t.render(json!("x"), &none()).unwrap_err(), RenderError::ParametersNotObject);
}

#[test]
fn a_missing_optional_variable_is_named() {
    let t = compile("Hello {{ name }}, or {{ nickname }}");
    let err = t.render(json!({"name": "Ada"}), &none()).unwrap_err();
    let RenderError::MissingVariables { names, .. } = &err else { panic!("{err:?}") };
    assert_eq!(names, &["nickname"]);
    assert_eq!(err.to_string(), "missing variable(s): nickname");
}

#[test]
fn only_the_variable_that_failed_is_named() {
    let t = compile("{% if tone %}{{ tone }}{% endif %}Hello {{ nickname }}");
    let err = t.render(json!({"name": "Ada"}), &none()).unwrap_err();
    assert!(matches!(&err, RenderError::MissingVariables { names, .. } if names == &["nickname"]), "{err:?}");
}

#[test]
fn optional_variables_can_be_tested() {
    let t = compile(
        "Hello {{ name }}{% if nickname %} ({{ nickname }}){% endif %}{% if tone is defined %}!{% endif %}",
    );
    assert_eq!(text(t.render(json!({"name": "Ada"}), &none()).unwrap()), "Hello Ada");
    assert_eq!(
        text(t.render(json!({"name": "Ada", "nickname": "A", "tone": "warm"}), &none()).unwrap()),
        "Hello Ada (A)!"
    );
}

#[test]
fn defaults_fill_in() {
    let s = schema(json!({"type": "object", "properties": {"tone": {"type": "string", "default": "warm"}}}));
    let t = CompiledTemplate::compile(
        "t",
        &TemplateBody::Text("{{ tone }}".into()),
        &s,
        vec![],
        RenderLimits::default(),
    )
    .unwrap();
    let r = t.render(json!({}), &none()).unwrap();
    assert_eq!(r.parameters["tone"], "warm");
    assert_eq!(text(r), "warm");
}

#[test]
fn undeclared_parameters_are_ignored_with_a_warning() {
    let t = compile("Hello {{ name }}");
    let r = t.render(json!({"name": "Ada", "extra": 1}), &none()).unwrap();
    assert_eq!(r.warnings, vec!["parameter `extra` is not declared by the template and was ignored"]);
}

#[test]
fn trailing_newlines_are_kept() {
    let t = compile("Hello {{ name }}\n\n");
    assert_eq!(text(t.render(json!({"name": "A"}), &none()).unwrap()), "Hello A\n\n");
}

fn limited(text: &str, limits: RenderLimits) -> RenderError {
    let t = CompiledTemplate::compile(
        "bomb",
        &TemplateBody::Text(text.into()),
        &ParameterSchema::default(),
        vec![],
        limits,
    )
    .unwrap();
    t.render(json!({}), &none()).unwrap_err()
}

#[test]
fn loops_run_out_of_fuel() {
    let err = limited(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        RenderLimits::default(),
    );
    assert!(matches!(err, RenderError::OutOfFuel { fuel: 250_000 }), "{err:?}");
}

#[test]
fn output_is_bounded() {
    let err = limited("{{ 'x' * 2000000 }}", RenderLimits::default());
    assert_eq!(err, RenderError::OutputTooLarge { limit: 1024 * 1024 });
    let small = RenderLimits { max_output_bytes: 10, ..RenderLimits::default() };
    let err = limited("{% for i in range(20) %}ab{% endfor %}", small);
    assert_eq!(err, RenderError::OutputTooLarge { limit: 10 });
}

#[test]
fn recursion_is_bounded() {
    let err = limited("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", RenderLimits::default());
    assert!(matches!(err, RenderError::TooDeep { limit: 64 }), "{err:?}");
}

#[test]
fn nothing_outside_the_given_sources_can_be_included() {
    let err = limited(r#"{% include "etc/passwd" %}"#, RenderLimits::default());
    assert!(matches!(err, RenderError::Failed(ref m) if m.contains("etc/passwd")), "{err:?}");
}

#[test]
fn includes_render_with_the_same_parameters() {
    let t = CompiledTemplate::compile(
        "letter",
        &TemplateBody::Text(r#"Dear {{ name }},{% include "common/sig|label=production" %}"#.into()),
        &greeting_schema(),
        vec![("common/sig|label=production".into(), "\n-- {{ nickname }}".into())],
        RenderLimits::default(),
    )
    .unwrap();
    assert!(t.variables().contains("nickname"));
    assert_eq!(
        text(t.render(json!({"name": "Ada", "nickname": "Bo"}), &none()).unwrap()),
        "Dear Ada,\n-- Bo"
    );
    let err = t.render(json!({"name": "Ada"}), &none()).unwrap_err();
    assert!(matches!(&err, RenderError::MissingVariables { names, .. } if names == &["nickname"]), "{err:?}");
}

fn chat() -> CompiledTemplate {
    let body = TemplateBody::Chat(vec![
        ChatItem::Message(ChatMessage {
            role: Role::parse("system").unwrap(),
            content: "You help {{ name }}.".into(),
        }),
        ChatItem::Placeholder { name: Identifier::parse("history").unwrap() },
        ChatItem::Message(ChatMessage {
            role: Role::parse("user").unwrap(),
            content: "{{ items | join(', ') }}".into(),
        }),
    ]);
    CompiledTemplate::compile("chat", &body, &greeting_schema(), vec![], RenderLimits::default()).unwrap()
}

#[test]
fn chat_templates_render_messages_and_fill_placeholders() {
    let mut ph = Map::new();
    ph.insert(
        "history".into(),
        json!([{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "reply"}]),
    );
    ph.insert("unused".into(), json!([]));
    let r = chat().render(json!({"name": "Ada", "items": ["x", "y"]}), &ph).unwrap();
    let RenderedBody::Chat(m) = &r.body else { panic!() };
    let pairs: Vec<(&str, &str)> = m.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
    assert_eq!(
        pairs,
        [("system", "You help Ada."), ("user", "earlier"), ("assistant", "reply"), ("user", "x, y")]
    );
    assert_eq!(r.warnings, vec!["placeholder `unused` is not used by the template and was ignored"]);
    assert!(r.body.to_text().starts_with("[{\"role\":\"system\""));
}

#[test]
fn placeholders_must_be_filled_with_messages() {
    let params = json!({"name": "Ada", "items": []});
    assert_eq!(
        chat().render(params.clone(), &none()).unwrap_err(),
        RenderError::MissingPlaceholder("history".into())
    );
    let mut ph = Map::new();
    ph.insert("history".into(), json!([{"role": "user"}]));
    let err = chat().render(params, &ph).unwrap_err();
    assert!(matches!(err, RenderError::InvalidPlaceholder { .. }), "{err:?}");
}

#[test]
fn analysis_reports_only_what_callers_must_supply() {
    let a = analyze_body(&TemplateBody::Text(
        "{% set y = 1 %}{% for x in items %}{{ x }}{{ loop.index }}{% endfor %}{{ range(3)|join }}{{ y }}{% set ns = namespace(a=1) %}{{ ns.a }}{% macro m(p) %}{{ p }}{{ caller() if caller }}{% endmacro %}{{ m(1) }}{{ user.name }}".into(),
    ))
    .unwrap();
    assert_eq!(a.variables.into_iter().collect::<Vec<_>>(), ["items", "user"]);
}

#[test]
fn syntax_errors_name_the_part_and_line() {
    let err = analyze_body(&TemplateBody::Text("ok\n{% if %}".into())).unwrap_err();
    let TemplateError::Syntax { part, line, .. } = &err else { panic!("{err:?}") };
    assert_eq!((part.as_str(), *line), ("template", 2));
    let body = TemplateBody::Chat(vec![ChatItem::Message(ChatMessage {
        role: Role::parse("user").unwrap(),
        content: "{{ unclosed".into(),
    })]);
    let err = analyze_body(&body).unwrap_err();
    assert!(err.to_string().starts_with("message 1: syntax error on line 1"), "{err}");
}

#[test]
fn imports_and_extends_resolve_like_includes() {
    let body = TemplateBody::Text(r#"{% import "lib/macros" as m %}{{ m.greet(name) }}"#.into());
    let t = CompiledTemplate::compile(
        "uses-macros",
        &body,
        &greeting_schema(),
        vec![("lib/macros".into(), "{% macro greet(who) %}Hi {{ who }}!{% endmacro %}".into())],
        RenderLimits::default(),
    )
    .unwrap();
    assert_eq!(text(t.render(json!({"name": "Ada"}), &none()).unwrap()), "Hi Ada!");
    let child = TemplateBody::Text(
        r#"{% extends "base|label=production" %}{% block body %}Dear {{ name }}{% endblock %}"#.into(),
    );
    let t = CompiledTemplate::compile(
        "child",
        &child,
        &greeting_schema(),
        vec![("base|label=production".into(), "<{% block body %}{% endblock %}>".into())],
        RenderLimits::default(),
    )
    .unwrap();
    assert_eq!(text(t.render(json!({"name": "Ada"}), &none()).unwrap()), "<Dear Ada>");
}
