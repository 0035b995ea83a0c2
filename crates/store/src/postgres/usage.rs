//! Renders, outcomes and metrics on PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use promptvault_core::model::{Outcome, OutcomeRecord, PromptRecord};
use promptvault_core::{PromptId, TemplateId};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::PgStore;
use super::codec;
use crate::error::Result;
use crate::rows::UsageRow;
use crate::types::{OutcomeResult, TemplateMetrics, UsageEvent};

/// Rows per multi-row INSERT: 13 binds each, far below PostgreSQL's 65535.
const CHUNK: usize = 1000;

#[derive(Default)]
struct Counter {
    times_used: i64,
    last_used: Option<DateTime<Utc>>,
    successes: i64,
    failures: i64,
}

/// Counters per (template, version); ordered, so concurrent batches update
/// `usage_stats` rows in the same order and cannot deadlock on them.
type Counters = BTreeMap<(Uuid, Uuid), Counter>;

impl PgStore {
    pub(super) async fn record_usage_impl(&self, events: Vec<UsageEvent>) -> Result<Vec<OutcomeResult>> {
        match self.record_usage_once(&events).await {
            // A version (or template) checked as live was deleted by a
            // transaction that committed before our insert: the whole batch
            // rolled back, so run it again; the re-check stores those
            // renders detached.
            Err(e) if codec::is_retryable(&e) => {
                tracing::debug!(error = %e, "usage batch raced a delete; retrying once");
                self.record_usage_once(&events).await
            }
            other => other,
        }
    }

