//! The audit trail on PostgreSQL: appends (inside the caller's
//! transaction), queries, chain reads for verification, retention purges.
//!
//! Appends lock the one row of `audit_head` (`FOR UPDATE`), so concurrent
//! transactions in any number of processes number their events densely and
//! link each to the one committed before it. The lock is held only until the
//! transaction commits.

use chrono::{DateTime, Utc};
use promptvault_core::audit::{
    AuditEvent, AuditOutcome, ChainHash, Checkpoint, CheckpointSignature, NewAuditEvent,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::types::{AuditFilter, AuditHead, PurgeReport};

const COLS: &str = "seq, id, at, actor_id, actor, action, resource_kind, resource, outcome, reason, \
                    request_id, client_addr, details, prev_hash, hash";

/// Links `new` to the head of the chain and stores it.
pub(super) async fn append(conn: &mut PgConnection, new: NewAuditEvent) -> Result<AuditEvent> {
    let mut v = append_many(conn, vec![new]).await?;
    v.pop().ok_or_else(|| StoreError::corrupt("audit append returned nothing"))
}

/// Links `events` in order to the head of the chain and stores them: the
/// head is read (and locked) once, the events sealed in memory, inserted
/// with multi-row statements, and the head moved once.
pub(super) async fn append_many(
    conn: &mut PgConnection,
    events: Vec<NewAuditEvent>,
) -> Result<Vec<AuditEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let (mut seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *conn)
            .await?;
    let mut prev: ChainHash = hash.parse().map_err(|_| StoreError::corrupt("audit head hash"))?;
    let mut sealed = Vec::with_capacity(events.len());
    for new in events {
        seq += 1;
        let ev = AuditEvent::seal(prev, seq, Uuid::now_v7(), new);
        prev = ev.hash;
        sealed.push(ev);
    }
    // One statement text whatever the batch size (UNNEST of one array per
    // column), so it is prepared once per connection.
    let mut seqs = Vec::with_capacity(sealed.len());
    let mut ids = Vec::with_capacity(sealed.len());
    let mut ats = Vec::with_capacity(sealed.len());
    let mut actor_ids = Vec::with_capacity(sealed.len());
    let mut actors = Vec::with_capacity(sealed.len());
    let mut actions = Vec::with_capacity(sealed.len());
    let mut kinds = Vec::with_capacity(sealed.len());
    let mut resources = Vec::with_capacity(sealed.len());
    let mut outcomes = Vec::with_capacity(sealed.len());
    let mut reasons = Vec::with_capacity(sealed.len());
    let mut request_ids = Vec::with_capacity(sealed.len());
    let mut addrs = Vec::with_capacity(sealed.len());
    let mut details = Vec::with_capacity(sealed.len());
    let mut prevs = Vec::with_capacity(sealed.len());
    let mut hashes = Vec::with_capacity(sealed.len());
    for ev in &sealed {
        seqs.push(ev.seq);
        ids.push(ev.id);
        ats.push(ev.at);
        actor_ids.push(ev.actor_id.clone());
        actors.push(ev.actor.clone());
        actions.push(ev.action.clone());
        kinds.push(ev.resource_kind.clone());
        resources.push(ev.resource.clone());
        outcomes.push(ev.outcome.as_str());
        reasons.push(ev.reason.clone());
        request_ids.push(ev.request_id.clone());
        addrs.push(ev.client_addr.clone());
        details.push(ev.details.to_string());
        prevs.push(ev.prev_hash.to_string());
        hashes.push(ev.hash.to_string());
    }
    sqlx::query(
        "INSERT INTO audit_event (seq, id, at, actor_id, actor, action, resource_kind, resource, outcome, reason, \
         request_id, client_addr, details, prev_hash, hash) \
         SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], \
           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
           $15::text[])",
    )
    .bind(&seqs)
    .bind(&ids)
    .bind(&ats)
    .bind(&actor_ids)
    .bind(&actors)
    .bind(&actions)
    .bind(&kinds)
    .bind(&resources)
    .bind(&outcomes)
    .bind(&reasons)
    .bind(&request_ids)
    .bind(&addrs)
    .bind(&details)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(prev.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(sealed)
}

fn event(r: &PgRow) -> Result<AuditEvent> {
    let hash = |col: &str| -> Result<ChainHash> {
        let s: String = r.try_get(col)?;
        s.parse().map_err(|_| StoreError::corrupt(format!("audit {col}")))
    };
    let outcome: String = r.try_get("outcome")?;
    let outcome: AuditOutcome =
        outcome.parse().map_err(|e| StoreError::corrupt(format!("audit outcome: {e}")))?;
    let details: String = r.try_get("details")?;
    Ok(AuditEvent {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor_id: r.try_get("actor_id")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        resource_kind: r.try_get("resource_kind")?,
        resource: r.try_get("resource")?,
        outcome,
        reason: r.try_get("reason")?,
        request_id: r.try_get("request_id")?,
        client_addr: r.try_get("client_addr")?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::corrupt(format!("audit details: {e}")))?,
        prev_hash: hash("prev_hash")?,
        hash: hash("hash")?,
    })
}

