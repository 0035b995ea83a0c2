//! Renders, outcomes, metrics, users and keys on SQLite.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use promptvault_core::model::{Outcome, PromptRecord};
use promptvault_core::{ApiKeyId, PromptId, TemplateId, UserId};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteStore;
use super::codec::{self, Col, ts};
use crate::error::Result;
use crate::rows::{ApiKeyRow, UsageRow, UserRow};
use crate::types::{ApiKeyRecord, NewApiKey, NewUser, OutcomeResult, TemplateMetrics, UsageEvent, User};

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
                    flush_renders(&mut tx, &mut pending, &mut counters).await?;
                    let result = apply_outcome(&mut tx, prompt_id, &outcome, &mut counters).await?;
                    results.push(result);
                }
            }
        }
        flush_renders(&mut tx, &mut pending, &mut counters).await?;
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
        row.map(|r| Ok(codec::prompt(&r)?.decode()?.record)).transpose()
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

    pub(super) async fn bootstrap_admin_impl(&self, user: NewUser, key: NewApiKey) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_key").fetch_one(&mut *tx).await?;
        if keys > 0 {
            return Ok(false);
        }
        let now = ts(key_time());
        sqlx::query(
            "INSERT INTO \"user\" (id, email, first_name, last_name, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(&user.email)
        .bind(&user.first_name)
        .bind(&user.last_name)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        for role in &user.roles {
            sqlx::query("INSERT INTO user_role (user_id, role) VALUES (?, ?)")
                .bind(user.id.to_string())
                .bind(role)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO api_key (id, user_id, name, prefix, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.to_string())
        .bind(key.user_id.to_string())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(key.secret_hash.to_vec())
        .bind(&now)
        .bind(key.expires_at.map(ts))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn find_api_key_impl(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
        let Some(r) = sqlx::query("SELECT * FROM api_key WHERE prefix = ?")
            .bind(prefix)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let user_id = r.uuid("user_id")?;
        let roles = self.roles_of(user_id).await?;
        Ok(Some(
            ApiKeyRow {
                id: r.uuid("id")?,
                user_id,
                name: r.text("name")?,
                prefix: r.text("prefix")?,
                secret_hash: sqlx::Row::try_get::<Vec<u8>, _>(&r, "secret_hash")?,
                created_at: r.time("created_at")?,
                expires_at: r.time_opt("expires_at")?,
                revoked_at: r.time_opt("revoked_at")?,
                last_used_at: r.time_opt("last_used_at")?,
                roles,
            }
            .decode()?,
        ))
    }

    async fn roles_of(&self, user: uuid::Uuid) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT role FROM user_role WHERE user_id = ? ORDER BY role")
            .bind(user.to_string())
            .fetch_all(&self.reader)
            .await?)
    }

    pub(super) async fn touch_api_key_impl(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE api_key SET last_used_at = ? WHERE id = ?")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn get_user_impl(&self, id: UserId) -> Result<Option<User>> {
        let Some(r) = sqlx::query("SELECT * FROM \"user\" WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let id = r.uuid("id")?;
        Ok(Some(
            UserRow {
                id,
                supabase_user_id: r.uuid_opt("supabase_user_id")?,
                did: r.text_opt("did")?,
                external_user_id: r.text_opt("external_user_id")?,
                email: r.text_opt("email")?,
                at_protocol_handle: r.text_opt("at_protocol_handle")?,
                data: r.json_opt("data")?,
                first_name: r.text_opt("first_name")?,
                last_name: r.text_opt("last_name")?,
                created_at: r.time("created_at")?,
                updated_at: r.time_opt("updated_at")?,
                roles: self.roles_of(id).await?,
            }
            .decode(),
        ))
    }
}

fn key_time() -> DateTime<Utc> {
    promptvault_core::model::truncate_to_micros(Utc::now())
}

/// Inserts queued renders. A render whose template or version was deleted
/// meanwhile is kept, detached, like renders of deleted templates.
async fn flush_renders(
    conn: &mut SqliteConnection,
    pending: &mut Vec<PromptRecord>,
    counters: &mut BTreeMap<(String, String), Counter>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let versions: BTreeSet<String> = pending.iter().map(|p| p.version_id.to_string()).collect();
    let mut live: BTreeSet<String> = BTreeSet::new();
    for chunk in versions.iter().collect::<Vec<_>>().chunks(CHUNK) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT id FROM prompt_template_version WHERE id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind((*id).clone());
        }
        qb.push(")");
        let ids: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        live.extend(ids);
    }
    for chunk in pending.chunks(CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO prompt (id, prompt_template_id, prompt_type_id, version_id, version_seq, data, prompt_text, \
             sender_id, created_at, session_id, request_id, agent_id, deployment_model) ",
        );
        qb.push_values(chunk, |mut b, p| {
            let alive = live.contains(&p.version_id.to_string());
            b.push_bind(p.id.to_string())
                .push_bind(alive.then(|| p.template_id.to_string()))
                .push_bind(alive.then(|| p.prompt_type_id.to_string()))
                .push_bind(alive.then(|| p.version_id.to_string()))
                .push_bind(i64::from(p.version_seq))
                .push_bind(p.data.to_string())
                .push_bind(p.prompt_text.clone())
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