    async fn record_usage_once(&self, events: &[UsageEvent]) -> Result<Vec<OutcomeResult>> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::new();
        let mut counters = Counters::new();
        let mut pending: Vec<&PromptRecord> = Vec::new();
        for event in events {
            match event {
                UsageEvent::Render(p) => pending.push(p),
                UsageEvent::Outcome { prompt_id, outcome } => {
                    // Renders queued before this outcome must be visible to it.
                    flush_renders(&mut tx, &self.vault, &mut pending, &mut counters).await?;
                    results.push(apply_outcome(&mut tx, *prompt_id, outcome, &mut counters).await?);
                }
            }
        }
        flush_renders(&mut tx, &self.vault, &mut pending, &mut counters).await?;
        write_counters(&mut tx, &counters).await?;
        tx.commit().await?;
        Ok(results)
    }

    pub(super) async fn get_prompt_impl(&self, id: PromptId) -> Result<Option<PromptRecord>> {
        let row = sqlx::query("SELECT * FROM prompt WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(codec::prompt(&r)?.decode(&self.vault)?.record)).transpose()
    }

    pub(super) async fn template_metrics_impl(&self, template: TemplateId) -> Result<TemplateMetrics> {
        let rows = sqlx::query(
            "SELECT v.seq, s.times_used, s.last_used, s.successes, s.failures FROM usage_stats s \
             JOIN prompt_template_version v ON v.id = s.version_id WHERE s.template_id = $1 ORDER BY v.seq DESC",
        )
        .bind(template.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        let mut metrics = TemplateMetrics::default();
        for r in rows {
            let (seq, m) = UsageRow {
                seq: r.try_get("seq")?,
                times_used: r.try_get("times_used")?,
                last_used: r.try_get("last_used")?,
                successes: r.try_get("successes")?,
                failures: r.try_get("failures")?,
            }
            .decode()?;
            metrics.total.merge(&m);
            metrics.versions.push((seq, m));
        }
        Ok(metrics)
    }
}

/// Inserts queued renders. A render whose version was deleted meanwhile is
/// kept, detached (NULL ids), like renders of deleted templates. A delete
/// that commits after the check makes the insert fail on a foreign key; the
/// caller then retries the batch.
async fn flush_renders(
    conn: &mut PgConnection,
    vault: &crate::crypt::Vault,
    pending: &mut Vec<&PromptRecord>,
    counters: &mut Counters,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let versions: Vec<Uuid> = pending.iter().map(|p| *p.version_id.as_uuid()).collect();
    // Live versions and their templates' classifications.
    let classes: HashMap<Uuid, String> = sqlx::query_as(
        "SELECT v.id, t.security_classification FROM prompt_template_version v \
         JOIN prompt_template t ON t.id = v.template_id WHERE v.id = ANY($1)",
    )
    .bind(&versions)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    // Parameters and text of renders of templates in the sealing scope are
    // sealed; so are those of templates deleted meanwhile (their
    // classification is no longer known) when a master key is configured.
    let mut sealed: Vec<Option<Vec<u8>>> = Vec::with_capacity(pending.len());
    let mut sealed_keys: Vec<Option<String>> = Vec::with_capacity(pending.len());
    for p in pending.iter() {
        let ring = match classes.get(p.version_id.as_uuid()) {
            Some(class) => {
                let class: promptvault_core::SecurityClassification =
                    class.parse().map_err(crate::error::StoreError::corrupt)?;
                vault.sealer(class)?.cloned()
            }
            None => vault.ring().cloned(),
        };
        match ring {
            Some(r) => {
                let (k, b) =
                    crate::rows::seal_prompt(&r, p.id.as_uuid(), Some(&p.data), Some(&p.prompt_text))?;
                sealed.push(Some(b));
                sealed_keys.push(Some(k));
            }
            None => {
                sealed.push(None);
                sealed_keys.push(None);
            }
        }
    }
    let live: HashSet<Uuid> = classes.into_keys().collect();
    // One statement per batch: columns as arrays, unnested by the server
    // (a multi-row VALUES would need thirteen parameters per row).
    let alive = |p: &PromptRecord| live.contains(p.version_id.as_uuid());
    let ids: Vec<Uuid> = pending.iter().map(|p| *p.id.as_uuid()).collect();
    let templates: Vec<Option<Uuid>> =
        pending.iter().map(|p| alive(p).then(|| *p.template_id.as_uuid())).collect();
    let types: Vec<Option<Uuid>> =
        pending.iter().map(|p| alive(p).then(|| *p.prompt_type_id.as_uuid())).collect();
    let version_ids: Vec<Option<Uuid>> =
        pending.iter().map(|p| alive(p).then(|| *p.version_id.as_uuid())).collect();
    let seqs: Vec<i64> = pending.iter().map(|p| i64::from(p.version_seq)).collect();
    let data: Vec<Option<String>> =
        pending.iter().zip(&sealed).map(|(p, s)| s.is_none().then(|| p.data.to_string())).collect();
    let texts: Vec<Option<&str>> =
        pending.iter().zip(&sealed).map(|(p, s)| s.is_none().then_some(p.prompt_text.as_str())).collect();
    let senders: Vec<Option<Uuid>> = pending.iter().map(|p| p.sender_id.map(Uuid::from)).collect();
    let times: Vec<DateTime<Utc>> = pending.iter().map(|p| p.created_at).collect();
    let sessions: Vec<Option<&str>> = pending.iter().map(|p| p.metadata.session_id.as_deref()).collect();
    let requests: Vec<Option<&str>> = pending.iter().map(|p| p.metadata.request_id.as_deref()).collect();
    let agents: Vec<Option<&str>> = pending.iter().map(|p| p.metadata.agent_id.as_deref()).collect();
    let models: Vec<&str> = pending.iter().map(|p| p.metadata.deployment_model.as_str()).collect();
    sqlx::query(
        "INSERT INTO prompt (id, prompt_template_id, prompt_type_id, version_id, version_seq, data, prompt_text, \
         sender_id, created_at, session_id, request_id, agent_id, deployment_model, sealed, sealed_key) \
         SELECT id, tpl, typ, ver, seq, dat::jsonb, txt, snd, at, ses, req, agt, dep, sld, slk FROM UNNEST( \
           $1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::int8[], $6::text[], $7::text[], $8::uuid[], \
           $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], $15::text[]) \
         AS u(id, tpl, typ, ver, seq, dat, txt, snd, at, ses, req, agt, dep, sld, slk)",
    )
    .bind(&ids)
    .bind(&templates)
    .bind(&types)
    .bind(&version_ids)
    .bind(&seqs)
    .bind(&data)
    .bind(&texts)
    .bind(&senders)
    .bind(&times)
    .bind(&sessions)
    .bind(&requests)
    .bind(&agents)
    .bind(&models)
    .bind(&sealed)
    .bind(&sealed_keys)
    .execute(&mut *conn)
    .await?;
    for p in pending.drain(..) {
        let version = *p.version_id.as_uuid();
        if !live.contains(&version) {
            continue;
        }
        let c = counters.entry((*p.template_id.as_uuid(), version)).or_default();
        c.times_used += 1;
        c.last_used = c.last_used.max(Some(p.created_at));
    }
    Ok(())
}

/// Records the first outcome of a render. The conditional UPDATE is the
/// check: of two batches reporting the same render, the second waits for
/// the first's row lock, then finds the outcome set.
async fn apply_outcome(
    conn: &mut PgConnection,
    prompt: PromptId,
    outcome: &OutcomeRecord,
    counters: &mut Counters,
) -> Result<OutcomeResult> {
    let label = match outcome.outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    };
    let updated: Option<(Option<Uuid>, Option<Uuid>)> = sqlx::query_as(
        "UPDATE prompt SET outcome = $1, outcome_detail = $2, outcome_at = $3 WHERE id = $4 AND outcome IS NULL \
         RETURNING prompt_template_id, version_id",
    )
    .bind(label)
    .bind(&outcome.detail)
    .bind(outcome.at)
    .bind(prompt.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(ids) = updated else {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM prompt WHERE id = $1)")
            .bind(prompt.as_uuid())
            .fetch_one(&mut *conn)
            .await?;
        return Ok(if exists { OutcomeResult::AlreadyReported } else { OutcomeResult::UnknownPrompt });
    };
    if let (Some(t), Some(v)) = ids {
        let c = counters.entry((t, v)).or_default();
        match outcome.outcome {
            Outcome::Success => c.successes += 1,
            Outcome::Failure => c.failures += 1,
        }
    }
    Ok(OutcomeResult::Recorded)
}

/// Adds the batch's counters to `usage_stats`; `last_used` only moves forward.
async fn write_counters(conn: &mut PgConnection, counters: &Counters) -> Result<()> {
    let rows: Vec<_> = counters.iter().collect();
    for chunk in rows.chunks(CHUNK) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO usage_stats (template_id, version_id, times_used, last_used, successes, failures) ",
        );
        qb.push_values(chunk, |mut b, ((template, version), c)| {
            b.push_bind(*template)
                .push_bind(*version)
                .push_bind(c.times_used)
                .push_bind(c.last_used)
                .push_bind(c.successes)
                .push_bind(c.failures);
        });
        qb.push(
            " ON CONFLICT (template_id, version_id) DO UPDATE SET \
             times_used = usage_stats.times_used + excluded.times_used, \
             last_used = GREATEST(usage_stats.last_used, excluded.last_used), \
             successes = usage_stats.successes + excluded.successes, \
             failures = usage_stats.failures + excluded.failures",
        );
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}
