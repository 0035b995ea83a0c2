use serde_json::{Value, json};

use super::*;
use crate::content::{ChatItem, Config, TemplateBody};
use crate::schema::ParameterSchema;

/// A template and version to check.
struct Fixture {
    name: TemplateName,
    description: Option<String>,
    tags: Vec<Tag>,
    classification: SecurityClassification,
    prompt_type: PromptTypeKey,
    content: VersionContent,
}

impl Fixture {
    fn text(text: &str) -> Self {
        Self::with_body(TemplateBody::Text(text.to_owned()))
    }

    fn chat(items: Value) -> Self {
        let items: Vec<ChatItem> = serde_json::from_value(items).unwrap();
        Self::with_body(TemplateBody::Chat(items))
    }

    fn with_body(body: TemplateBody) -> Self {
        Self {
            name: TemplateName::parse("support/greeting").unwrap(),
            description: Some("Greets a customer.".to_owned()),
            tags: Vec::new(),
            classification: SecurityClassification::Internal,
            prompt_type: PromptTypeKey::parse("chat").unwrap(),
            content: VersionContent {
                body,
                parameter_schema: ParameterSchema::default(),
                config: Config::default(),
            },
        }
    }

    fn schema(mut self, schema: Value) -> Self {
        self.content.parameter_schema = ParameterSchema::parse(schema).unwrap();
        self
    }

    fn declaring(self, names: &[&str]) -> Self {
        let props: serde_json::Map<String, Value> =
            names.iter().map(|n| ((*n).to_owned(), json!({"type": "string"}))).collect();
        self.schema(json!({"type": "object", "properties": props}))
    }

    fn description(mut self, d: Option<&str>) -> Self {
        self.description = d.map(str::to_owned);
        self
    }

    fn tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| Tag::parse(t).unwrap()).collect();
        self
    }

    fn classified(mut self, c: SecurityClassification) -> Self {
        self.classification = c;
        self
    }

    fn of_type(mut self, key: &str) -> Self {
        self.prompt_type = PromptTypeKey::parse(key).unwrap();
        self
    }

    fn config(mut self, config: Value) -> Self {
        self.content.config = Config::parse(config).unwrap();
        self
    }

    fn subject(&self) -> CheckSubject<'_> {
        CheckSubject::new(
            &self.name,
            self.description.as_deref(),
            &self.tags,
            self.classification,
            &self.prompt_type,
            &self.content,
        )
    }
}

fn builtins(config: Value) -> CheckSet {
    CheckSet::new(serde_json::from_value(config).unwrap(), Vec::new()).unwrap()
}

fn custom(rule: Value) -> CheckDefinition {
    serde_json::from_value(
        json!({"key": "house_rule", "name": "House rule", "severity": "error", "rule": rule}),
    )
    .unwrap()
}

/// Runs only the custom check `rule` (every built-in disabled).
fn run_rule(rule: Value, fixture: &Fixture) -> CheckResult {
    let set = CheckSet::new(all_builtins_disabled(), vec![custom(rule)]).unwrap();
    let mut results = set.run(&fixture.subject());
    assert_eq!(results.len(), 1, "{results:?}");
    results.remove(0)
}

fn all_builtins_disabled() -> BuiltinsConfig {
    let mut off = json!({});
    for key in BUILTIN_KEYS {
        off[key] = json!({"enabled": false});
    }
    serde_json::from_value(off).unwrap()
}

/// The result of built-in `key` with the default configuration.
fn builtin_result(key: &str, fixture: &Fixture) -> CheckResult {
    builtin_result_with(key, json!({}), fixture)
}

fn builtin_result_with(key: &str, config: Value, fixture: &Fixture) -> CheckResult {
    let set = builtins(json!({ key: config }));
    set.run(&fixture.subject()).into_iter().find(|r| r.check == key).unwrap()
}

fn loc(line: u32, column: u32, message_index: Option<usize>) -> Option<Location> {
    Some(Location { line, column, message_index })
}

fn set_error(builtins: BuiltinsConfig, customs: Vec<CheckDefinition>) -> CheckSetError {
    CheckSet::new(builtins, customs).unwrap_err()
}

// --- Severity, results, the set ---------------------------------------------

#[test]
fn severity_is_ordered_and_textual() {
    assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Error);
    for s in Severity::ALL {
        assert_eq!(s.as_str().parse::<Severity>().unwrap(), s);
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    assert!("fatal".parse::<Severity>().unwrap_err().to_string().contains("info, warning, error"));
}

#[test]
fn token_estimate_rounds_up() {
    assert_eq!([0, 1, 4, 5, 8, 9].map(estimate_tokens), [0, 1, 1, 2, 2, 3]);
}

