//! `promptvault-bench scale`: load N templates x M versions through the
//! `Store` trait, then time single-client reads against the store directly
//! (no application cache): resolve by label, list pages, full-text search.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use promptvault_core::model::truncate_to_micros;
use promptvault_core::{
    Bump, Config, ContentHash, LabelName, ParameterSchema, PromptTypeKey, SecurityClassification, Tag,
    TemplateBody, TemplateName, VersionContent,
};
use promptvault_store::{
    Expect, NewPromptType, NewTemplate, NewVersion, PageRequest, Store, StoreOptions, TemplateFilter,
    VersionSelector,
};
use serde_json::json;
use tokio::task::JoinSet;

use crate::corpus::{Corpus, Rng};
use crate::stats::{Recorder, Summary, fmt_duration};

/// The p99 target of the issue, for every read measured here.
const P99_TARGET: Duration = Duration::from_millis(10);
const PAGE: u32 = 50;

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Templates to load.
    #[arg(long, default_value_t = 100_000)]
    pub templates: usize,
    /// Versions per template (the `production` label points at the one
    /// before the newest).
    #[arg(long, default_value_t = 10)]
    pub versions: u32,
    /// Run against this PostgreSQL server, in a fresh schema `bench_<random>`
    /// that is dropped at the end. Without it: SQLite in a temporary directory.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Loader tasks (default: 4 on SQLite, whose writes serialize anyway; 8 on PostgreSQL).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Timed calls per measured operation.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Top-level folders (`team-00`, `team-01`, …).
    #[arg(long, default_value_t = 20)]
    pub teams: usize,
    /// Seed of the generated content (same seed, same corpus).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory for the SQLite file (default: a new temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the database (SQLite file or PostgreSQL schema) for inspection
    /// instead of removing it at the end.
    #[arg(long)]
    pub keep: bool,
    /// Measure only, against a database kept by an earlier `--keep` run with
    /// the same --templates/--versions/--teams/--seed: a PostgreSQL schema
    /// name (with --postgres) or a SQLite file path. Nothing is loaded or removed.
    #[arg(long, value_name = "SCHEMA|PATH")]
    pub reuse: Option<String>,
}

enum Target {
    Sqlite { _dir: Option<tempfile::TempDir>, path: PathBuf },
    Postgres { url: String, schema: String },
}

