//! Deterministic, realistic-looking template content.
//!
//! Everything is a pure function of `(seed, template index, version)`, so the
//! loader and the statistics pass (document frequencies for choosing search
//! terms) see the same text without keeping it in memory.
//!
//! Words follow a Zipf distribution over a vocabulary of common English
//! words (the most frequent ranks) and a long tail of made-up words, mixed
//! with a topical vocabulary per area, so full-text search meets realistic
//! term frequencies: a few words in nearly every template, most words rare.

use std::collections::BTreeSet;

/// SplitMix64: small, fast, good enough for test data, and stable across
/// library versions (the generated corpus must not change under us).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for one purpose derived from several keys.
    #[must_use]
    pub fn derive(keys: &[u64]) -> Self {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        for k in keys {
            r.0 ^= *k;
            r.next_u64();
        }
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Frequent English words first (Zipf rank order roughly as in prompts).
const COMMON: &[&str] = &[
    "the",
    "you",
    "and",
    "to",
    "a",
    "of",
    "your",
    "is",
    "in",
    "for",
    "with",
    "that",
    "be",
    "on",
    "are",
    "this",
    "as",
    "not",
    "or",
    "if",
    "answer",
    "user",
    "when",
    "can",
    "do",
    "it",
    "from",
    "only",
    "should",
    "response",
    "always",
    "never",
    "question",
    "information",
    "please",
    "use",
    "must",
    "provide",
    "any",
    "each",
    "all",
    "an",
    "will",
    "about",
    "them",
    "they",
    "their",
    "then",
    "make",
    "sure",
    "clear",
    "short",
    "context",
    "following",
    "instructions",
    "request",
    "data",
    "help",
    "assistant",
    "task",
    "output",
    "format",
    "list",
    "step",
    "steps",
    "summary",
    "summarize",
    "write",
    "explain",
    "include",
    "avoid",
    "keep",
    "tone",
    "friendly",
    "professional",
    "concise",
    "detailed",
    "relevant",
    "details",
    "example",
    "examples",
    "given",
    "based",
    "below",
    "above",
    "document",
    "documents",
    "text",
    "message",
    "messages",
    "reply",
    "ask",
    "follow",
    "rules",
    "policy",
    "policies",
    "account",
    "order",
    "orders",
    "product",
    "products",
    "service",
    "team",
    "ticket",
    "tickets",
    "issue",
    "issues",
    "problem",
    "solution",
    "support",
    "report",
    "reports",
    "review",
    "check",
    "verify",
    "confirm",
    "error",
    "errors",
    "result",
    "results",
    "tool",
    "tools",
    "call",
    "calls",
    "json",
    "field",
    "fields",
    "value",
    "values",
    "return",
    "returns",
    "date",
    "time",
    "language",
    "english",
    "translate",
    "translation",
    "source",
    "sources",
    "cite",
    "citation",
    "quote",
    "facts",
    "fact",
    "claim",
    "claims",
    "evidence",
    "uncertain",
    "unsure",
    "guess",
    "invent",
    "personal",
    "private",
    "sensitive",
    "email",
    "phone",
    "address",
    "payment",
    "invoice",
    "refund",
    "refunds",
    "delivery",
    "shipping",
    "return",
    "warranty",
    "price",
    "prices",
    "discount",
    "plan",
    "plans",
    "subscription",
    "upgrade",
    "cancel",
    "customer",
    "customers",
    "client",
    "clients",
    "agent",
    "agents",
    "human",
    "escalate",
    "escalation",
    "priority",
    "urgent",
    "category",
    "categories",
    "label",
    "labels",
    "classify",
    "classification",
    "intent",
    "sentiment",
    "positive",
    "negative",
    "neutral",
    "score",
    "scores",
    "rating",
    "confidence",
    "threshold",
    "search",
    "query",
    "queries",
    "retrieve",
    "retrieved",
    "passage",
    "passages",
    "knowledge",
    "base",
    "article",
    "articles",
    "section",
    "sections",
    "heading",
    "headings",
    "paragraph",
    "paragraphs",
    "bullet",
    "bullets",
    "markdown",
    "table",
    "tables",
    "code",
    "snippet",
    "function",
    "functions",
    "parameter",
    "parameters",
    "schema",
    "valid",
    "invalid",
    "missing",
    "required",
    "optional",
    "default",
    "limit",
    "limits",
    "maximum",
    "minimum",
    "words",
    "sentences",
    "characters",
    "length",
    "brief",
    "thorough",
    "careful",
    "accurate",
    "correct",
    "incorrect",
    "mistake",
    "mistakes",
    "politely",
    "apologize",
    "thank",
    "greet",
    "greeting",
    "closing",
    "signature",
    "brand",
    "voice",
    "style",
    "guide",
    "guidelines",
    "legal",
    "compliance",
    "regulation",
    "regulations",
    "consent",
    "security",
    "safety",
    "harmful",
    "refuse",
    "decline",
    "allowed",
    "forbidden",
    "medical",
    "financial",
    "advice",
    "disclaimer",
    "meeting",
    "meetings",
    "notes",
    "action",
    "actions",
    "items",
    "owner",
    "owners",
    "deadline",
    "deadlines",
    "project",
    "projects",
    "status",
    "update",
    "updates",
    "release",
    "changelog",
    "feature",
    "features",
    "bug",
    "bugs",
    "incident",
    "incidents",
    "outage",
    "root",
    "cause",
    "impact",
    "timeline",
    "postmortem",
    "candidate",
    "candidates",
    "resume",
    "interview",
    "feedback",
    "survey",
    "campaign",
    "audience",
    "headline",
    "slogan",
    "social",
    "post",
    "posts",
];

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "ber", "dan", "el", "fi", "gor", "hal", "ith", "jun",
    "kel", "mor", "nal", "pra", "quin", "ros", "sul", "tor", "ul", "vin", "wex", "yor", "zan", "bri", "cal",
    "dre", "fen", "gli", "hov", "ixa", "jor", "kru", "lam", "mep",
];