#[test]
fn default_set_runs_every_builtin_in_order() {
    let set = CheckSet::new(BuiltinsConfig::default(), Vec::new()).unwrap();
    assert_eq!(set.keys().collect::<Vec<_>>(), BUILTIN_KEYS);
    let fixture = Fixture::text("Hello {{ name }}").declaring(&["name"]);
    let results = set.run(&fixture.subject());
    assert_eq!(results.iter().map(|r| r.check.as_str()).collect::<Vec<_>>(), BUILTIN_KEYS);
    assert!(results.iter().all(|r| r.passed), "{results:?}");
    assert!(blocking(&results).is_empty());
}

#[test]
fn only_failed_errors_block() {
    let result = |severity, passed| CheckResult {
        check: format!("{severity}_{passed}"),
        name: String::new(),
        severity,
        passed,
        message: String::new(),
        location: None,
    };
    let results: Vec<CheckResult> =
        Severity::ALL.into_iter().flat_map(|s| [result(s, true), result(s, false)]).collect();
    let blocked: Vec<&str> = blocking(&results).iter().map(|r| r.check.as_str()).collect();
    assert_eq!(blocked, ["error_false"]);
}

#[test]
fn results_serialize_in_snake_case() {
    let fixture = Fixture::text("Dear {{ customer }}");
    let result = builtin_result("declared_variables", &fixture);
    let value = serde_json::to_value(&result).unwrap();
    assert_eq!(
        value,
        json!({
            "check": "declared_variables",
            "name": "Declared variables",
            "severity": "error",
            "passed": false,
            "message": "the text uses `customer` which the parameter schema does not declare (first use at line 1, column 9)",
            "location": {"line": 1, "column": 9, "message_index": null}
        })
    );
    assert_eq!(serde_json::from_value::<CheckResult>(value).unwrap(), result);
}

// --- description_present -----------------------------------------------------

#[test]
fn description_present() {
    let missing = builtin_result("description_present", &Fixture::text("hi").description(None));
    assert!(!missing.passed);
    assert_eq!(missing.severity, Severity::Warning);
    assert_eq!(missing.message, "the template has no description");

    let blank = builtin_result("description_present", &Fixture::text("hi").description(Some(" \n\t")));
    assert_eq!((blank.passed, blank.message.as_str()), (false, "the template has no description"));

    let present = builtin_result("description_present", &Fixture::text("hi"));
    assert!(present.passed, "{present:?}");

    let short = builtin_result_with(
        "description_present",
        json!({"min_chars": 20, "severity": "error"}),
        &Fixture::text("hi").description(Some(" Short one ")),
    );
    assert_eq!(short.severity, Severity::Error);
    assert_eq!(short.message, "the description is 9 characters long; at least 20 are expected");
    assert!(short.is_blocking());
}

// --- declared_variables ------------------------------------------------------

#[test]
fn declared_variables_pass_when_everything_is_declared() {
    let fixture =
        Fixture::text("Hi {{ name }}{% if vip %}!{% endif %}").declaring(&["name", "vip", "unused"]);
    let result = builtin_result("declared_variables", &fixture);
    assert!(result.passed, "{result:?}");
    assert_eq!(result.message, "every variable the text uses is declared in the parameter schema");
}

#[test]
fn undeclared_variable_is_named_and_located() {
    // `customer` first appears as prose and as an attribute; the location is
    // its first use as a variable.
    let fixture =
        Fixture::text("Dear customer,\nyour {{ user.customer }} is {{customer}}.").declaring(&["user"]);
    let result = builtin_result("declared_variables", &fixture);
    assert!(!result.passed);
    assert!(result.is_blocking());
    assert_eq!(
        result.message,
        "the text uses `customer` which the parameter schema does not declare (first use at line 2, column 31)"
    );
    assert_eq!(result.location, loc(2, 31, None));
}

#[test]
fn several_undeclared_variables_are_listed() {
    let fixture = Fixture::text("{{ c }} {{ a }} {{ b }} {{ ok }}").declaring(&["ok"]);
    let result = builtin_result("declared_variables", &fixture);
    assert_eq!(
        result.message,
        "the text uses `a`, `b` and `c` which the parameter schema does not declare (first use at line 1, column 4)"
    );
    assert_eq!(result.location, loc(1, 4, None));
}

#[test]
fn undeclared_variable_in_a_chat_message() {
    let fixture = Fixture::chat(json!([
        {"role": "system", "content": "You help {{ name }}."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "Order:\n  {{ order_id }}"}
    ]))
    .declaring(&["name"]);
    let result = builtin_result("declared_variables", &fixture);
    assert_eq!(
        result.message,
        "the messages use `order_id` which the parameter schema does not declare (first use in message 3 at line 2, column 6)"
    );
    assert_eq!(result.location, loc(2, 6, Some(2)));
}

#[test]
fn a_template_that_does_not_compile_fails_the_check() {
    let result = builtin_result("declared_variables", &Fixture::text("{{ oops"));
    assert!(!result.passed);
    assert!(result.message.starts_with("the template does not compile: "), "{}", result.message);
}

// --- length_limit ------------------------------------------------------------

