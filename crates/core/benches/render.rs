//! Render overhead of promptvault against a bare minijinja render of the same
//! template (see docs/benchmarks.md and scripts/bench-render.sh).
//!
//! All three benchmarks live in one group so they are measured in the same
//! run, on the same machine state:
//!
//! * `baseline/minijinja`: `minijinja::Environment::new()` with the template
//!   added once; each iteration converts the JSON parameters with
//!   `Value::from(Serde(&json))` and renders. This is what any host would do
//!   with the bare engine (our path converts JSON too).
//! * `promptvault/render`: `CompiledTemplate::render` on a template compiled
//!   once outside the loop (the server's compiled-template cache hit): NUL
//!   checks, defaults, JSON-Schema validation, the sandboxed render (fuel,
//!   output limit), warnings.
//! * `promptvault/compile`: `CompiledTemplate::compile` (a cache miss), for
//!   information.
//!
//! Both render benchmarks get their parameters as an owned `serde_json::Value`
//! cloned in the (untimed) setup of `iter_batched`, because
//! `CompiledTemplate::render` takes the parameters by value, as the HTTP
//! handler hands them over.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use promptvault_core::render::{CompiledTemplate, RenderLimits, RenderedBody};
use promptvault_core::{ParameterSchema, TemplateBody};
use serde_json::{Map, Value, json};

/// About 1 KB of text with five parameters: two strings (one an enum), an
/// integer, a list used in a loop and a boolean used in a conditional.
const TEMPLATE: &str = "\
You are the support assistant of Northwind Outfitters, a retailer of outdoor equipment.
You are talking to {{ customer_name }}, who has opened {{ ticket_count }} support tickets with us so far.
{% if tone == 'formal' %}Address the customer formally, use their full name, and avoid slang, jokes and emoji.
{% else %}Be warm and friendly, use the customer's first name, and keep the answers short.
{% endif %}
The customer owns the following products:
{% for product in products %}  {{ loop.index }}. {{ product }}
{% endfor %}
Rules:
- Answer only questions about orders, deliveries, returns, warranties and the products listed above.
- Never invent order numbers, prices or delivery dates; ask the customer for them when needed.
- When the customer asks about a product they do not own, suggest browsing the catalogue instead.
- Keep personal data out of your answers: do not repeat addresses, phone numbers or card details.
{% if escalate %}
This conversation has been flagged for escalation: apologise once, summarise the problem in two
sentences, and tell {{ customer_name }} that a human agent will follow up within one business day.
{% endif %}
End every answer by asking whether there is anything else you can help with.
";

fn schema() -> ParameterSchema {
    ParameterSchema::parse(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "customer_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "tone": {"type": "string", "enum": ["warm", "formal"], "default": "warm"},
            "ticket_count": {"type": "integer", "minimum": 0},
            "products": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
                "maxItems": 20
            },
            "escalate": {"type": "boolean", "default": false}
        },
        "required": ["customer_name", "ticket_count", "products"],
        "additionalProperties": false
    }))
    .expect("the benchmark schema is valid")
}

fn parameters() -> Value {
    json!({
        "customer_name": "Ada Lovelace",
        "tone": "formal",
        "ticket_count": 3,
        "products": ["Trailblazer 45L backpack", "Summit down jacket", "Ridge trekking poles"],
        "escalate": true
    })
}

fn compile(body: &TemplateBody, schema: &ParameterSchema) -> CompiledTemplate {
    CompiledTemplate::compile("support/assistant", body, schema, vec![], RenderLimits::default())
        .expect("the benchmark template compiles")
}

fn bench_render(c: &mut Criterion) {
    let params = parameters();
    let no_placeholders = Map::new();
    let body = TemplateBody::Text(TEMPLATE.to_owned());
    let schema = schema();

    let mut env = minijinja::Environment::new();
    env.add_template("support/assistant", TEMPLATE).expect("the template parses");
    let compiled = compile(&body, &schema);

    // Same output from both paths, or the comparison means nothing.
    let bare = env
        .get_template("support/assistant")
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&params))))
        .expect("bare render");
    let ours = compiled.render(params.clone(), &no_placeholders).expect("promptvault render");
    match &ours.body {
        RenderedBody::Text(t) => assert_eq!(t.trim_end(), bare.trim_end(), "outputs differ"),
        RenderedBody::Chat(_) => panic!("expected a text template"),
    }
    assert!(ours.warnings.is_empty(), "{:?}", ours.warnings);

    let mut group = c.benchmark_group("render");
    group.bench_function("baseline/minijinja", |b| {
        b.iter_batched(
            || params.clone(),
            |p| {
                let tmpl = env.get_template("support/assistant").expect("template");
                let ctx = minijinja::Value::from(minijinja::value::Serde(&p));
                black_box(tmpl.render(ctx).expect("render"))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("promptvault/render", |b| {
        b.iter_batched(
            || params.clone(),
            |p| black_box(compiled.render(p, &no_placeholders).expect("render")),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("promptvault/compile", |b| b.iter(|| black_box(compile(&body, &schema))));
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