impl Target {
    fn create(args: &ScaleArgs) -> Result<Target> {
        if let Some(reuse) = &args.reuse {
            return Ok(match &args.postgres {
                Some(url) => {
                    let valid = reuse.starts_with("bench_")
                        && reuse.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    if !valid {
                        bail!("--reuse takes a schema name made by --keep (bench_…)");
                    }
                    Target::Postgres { url: url.clone(), schema: reuse.clone() }
                }
                None => {
                    let path = PathBuf::from(reuse);
                    if !path.is_file() {
                        bail!("{} is not a file", path.display());
                    }
                    Target::Sqlite { _dir: None, path }
                }
            });
        }
        if args.keep && args.postgres.is_none() && args.dir.is_none() {
            bail!("--keep on SQLite needs --dir (the temporary directory would be removed)");
        }
        match &args.postgres {
            Some(url) => {
                let schema = format!("bench_{:012x}", Rng::new(rand_seed()).next_u64() >> 16);
                Ok(Target::Postgres { url: url.clone(), schema })
            }
            None => match &args.dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir)?;
                    let path = dir.join(format!("scale-{}.db", std::process::id()));
                    Ok(Target::Sqlite { _dir: None, path })
                }
                None => {
                    let dir = tempfile::Builder::new().prefix("pv-bench-scale").tempdir()?;
                    let path = dir.path().join("promptvault.db");
                    Ok(Target::Sqlite { _dir: Some(dir), path })
                }
            },
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Target::Sqlite { .. } => "sqlite",
            Target::Postgres { .. } => "postgres",
        }
    }

    fn options(&self, connections: u32) -> StoreOptions {
        match self {
            Target::Sqlite { path, .. } => {
                let mut o = StoreOptions::new(format!("sqlite://{}", path.display()));
                o.max_connections = connections;
                o.encryption.master = Some(bench_master_key());
                o
            }
            Target::Postgres { url, schema } => {
                let mut o = StoreOptions::new(url.clone());
                o.pg_schema = schema.clone();
                o.max_connections = connections;
                o.encryption.master = Some(bench_master_key());
                o
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Sqlite { path, .. } => format!("SQLite file {}", path.display()),
            Target::Postgres { schema, .. } => format!("PostgreSQL schema {schema}"),
        }
    }

    /// What a running system would have by now: on PostgreSQL, vacuumed
    /// tables with statistics (autovacuum does both after a bulk load). Returns a note and the
    /// database size in bytes.
    async fn after_load(&self) -> Result<(String, u64)> {
        match self {
            Target::Sqlite { path, .. } => {
                let mut size = std::fs::metadata(path)?.len();
                let wal = PathBuf::from(format!("{}-wal", path.display()));
                if let Ok(m) = std::fs::metadata(wal) {
                    size += m.len();
                }
                Ok(("no ANALYZE (the store does not run it)".into(), size))
            }
            Target::Postgres { url, schema } => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await?;
                let started = Instant::now();
                // Every table of the schema. VACUUM as well as ANALYZE: this
                // machine's PostgreSQL runs with autovacuum off, and a real
                // server (autovacuum on, the default) would have vacuumed
                // the updated rows during a load this long.
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind = 'r'",
                )
                .bind(schema)
                .fetch_all(&mut conn)
                .await?;
                let tables = names.iter().map(|t| format!("{schema}.\"{t}\"")).collect::<Vec<_>>().join(", ");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {tables}")))
                    .execute(&mut conn)
                    .await?;
                let took = started.elapsed();
                let size: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                )
                .bind(schema)
                .fetch_one(&mut conn)
                .await?;
                conn.close().await?;
                Ok((
                    format!(
                        "VACUUM (ANALYZE) after the load, standing in for autovacuum ({})",
                        fmt_duration(took)
                    ),
                    u64::try_from(size)?,
                ))
            }
        }
    }

    async fn cleanup(&self) {
        match self {
            Target::Sqlite { path, _dir: None } => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Target::Sqlite { .. } => {}
            Target::Postgres { url, schema } => {
                use sqlx::Connection;
                match sqlx::PgConnection::connect(url).await {
                    Ok(mut conn) => {
                        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
                            eprintln!("warning: could not drop schema {schema}: {e}");
                        } else {
                            eprintln!("dropped schema {schema}");
                        }
                    }
                    Err(e) => eprintln!("warning: could not connect to drop schema {schema}: {e}"),
                }
            }
        }
    }
}

fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

fn now() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

pub async fn run(args: ScaleArgs) -> Result<()> {
    if args.templates == 0 || args.versions == 0 || args.teams == 0 || args.samples == 0 {
        bail!("--templates, --versions, --teams and --samples must be positive");
    }
    let target = Target::create(&args)?;
    let work = scale(&args, &target);
    let result = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if args.keep || args.reuse.is_some() {
        eprintln!("kept the database: {}", target.describe());
    } else {
        target.cleanup().await;
    }
    result
}