#[test]
fn length_limit_defaults_pass_ordinary_text() {
    let result = builtin_result("length_limit", &Fixture::text("héllo"));
    assert!(result.passed);
    assert_eq!(result.severity, Severity::Warning);
    assert_eq!(
        result.message,
        "the text is 5 characters, about 2 tokens; the limits are 32000 characters and 8000 tokens"
    );
    let long = builtin_result("length_limit", &Fixture::text(&"x".repeat(32_001)));
    assert!(!long.passed);
}

#[test]
fn length_limit_counts_characters_and_tokens() {
    let over_chars = builtin_result_with("length_limit", json!({"max_chars": 4}), &Fixture::text("ünïcode"));
    assert_eq!(over_chars.message, "the text is 7 characters, over the limit of 4");

    let over_tokens =
        builtin_result_with("length_limit", json!({"max_tokens": 2}), &Fixture::text("123456789"));
    assert_eq!(over_tokens.message, "the text is about 3 tokens (characters / 4), over the limit of 2");

    let both = builtin_result_with(
        "length_limit",
        json!({"max_chars": 8, "max_tokens": 2}),
        &Fixture::text("123456789"),
    );
    assert_eq!(
        both.message,
        "the text is 9 characters, over the limit of 8; about 3 tokens (characters / 4), over the limit of 2"
    );
    let at_limit = builtin_result_with(
        "length_limit",
        json!({"max_chars": 9, "max_tokens": 3}),
        &Fixture::text("123456789"),
    );
    assert!(at_limit.passed);
}

#[test]
fn length_limit_joins_chat_messages() {
    // "abcd" + "\n\n" + "efgh": 10 characters; the placeholder adds nothing.
    let fixture = Fixture::chat(json!([
        {"role": "system", "content": "abcd"},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "efgh"}
    ]));
    let result = builtin_result_with("length_limit", json!({"max_chars": 9}), &fixture);
    assert_eq!(result.message, "the text is 10 characters, over the limit of 9");
    assert!(builtin_result_with("length_limit", json!({"max_chars": 10}), &fixture).passed);
}

// --- forbidden_phrases -------------------------------------------------------

#[test]
fn forbidden_phrases_default_to_none() {
    let result = builtin_result("forbidden_phrases", &Fixture::text("guaranteed returns"));
    assert!(result.passed);
    assert_eq!(result.message, "no forbidden phrases are configured");
}

#[test]
fn forbidden_phrase_is_reported_with_its_location() {
    let text = "Invest with us.\nNo risk at all.\nWe promise Guaranteed   Returns every year.";
    let result = builtin_result_with(
        "forbidden_phrases",
        json!({"phrases": ["guaranteed returns", "moon"]}),
        &Fixture::text(text),
    );
    assert!(!result.passed);
    assert_eq!(result.severity, Severity::Error);
    assert_eq!(result.message, "forbidden phrase \"guaranteed returns\" at line 3, column 12");
    assert_eq!(result.location, loc(3, 12, None));

    let clean = builtin_result_with(
        "forbidden_phrases",
        json!({"phrases": ["guaranteed returns"]}),
        &Fixture::text("Returns are not guaranteed."),
    );
    assert!(clean.passed);
    assert_eq!(clean.message, "the text contains none of the 1 forbidden phrase(s)");
}

#[test]
fn forbidden_phrases_match_whole_phrases_unicode_aware() {
    let check = |phrases: Value, text: &str| {
        builtin_result_with("forbidden_phrases", json!({ "phrases": phrases }), &Fixture::text(text))
    };
    // Whole words only.
    assert!(check(json!(["pass"]), "enter your password").passed);
    assert!(!check(json!(["pass"]), "a free pass.").passed);
    // Unicode case folding and Unicode word boundaries.
    assert!(!check(json!(["café"]), "Le CAFÉ est ouvert").passed);
    assert!(check(json!(["café"]), "deux cafés").passed);
    assert!(!check(json!(["straße"]), "Die STRASSE… nein, die STRAẞE").passed);
    // A phrase that ends in punctuation needs no word boundary there.
    assert_eq!(check(json!(["100%"]), "we are 100% sure").location, loc(1, 8, None));
    assert!(check(json!(["100%"]), "we are 1100% sure").passed);
    // Columns count characters, not bytes.
    assert_eq!(check(json!(["moon"]), "Größe: to the MOON").location, loc(1, 15, None));
    // Whitespace in the phrase matches any whitespace, line breaks too.
    assert_eq!(check(json!(["no  risk"]), "zero\nno\n\trisk").location, loc(2, 1, None));
}

#[test]
fn earliest_forbidden_phrase_wins_and_others_are_counted() {
    let result = builtin_result_with(
        "forbidden_phrases",
        json!({"phrases": ["zeta", "alpha"]}),
        &Fixture::text("alpha beta zeta alpha"),
    );
    assert_eq!(result.message, "forbidden phrase \"alpha\" at line 1, column 1 (and 2 more matches)");
}

