//! Reading, exporting, verifying and purging the audit trail.

use promptvault_core::audit::{AuditEvent, ChainBreak, ChainVerifier, Checkpoint, VerifyReport};
use promptvault_core::authz::{Action, Principal, Resource, Target};
use promptvault_store::{AuditFilter, PurgeReport};
use serde_json::json;

use super::{Registry, Result};

/// Events read per round trip while verifying or exporting.
pub const PAGE: u32 = 1_000;

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct ChainVerification {
    pub result: std::result::Result<VerifyReport, ChainBreak>,
    pub checkpoint: Option<Checkpoint>,
    pub head_seq: i64,
    /// The checkpoint's signature: `valid`, `invalid` (forged or altered),
    /// or `unsigned` (written before signatures, or without a key); `None`
    /// without a checkpoint.
    pub checkpoint_signature: Option<&'static str>,
}

impl Registry {
    /// Events matching a filter (newest first when asked), after the
    /// caller's own read of the trail is recorded.
    pub async fn list_audit(&self, who: &Principal, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        self.authorize(who, Action::Read, Resource::Audit, &Target::default(), None).await?;
        // Pending events first, so a list right after an action shows it.
        self.audit.flush().await?;
        let events = self.store.list_audit(filter).await?;
        self.audit_ok(who, "audit.read", Resource::Audit, None, json!({"count": events.len()})).await;
        Ok(events)
    }

    /// Walks the whole chain from the newest checkpoint and reports the
    /// first event where it breaks.
    pub async fn verify_audit(&self, who: &Principal) -> Result<ChainVerification> {
        self.authorize(who, Action::Read, Resource::Audit, &Target::default(), None).await?;
        self.audit.flush().await?;
        let head = self.store.audit_head().await?;
        let mut verifier =
            ChainVerifier::new(head.checkpoint.as_ref()).with_expected_head(Some((head.seq, head.hash)));
        let mut after = head.checkpoint.as_ref().map_or(0, |c| c.through_seq);
        let mut broken = None;
        'pages: loop {
            let page = self.store.audit_chain_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for ev in &page {
                if let Err(b) = verifier.push(ev) {
                    broken = Some(b);
                    break 'pages;
                }
            }
        }
        let result = match broken {
            Some(b) => Err(b),
            None => verifier.finish(),
        };
        let checkpoint_signature = head.checkpoint.as_ref().map(|cp| match (&cp.signature, &self.signer) {
            (Some(sig), Some(signer)) => {
                if signer.verify(&sig.key_id, cp.payload().as_bytes(), &sig.signature) {
                    "valid"
                } else {
                    "invalid"
                }
            }
            (Some(_), None) => "invalid",
            (None, _) => "unsigned",
        });
        let details = match &result {
            Ok(r) => json!({"ok": true, "checked": r.checked, "checkpoint_signature": checkpoint_signature}),
            Err(b) => {
                json!({"ok": false, "broken_at": b.seq, "kind": b.kind, "checkpoint_signature": checkpoint_signature})
            }
        };
        self.audit_ok(who, "audit.verify", Resource::Audit, None, details).await;
        Ok(ChainVerification {
            result,
            checkpoint: head.checkpoint,
            head_seq: head.seq,
            checkpoint_signature,
        })
    }

    /// Deletes events older than the cutoff, leaving a checkpoint.
    pub async fn purge_audit(
        &self,
        who: &Principal,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<PurgeReport> {
        self.authorize(who, Action::Delete, Resource::Audit, &Target::default(), None).await?;
        self.audit.flush().await?;
        let report = self.store.purge_audit(before, Self::now()).await?;
        self.audit_ok(
            who,
            "audit.delete",
            Resource::Audit,
            None,
            json!({"purged": report.purged, "before": before, "through_seq": report.checkpoint.as_ref().map(|c| c.through_seq)}),
        )
        .await;
        Ok(report)
    }
}