async fn scale(args: &ScaleArgs, target: &Target) -> Result<()> {
    let postgres = matches!(target, Target::Postgres { .. });
    let concurrency = args.concurrency.unwrap_or(if postgres { 8 } else { 4 }).max(1);
    let corpus = Arc::new(Corpus::new(args.seed, args.templates, args.versions, args.teams));
    println!(
        "scale: {} templates x {} versions on {} ({}), loader tasks {concurrency}, seed {}",
        args.templates,
        args.versions,
        target.backend(),
        target.describe(),
        args.seed
    );

    // --- load ---------------------------------------------------------------
    if args.reuse.is_some() {
        println!("reusing the database as it is: nothing loaded, no ANALYZE");
    } else {
        let store = promptvault_store::connect(&target.options(concurrency as u32 + 2))
            .await
            .context("opening the store")?;
        let loaded = load(store.clone(), corpus.clone(), concurrency).await;
        store.close().await;
        let load_time = loaded?;
        let versions = args.templates as u64 * u64::from(args.versions);
        println!(
            "load: {} templates, {versions} versions, labels: production on every template, staging on every third; \
             {} ({:.0} versions/s)",
            args.templates,
            fmt_duration(load_time),
            versions as f64 / load_time.as_secs_f64()
        );
        let (note, size) = target.after_load().await?;
        println!("database size {:.1} MiB; {note}", size as f64 / (1024.0 * 1024.0));
    }

    // --- measure: a fresh store (cold pools and statement caches) -------------
    let store = promptvault_store::connect(&target.options(8)).await.context("reopening the store")?;
    let measured = measure(&store, &corpus, args).await;
    store.close().await;
    let rows = measured?;

    println!();
    println!(
        "single client, Store called directly (no application cache), {} samples each, no warm-up",
        args.samples
    );
    println!(
        "{:<46}{:>8}{:>9}{:>9}{:>9}{:>9}{:>12}  p99 <= 10 ms",
        "operation", "samples", "p50 ms", "p95 ms", "p99 ms", "max ms", "items/call"
    );
    let mut missed = Vec::new();
    for (name, s) in &rows {
        let ok = s.p99 <= P99_TARGET;
        if !ok {
            missed.push(name.clone());
        }
        println!(
            "{name:<46}{:>8}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>12.1}  {}",
            s.count,
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
            s.items_per_call,
            if ok { "MET" } else { "MISSED" }
        );
    }
    println!();
    if missed.is_empty() {
        println!("target p99 <= 10 ms: MET for every operation");
    } else {
        println!("target p99 <= 10 ms: MISSED for {}", missed.join("; "));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn label(s: &str) -> LabelName {
    LabelName::parse(s).expect("valid label")
}

/// The production label points at the version before the newest.
fn production_seq(versions: u32) -> u32 {
    versions.saturating_sub(1).max(1)
}

fn parameter_schema() -> ParameterSchema {
    ParameterSchema::parse(json!({
        "type": "object",
        "properties": {
            "assistant_name": {"type": "string", "default": "Ava"},
            "customer_name": {"type": "string", "minLength": 1},
            "language": {"type": "string", "enum": ["en", "de", "fr", "es"]}
        },
        "required": ["customer_name"]
    }))
    .expect("valid schema")
}

async fn load(store: Arc<dyn Store>, corpus: Arc<Corpus>, concurrency: usize) -> Result<Duration> {
    let type_key = PromptTypeKey::parse("general").map_err(|e| anyhow!("{e}"))?;
    let prompt_type = match store.get_prompt_type(&type_key).await? {
        Some(t) => t,
        None => {
            store
                .create_prompt_type(
                    NewPromptType {
                        key: type_key,
                        name: "General".into(),
                        schema: None,
                        policy: Default::default(),
                    },
                    now().into(),
                )
                .await?
        }
    };
    let schema = Arc::new(parameter_schema());
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let progress = {
        let done = done.clone();
        let total = corpus.templates;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let d = done.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "  loaded {d}/{total} templates in {secs:.0} s ({:.0} templates/s)",
                    d as f64 / secs.max(0.001)
                );
            }
        })
    };
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (store, corpus, schema, next, done) =
            (store.clone(), corpus.clone(), schema.clone(), next.clone(), done.clone());
        let type_id = prompt_type.id;
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= corpus.templates {
                    return Ok::<(), anyhow::Error>(());
                }
                load_one(&*store, &corpus, &schema, type_id, i)
                    .await
                    .with_context(|| format!("template {i}"))?;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let r = joined.map_err(|e| anyhow!("loader task failed: {e}")).and_then(|r| r);
        if r.is_err() && result.is_ok() {
            result = r;
            tasks.abort_all();
        }
    }
    progress.abort();
    result.map(|()| started.elapsed())
}