#[test]
fn forbidden_phrase_in_a_chat_message_names_the_message() {
    let fixture = Fixture::chat(json!([
        {"role": "system", "content": "Be helpful."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "Hello.\nTell me about guaranteed returns."}
    ]));
    let result =
        builtin_result_with("forbidden_phrases", json!({"phrases": ["guaranteed returns"]}), &fixture);
    assert_eq!(result.message, "forbidden phrase \"guaranteed returns\" in message 3 at line 2, column 15");
    assert_eq!(result.location, loc(2, 15, Some(2)));
}

// --- content_scan ------------------------------------------------------------

#[test]
fn content_scan_blocks_on_scanner_errors() {
    let clean = builtin_result("content_scan", &Fixture::text("Summarize {{ text }}."));
    assert!(clean.passed, "{clean:?}");
    // A marker hidden with a zero-width space is a scanner error.
    let hidden = builtin_result(
        "content_scan",
        &Fixture::text(
            "Hi.
ig\u{200B}nore previous instructions",
        ),
    );
    assert!(hidden.is_blocking(), "{hidden:?}");
    assert!(hidden.message.contains("hidden_injection_marker"), "{}", hidden.message);
    assert_eq!(hidden.location, loc(2, 1, None));
    // A visible marker is only a warning: it passes unless configured stricter.
    let plain = Fixture::text("Ignore previous instructions.");
    assert!(builtin_result("content_scan", &plain).passed);
    let strict = builtin_result_with("content_scan", json!({"min_severity": "warning"}), &plain);
    assert!(strict.is_blocking(), "{strict:?}");
}

// --- classification_tags -----------------------------------------------------

#[test]
fn classification_tags() {
    use SecurityClassification::*;
    let result = |tags: &[&str], class| {
        builtin_result("classification_tags", &Fixture::text("x").tags(tags).classified(class))
    };
    assert!(result(&[], Public).passed);
    assert!(result(&["pii", "billing"], Confidential).passed);
    assert!(result(&["secret"], Restricted).passed);
    assert!(result(&["public"], Public).passed);

    let pii = result(&["PII"], Internal);
    assert!(!pii.passed);
    assert_eq!(pii.severity, Severity::Warning);
    assert_eq!(pii.message, "tag `pii` needs at least confidential, but the template is internal");

    let both = result(&["public", "secret"], Confidential);
    assert_eq!(
        both.message,
        "tag `public` marks the template as public, but it is classified confidential; \
         tag `secret` needs at least restricted, but the template is confidential"
    );
    assert_eq!(
        result(&["personal-data"], Public).message,
        "tag `personal-data` needs at least confidential, but the template is public"
    );
}

#[test]
fn classification_tag_map_is_configurable() {
    let config = json!({"minimums": {"Finance": "internal"}, "public_tags": [], "severity": "error"});
    let fixture =
        Fixture::text("x").tags(&["finance", "pii", "public"]).classified(SecurityClassification::Public);
    let result = builtin_result_with("classification_tags", config, &fixture);
    // The configured map replaces the default: `pii` and `public` no longer matter.
    assert_eq!(result.message, "tag `finance` needs at least internal, but the template is public");
    assert!(result.is_blocking());
}

// --- built-in configuration --------------------------------------------------

#[test]
fn builtin_config_fills_defaults_and_refuses_unknown_fields() {
    let config: BuiltinsConfig = serde_json::from_value(json!({"length_limit": {"max_chars": 100}})).unwrap();
    assert_eq!(config.length_limit.max_chars, 100);
    assert_eq!(config.length_limit.max_tokens, 8_000);
    assert_eq!(config.forbidden_phrases, ForbiddenPhrasesConfig::default());
    assert_eq!(serde_json::from_value::<BuiltinsConfig>(json!({})).unwrap(), BuiltinsConfig::default());
    let err = serde_json::from_value::<BuiltinsConfig>(json!({"length_limit": {"max_char": 1}})).unwrap_err();
    assert!(err.to_string().contains("max_char"), "{err}");
    let err = serde_json::from_value::<BuiltinsConfig>(json!({"spelling": {}})).unwrap_err();
    assert!(err.to_string().contains("spelling"), "{err}");
}

#[test]
fn invalid_builtin_config_is_refused_with_the_field() {
    let config = |c: Value| serde_json::from_value::<BuiltinsConfig>(c).unwrap();
    let err = set_error(config(json!({"forbidden_phrases": {"phrases": ["ok", "  "]}})), Vec::new());
    assert_eq!(
        err,
        CheckSetError::Builtin {
            check: "forbidden_phrases",
            error: CheckDefinitionError::new("phrases[1]", "is blank; a phrase needs at least one word"),
        }
    );
    assert_eq!(
        err.to_string(),
        "built-in check `forbidden_phrases`: `phrases[1]` is blank; a phrase needs at least one word"
    );
    let err = set_error(config(json!({"length_limit": {"max_tokens": 0}})), Vec::new());
    assert!(
        matches!(&err, CheckSetError::Builtin { check: "length_limit", error } if error.field == "max_tokens")
    );
    let err = set_error(config(json!({"declared_variables": {"applies_to": ["ok", "Bad Key"]}})), Vec::new());
    assert!(
        matches!(&err, CheckSetError::Builtin { check: "declared_variables", error } if error.field == "applies_to[1]"),
        "{err}"
    );
}