/// Folders: `team-NN/<area>/<role>-<index>`.
pub const AREAS: &[&str] =
    &["agents", "support", "billing", "onboarding", "retrieval", "summaries", "marketing", "compliance"];
const ROLES: &[&str] =
    &["triage", "router", "planner", "reviewer", "writer", "classifier", "extractor", "responder"];
const TAGS: &[&str] = &[
    "prod",
    "experimental",
    "gpt-4o",
    "claude",
    "llama",
    "rag",
    "json-output",
    "tools",
    "safety",
    "en",
    "de",
    "fr",
    "es",
    "internal-only",
    "customer-facing",
    "batch",
    "realtime",
    "eval",
    "legacy",
    "v2",
    "pii",
    "multilingual",
    "long-context",
    "streaming",
];
/// Variables the template text uses (declared by the schema below).
pub const VARIABLES: &[&str] = &["assistant_name", "customer_name", "language"];
const MODELS: &[&str] = &["gpt-4o-mini", "claude-sonnet", "llama-3-70b"];
/// Words of the fixed frame around every body (see [`Corpus::render_body`]).
const FRAME: &[&str] = &["you", "are", "helping", "answer", "in", "if", "endif"];

/// Total words in the vocabulary (common words, then made-up ones).
const VOCABULARY: usize = 6000;
/// Share of words drawn from the area's topical list instead of Zipf.
const TOPICAL_SHARE: f64 = 0.2;
const TOPIC_WORDS: usize = 40;

#[derive(Debug)]
pub struct Corpus {
    pub seed: u64,
    pub templates: usize,
    pub versions: u32,
    pub teams: usize,
    words: Vec<String>,
    /// Cumulative Zipf weights (s = 1), normalised to 1.
    cumulative: Vec<f64>,
}