fn new_version(schema: &ParameterSchema, text: String, model: &str, k: u32) -> Result<NewVersion> {
    let content = VersionContent {
        body: TemplateBody::Text(text),
        parameter_schema: schema.clone(),
        config: Config::parse(json!({"model": model, "temperature": 0.2}))
            .map_err(|e| anyhow!("config: {e}"))?,
    };
    Ok(NewVersion {
        content_hash: ContentHash::of(&content),
        content,
        version: semver::Version::new(1, u64::from(k - 1), 0),
        bump: (k > 1).then_some(Bump::Minor),
        author_id: None,
        change_description: Some(format!("revision {k}")),
        restored_from: None,
    })
}

async fn load_one(
    store: &dyn Store,
    corpus: &Corpus,
    schema: &ParameterSchema,
    type_id: promptvault_core::PromptTypeId,
    i: usize,
) -> Result<()> {
    let spec = corpus.template(i);
    let classification = match spec.classification {
        0 => SecurityClassification::Public,
        1 => SecurityClassification::Internal,
        _ => SecurityClassification::Confidential,
    };
    let tags =
        spec.tags.iter().map(|t| Tag::parse(t).map_err(|e| anyhow!("{e}"))).collect::<Result<Vec<_>>>()?;
    let mut body = corpus.first_body(i, spec.area);
    let first = new_version(schema, corpus.render_body(&body), spec.model, 1)?;
    let (template, _) = store
        .create_template(
            NewTemplate {
                name: TemplateName::parse(&spec.name).map_err(|e| anyhow!("{e}"))?,
                prompt_type_id: type_id,
                description: Some(spec.description.clone()),
                long_description_markdown: None,
                creator_id: None,
                owner_id: None,
                tags,
                security_classification: classification,
                access: Default::default(),
            },
            first,
            now().into(),
        )
        .await?;
    for k in 2..=corpus.versions {
        corpus.edit(i, spec.area, k, &mut body);
        let v = new_version(schema, corpus.render_body(&body), spec.model, k)?;
        store.create_version(template.id, k - 1, v, now().into()).await?;
    }
    store
        .set_label(
            template.id,
            &label("production"),
            production_seq(corpus.versions),
            Expect::Any,
            None,
            now().into(),
        )
        .await?;
    if i.is_multiple_of(3) {
        store
            .set_label(template.id, &label("staging"), corpus.versions, Expect::Any, None, now().into())
            .await?;
    }
    Ok(())
}

/// Search terms chosen from the corpus statistics.
#[derive(Debug)]
struct Queries {
    /// `(term, templates containing it)`.
    medium: Vec<(String, usize)>,
    /// `("a b", templates containing both)`.
    rare_pairs: Vec<(String, usize)>,
}