#[test]
fn disabled_and_filtered_builtins_are_omitted() {
    let set = builtins(json!({
        "description_present": {"enabled": false},
        "length_limit": {"applies_to": ["agent"]}
    }));
    let keys = |fixture: &Fixture| -> Vec<String> {
        set.run(&fixture.subject()).into_iter().map(|r| r.check).collect()
    };
    assert_eq!(
        keys(&Fixture::text("x")),
        ["declared_variables", "forbidden_phrases", "classification_tags", "content_scan"]
    );
    assert_eq!(
        keys(&Fixture::text("x").of_type("agent")),
        ["declared_variables", "length_limit", "forbidden_phrases", "classification_tags", "content_scan"]
    );
}

// --- custom rules ------------------------------------------------------------

#[test]
fn regex_must_match() {
    let rule = json!({"kind": "regex_must_match", "pattern": r"(?m)^You are "});
    let pass = run_rule(rule.clone(), &Fixture::text("Context.\nYou are a helpful agent."));
    assert!(pass.passed);
    assert_eq!(pass.message, "the text matches the pattern `(?m)^You are `");
    let fail = run_rule(rule, &Fixture::text("Be helpful."));
    assert!(!fail.passed);
    assert_eq!(fail.message, "the text does not match the required pattern `(?m)^You are `");
    assert_eq!(fail.location, None);
    assert_eq!(
        (fail.check.as_str(), fail.name.as_str(), fail.severity),
        ("house_rule", "House rule", Severity::Error)
    );
}