/// What a template is, besides its versions.
#[derive(Debug, Clone)]
pub struct TemplateSpec {
    pub name: String,
    pub area: usize,
    pub description: String,
    pub tags: Vec<String>,
    pub classification: usize,
    pub model: &'static str,
}

/// A text under construction: sentences of word ids.
#[derive(Debug, Clone)]
pub struct Body {
    sentences: Vec<Vec<u16>>,
}

impl Corpus {
    #[must_use]
    pub fn new(seed: u64, templates: usize, versions: u32, teams: usize) -> Self {
        let mut words: Vec<String> = Vec::with_capacity(VOCABULARY);
        let mut seen = BTreeSet::new();
        for w in COMMON {
            if seen.insert((*w).to_owned()) {
                words.push((*w).to_owned());
            }
        }
        let mut rng = Rng::derive(&[seed, 0xC0FFEE]);
        while words.len() < VOCABULARY {
            let n = 2 + rng.below(3);
            let w: String = (0..n).map(|_| SYLLABLES[rng.below(SYLLABLES.len())]).collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut cumulative = Vec::with_capacity(words.len());
        let mut total = 0.0;
        for rank in 1..=words.len() {
            total += 1.0 / rank as f64;
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        Self { seed, templates, versions, teams, words, cumulative }
    }

    #[must_use]
    pub fn word(&self, id: u16) -> &str {
        &self.words[usize::from(id)]
    }

    #[must_use]
    pub fn vocabulary(&self) -> &[String] {
        &self.words
    }

    /// Words that appear in names, tags and variables: not used as search
    /// terms, and search terms must not be a prefix of them (queries match
    /// prefixes).
    #[must_use]
    pub fn structural_words(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let parts = AREAS
            .iter()
            .chain(ROLES)
            .chain(TAGS)
            .chain(VARIABLES)
            .chain(MODELS)
            .chain(FRAME)
            .chain(&["team"]);
        for p in parts {
            for w in p.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                out.insert(w.to_lowercase());
            }
        }
        out
    }

    fn zipf(&self, rng: &mut Rng) -> u16 {
        let u = rng.unit();
        let i = self.cumulative.partition_point(|c| *c < u).min(self.words.len() - 1);
        i as u16
    }

    fn topical(&self, area: usize, rng: &mut Rng) -> u16 {
        // Each area has its own band of mid-frequency words.
        let start = 400 + area * TOPIC_WORDS;
        (start + rng.below(TOPIC_WORDS)) as u16
    }

    fn word_id(&self, area: usize, rng: &mut Rng) -> u16 {
        if rng.unit() < TOPICAL_SHARE { self.topical(area, rng) } else { self.zipf(rng) }
    }

    fn sentence(&self, area: usize, rng: &mut Rng) -> Vec<u16> {
        let n = 6 + rng.below(11);
        (0..n).map(|_| self.word_id(area, rng)).collect()
    }

    #[must_use]
    pub fn template(&self, i: usize) -> TemplateSpec {
        let mut rng = Rng::derive(&[self.seed, 1, i as u64]);
        let team = rng.below(self.teams);
        let area = rng.below(AREAS.len());
        let role = ROLES[rng.below(ROLES.len())];
        let name = format!("team-{team:02}/{}/{role}-{i:06}", AREAS[area]);
        let description = render_words(self, &self.description_ids(i, area), true);
        let ntags = 1 + rng.below(3);
        let mut tags: Vec<String> = (0..ntags).map(|_| TAGS[rng.below(TAGS.len())].to_owned()).collect();
        tags.sort();
        tags.dedup();
        // Mostly internal, as in the product's default.
        let classification = match rng.below(10) {
            0 => 0,
            1..=7 => 1,
            _ => 2,
        };
        let model = MODELS[rng.below(MODELS.len())];
        TemplateSpec { name, area, description, tags, classification, model }
    }

    fn description_ids(&self, i: usize, area: usize) -> Vec<u16> {
        let mut rng = Rng::derive(&[self.seed, 2, i as u64]);
        let n = 8 + rng.below(13);
        (0..n).map(|_| self.word_id(area, &mut rng)).collect()
    }

    /// The body of version 1 (400–1000 bytes of text once rendered).
    #[must_use]
    pub fn first_body(&self, i: usize, area: usize) -> Body {
        let mut rng = Rng::derive(&[self.seed, 3, i as u64]);
        let target = 400 + rng.below(601);
        let mut body = Body { sentences: Vec::new() };
        while self.render_body(&body).len() < target {
            body.sentences.push(self.sentence(area, &mut rng));
        }
        body
    }

    /// Version `k` (2, 3, …) rewrites one sentence of version `k - 1`.
    pub fn edit(&self, i: usize, area: usize, k: u32, body: &mut Body) {
        let mut rng = Rng::derive(&[self.seed, 4, i as u64, u64::from(k)]);
        let at = rng.below(body.sentences.len());
        body.sentences[at] = self.sentence(area, &mut rng);
    }

    /// The latest version's body, as the search index holds it.
    #[must_use]
    pub fn latest_body(&self, i: usize, area: usize) -> Body {
        let mut body = self.first_body(i, area);
        for k in 2..=self.versions {
            self.edit(i, area, k, &mut body);
        }
        body
    }

    /// The template text: a fixed frame with the variables, and the sentences.
    #[must_use]
    pub fn render_body(&self, body: &Body) -> String {
        let mut out = String::from("You are {{ assistant_name }}, helping {{ customer_name }}.\n");
        for s in &body.sentences {
            out.push_str(&render_words(self, s, true));
            out.push(' ');
        }
        out.push_str("\n{% if language %}Answer in {{ language }}.{% endif %}\n");
        out
    }

    /// The distinct words a template's search entry holds (description and
    /// latest body; names, tags and the frame are structural words).
    #[must_use]
    pub fn indexed_words(&self, i: usize, spec: &TemplateSpec) -> Vec<u16> {
        let mut ids: Vec<u16> = self.description_ids(i, spec.area);
        for s in &self.latest_body(i, spec.area).sentences {
            ids.extend_from_slice(s);
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

fn render_words(c: &Corpus, ids: &[u16], sentence: bool) -> String {
    let mut out = String::new();
    for (n, id) in ids.iter().enumerate() {
        let w = c.word(*id);
        if n > 0 {
            out.push(' ');
        }
        if n == 0 && sentence {
            let mut chars = w.chars();
            if let Some(f) = chars.next() {
                out.extend(f.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push_str(w);
        }
    }
    if sentence {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let c = Corpus::new(7, 100, 4, 5);
        let a = c.template(42);
        let b = c.template(42);
        assert_eq!(a.name, b.name);
        assert_eq!(a.description, b.description);
        assert!(promptvault_core::TemplateName::parse(&a.name).is_ok(), "{}", a.name);
        for i in 0..100 {
            let spec = c.template(i);
            let text = c.render_body(&c.first_body(i, spec.area));
            assert!((400..1300).contains(&text.len()), "{}", text.len());
        }
        let mut v = c.first_body(3, 1);
        c.edit(3, 1, 2, &mut v);
        c.edit(3, 1, 3, &mut v);
        c.edit(3, 1, 4, &mut v);
        assert_eq!(c.render_body(&v), c.render_body(&c.latest_body(3, 1)));
    }

    #[test]
    fn vocabulary_words_are_distinct_and_alphabetic() {
        let c = Corpus::new(1, 10, 1, 2);
        let set: BTreeSet<&String> = c.vocabulary().iter().collect();
        assert_eq!(set.len(), c.vocabulary().len());
        assert!(c.vocabulary().iter().all(|w| w.chars().all(|ch| ch.is_ascii_lowercase())));
    }
}
