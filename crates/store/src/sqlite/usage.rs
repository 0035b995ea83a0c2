//! Renders, outcomes and metrics on SQLite.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use promptvault_core::model::{Outcome, PromptRecord};
use promptvault_core::{PromptId, TemplateId};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteStore;
use super::codec::{self, Col, ts};
use crate::error::Result;
use crate::rows::UsageRow;
use crate::types::{OutcomeResult, TemplateMetrics, UsageEvent};

/// Rows per multi-row INSERT (16 columns each, well under SQLite's bind limit).
const CHUNK: usize = 400;

#[derive(Default)]
struct Counter {
    times_used: i64,
    last_used: Option<DateTime<Utc>>,
    successes: i64,
    failures: i64,
}

impl SqliteStore {
    pub(super) async fn record_usage_impl(&self, events: Vec<UsageEvent>) -> Result<Vec<OutcomeResult>> {
        let mut tx = self.writer.begin().await?;
        let mut results = Vec::new();
        let mut counters: BTreeMap<(String, String), Counter> = BTreeMap::new();
        let mut pending: Vec<PromptRecord> = Vec::new();
        for event in events {
            match event {
                UsageEvent::Render(p) => pending.push(*p),
                UsageEvent::Outcome { prompt_id, outcome } => {
                    // Renders queued before this outcome must be visible to it.
                    flush_renders(&mut tx, &self.vault, &mut pending, &mut counters).await?;
                    let result = apply_outcome(&mut tx, prompt_id, &outcome, &mut counters).await?;
                    results.push(result);
                }
            }
        }
        flush_renders(&mut tx, &self.vault, &mut pending, &mut counters).await?;
        for ((template, version), c) in counters {
            sqlx::query(
                "INSERT INTO usage_stats (template_id, version_id, times_used, last_used, successes, failures) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (template_id, version_id) DO UPDATE SET \
                 times_used = usage_stats.times_used + excluded.times_used, \
                 last_used = CASE WHEN excluded.last_used IS NULL THEN usage_stats.last_used \
                                  WHEN usage_stats.last_used IS NULL OR excluded.last_used > usage_stats.last_used \
                                  THEN excluded.last_used ELSE usage_stats.last_used END, \
                 successes = usage_stats.successes + excluded.successes, \
                 failures = usage_stats.failures + excluded.failures",
            )
            .bind(template)
            .bind(version)
            .bind(c.times_used)
            .bind(c.last_used.map(ts))
            .bind(c.successes)
            .bind(c.failures)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(results)
    }

    pub(super) async fn get_prompt_impl(&self, id: PromptId) -> Result<Option<PromptRecord>> {
        let row = sqlx::query("SELECT * FROM prompt WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| Ok(codec::prompt(&r)?.decode(&self.vault)?.record)).transpose()
    }

    pub(super) async fn template_metrics_impl(&self, template: TemplateId) -> Result<TemplateMetrics> {
        let rows = sqlx::query(
            "SELECT v.seq, s.times_used, s.last_used, s.successes, s.failures FROM usage_stats s \
             JOIN prompt_template_version v ON v.id = s.version_id WHERE s.template_id = ? ORDER BY v.seq DESC",
        )
        .bind(template.to_string())
        .fetch_all(&self.reader)
        .await?;
        let mut metrics = TemplateMetrics::default();
        for r in rows {
            let (seq, m) = UsageRow {
                seq: r.int("seq")?,
                times_used: r.int("times_used")?,
                last_used: r.time_opt("last_used")?,
                successes: r.int("successes")?,
                failures: r.int("failures")?,
            }
            .decode()?;
            metrics.total.merge(&m);
            metrics.versions.push((seq, m));
        }
        Ok(metrics)
    }
}

/// Inserts queued renders. A render whose template or version was deleted
/// meanwhile is kept, detached, like renders of deleted templates.
async fn flush_renders(
    conn: &mut SqliteConnection,
    vault: &crate::crypt::Vault,
    pending: &mut Vec<PromptRecord>,
    counters: &mut BTreeMap<(String, String), Counter>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let versions: BTreeSet<String> = pending.iter().map(|p| p.version_id.to_string()).collect();
    // Live versions and their templates' classifications.
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    for chunk in versions.iter().collect::<Vec<_>>().chunks(CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT v.id, t.security_classification FROM prompt_template_version v \
             JOIN prompt_template t ON t.id = v.template_id WHERE v.id IN (",
        );
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind((*id).clone());
        }
        qb.push(")");
        let ids: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        live.extend(ids);
    }
    // Parameters and text of renders of templates in the sealing scope are
    // sealed; so are those of templates deleted meanwhile (their
    // classification is no longer known) when a master key is configured.
    let mut sealed: Vec<Option<(String, Vec<u8>)>> = Vec::with_capacity(pending.len());
    for p in pending.iter() {
        let ring = match live.get(&p.version_id.to_string()) {
            Some(class) => {
                let class: promptvault_core::SecurityClassification =
                    class.parse().map_err(crate::error::StoreError::corrupt)?;
                vault.sealer(class)?.cloned()
            }
            None => vault.ring().cloned(),
        };
        sealed.push(match ring {
            Some(r) => {
                Some(crate::rows::seal_prompt(&r, p.id.as_uuid(), Some(&p.data), Some(&p.prompt_text))?)
            }
            None => None,
        });
    }
    let live: BTreeSet<String> = live.into_keys().collect();
    for (chunk, seals) in pending.chunks(CHUNK).zip(sealed.chunks(CHUNK)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO prompt (id, prompt_template_id, prompt_type_id, version_id, version_seq, data, prompt_text, \
             sealed, sealed_key, sender_id, created_at, session_id, request_id, agent_id, deployment_model) ",
        );
        qb.push_values(chunk.iter().zip(seals), |mut b, (p, seal)| {
            let alive = live.contains(&p.version_id.to_string());
            b.push_bind(p.id.to_string())
                .push_bind(alive.then(|| p.template_id.to_string()))
                .push_bind(alive.then(|| p.prompt_type_id.to_string()))
                .push_bind(alive.then(|| p.version_id.to_string()))
                .push_bind(i64::from(p.version_seq))
                .push_bind(seal.is_none().then(|| p.data.to_string()))
                .push_bind(seal.is_none().then(|| p.prompt_text.clone()))
                .push_bind(seal.as_ref().map(|(_, b)| b.clone()))
                .push_bind(seal.as_ref().map(|(k, _)| k.clone()))
                .push_bind(p.sender_id.map(|u| u.to_string()))
                .push_bind(ts(p.created_at))
                .push_bind(p.metadata.session_id.clone())
                .push_bind(p.metadata.request_id.clone())
                .push_bind(p.metadata.agent_id.clone())
                .push_bind(p.metadata.deployment_model.as_str());
        });
        qb.build().execute(&mut *conn).await?;
    }
    for p in pending.drain(..) {
        let version = p.version_id.to_string();
        if !live.contains(&version) {
            continue;
        }
        let c = counters.entry((p.template_id.to_string(), version)).or_default();
        c.times_used += 1;
        c.last_used = c.last_used.max(Some(p.created_at));
    }
    Ok(())
}

async fn apply_outcome(
    conn: &mut SqliteConnection,
    prompt: PromptId,
    outcome: &promptvault_core::model::OutcomeRecord,
    counters: &mut BTreeMap<(String, String), Counter>,
) -> Result<OutcomeResult> {
    let row = sqlx::query("SELECT prompt_template_id, version_id, outcome FROM prompt WHERE id = ?")
        .bind(prompt.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(OutcomeResult::UnknownPrompt);
    };
    if row.text_opt("outcome")?.is_some() {
        return Ok(OutcomeResult::AlreadyReported);
    }
    let label = match outcome.outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    };
    sqlx::query("UPDATE prompt SET outcome = ?, outcome_detail = ?, outcome_at = ? WHERE id = ?")
        .bind(label)
        .bind(&outcome.detail)
        .bind(ts(outcome.at))
        .bind(prompt.to_string())
        .execute(&mut *conn)
        .await?;
    if let (Some(t), Some(v)) = (row.text_opt("prompt_template_id")?, row.text_opt("version_id")?) {
        let c = counters.entry((t, v)).or_default();
        match outcome.outcome {
            Outcome::Success => c.successes += 1,
            Outcome::Failure => c.failures += 1,
        }
    }
    Ok(OutcomeResult::Recorded)
}