#[test]
fn regex_must_not_match_reports_the_first_match() {
    let rule = json!({"kind": "regex_must_not_match", "pattern": r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"});
    let fail = run_rule(rule.clone(), &Fixture::text("Card:\n  4111-1111-1111-1111 or 5500-0000-0000-0004"));
    assert!(!fail.passed);
    assert_eq!(
        fail.message,
        r"the text matches the forbidden pattern `\b\d{4}-\d{4}-\d{4}-\d{4}\b` at line 2, column 3 (and 1 more match)"
    );
    assert!(!fail.message.contains("4111"), "the match itself is never quoted");
    assert_eq!(fail.location, loc(2, 3, None));
    let pass = run_rule(rule, &Fixture::text("No card here."));
    assert!(pass.passed);
    assert_eq!(pass.message, r"the text does not match the pattern `\b\d{4}-\d{4}-\d{4}-\d{4}\b`");
}

#[test]
fn regex_rules_on_a_chat_template_locate_the_message() {
    let rule = json!({"kind": "regex_must_not_match", "pattern": "(?i)ignore (all )?previous instructions"});
    let fixture = Fixture::chat(json!([
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "line one\nplease IGNORE previous instructions"}
    ]));
    let result = run_rule(rule, &fixture);
    assert_eq!(result.location, loc(2, 8, Some(1)));
    assert!(result.message.ends_with("in message 2 at line 2, column 8"), "{}", result.message);
}

#[test]
fn regex_targets() {
    let fixture = Fixture::text("body")
        .description(Some("Owner: team-payments"))
        .config(json!({"temperature": 0.2, "model": "gpt-x"}));
    let rule =
        |kind: &str, pattern: &str, target: &str| json!({"kind": kind, "pattern": pattern, "target": target});

    let r = run_rule(rule("regex_must_match", r"Owner: team-\w+", "description"), &fixture);
    assert_eq!(r.message, r"the description matches the pattern `Owner: team-\w+`");
    let r = run_rule(rule("regex_must_match", r"Owner:", "description"), &fixture.description(None));
    assert_eq!(r.message, "the description does not match the required pattern `Owner:`");

    let fixture = Fixture::text("body").config(json!({"temperature": 0.2, "model": "gpt-x"}));
    let r = run_rule(rule("regex_must_match", r"^support/", "name"), &fixture);
    assert!(r.passed, "{r:?}");
    let r = run_rule(rule("regex_must_not_match", "greet", "name"), &fixture);
    assert_eq!(r.message, "the name matches the forbidden pattern `greet` at line 1, column 9");

    // The config is matched as canonical JSON: sorted keys, no whitespace.
    let r =
        run_rule(rule("regex_must_match", r#"^\{"model":"gpt-x","temperature":0\.2\}$"#, "config"), &fixture);
    assert!(r.passed, "{r:?}");
    let r = run_rule(rule("regex_must_not_match", r#""temperature":"#, "config"), &fixture);
    assert_eq!(r.location, loc(1, 18, None));
}

#[test]
fn max_length_and_max_tokens_rules() {
    let fixture = Fixture::text("123456789");
    let r = run_rule(json!({"kind": "max_length", "chars": 8}), &fixture);
    assert_eq!((r.passed, r.message.as_str()), (false, "the text is 9 characters; the limit is 8"));
    let r = run_rule(json!({"kind": "max_length", "chars": 9}), &fixture);
    assert_eq!((r.passed, r.message.as_str()), (true, "the text is 9 characters, within the limit of 9"));
    let r = run_rule(json!({"kind": "max_tokens", "tokens": 2}), &fixture);
    assert_eq!(
        (r.passed, r.message.as_str()),
        (false, "the text is about 3 tokens (characters / 4); the limit is 2")
    );
    let r = run_rule(json!({"kind": "max_tokens", "tokens": 3}), &fixture);
    assert!(r.passed);
}

#[test]
fn forbidden_phrases_rule() {
    let rule = json!({"kind": "forbidden_phrases", "phrases": ["as an AI language model"]});
    let r = run_rule(rule.clone(), &Fixture::text("Reply: As an AI  language model, I cannot."));
    assert_eq!(r.message, "forbidden phrase \"as an AI language model\" at line 1, column 8");
    assert!(run_rule(rule, &Fixture::text("Reply as an AI model.")).passed);
}

#[test]
fn schema_rule_checks_the_parameter_schema_document() {
    // "Every parameter has a description."
    let rule = json!({"kind": "schema_rule", "schema": {
        "properties": {"properties": {"additionalProperties": {"required": ["description"]}}}
    }});
    let described = Fixture::text("{{ name }}").schema(json!({
        "type": "object",
        "properties": {"name": {"type": "string", "description": "Who to greet"}}
    }));
    let r = run_rule(rule.clone(), &described);
    assert_eq!((r.passed, r.message.as_str()), (true, "the parameter schema satisfies the rule"));

    let bare = Fixture::text("{{ name }}").schema(json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "tone": {"type": "string", "description": "Tone"}}
    }));
    let r = run_rule(rule, &bare);
    assert!(!r.passed);
    assert_eq!(
        r.message,
        "the parameter schema breaks the rule at /properties/name: \"description\" is a required property"
    );
}

// --- custom definitions: applies_to, enabled, JSON shape ---------------------

#[test]
fn applies_to_filters_custom_checks() {
    let mut def = custom(json!({"kind": "max_length", "chars": 1}));
    def.applies_to = vec!["support".to_owned(), "agent".to_owned()];
    let set = CheckSet::new(all_builtins_disabled(), vec![def]).unwrap();
    assert!(set.run(&Fixture::text("long").subject()).is_empty(), "type `chat` is not listed");
    let results = set.run(&Fixture::text("long").of_type("agent").subject());
    assert_eq!(results.len(), 1);
    assert!(!results[0].passed);
}

#[test]
fn disabled_custom_checks_are_validated_but_not_run() {
    let mut def = custom(json!({"kind": "max_length", "chars": 1}));
    def.enabled = false;
    let set = CheckSet::new(all_builtins_disabled(), vec![def.clone()]).unwrap();
    assert!(set.run(&Fixture::text("long").subject()).is_empty());
    def.rule = Rule::RegexMustMatch { pattern: "(".to_owned(), target: RegexTarget::Text };
    assert!(CheckSet::new(all_builtins_disabled(), vec![def]).is_err());
}

#[test]
fn check_definition_json_shape() {
    let value = json!({
        "key": "no_card_numbers",
        "name": "No card numbers",
        "description": "Templates must not embed payment card numbers.",
        "severity": "error",
        "applies_to": ["support", "sales"],
        "enabled": true,
        "rule": {"kind": "regex_must_not_match", "pattern": r"\b(?:\d[ -]?){13,16}\b", "target": "text"}
    });
    let def: CheckDefinition = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(
        def.rule,
        Rule::RegexMustNotMatch { pattern: r"\b(?:\d[ -]?){13,16}\b".into(), target: RegexTarget::Text }
    );
    def.validate().unwrap();
    assert_eq!(serde_json::to_value(&def).unwrap(), value);

    // Defaults: description "", applies_to [], enabled true, target text.
    let minimal: CheckDefinition = serde_json::from_value(json!({
        "key": "k", "name": "K", "severity": "info", "rule": {"kind": "regex_must_match", "pattern": "x"}
    }))
    .unwrap();
    assert!(minimal.enabled && minimal.applies_to.is_empty() && minimal.description.is_empty());
    assert_eq!(minimal.rule, Rule::RegexMustMatch { pattern: "x".into(), target: RegexTarget::Text });

    // Every rule kind round-trips.
    for rule in [
        json!({"kind": "regex_must_match", "pattern": "a", "target": "config"}),
        json!({"kind": "regex_must_not_match", "pattern": "a", "target": "name"}),
        json!({"kind": "max_length", "chars": 10}),
        json!({"kind": "max_tokens", "tokens": 10}),
        json!({"kind": "forbidden_phrases", "phrases": ["a b"]}),
        json!({"kind": "schema_rule", "schema": {"required": ["type"]}}),
    ] {
        let parsed: Rule = serde_json::from_value(rule.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), rule);
        custom(rule).validate().unwrap();
    }
}

#[test]
fn malformed_definition_json_is_refused() {
    let parse = |v: Value| serde_json::from_value::<CheckDefinition>(v).unwrap_err().to_string();
    let base = |rule: Value| json!({"key": "k", "name": "K", "severity": "error", "rule": rule});
    assert!(parse(base(json!({"kind": "spellcheck"}))).contains("spellcheck"));
    assert!(parse(base(json!({"kind": "max_length", "chars": 3, "words": 1}))).contains("words"));
    assert!(
        parse(base(json!({"kind": "regex_must_match", "pattern": "x", "target": "body"}))).contains("body")
    );
    assert!(
        parse(
            json!({"key": "k", "name": "K", "severity": "fatal", "rule": {"kind": "max_length", "chars": 1}})
        )
        .contains("fatal")
    );
    let mut typo = base(json!({"kind": "max_length", "chars": 1}));
    typo["applies_To"] = json!([]);
    assert!(parse(typo).contains("applies_To"));
}

// --- custom definitions: validation ------------------------------------------

fn definition_error(rule: Value) -> CheckDefinitionError {
    custom(rule).validate().unwrap_err()
}

#[test]
fn bad_regex_is_refused_with_the_field() {
    let err = definition_error(json!({"kind": "regex_must_match", "pattern": "(unclosed"}));
    assert_eq!(err.field, "rule.pattern");
    assert!(err.message.starts_with("is not a valid regular expression: "), "{}", err.message);
    assert!(err.message.contains("unclosed group"), "{}", err.message);

    let err = definition_error(json!({"kind": "regex_must_not_match", "pattern": r"(?:\w{100}){100}"}));
    assert_eq!(err.field, "rule.pattern");
    assert!(err.message.contains("too large once compiled (the limit is 1048576 bytes)"), "{}", err.message);

    let err = definition_error(json!({"kind": "regex_must_match", "pattern": ""}));
    assert_eq!(err, CheckDefinitionError::new("rule.pattern", "must not be empty"));
}

#[test]
fn bad_schema_rule_is_refused_with_the_field() {
    let err = definition_error(json!({"kind": "schema_rule", "schema": {"type": "strin"}}));
    assert_eq!(err.field, "rule.schema");
    assert!(err.message.starts_with("is not valid JSON Schema 2020-12 at /type: "), "{}", err.message);

    let err = definition_error(json!({"kind": "schema_rule", "schema": {"pattern": "("}}));
    assert_eq!(err.field, "rule.schema");

    let err =
        definition_error(json!({"kind": "schema_rule", "schema": {"$ref": "https://example.com/s.json"}}));
    assert_eq!(err.field, "rule.schema");

    let err = definition_error(json!({"kind": "schema_rule", "schema": [1]}));
    assert_eq!(
        err,
        CheckDefinitionError::new("rule.schema", "must be a JSON Schema: an object or a boolean")
    );

    let err = definition_error(
        json!({"kind": "schema_rule", "schema": {"$schema": "http://json-schema.org/draft-07/schema#"}}),
    );
    assert!(err.message.starts_with("must use JSON Schema 2020-12"), "{}", err.message);
}

#[test]
fn other_invalid_definitions() {
    let phrases = definition_error(json!({"kind": "forbidden_phrases", "phrases": []}));
    assert_eq!(phrases, CheckDefinitionError::new("rule.phrases", "must list at least one phrase"));
    let blank = definition_error(json!({"kind": "forbidden_phrases", "phrases": ["a", ""]}));
    assert_eq!(blank.field, "rule.phrases[1]");
    assert_eq!(definition_error(json!({"kind": "max_length", "chars": 0})).field, "rule.chars");
    assert_eq!(definition_error(json!({"kind": "max_tokens", "tokens": 0})).field, "rule.tokens");

    let valid = custom(json!({"kind": "max_length", "chars": 5}));
    for key in ["", "Upper", "1st", "has-dash", &"k".repeat(65)] {
        let def = CheckDefinition { key: key.to_owned(), ..valid.clone() };
        assert_eq!(def.validate().unwrap_err().field, "key", "{key:?}");
    }
    let def = CheckDefinition { name: "  ".to_owned(), ..valid.clone() };
    assert_eq!(def.validate().unwrap_err().field, "name");
    let def = CheckDefinition { description: "d".repeat(2_001), ..valid.clone() };
    assert_eq!(def.validate().unwrap_err().field, "description");
    let def = CheckDefinition { applies_to: vec!["chat".into(), "Not A Key".into()], ..valid };
    let err = def.validate().unwrap_err();
    assert_eq!(err.field, "applies_to[1]");
    assert_eq!(err.to_string(), format!("`applies_to[1]` {}", err.message));
}

#[test]
fn keys_must_be_unique_and_not_builtin() {
    let def = |key: &str| CheckDefinition {
        key: key.to_owned(),
        ..custom(json!({"kind": "max_length", "chars": 5}))
    };
    assert_eq!(
        set_error(BuiltinsConfig::default(), vec![def("a"), def("b"), def("a")]),
        CheckSetError::DuplicateKey("a".into())
    );
    for key in BUILTIN_KEYS {
        let err = set_error(BuiltinsConfig::default(), vec![def(key)]);
        assert_eq!(err, CheckSetError::BuiltinKey(key.into()));
    }
    // Even when the built-in is disabled, its key stays reserved.
    assert_eq!(
        set_error(all_builtins_disabled(), vec![def("length_limit")]).to_string(),
        "`length_limit` is the key of a built-in check; choose another key for the custom check"
    );

    let bad = CheckDefinition {
        rule: Rule::RegexMustMatch { pattern: "[".into(), target: RegexTarget::Name },
        ..def("second")
    };
    let err = set_error(BuiltinsConfig::default(), vec![def("first"), bad]);
    assert!(
        matches!(&err, CheckSetError::Definition { index: 1, key, error } if key == "second" && error.field == "rule.pattern"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("custom check `second` (at index 1): `rule.pattern` is not a valid"),
        "{err}"
    );

    let set = CheckSet::new(BuiltinsConfig::default(), vec![def("first"), def("second")]).unwrap();
    assert_eq!(set.keys().skip(BUILTIN_KEYS.len()).collect::<Vec<_>>(), ["first", "second"]);
}

#[test]
fn builtins_have_names_and_results_show_them() {
    let set = CheckSet::new(BuiltinsConfig::default(), Vec::new()).unwrap();
    let fixture = Fixture::text("Hello {{ name }}").declaring(&["name"]);
    for result in set.run(&fixture.subject()) {
        assert_eq!(Some(result.name.as_str()), builtin_name(&result.check));
    }
    assert_eq!(builtin_name("classification_tags"), Some("Classification matches tags"));
    assert_eq!(builtin_name("no_such_check"), None);
}

const CHECKS_FILE: &str = r#"
[[check]]
key = "no_card_numbers"
name = "No card numbers"
severity = "error"
applies_to = ["support"]
rule = { kind = "regex_must_not_match", pattern = '\b(?:\d[ -]?){13,16}\b' }

[[check]]
key = "described_parameters"
name = "Parameters are described"
description = "Every parameter says what it is."
severity = "warning"
enabled = false

[check.rule]
kind = "schema_rule"
schema = { type = "object", properties = { properties = { additionalProperties = { required = ["description"] } } } }
"#;

#[test]
fn checks_file_parses_into_definitions() {
    let defs = parse_checks_toml(CHECKS_FILE).unwrap();
    assert_eq!(defs.len(), 2);
    assert_eq!(defs[0].key, "no_card_numbers");
    assert_eq!(defs[0].severity, Severity::Error);
    assert_eq!(defs[0].applies_to, vec!["support".to_owned()]);
    assert!(matches!(&defs[0].rule, Rule::RegexMustNotMatch { target: RegexTarget::Text, .. }));
    assert!(!defs[1].enabled);
    let Rule::SchemaRule { schema } = &defs[1].rule else { panic!("{:?}", defs[1].rule) };
    assert_eq!(
        schema["properties"]["properties"]["additionalProperties"]["required"],
        json!(["description"])
    );
    assert_eq!(parse_checks_toml("").unwrap(), Vec::new());
}

#[test]
fn checks_file_refuses_unknown_keys_bad_rules_and_collisions() {
    let cases = [
        (CHECKS_FILE.replace("severity = \"error\"", "severity = \"fatal\""), "fatal"),
        (CHECKS_FILE.replace("applies_to", "appliesto"), "appliesto"),
        (format!("{CHECKS_FILE}\n[settings]\nx = 1\n"), "settings"),
    ];
    for (text, needle) in cases {
        let err = parse_checks_toml(&text).unwrap_err();
        assert!(matches!(err, CheckSetError::Parse(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err} should mention {needle}");
    }
    let bad_regex = CHECKS_FILE.replace(r"'\b(?:\d[ -]?){13,16}\b'", "'(unclosed'");
    let err = parse_checks_toml(&bad_regex).unwrap_err();
    assert!(err.to_string().contains("rule.pattern"), "{err}");
    let twice = CHECKS_FILE.replace("described_parameters", "no_card_numbers");
    assert_eq!(parse_checks_toml(&twice).unwrap_err(), CheckSetError::DuplicateKey("no_card_numbers".into()));
    let builtin = CHECKS_FILE.replace("no_card_numbers", "length_limit");
    assert_eq!(parse_checks_toml(&builtin).unwrap_err(), CheckSetError::BuiltinKey("length_limit".into()));
}
