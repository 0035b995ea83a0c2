//! The audit trail on SQLite: appends (inside the caller's transaction),
//! queries, chain reads for verification, and retention purges.
//!
//! SQLite has one writer connection, so appends are serialised by the
//! database itself; `audit_head` still holds the last sequence number and
//! hash so that both backends append the same way.

use chrono::{DateTime, Utc};
use promptvault_core::audit::{
    AuditEvent, AuditOutcome, ChainHash, Checkpoint, CheckpointSignature, NewAuditEvent,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

use super::SqliteStore;
use super::codec::{Col, ts};
use crate::error::{Result, StoreError};
use crate::types::{AuditFilter, AuditHead, PurgeReport};

const COLS: &str = "seq, id, at, actor_id, actor, action, resource_kind, resource, outcome, reason, \
                    request_id, client_addr, details, prev_hash, hash";

/// Appends `audit` (if any) and commits: the change and its record commit
/// or roll back together.
pub(super) async fn commit(
    mut tx: Transaction<'static, Sqlite>,
    audit: Option<&NewAuditEvent>,
) -> Result<()> {
    if let Some(ev) = audit {
        append(&mut tx, ev.clone()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Rows per multi-row INSERT (15 columns each, well under the bind limits).
const CHUNK: usize = 500;

/// Links `new` to the head of the chain and stores it.
pub(super) async fn append(conn: &mut SqliteConnection, new: NewAuditEvent) -> Result<AuditEvent> {
    let mut v = append_many(conn, vec![new]).await?;
    v.pop().ok_or_else(|| StoreError::corrupt("audit append returned nothing"))
}

/// Links `events` in order to the head of the chain and stores them: the
/// head is read once, the events sealed in memory, inserted
/// with multi-row statements, and the head moved once.
pub(super) async fn append_many(
    conn: &mut SqliteConnection,
    events: Vec<NewAuditEvent>,
) -> Result<Vec<AuditEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let (mut seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&mut *conn).await?;
    let mut prev: ChainHash = hash.parse().map_err(|_| StoreError::corrupt("audit head hash"))?;
    let mut sealed = Vec::with_capacity(events.len());
    for new in events {
        seq += 1;
        let ev = AuditEvent::seal(prev, seq, Uuid::now_v7(), new);
        prev = ev.hash;
        sealed.push(ev);
    }
    for chunk in sealed.chunks(CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!("INSERT INTO audit_event ({COLS}) "));
        qb.push_values(chunk, |mut b, ev| {
            b.push_bind(ev.seq)
                .push_bind(ev.id.to_string())
                .push_bind(ts(ev.at))
                .push_bind(ev.actor_id.clone())
                .push_bind(ev.actor.clone())
                .push_bind(ev.action.clone())
                .push_bind(ev.resource_kind.clone())
                .push_bind(ev.resource.clone())
                .push_bind(ev.outcome.as_str())
                .push_bind(ev.reason.clone())
                .push_bind(ev.request_id.clone())
                .push_bind(ev.client_addr.clone())
                .push_bind(ev.details.to_string())
                .push_bind(ev.prev_hash.to_string())
                .push_bind(ev.hash.to_string());
        });
        qb.build().execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
        .bind(seq)
        .bind(prev.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(sealed)
}

fn event(r: &SqliteRow) -> Result<AuditEvent> {
    let hash = |col: &str| -> Result<ChainHash> {
        r.text(col)?.parse().map_err(|_| StoreError::corrupt(format!("audit {col}")))
    };
    let outcome: AuditOutcome =
        r.text("outcome")?.parse().map_err(|e| StoreError::corrupt(format!("audit outcome: {e}")))?;
    Ok(AuditEvent {
        seq: r.int("seq")?,
        id: r.uuid("id")?,
        at: r.time("at")?,
        actor_id: r.text_opt("actor_id")?,
        actor: r.text("actor")?,
        action: r.text("action")?,
        resource_kind: r.text("resource_kind")?,
        resource: r.text_opt("resource")?,
        outcome,
        reason: r.text_opt("reason")?,
        request_id: r.text_opt("request_id")?,
        client_addr: r.text_opt("client_addr")?,
        details: r.json("details")?,
        prev_hash: hash("prev_hash")?,
        hash: hash("hash")?,
    })
}

impl SqliteStore {
    pub(super) async fn append_audit_impl(&self, events: Vec<NewAuditEvent>) -> Result<Vec<AuditEvent>> {
        let mut tx = self.writer.begin().await?;
        let out = append_many(&mut tx, events).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(super) async fn list_audit_impl(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let mut qb: QueryBuilder<Sqlite> =
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
            qb.push(" AND substr(action, 1, ").push_bind(a.len() as i64).push(") = ").push_bind(a.clone());
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
            qb.push(" AND at >= ").push_bind(ts(t));
        }
        if let Some(t) = filter.until {
            qb.push(" AND at < ").push_bind(ts(t));
        }
        qb.push(if filter.newest_first { " ORDER BY seq DESC" } else { " ORDER BY seq" });
        qb.push(" LIMIT ").push_bind(i64::from(filter.limit.max(1)));
        let rows = qb.build().fetch_all(&self.reader).await?;
        rows.iter().map(event).collect()
    }

    pub(super) async fn audit_chain_page_impl(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        // In sequence order: rows swapped in place keep their positions but
        // not their hashes (the sequence number is hashed), so a swap shows
        // as an altered event.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM audit_event WHERE seq > ? ORDER BY seq LIMIT ?"
        )))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event).collect()
    }

    pub(super) async fn audit_head_impl(&self) -> Result<AuditHead> {
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&self.reader).await?;
        let head: ChainHash = hash.parse().map_err(|_| StoreError::corrupt("audit head hash"))?;
        type CpRow = (i64, String, i64, String, Option<String>, Option<String>);
        let cp: Option<CpRow> = sqlx::query_as(
            "SELECT through_seq, last_hash, purged, at, key_id, signature FROM audit_checkpoint \
             ORDER BY through_seq DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        let checkpoint = cp
            .map(|(through_seq, last_hash, purged, at, key_id, signature)| -> Result<Checkpoint> {
                Ok(Checkpoint {
                    through_seq,
                    last_hash: last_hash.parse().map_err(|_| StoreError::corrupt("checkpoint hash"))?,
                    purged: u64::try_from(purged).unwrap_or(0),
                    at: chrono::DateTime::parse_from_rfc3339(&at)
                        .map_err(|e| StoreError::corrupt(format!("checkpoint time: {e}")))?
                        .with_timezone(&Utc),
                    signature: key_id
                        .zip(signature)
                        .map(|(key_id, signature)| CheckpointSignature { key_id, signature }),
                })
            })
            .transpose()?;
        Ok(AuditHead { seq, hash: head, checkpoint })
    }

    pub(super) async fn purge_audit_impl(
        &self,
        before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<PurgeReport> {
        let mut tx = self.writer.begin().await?;
        // The newest event older than the cutoff: everything through it goes.
        let last = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM audit_event WHERE at < ? ORDER BY seq DESC LIMIT 1"
        )))
        .bind(ts(before))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            return Ok(PurgeReport { purged: 0, checkpoint: None });
        };
        let last = event(&last)?;
        let purged =
            sqlx::query("DELETE FROM audit_event WHERE seq <= ?").bind(last.seq).execute(&mut *tx).await?;
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
            "INSERT INTO audit_checkpoint (through_seq, last_hash, purged, at, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(cp.through_seq)
        .bind(cp.last_hash.to_string())
        .bind(i64::try_from(cp.purged).unwrap_or(i64::MAX))
        .bind(ts(cp.at))
        .bind(cp.signature.as_ref().map(|s| s.key_id.clone()))
        .bind(cp.signature.as_ref().map(|s| s.signature.clone()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PurgeReport { purged: purged.rows_affected(), checkpoint: Some(cp) })
    }
}