/// Document frequencies over what the search index holds, and terms that
/// match exactly those documents (no other indexed word starts with them).
fn choose_queries(corpus: &Corpus, seed: u64) -> Queries {
    let n = corpus.templates;
    let vocab = corpus.vocabulary();
    let mut df = vec![0usize; vocab.len()];
    let docs: Vec<Vec<u16>> = (0..n)
        .map(|i| {
            let words = corpus.indexed_words(i, &corpus.template(i));
            for w in &words {
                df[usize::from(*w)] += 1;
            }
            words
        })
        .collect();
    let structural = corpus.structural_words();
    let all: BTreeSet<&str> =
        vocab.iter().map(String::as_str).chain(structural.iter().map(String::as_str)).collect();
    let usable = |id: usize| {
        let w = vocab[id].as_str();
        w.len() >= 4
            && !structural.contains(w)
            && all.range(w..).nth(1).is_none_or(|next| !next.starts_with(w))
            && df[id] > 0
    };
    // Medium: in 1–3 % of templates, else the closest to 2 %.
    let share = |id: usize| df[id] as f64 / n as f64;
    let mut medium: Vec<usize> =
        (0..vocab.len()).filter(|&id| usable(id) && (0.01..=0.03).contains(&share(id))).collect();
    if medium.is_empty() {
        let mut by_distance: Vec<usize> = (0..vocab.len()).filter(|&id| usable(id)).collect();
        by_distance.sort_by(|a, b| (share(*a) - 0.02).abs().total_cmp(&(share(*b) - 0.02).abs()));
        medium = by_distance.into_iter().take(1).collect();
    }
    medium.sort_by_key(|id| df[*id]);
    let step = (medium.len() / 10).max(1);
    let medium: Vec<(String, usize)> =
        medium.iter().step_by(step).take(10).map(|id| (vocab[*id].clone(), df[*id])).collect();

    // Rare pairs: two words of one random template, each in at most 0.5 % of
    // templates when possible (else the two rarest usable words it has).
    let mut rng = Rng::derive(&[seed, 200]);
    let rare_cap = ((n as f64) * 0.005).max(2.0) as usize;
    let mut pairs: Vec<(u16, u16)> = Vec::new();
    let mut tries = 0;
    while pairs.len() < 20 && tries < 2000 {
        tries += 1;
        let doc = &docs[rng.below(n)];
        let mut cands: Vec<u16> = doc.iter().copied().filter(|w| usable(usize::from(*w))).collect();
        cands.sort_by_key(|w| df[usize::from(*w)]);
        let rare: Vec<u16> = cands.iter().copied().filter(|w| df[usize::from(*w)] <= rare_cap).collect();
        let pick = if rare.len() >= 2 { rare } else { cands };
        if pick.len() < 2 {
            continue;
        }
        let a = pick[rng.below(pick.len())];
        let b = pick[rng.below(pick.len())];
        if a != b && !pairs.contains(&(a, b)) && !pairs.contains(&(b, a)) {
            pairs.push((a, b));
        }
    }
    let rare_pairs = pairs
        .iter()
        .map(|(a, b)| {
            let both =
                docs.iter().filter(|d| d.binary_search(a).is_ok() && d.binary_search(b).is_ok()).count();
            (format!("{} {}", corpus.word(*a), corpus.word(*b)), both)
        })
        .collect();
    Queries { medium, rare_pairs }
}