impl PgStore {
    pub(super) async fn append_audit_impl(&self, events: Vec<NewAuditEvent>) -> Result<Vec<AuditEvent>> {
        let mut tx = self.pool.begin().await?;
        let out = append_many(&mut tx, events).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(super) async fn list_audit_impl(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {COLS} FROM audit_event WHERE TRUE"));
        if let Some(s) = filter.after_seq {
            qb.push(" AND seq > ").push_bind(s);
        }
        if let Some(s) = filter.before_seq {
            qb.push(" AND seq < ").push_bind(s);
        }
        if let Some(a) = &filter.actor_id {
            qb.push(" AND actor_id = ").push_bind(a.clone());
        }
        if let Some(a) = &filter.action_prefix {
            qb.push(" AND left(action, ").push_bind(i32::try_from(a.chars().count()).unwrap_or(i32::MAX));
            qb.push(") = ").push_bind(a.clone());
        }
        if let Some(k) = &filter.resource_kind {
            qb.push(" AND resource_kind = ").push_bind(k.clone());
        }
        if let Some(r) = &filter.resource {
            qb.push(" AND resource = ").push_bind(r.clone());
        }
        if let Some(o) = filter.outcome {
            qb.push(" AND outcome = ").push_bind(o.as_str());
        }
        if let Some(t) = filter.since {
            qb.push(" AND at >= ").push_bind(t);
        }
        if let Some(t) = filter.until {
            qb.push(" AND at < ").push_bind(t);
        }
        qb.push(if filter.newest_first { " ORDER BY seq DESC" } else { " ORDER BY seq" });
        qb.push(" LIMIT ").push_bind(i64::from(filter.limit.max(1)));
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(event).collect()
    }

    pub(super) async fn audit_chain_page_impl(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2"
        )))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event).collect()
    }

    pub(super) async fn audit_head_impl(&self) -> Result<AuditHead> {
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&self.pool).await?;
        let hash: ChainHash = hash.parse().map_err(|_| StoreError::corrupt("audit head hash"))?;
        type CpRow = (i64, String, i64, DateTime<Utc>, Option<String>, Option<String>);
        let cp: Option<CpRow> = sqlx::query_as(
            "SELECT through_seq, last_hash, purged, at, key_id, signature FROM audit_checkpoint \
             ORDER BY through_seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let checkpoint = cp
            .map(|(through_seq, last_hash, purged, at, key_id, signature)| -> Result<Checkpoint> {
                Ok(Checkpoint {
                    through_seq,
                    last_hash: last_hash.parse().map_err(|_| StoreError::corrupt("checkpoint hash"))?,
                    purged: u64::try_from(purged).unwrap_or(0),
                    at,
                    signature: key_id
                        .zip(signature)
                        .map(|(key_id, signature)| CheckpointSignature { key_id, signature }),
                })
            })
            .transpose()?;
        Ok(AuditHead { seq, hash, checkpoint })
    }

    pub(super) async fn purge_audit_impl(
        &self,
        before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<PurgeReport> {
        let mut tx = self.pool.begin().await?;
        // Appends wait while the purge decides what goes.
        sqlx::query("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE").execute(&mut *tx).await?;
        let last = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM audit_event WHERE at < $1 ORDER BY seq DESC LIMIT 1"
        )))
        .bind(before)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            return Ok(PurgeReport { purged: 0, checkpoint: None });
        };
        let last = event(&last)?;
        let purged =
            sqlx::query("DELETE FROM audit_event WHERE seq <= $1").bind(last.seq).execute(&mut *tx).await?;
        let previous: i64 = sqlx::query_scalar(
            "SELECT coalesce((SELECT purged FROM audit_checkpoint ORDER BY through_seq DESC LIMIT 1), 0)",
        )
        .fetch_one(&mut *tx)
        .await?;
        let mut cp =
            Checkpoint::after(&last, purged.rows_affected() + u64::try_from(previous).unwrap_or(0), at);
        // Signed with the instance key, when there is one.
        let key = sqlx::query_as(crate::crypt::INSTANCE_KEY_ROW).fetch_optional(&mut *tx).await?;
        cp.signature = crate::crypt::checkpoint_signature(&self.vault, key, &cp)?;
        sqlx::query(
            "INSERT INTO audit_checkpoint (through_seq, last_hash, purged, at, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(cp.through_seq)
        .bind(cp.last_hash.to_string())
        .bind(i64::try_from(cp.purged).unwrap_or(i64::MAX))
        .bind(cp.at)
        .bind(cp.signature.as_ref().map(|s| s.key_id.clone()))
        .bind(cp.signature.as_ref().map(|s| s.signature.clone()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PurgeReport { purged: purged.rows_affected(), checkpoint: Some(cp) })
    }
}