async fn measure(
    store: &Arc<dyn Store>,
    corpus: &Corpus,
    args: &ScaleArgs,
) -> Result<Vec<(String, Summary)>> {
    let n = corpus.templates;
    let samples = args.samples;
    let mut rows = Vec::new();
    let production = VersionSelector::Label(label("production"));
    let expected_seq = production_seq(corpus.versions);

    // (i) resolve by label, random templates.
    let mut rng = Rng::derive(&[args.seed, 100]);
    let mut s = Recorder::new();
    for _ in 0..samples {
        let name = TemplateName::parse(&corpus.template(rng.below(n)).name).map_err(|e| anyhow!("{e}"))?;
        let t0 = Instant::now();
        let found = store.resolve(&name, &production).await?;
        s.add(t0.elapsed(), 1);
        let (_, v) = found.ok_or_else(|| anyhow!("{name} did not resolve"))?;
        if v.seq != expected_seq {
            bail!("{name}: production resolved to {} instead of {expected_seq}", v.seq);
        }
    }
    rows.push(("resolve by label (production)".to_owned(), s.finish()));

    // (ii) list pages. First walk every page to collect real cursors.
    let started = Instant::now();
    let all = TemplateFilter::default();
    let (cursors, total) = walk(store, &all).await?;
    if total != n {
        bail!("walking the list found {total} templates, not {n}");
    }
    println!(
        "walked the whole list: {} pages of {PAGE} in {} (these calls are not in the table)",
        cursors.len(),
        fmt_duration(started.elapsed())
    );
    let mut s = Recorder::new();
    for _ in 0..samples {
        let cursor = cursors[rng.below(cursors.len())].clone();
        let t0 = Instant::now();
        let page = store.list_templates(&all, &PageRequest { limit: PAGE, cursor }).await?;
        s.add(t0.elapsed(), page.items.len());
    }
    rows.push((format!("list page ({PAGE}, no filter, random cursor)"), s.finish()));

    let started = Instant::now();
    let mut folder_cursors: Vec<(TemplateFilter, Option<String>)> = Vec::new();
    let mut folder_total = 0;
    for team in 0..corpus.teams {
        let filter = TemplateFilter { folder: Some(format!("team-{team:02}")), ..TemplateFilter::default() };
        let (cursors, found) = walk(store, &filter).await?;
        folder_total += found;
        folder_cursors.extend(cursors.into_iter().map(|c| (filter.clone(), c)));
    }
    if folder_total != n {
        bail!("walking the folders found {folder_total} templates, not {n}");
    }
    println!(
        "walked {} folders: {} pages in {}",
        corpus.teams,
        folder_cursors.len(),
        fmt_duration(started.elapsed())
    );
    let mut s = Recorder::new();
    for _ in 0..samples {
        let (filter, cursor) = folder_cursors[rng.below(folder_cursors.len())].clone();
        let t0 = Instant::now();
        let page = store.list_templates(&filter, &PageRequest { limit: PAGE, cursor }).await?;
        s.add(t0.elapsed(), page.items.len());
    }
    rows.push((format!("list page ({PAGE}, folder team-NN, random cursor)"), s.finish()));

    // (iii) search.
    let started = Instant::now();
    let queries = choose_queries(corpus, args.seed);
    println!("chose search terms from the corpus statistics in {}", fmt_duration(started.elapsed()));
    println!(
        "  medium-frequency terms (templates containing each, of {n}): {}",
        queries.medium.iter().map(|(t, c)| format!("{t} ({c})")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  rare two-term queries (templates containing both): {}",
        queries.rare_pairs.iter().map(|(t, c)| format!("\"{t}\" ({c})")).collect::<Vec<_>>().join(", ")
    );
    if queries.medium.is_empty() || queries.rare_pairs.is_empty() {
        bail!("the corpus is too small to choose search terms");
    }
    // The index must agree with the statistics: count every match once.
    for (q, expected) in [&queries.medium[0], &queries.rare_pairs[0]] {
        let filter = TemplateFilter { query: Some(q.clone()), ..TemplateFilter::default() };
        let (_, found) = walk(store, &filter).await?;
        println!(
            "  check: \"{q}\" matches {found} templates, expected {expected}: {}",
            if found == *expected { "ok" } else { "DIFFERENT" }
        );
    }
    for (title, list) in [
        ("search: medium-frequency term, first page", &queries.medium),
        ("search: two rare terms, first page", &queries.rare_pairs),
    ] {
        let mut s = Recorder::new();
        for _ in 0..samples {
            let (q, _) = &list[rng.below(list.len())];
            let filter = TemplateFilter { query: Some(q.clone()), ..TemplateFilter::default() };
            let t0 = Instant::now();
            let page = store.list_templates(&filter, &PageRequest { limit: PAGE, cursor: None }).await?;
            s.add(t0.elapsed(), page.items.len());
        }
        rows.push((title.to_owned(), s.finish()));
    }
    Ok(rows)
}

/// Every page of a listing: the cursor of each page (`None` first) and the
/// number of templates seen.
async fn walk(store: &Arc<dyn Store>, filter: &TemplateFilter) -> Result<(Vec<Option<String>>, usize)> {
    let mut cursors = vec![None];
    let mut total = 0;
    loop {
        let cursor = cursors.last().cloned().flatten();
        let page = store.list_templates(filter, &PageRequest { limit: PAGE, cursor }).await?;
        total += page.items.len();
        match page.next_cursor {
            Some(c) => cursors.push(Some(c)),
            None => return Ok((cursors, total)),
        }
    }
}

/// The master key of the scale databases: fixed, since the bench reopens
/// them with other pool sizes (a throwaway database, never real content).
fn bench_master_key() -> promptvault_store::MasterKey {
    promptvault_store::MasterKey::from_bytes([0x5a; 32])
}
