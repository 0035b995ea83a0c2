//! The audit trail: hash-chained events, streaming verification, retention
//! checkpoints and alert thresholds. This is the pure part; storing, reading
//! and signing live with the callers.
//!
//! # The chain
//!
//! Every event carries a dense sequence number (`seq` = 1, 2, 3, …), the hash
//! of the event before it (`prev_hash`, [`ChainHash::GENESIS`] for event 1) and
//! its own hash, [`chain_hash`]: SHA-256 over a domain-separated canonical
//! JSON document of `prev_hash`, `seq`, `id` and every field of the event.
//! Editing any column of a stored row, deleting rows or moving them therefore
//! shows up when the chain is walked again:
//!
//! | what happened to the stored rows                  | [`BreakKind`]   | reported at                   |
//! |---------------------------------------------------|-----------------|-------------------------------|
//! | a column edited, hash not recomputed              | `Edited`        | that row                      |
//! | rows deleted (including the first ones)           | `Missing`       | the first row after the gap   |
//! | rows swapped or moved (read in insertion order)   | `Reordered`     | the first row out of place    |
//! | rows swapped by exchanging seqs (read by seq)     | `Edited`        | the lower of the two seqs     |
//! | a row edited and its hash recomputed              | `Relinked`      | the row after it              |
//! | a duplicated row                                  | `Reordered`     | the copy                      |
//!
//! # Limits
//!
//! The chain is keyed by nothing secret. Someone who can write to the
//! database can rewrite an event *and every event after it*, recomputing the
//! hashes, and the chain stays internally consistent; likewise deleting the
//! newest events leaves a shorter, valid chain. Both are only detectable
//! against a head (`seq`, hash) kept somewhere the attacker cannot write:
//! pass it to [`ChainVerifier::with_expected_head`]. Rewrites after the kept
//! head remain undetectable until a newer head is kept. Heads and
//! [`Checkpoint`]s are meant to be signed with the instance's Ed25519 key by
//! the layer that stores them; this module does not sign.
//!
//! Retention purges replace the oldest events by a [`Checkpoint`] naming the
//! last purged event and its hash; verification then starts from the
//! checkpoint instead of the genesis hash.
//!
//! Times are hashed as RFC 3339 in UTC with exactly six fractional digits
//! (`2024-05-01T12:00:00.123456Z`), because SQLite (as text) and PostgreSQL
//! (`timestamptz`) both keep microseconds: the same event hashes the same on
//! either store. [`AuditEvent::seal`] truncates times to microseconds so the
//! stored value is the hashed one. `details` is hashed in canonical form
//! ([`write_canonical`]), so key order does not matter; a store must give the
//! JSON back with the same values (PostgreSQL `jsonb` does for what
//! `serde_json` writes).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;

use crate::classification::{UnknownVariant, text_enum};
use crate::hash::write_canonical;

/// Prefix of every hashed document, so an audit hash can never be mistaken
/// for (or collide by construction with) another hash of canonical JSON.
const DOMAIN: &[u8] = b"promptvault/audit-event/v1\n";

/// The action of the events written for fired alerts (see [`Alert::to_event`]).
pub const ALERT_ACTION: &str = "audit.alert";

/// Top-level `details` keys that only [`DetailLevel::Comprehensive`] keeps:
/// template content, parameters and rendered text, which may be sensitive.
pub const COMPREHENSIVE_ONLY: &[&str] =
    &["parameters", "data", "rendered_text", "prompt_text", "template_text", "messages", "body", "diff"];

/// How an audited action ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    /// Refused by authentication or authorization.
    Denied,
    /// Attempted and failed (validation, conflict, internal error).
    Failed,
}

impl AuditOutcome {
    pub const ALL: [Self; 3] = [Self::Success, Self::Denied, Self::Failed];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }
}

text_enum!(AuditOutcome, "audit outcome");

/// How much of an event's `details` is kept (an instance setting).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DetailLevel {
    /// Who did what to which resource, and how it ended; no details.
    Basic,
    /// Details without the content-bearing keys of [`COMPREHENSIVE_ONLY`].
    #[default]
    Detailed,
    /// Everything the caller recorded.
    Comprehensive,
}

impl DetailLevel {
    pub const ALL: [Self; 3] = [Self::Basic, Self::Detailed, Self::Comprehensive];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Detailed => "detailed",
            Self::Comprehensive => "comprehensive",
        }
    }

    /// What of `details` this level keeps: `Basic` keeps nothing (`null`),
    /// `Detailed` drops the top-level keys listed in [`COMPREHENSIVE_ONLY`]
    /// (nested keys and non-object values are kept as they are),
    /// `Comprehensive` keeps everything.
    #[must_use]
    pub fn details(self, details: Value) -> Value {
        match (self, details) {
            (Self::Basic, _) => Value::Null,
            (Self::Detailed, Value::Object(mut map)) => {
                map.retain(|k, _| !COMPREHENSIVE_ONLY.contains(&k.as_str()));
                Value::Object(map)
            }
            (_, details) => details,
        }
    }
}

text_enum!(DetailLevel, "audit detail level");

/// The hash linking audit events: SHA-256, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The `prev_hash` of event 1: all zeros.
    pub const GENESIS: Self = Self([0; 32]);

    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

/// Text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("an audit chain hash is 64 hex digits")]
pub struct BadChainHash;

impl FromStr for ChainHash {
    type Err = BadChainHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| BadChainHash)?;
        Ok(Self(bytes.try_into().map_err(|_| BadChainHash)?))
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An event to be recorded, before it gets its place in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// When it happened (hashed to the microsecond).
    pub at: DateTime<Utc>,
    /// The user or API key id, when known.
    pub actor_id: Option<String>,
    /// A human label: an email, an API key prefix, `anonymous`.
    pub actor: String,
    /// What was attempted, e.g. `template.update`, `auth.login`.
    pub action: String,
    /// The kind of resource, e.g. `template`, `api_key`.
    pub resource_kind: String,
    /// Which resource, when there is one.
    pub resource: Option<String>,
    pub outcome: AuditOutcome,
    /// Why it was denied or failed.
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    /// Free-form context, already reduced by the [`DetailLevel`].
    pub details: Value,
}

impl NewAuditEvent {
    /// An event with no ids, resource, reason or details.
    #[must_use]
    pub fn new(
        at: DateTime<Utc>,
        actor: impl Into<String>,
        action: impl Into<String>,
        resource_kind: impl Into<String>,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            at,
            actor_id: None,
            actor: actor.into(),
            action: action.into(),
            resource_kind: resource_kind.into(),
            resource: None,
            outcome,
            reason: None,
            request_id: None,
            client_addr: None,
            details: Value::Null,
        }
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            at: &self.at,
            actor_id: self.actor_id.as_deref(),
            actor: &self.actor,
            action: &self.action,
            resource_kind: &self.resource_kind,
            resource: self.resource.as_deref(),
            outcome: self.outcome,
            reason: self.reason.as_deref(),
            request_id: self.request_id.as_deref(),
            client_addr: self.client_addr.as_deref(),
            details: &self.details,
        }
    }
}

/// A recorded event: its place in the chain and the hashes linking it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// 1, 2, 3, … with no gaps (purges remove a prefix, see [`Checkpoint`]).
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub resource_kind: String,
    pub resource: Option<String>,
    pub outcome: AuditOutcome,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub details: Value,
    /// The hash of event `seq - 1` (or of the checkpoint, or genesis).
    pub prev_hash: ChainHash,
    /// [`chain_hash`] of this event.
    pub hash: ChainHash,
}

impl AuditEvent {
    /// Places `new` in the chain after the event whose hash is `prev_hash`:
    /// `seq` must be that event's seq + 1 (1 after genesis). The time is
    /// truncated to microseconds, the precision that is hashed and stored.
    #[must_use]
    pub fn seal(prev_hash: ChainHash, seq: i64, id: Uuid, new: NewAuditEvent) -> Self {
        let at = new.at.trunc_subsecs(6);
        let new = NewAuditEvent { at, ..new };
        let hash = chain_hash(&prev_hash, seq, &id, &new);
        let NewAuditEvent {
            at,
            actor_id,
            actor,
            action,
            resource_kind,
            resource,
            outcome,
            reason,
            request_id,
            client_addr,
            details,
        } = new;
        Self {
            seq,
            id,
            at,
            actor_id,
            actor,
            action,
            resource_kind,
            resource,
            outcome,
            reason,
            request_id,
            client_addr,
            details,
            prev_hash,
            hash,
        }
    }

    /// The hash this event's stored fields give; equal to `hash` unless the
    /// row was altered.
    #[must_use]
    pub fn recompute(&self) -> ChainHash {
        hash_fields(&self.prev_hash, self.seq, &self.id, &self.fields())
    }

    /// `(seq, hash)`: what to keep elsewhere to detect truncation and rewrites
    /// (see [`ChainVerifier::with_expected_head`]).
    #[must_use]
    pub const fn head(&self) -> (i64, ChainHash) {
        (self.seq, self.hash)
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            at: &self.at,
            actor_id: self.actor_id.as_deref(),
            actor: &self.actor,
            action: &self.action,
            resource_kind: &self.resource_kind,
            resource: self.resource.as_deref(),
            outcome: self.outcome,
            reason: self.reason.as_deref(),
            request_id: self.request_id.as_deref(),
            client_addr: self.client_addr.as_deref(),
            details: &self.details,
        }
    }
}

/// The hash of `ev` at position `seq` after `prev`: SHA-256 over
/// `promptvault/audit-event/v1\n` followed by the canonical JSON of
/// `{prev, seq, id, at, actor_id, actor, action, resource_kind, resource,
/// outcome, reason, request_id, client_addr, details}`. Absent options are
/// `null`, so `None` and `Some("")` differ. Sub-microsecond parts of `at` are
/// ignored (see [`AuditEvent::seal`]); any other change to any field, to
/// `seq`, `id` or `prev` changes the hash.
#[must_use]
pub fn chain_hash(prev: &ChainHash, seq: i64, id: &Uuid, ev: &NewAuditEvent) -> ChainHash {
    hash_fields(prev, seq, id, &ev.fields())
}

/// A borrowed view of the hashed fields, shared by [`NewAuditEvent`] and
/// [`AuditEvent`] so that verifying does not clone events.
struct Fields<'a> {
    at: &'a DateTime<Utc>,
    actor_id: Option<&'a str>,
    actor: &'a str,
    action: &'a str,
    resource_kind: &'a str,
    resource: Option<&'a str>,
    outcome: AuditOutcome,
    reason: Option<&'a str>,
    request_id: Option<&'a str>,
    client_addr: Option<&'a str>,
    details: &'a Value,
}

enum Part<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    Json(&'a Value),
}

fn hash_fields(prev: &ChainHash, seq: i64, id: &Uuid, f: &Fields<'_>) -> ChainHash {
    let doc = canonical_document(prev, seq, id, f);
    let mut sha = Sha256::new();
    sha.update(DOMAIN);
    sha.update(doc.as_bytes());
    ChainHash(sha.finalize().into())
}

/// The canonical JSON of the hashed document, written directly (the same
/// bytes [`write_canonical`] gives for the equivalent `Value`, without
/// copying `details`).
fn canonical_document(prev: &ChainHash, seq: i64, id: &Uuid, f: &Fields<'_>) -> String {
    let prev = prev.to_string();
    let id = id.hyphenated().to_string();
    let at = f.at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut parts = [
        ("prev", Part::Text(&prev)),
        ("seq", Part::Int(seq)),
        ("id", Part::Text(&id)),
        ("at", Part::Text(&at)),
        ("actor_id", Part::OptText(f.actor_id)),
        ("actor", Part::Text(f.actor)),
        ("action", Part::Text(f.action)),
        ("resource_kind", Part::Text(f.resource_kind)),
        ("resource", Part::OptText(f.resource)),
        ("outcome", Part::Text(f.outcome.as_str())),
        ("reason", Part::OptText(f.reason)),
        ("request_id", Part::OptText(f.request_id)),
        ("client_addr", Part::OptText(f.client_addr)),
        ("details", Part::Json(f.details)),
    ];
    parts.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::with_capacity(512);
    out.push('{');
    for (i, (key, part)) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_text(key, &mut out);
        out.push(':');
        match part {
            Part::Text(s) | Part::OptText(Some(s)) => write_text(s, &mut out),
            Part::OptText(None) => out.push_str("null"),
            Part::Int(n) => out.push_str(&n.to_string()),
            Part::Json(v) => write_canonical(v, &mut out),
        }
    }
    out.push('}');
    out
}

fn write_text(s: &str, out: &mut String) {
    write_canonical(&Value::String(s.to_owned()), out);
}

/// What replaces purged events: the last purged event's seq and hash. The
/// first remaining event (seq `through_seq + 1`) must have
/// `prev_hash == last_hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub through_seq: i64,
    pub last_hash: ChainHash,
    /// How many events were purged in total, over all purges.
    pub purged: u64,
    /// When the purge that wrote this checkpoint ran.
    pub at: DateTime<Utc>,
    /// The instance's signature over [`Checkpoint::payload`], when the
    /// instance had a signing key at the purge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<CheckpointSignature>,
}

/// An Ed25519 signature of a checkpoint by the instance key `key_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSignature {
    pub key_id: String,
    /// Base64 of the 64-byte signature.
    pub signature: String,
}

impl Checkpoint {
    /// The checkpoint for purging every event up to and including `last`
    /// (`at` is kept to the microsecond, as stored).
    #[must_use]
    pub fn after(last: &AuditEvent, purged: u64, at: DateTime<Utc>) -> Self {
        let at = crate::model::truncate_to_micros(at);
        Self { through_seq: last.seq, last_hash: last.hash, purged, at, signature: None }
    }

    /// The exact text a checkpoint signature covers: a version tag, the
    /// last purged sequence number and hash, the purged count and the time.
    #[must_use]
    pub fn payload(&self) -> String {
        format!(
            "promptvault-audit-checkpoint-v1\n{}\n{}\n{}\n{}",
            self.through_seq,
            self.last_hash,
            self.purged,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }
}

/// How the chain is broken.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The stored hash does not match the event's stored fields.
    Edited,
    /// Sequence numbers skip: events were deleted (or, read in insertion
    /// order, moved later).
    Missing,
    /// A sequence number does not increase: rows swapped, moved or duplicated.
    Reordered,
    /// The event is self-consistent but does not link to its predecessor (or
    /// to the checkpoint, or to a kept head): rewritten with recomputed hashes.
    Relinked,
}

impl BreakKind {
    pub const ALL: [Self; 4] = [Self::Edited, Self::Missing, Self::Reordered, Self::Relinked];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Edited => "edited",
            Self::Missing => "missing",
            Self::Reordered => "reordered",
            Self::Relinked => "relinked",
        }
    }
}

text_enum!(BreakKind, "chain break kind");

/// The first place where the chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Error)]
#[error("{message}")]
pub struct ChainBreak {
    /// The stored seq of the event where the break shows. For `Missing`, the
    /// first event after the gap (for truncation, the kept head's seq).
    pub seq: i64,
    /// The seq that should have come here. For `Missing`, the first missing
    /// one: the missing events are `expected_seq..seq`
    /// (`expected_seq..=seq` when the end was truncated).
    pub expected_seq: i64,
    pub kind: BreakKind,
    /// A sentence for humans.
    pub message: String,
}

/// The outcome of a walk over an unbroken chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// How many events were checked (purged ones not included).
    pub checked: u64,
    /// The last event's seq (the checkpoint's when no event is left).
    pub last_seq: Option<i64>,
    /// The hash the next event must link to.
    pub head: ChainHash,
}

/// Walks a chain one event at a time, in bounded memory.
///
/// Feed the events in storage order: `ORDER BY seq` normally, or by an
/// insertion-ordered row id; the verifier checks the seqs itself and reports
/// what it sees (see the module table: with `ORDER BY seq` a swap of seqs
/// shows as `Edited`, in insertion order a swap of whole rows shows as
/// `Reordered`).
///
/// Checks, for each event: its hash matches its fields (`Edited`), its seq
/// is the next one (`Reordered` when lower, `Missing` when higher), and its
/// `prev_hash` is the previous event's hash (`Relinked`). A forward jump of
/// the seq is told apart from a swap by the following event, so that break
/// is returned by the *next* [`push`](Self::push), or by
/// [`finish`](Self::finish); its `seq` still names the event where it
/// happened. After a break, `push` and `finish` keep returning it.
///
/// Deleting the newest events is not visible from the rows alone: give the
/// verifier a head kept elsewhere with
/// [`with_expected_head`](Self::with_expected_head).
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: ChainHash,
    /// The last accepted seq, or the checkpoint's.
    last_seq: Option<i64>,
    checkpoint_through: Option<i64>,
    checked: u64,
    expected_head: Option<(i64, ChainHash)>,
    /// A forward jump waiting for the next event: `(seq, expected)`.
    pending_jump: Option<(i64, i64)>,
    broken: Option<ChainBreak>,
}

impl ChainVerifier {
    /// Starts at genesis (`None`: the first event must be seq 1) or after a
    /// retention checkpoint.
    #[must_use]
    pub fn new(start: Option<&Checkpoint>) -> Self {
        let (next_seq, prev_hash, last_seq) = match start {
            None => (1, ChainHash::GENESIS, None),
            Some(cp) => (cp.through_seq.saturating_add(1), cp.last_hash, Some(cp.through_seq)),
        };
        Self {
            next_seq,
            prev_hash,
            last_seq,
            checkpoint_through: start.map(|cp| cp.through_seq),
            checked: 0,
            expected_head: None,
            pending_jump: None,
            broken: None,
        }
    }

    /// Also checks the chain against a head `(seq, hash)` kept outside the
    /// database: the event with that seq must exist and carry that hash.
    /// This catches deleted newest events and rewrites up to that event. A
    /// head older than the start checkpoint cannot be checked and is ignored;
    /// one equal to it is compared with the checkpoint.
    #[must_use]
    pub fn with_expected_head(mut self, head: Option<(i64, ChainHash)>) -> Self {
        self.expected_head = head;
        if let (Some((seq, hash)), Some(through)) = (head, self.checkpoint_through) {
            if seq < through {
                self.expected_head = None;
            } else if seq == through && hash != self.prev_hash && self.broken.is_none() {
                self.broken = Some(ChainBreak {
                    seq,
                    expected_seq: seq,
                    kind: BreakKind::Relinked,
                    message: format!(
                        "the checkpoint through event {seq} does not match the head kept elsewhere for \
                         event {seq}: the checkpoint or the trail before it was rewritten"
                    ),
                });
            }
        }
        self
    }

    /// Checks the next event.
    ///
    /// # Errors
    /// The first break in the chain (see the type's documentation for when
    /// it surfaces).
    pub fn push(&mut self, ev: &AuditEvent) -> Result<(), ChainBreak> {
        if let Some(b) = &self.broken {
            return Err(b.clone());
        }
        if let Some((seq, expected)) = self.pending_jump.take() {
            let b = if (expected..seq).contains(&ev.seq) {
                ChainBreak {
                    seq,
                    expected_seq: expected,
                    kind: BreakKind::Reordered,
                    message: format!(
                        "event {seq} comes before event {}: rows were swapped or moved out of order \
                         (event {expected} was expected here)",
                        ev.seq
                    ),
                }
            } else {
                self.missing(seq, expected)
            };
            return Err(self.fail(b));
        }
        if ev.recompute() != ev.hash {
            let b = ChainBreak {
                seq: ev.seq,
                expected_seq: self.next_seq,
                kind: BreakKind::Edited,
                message: format!("event {} was altered: its stored hash does not match its content", ev.seq),
            };
            return Err(self.fail(b));
        }
        if ev.seq < self.next_seq || self.last_seq.is_some_and(|last| ev.seq <= last) {
            let b = self.reordered(ev.seq);
            return Err(self.fail(b));
        }
        if ev.seq > self.next_seq {
            self.pending_jump = Some((ev.seq, self.next_seq));
            return Ok(());
        }
        if ev.prev_hash != self.prev_hash {
            let b = self.relinked(ev.seq);
            return Err(self.fail(b));
        }
        if let Some((seq, hash)) = self.expected_head
            && seq == ev.seq
            && hash != ev.hash
        {
            let b = ChainBreak {
                seq,
                expected_seq: seq,
                kind: BreakKind::Relinked,
                message: format!(
                    "event {seq} does not match the head kept elsewhere: the trail was rewritten at or \
                     before event {seq}"
                ),
            };
            return Err(self.fail(b));
        }
        self.checked += 1;
        self.prev_hash = ev.hash;
        self.last_seq = Some(ev.seq);
        self.next_seq = ev.seq.saturating_add(1);
        Ok(())
    }

    /// Ends the walk.
    ///
    /// # Errors
    /// The first break, including a pending seq jump at the very end and,
    /// with an expected head, a trail that stops before it.
    pub fn finish(mut self) -> Result<VerifyReport, ChainBreak> {
        if let Some(b) = self.broken.take() {
            return Err(b);
        }
        if let Some((seq, expected)) = self.pending_jump {
            return Err(self.missing(seq, expected));
        }
        if let Some((head_seq, _)) = self.expected_head
            && self.last_seq.is_none_or(|last| last < head_seq)
        {
            let expected = self.next_seq;
            let missing = missing_phrase(expected, head_seq);
            let message = match self.last_seq {
                Some(last) => format!(
                    "the trail ends at event {last} but the head kept elsewhere is event {head_seq}: \
                     {missing} missing from the end (deleted)"
                ),
                None => format!(
                    "the trail is empty but the head kept elsewhere is event {head_seq}: {missing} \
                     missing (deleted)"
                ),
            };
            return Err(ChainBreak {
                seq: head_seq,
                expected_seq: expected,
                kind: BreakKind::Missing,
                message,
            });
        }
        Ok(VerifyReport { checked: self.checked, last_seq: self.last_seq, head: self.prev_hash })
    }

    fn fail(&mut self, b: ChainBreak) -> ChainBreak {
        self.broken = Some(b.clone());
        b
    }

    fn missing(&self, seq: i64, expected: i64) -> ChainBreak {
        let missing = missing_phrase(expected, seq - 1);
        let why = match self.checkpoint_through {
            Some(through) if self.checked == 0 => format!(
                "the checkpoint covers events up to {through}, so the trail must go on at event {expected}"
            ),
            None if self.checked == 0 => "the trail must start at event 1".to_owned(),
            _ => format!("the trail must go on at event {expected}"),
        };
        ChainBreak {
            seq,
            expected_seq: expected,
            kind: BreakKind::Missing,
            message: format!(
                "{missing} missing before event {seq} ({why}): rows were deleted, or stored out of order"
            ),
        }
    }

    fn reordered(&self, seq: i64) -> ChainBreak {
        let message = match (self.last_seq, self.checkpoint_through) {
            (Some(last), _) if seq == last && self.checked > 0 => {
                format!("event {seq} appears twice: a row was duplicated")
            }
            (Some(_), Some(through)) if self.checked == 0 => format!(
                "event {seq} comes after the checkpoint, which already covers events up to {through}: \
                 it should have been purged, or the checkpoint is wrong"
            ),
            (Some(last), _) => format!(
                "event {seq} comes after event {last}: rows are out of order (event {} was expected here)",
                self.next_seq
            ),
            (None, _) => format!("event {seq} comes before the start of the trail, which is event 1"),
        };
        ChainBreak { seq, expected_seq: self.next_seq, kind: BreakKind::Reordered, message }
    }

    fn relinked(&self, seq: i64) -> ChainBreak {
        let message = match self.checkpoint_through {
            _ if self.checked > 0 => format!(
                "event {seq} does not link to event {prev}: its prev_hash is not event {prev}'s hash, so \
                 one of them was rewritten with a recomputed hash",
                prev = seq - 1
            ),
            Some(through) => format!(
                "event {seq} does not continue from the checkpoint through event {through}: its prev_hash \
                 differs from the checkpoint's hash (a wrong checkpoint, or a rewritten event)"
            ),
            None => format!(
                "event {seq} does not start the chain: its prev_hash is not the genesis hash, so it was \
                 rewritten"
            ),
        };
        ChainBreak { seq, expected_seq: seq, kind: BreakKind::Relinked, message }
    }
}

/// Verifies a whole stream of events: [`ChainVerifier`] in one call.
///
/// # Errors
/// The first break in the chain.
pub fn verify_chain<'a>(
    start: Option<&Checkpoint>,
    events: impl IntoIterator<Item = &'a AuditEvent>,
    expected_head: Option<(i64, ChainHash)>,
) -> Result<VerifyReport, ChainBreak> {
    let mut v = ChainVerifier::new(start).with_expected_head(expected_head);
    for ev in events {
        v.push(ev)?;
    }
    v.finish()
}

fn missing_phrase(from: i64, to: i64) -> String {
    if from == to { format!("event {from} is") } else { format!("events {from} to {to} are") }
}

/// The most events an alert rule may count to.
pub const MAX_THRESHOLD: u32 = 10_000;
/// The longest alert window: 30 days.
pub const MAX_WINDOW_MINUTES: u32 = 30 * 24 * 60;
/// How many actors an [`AlertTracker`] follows per rule by default.
pub const DEFAULT_MAX_ACTORS: usize = 10_000;

/// "Alert when one actor has `threshold` events with this outcome (and an
/// action starting with `action_prefix`) within `window_minutes`."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRule {
    pub name: String,
    /// Usually `Denied`.
    pub outcome: AuditOutcome,
    /// E.g. `auth.` for every authentication action; `None` for all.
    pub action_prefix: Option<String>,
    pub threshold: u32,
    pub window_minutes: u32,
}

/// An alert rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AlertRuleError {
    #[error("an alert rule needs a name")]
    NoName,
    #[error("alert rule {rule:?}: the threshold must be between 1 and {MAX_THRESHOLD}, not {threshold}")]
    Threshold { rule: String, threshold: u32 },
    #[error(
        "alert rule {rule:?}: the window must be between 1 and {MAX_WINDOW_MINUTES} minutes, not \
         {window_minutes}"
    )]
    Window { rule: String, window_minutes: u32 },
}

impl AlertRule {
    /// Checks the name is not blank and the threshold and window are in range.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), AlertRuleError> {
        if self.name.trim().is_empty() {
            return Err(AlertRuleError::NoName);
        }
        if !(1..=MAX_THRESHOLD).contains(&self.threshold) {
            return Err(AlertRuleError::Threshold { rule: self.name.clone(), threshold: self.threshold });
        }
        if !(1..=MAX_WINDOW_MINUTES).contains(&self.window_minutes) {
            return Err(AlertRuleError::Window {
                rule: self.name.clone(),
                window_minutes: self.window_minutes,
            });
        }
        Ok(())
    }

    #[must_use]
    pub fn matches(&self, ev: &NewAuditEvent) -> bool {
        ev.outcome == self.outcome && self.action_prefix.as_deref().is_none_or(|p| ev.action.starts_with(p))
    }
}

/// A rule's threshold reached by one actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: String,
    /// The actor's label, as in its latest event.
    pub actor: String,
    pub actor_id: Option<String>,
    /// How many events were counted: the rule's threshold.
    pub count: u32,
    pub window_minutes: u32,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

impl Alert {
    /// The audit event recording this alert: action [`ALERT_ACTION`],
    /// outcome `Success`, resource kind `alert`, resource the rule's name,
    /// actor `system`, at the time of the last counted event.
    #[must_use]
    pub fn to_event(&self) -> NewAuditEvent {
        NewAuditEvent {
            resource: Some(self.rule.clone()),
            details: serde_json::json!({
                "rule": self.rule,
                "actor": self.actor,
                "actor_id": self.actor_id,
                "count": self.count,
                "window_minutes": self.window_minutes,
                "first_at": self.first_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                "last_at": self.last_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            }),
            ..NewAuditEvent::new(self.last_at, "system", ALERT_ACTION, "alert", AuditOutcome::Success)
        }
    }
}

/// Counts matching events per rule and per actor over sliding windows and
/// says when an actor reaches a rule's threshold.
///
/// An actor is its `actor_id`, or its `actor` label when there is no id (so
/// all `anonymous` requests count together unless the caller labels them,
/// e.g. by address). A window of N minutes holds events less than N minutes
/// apart, ending at the newest one; events may arrive slightly out of order.
///
/// When an alert fires, the actor's count starts over and that rule stays
/// quiet for the actor for one window: a sustained burst gives one alert per
/// window, and no event is counted by two alerts.
///
/// Memory is bounded: per rule and actor at most `threshold` timestamps are
/// kept (older ones are pruned), and at most
/// [`max_actors`](Self::with_max_actors) actors per rule are followed; past
/// that the actor seen least recently is forgotten. Events with action
/// [`ALERT_ACTION`] are ignored so alerts cannot feed themselves.
#[derive(Debug, Clone)]
pub struct AlertTracker {
    rules: Vec<RuleState>,
    max_actors: usize,
    tick: u64,
}

#[derive(Debug, Clone)]
struct RuleState {
    rule: AlertRule,
    window: TimeDelta,
    actors: HashMap<String, ActorWindow>,
    /// Last-touched tick → actor key, oldest first.
    recency: BTreeMap<u64, String>,
}

#[derive(Debug, Clone)]
struct ActorWindow {
    times: VecDeque<DateTime<Utc>>,
    quiet_until: Option<DateTime<Utc>>,
    touched: u64,
}

impl AlertTracker {
    /// # Errors
    /// The first invalid rule.
    pub fn new(rules: Vec<AlertRule>) -> Result<Self, AlertRuleError> {
        let rules = rules
            .into_iter()
            .map(|rule| {
                rule.validate()?;
                let window = TimeDelta::minutes(i64::from(rule.window_minutes));
                Ok(RuleState { rule, window, actors: HashMap::new(), recency: BTreeMap::new() })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules, max_actors: DEFAULT_MAX_ACTORS, tick: 0 })
    }

    /// Follows at most `max` actors per rule (at least 1).
    #[must_use]
    pub fn with_max_actors(mut self, max: usize) -> Self {
        self.max_actors = max.max(1);
        self
    }

    pub fn rules(&self) -> impl Iterator<Item = &AlertRule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// How many (rule, actor) windows are held.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.rules.iter().map(|r| r.actors.len()).sum()
    }

    /// Counts `ev` and returns the alerts it fires (at most one per rule).
    pub fn observe(&mut self, ev: &NewAuditEvent) -> Vec<Alert> {
        if ev.action == ALERT_ACTION {
            return Vec::new();
        }
        let key = ev.actor_id.as_deref().unwrap_or(&ev.actor);
        let mut alerts = Vec::new();
        for state in self.rules.iter_mut().filter(|s| s.rule.matches(ev)) {
            self.tick += 1;
            if let Some(alert) = state.observe(key, ev, self.tick, self.max_actors) {
                alerts.push(alert);
            }
        }
        alerts
    }
}

impl RuleState {
    fn observe(&mut self, key: &str, ev: &NewAuditEvent, tick: u64, max_actors: usize) -> Option<Alert> {
        if !self.actors.contains_key(key) {
            while self.actors.len() >= max_actors {
                let Some((_, oldest)) = self.recency.pop_first() else { break };
                self.actors.remove(&oldest);
            }
            self.actors.insert(
                key.to_owned(),
                ActorWindow { times: VecDeque::new(), quiet_until: None, touched: tick },
            );
        }
        let w = self.actors.get_mut(key)?;
        self.recency.remove(&w.touched);
        self.recency.insert(tick, key.to_owned());
        w.touched = tick;

        let pos = w.times.partition_point(|t| *t <= ev.at);
        w.times.insert(pos, ev.at);
        let newest = *w.times.back()?;
        let cutoff = newest.checked_sub_signed(self.window).unwrap_or(DateTime::<Utc>::MIN_UTC);
        while w.times.front().is_some_and(|t| *t <= cutoff) {
            w.times.pop_front();
        }
        let threshold = self.rule.threshold as usize;
        while w.times.len() > threshold {
            w.times.pop_front();
        }
        if w.times.len() < threshold || w.quiet_until.is_some_and(|q| newest < q) {
            return None;
        }
        let first_at = *w.times.front()?;
        w.times.clear();
        w.quiet_until = Some(newest.checked_add_signed(self.window).unwrap_or(DateTime::<Utc>::MAX_UTC));
        Some(Alert {
            rule: self.rule.name.clone(),
            actor: ev.actor.clone(),
            actor_id: ev.actor_id.clone(),
            count: self.rule.threshold,
            window_minutes: self.rule.window_minutes,
            first_at,
            last_at: newest,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    fn min(m: i64) -> DateTime<Utc> {
        t0() + TimeDelta::minutes(m)
    }

    fn event(i: i64) -> NewAuditEvent {
        NewAuditEvent {
            actor_id: Some(format!("user-{}", i % 3)),
            resource: Some(format!("tpl-{i}")),
            request_id: Some(format!("req-{i}")),
            client_addr: Some("127.0.0.1".into()),
            details: json!({"n": i, "nested": {"b": [1, 2], "a": null}}),
            ..NewAuditEvent::new(
                t0() + TimeDelta::microseconds(i * 1_001),
                "ann@example.com",
                "template.update",
                "template",
                AuditOutcome::Success,
            )
        }
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = ChainHash::GENESIS;
        (1..=n)
            .map(|seq| {
                let ev = AuditEvent::seal(prev, seq, Uuid::from_u128(seq as u128), event(seq));
                prev = ev.hash;
                ev
            })
            .collect()
    }

    fn verify(events: &[AuditEvent]) -> Result<VerifyReport, ChainBreak> {
        verify_chain(None, events, None)
    }

    #[test]
    fn chain_hash_text_round_trip() {
        let h = chain(1)[0].hash;
        let s = h.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<ChainHash>().unwrap(), h);
        assert_eq!(serde_json::to_value(h).unwrap(), json!(s));
        assert_eq!(serde_json::from_value::<ChainHash>(json!(s)).unwrap(), h);
        assert_eq!(ChainHash::GENESIS.to_string(), "0".repeat(64));
        assert!("abc".parse::<ChainHash>().is_err());
        assert!(format!("{s}00").parse::<ChainHash>().is_err());
        assert!(serde_json::from_value::<ChainHash>(json!("zz")).is_err());
    }

    #[test]
    fn text_enums_round_trip() {
        for o in AuditOutcome::ALL {
            assert_eq!(o.as_str().parse::<AuditOutcome>().unwrap(), o);
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        for d in DetailLevel::ALL {
            assert_eq!(d.as_str().parse::<DetailLevel>().unwrap(), d);
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
        for k in BreakKind::ALL {
            assert_eq!(k.as_str().parse::<BreakKind>().unwrap(), k);
        }
        assert_eq!(DetailLevel::default(), DetailLevel::Detailed);
        assert!("ok".parse::<AuditOutcome>().unwrap_err().to_string().contains("success, denied, failed"));
    }

    #[test]
    fn detail_levels() {
        let d = json!({"template": "t", "parameters": {"x": 1}, "diff": "-a+b", "meta": {"body": 1}});
        assert_eq!(DetailLevel::Basic.details(d.clone()), Value::Null);
        assert_eq!(DetailLevel::Detailed.details(d.clone()), json!({"template": "t", "meta": {"body": 1}}));
        assert_eq!(DetailLevel::Comprehensive.details(d.clone()), d);
        assert_eq!(DetailLevel::Detailed.details(json!("text")), json!("text"));
    }

    /// The hand-written document is exactly the canonical form of the
    /// equivalent JSON value.
    #[test]
    fn document_is_canonical_json() {
        let ev = event(7);
        let (prev, id) = (chain(1)[0].hash, Uuid::from_u128(7));
        let doc = canonical_document(&prev, 7, &id, &ev.fields());
        let value = json!({
            "prev": prev.to_string(), "seq": 7, "id": id.to_string(),
            "at": "2024-05-01T12:00:00.007007Z", "actor_id": "user-1", "actor": "ann@example.com",
            "action": "template.update", "resource_kind": "template", "resource": "tpl-7",
            "outcome": "success", "reason": null, "request_id": "req-7", "client_addr": "127.0.0.1",
            "details": {"n": 7, "nested": {"a": null, "b": [1, 2]}},
        });
        let mut expected = String::new();
        write_canonical(&value, &mut expected);
        assert_eq!(doc, expected);
    }

    /// Pins the hash format: changing it breaks every stored chain.
    #[test]
    fn known_answer() {
        let ev = AuditEvent::seal(ChainHash::GENESIS, 1, Uuid::from_u128(1), event(1));
        assert_eq!(ev.hash.to_string(), KNOWN_HASH);
    }
    const KNOWN_HASH: &str = "ebdeb18feb6dc40c1865ed9fb211d78aa13cbae03f87e287d45ac7bea6989ba1";

    #[test]
    fn seal_truncates_to_microseconds() {
        let mut new = event(1);
        new.at = t0() + TimeDelta::nanoseconds(1_234_567);
        let ev = AuditEvent::seal(ChainHash::GENESIS, 1, Uuid::nil(), new.clone());
        assert_eq!(ev.at, t0() + TimeDelta::microseconds(1_234));
        assert_eq!(ev.recompute(), ev.hash);
        assert_eq!(ev.hash, chain_hash(&ChainHash::GENESIS, 1, &Uuid::nil(), &new));
        // One microsecond more is a different event.
        new.at = ev.at + TimeDelta::microseconds(1);
        assert_ne!(ev.hash, chain_hash(&ChainHash::GENESIS, 1, &Uuid::nil(), &new));
    }

    #[test]
    fn none_and_empty_differ() {
        let a = event(1);
        let b = NewAuditEvent { reason: Some(String::new()), ..a.clone() };
        let g = ChainHash::GENESIS;
        assert_ne!(chain_hash(&g, 1, &Uuid::nil(), &a), chain_hash(&g, 1, &Uuid::nil(), &b));
    }

    #[test]
    fn event_serde_round_trip() {
        let ev = chain(2).pop().unwrap();
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["outcome"], "success");
        assert_eq!(v["prev_hash"], json!(ev.prev_hash.to_string()));
        let back: AuditEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.recompute(), ev.hash);
    }

    #[test]
    fn intact_chain_verifies() {
        let events = chain(5);
        let report = verify(&events).unwrap();
        assert_eq!(report, VerifyReport { checked: 5, last_seq: Some(5), head: events[4].hash });
        assert_eq!(
            verify(&[]).unwrap(),
            VerifyReport { checked: 0, last_seq: None, head: ChainHash::GENESIS }
        );
    }

    #[test]
    fn messages_are_for_humans() {
        let mut events = chain(5);
        events[2].actor = "mallory".into();
        let b = verify(&events).unwrap_err();
        assert_eq!(b.message, "event 3 was altered: its stored hash does not match its content");
        assert_eq!(b.to_string(), b.message);

        let mut events = chain(6);
        events.drain(1..3);
        let b = verify(&events).unwrap_err();
        assert_eq!((b.seq, b.expected_seq, b.kind), (4, 2, BreakKind::Missing));
        assert!(b.message.starts_with("events 2 to 3 are missing before event 4"), "{}", b.message);

        let mut events = chain(4);
        events.swap(1, 2);
        let b = verify(&events).unwrap_err();
        assert_eq!((b.seq, b.expected_seq, b.kind), (3, 2, BreakKind::Reordered));
        assert!(b.message.starts_with("event 3 comes before event 2"), "{}", b.message);

        let mut events = chain(4);
        events[1].actor = "mallory".into();
        events[1].hash = events[1].recompute();
        let b = verify(&events).unwrap_err();
        assert_eq!((b.seq, b.kind), (3, BreakKind::Relinked));
        assert!(b.message.contains("does not link to event 2"), "{}", b.message);
    }

    #[test]
    fn duplicate_row_is_reordered() {
        let mut events = chain(4);
        events.insert(2, events[1].clone());
        let b = verify(&events).unwrap_err();
        assert_eq!((b.seq, b.expected_seq, b.kind), (2, 3, BreakKind::Reordered));
        assert_eq!(b.message, "event 2 appears twice: a row was duplicated");
    }

    #[test]
    fn first_event_must_link_to_genesis() {
        let mut events = chain(3);
        events[0].prev_hash = events[2].hash;
        events[0].hash = events[0].recompute();
        let b = verify(&events).unwrap_err();
        assert_eq!((b.seq, b.kind), (1, BreakKind::Relinked));
        assert!(b.message.contains("genesis"));
        // Seq 0 comes before the start.
        let zero = AuditEvent::seal(ChainHash::GENESIS, 0, Uuid::nil(), event(0));
        let b = verify(&[zero]).unwrap_err();
        assert_eq!((b.seq, b.expected_seq, b.kind), (0, 1, BreakKind::Reordered));
    }

    #[test]
    fn break_is_sticky() {
        let mut events = chain(4);
        events[1].action = "x".into();
        let mut v = ChainVerifier::new(None);
        v.push(&events[0]).unwrap();
        let b = v.push(&events[1]).unwrap_err();
        assert_eq!(v.push(&events[2]).unwrap_err(), b);
        assert_eq!(v.finish().unwrap_err(), b);
    }

    #[test]
    fn jump_surfaces_on_next_push_with_its_own_seq() {
        let events = chain(5);
        let mut v = ChainVerifier::new(None);
        v.push(&events[0]).unwrap();
        v.push(&events[2]).unwrap(); // undecided: deletion or swap?
        let b = v.push(&events[3]).unwrap_err();
        assert_eq!((b.seq, b.expected_seq, b.kind), (3, 2, BreakKind::Missing));
    }

    #[test]
    fn head_equal_to_checkpoint_is_compared() {
        let events = chain(4);
        let cp = Checkpoint::after(&events[1], 2, min(60));
        assert!(verify_chain(Some(&cp), &events[2..], Some(events[1].head())).is_ok());
        let b = verify_chain(Some(&cp), &events[2..], Some((2, events[0].hash))).unwrap_err();
        assert_eq!((b.seq, b.kind), (2, BreakKind::Relinked));
        // A head older than the checkpoint cannot be checked.
        assert!(verify_chain(Some(&cp), &events[2..], Some((1, ChainHash::GENESIS))).is_ok());
    }

    #[test]
    fn empty_trail_after_full_purge() {
        let events = chain(3);
        let cp = Checkpoint::after(&events[2], 3, min(60));
        let r = verify_chain(Some(&cp), [], None).unwrap();
        assert_eq!(r, VerifyReport { checked: 0, last_seq: Some(3), head: events[2].hash });
        let b = verify_chain(None, [], Some(events[2].head())).unwrap_err();
        assert_eq!((b.seq, b.expected_seq, b.kind), (3, 1, BreakKind::Missing));
        assert!(b.message.starts_with("the trail is empty"), "{}", b.message);
    }

    // Alerts.

    fn rule(threshold: u32, window_minutes: u32) -> AlertRule {
        AlertRule {
            name: "denied-burst".into(),
            outcome: AuditOutcome::Denied,
            action_prefix: Some("auth.".into()),
            threshold,
            window_minutes,
        }
    }

    fn denied(actor: &str, at: DateTime<Utc>) -> NewAuditEvent {
        NewAuditEvent::new(at, actor, "auth.login", "session", AuditOutcome::Denied)
    }

    fn fire_times(tracker: &mut AlertTracker, actor: &str, minutes: &[i64]) -> Vec<i64> {
        minutes.iter().copied().filter(|m| !tracker.observe(&denied(actor, min(*m))).is_empty()).collect()
    }

    #[test]
    fn rules_are_validated() {
        assert!(rule(1, 1).validate().is_ok());
        assert!(matches!(rule(0, 5).validate(), Err(AlertRuleError::Threshold { threshold: 0, .. })));
        assert!(matches!(rule(3, 0).validate(), Err(AlertRuleError::Window { window_minutes: 0, .. })));
        assert!(rule(MAX_THRESHOLD + 1, 5).validate().is_err());
        assert!(rule(3, MAX_WINDOW_MINUTES + 1).validate().is_err());
        assert_eq!(AlertRule { name: " ".into(), ..rule(3, 5) }.validate(), Err(AlertRuleError::NoName));
        assert!(AlertTracker::new(vec![rule(3, 5), rule(0, 5)]).is_err());
    }

    #[test]
    fn fires_exactly_at_threshold() {
        let mut t = AlertTracker::new(vec![rule(3, 10)]).unwrap();
        assert!(t.observe(&denied("eve", min(0))).is_empty());
        assert!(t.observe(&denied("eve", min(1))).is_empty());
        let alerts = t.observe(&denied("eve", min(2)));
        assert_eq!(
            alerts,
            vec![Alert {
                rule: "denied-burst".into(),
                actor: "eve".into(),
                actor_id: None,
                count: 3,
                window_minutes: 10,
                first_at: min(0),
                last_at: min(2),
            }]
        );
    }

    #[test]
    fn fires_once_per_window() {
        let mut t = AlertTracker::new(vec![rule(3, 10)]).unwrap();
        // Fires at 2 and starts over; 5, 6, 7 reach the threshold again but
        // the rule is quiet for the actor until 12, when it fires again.
        assert_eq!(fire_times(&mut t, "eve", &[0, 1, 2, 5, 6, 7, 8, 11, 12, 13]), vec![2, 12]);
    }

    #[test]
    fn ignores_events_outside_the_window() {
        let mut t = AlertTracker::new(vec![rule(2, 10)]).unwrap();
        // Exactly a window apart is not within it.
        assert_eq!(fire_times(&mut t, "eve", &[0, 10, 20, 30]), Vec::<i64>::new());
        assert_eq!(fire_times(&mut t, "eve", &[39]), vec![39]);

        let mut t = AlertTracker::new(vec![rule(3, 10)]).unwrap();
        assert_eq!(fire_times(&mut t, "eve", &[0, 5, 16, 17, 18]), vec![18]);
        // An event older than the window, arriving late, does not count.
        let mut t = AlertTracker::new(vec![rule(3, 10)]).unwrap();
        assert_eq!(fire_times(&mut t, "eve", &[20, 21, 5, 6, 22]), vec![22]);
        // A late event inside the window counts.
        let mut t = AlertTracker::new(vec![rule(3, 10)]).unwrap();
        assert_eq!(fire_times(&mut t, "eve", &[20, 25, 21]), vec![21]);
    }

    #[test]
    fn counts_per_actor_and_per_rule() {
        let all_denied = AlertRule { name: "any-denied".into(), action_prefix: None, ..rule(2, 10) };
        let mut t = AlertTracker::new(vec![rule(2, 10), all_denied]).unwrap();
        assert!(t.observe(&denied("eve", min(0))).is_empty());
        assert!(t.observe(&denied("bob", min(1))).is_empty());
        // Not an auth action: only the second rule counts it.
        let read = NewAuditEvent::new(min(2), "bob", "template.read", "template", AuditOutcome::Denied);
        let names: Vec<String> = t.observe(&read).into_iter().map(|a| a.rule).collect();
        assert_eq!(names, ["any-denied"]);
        // Successes and failures are not denials.
        let ok = NewAuditEvent { outcome: AuditOutcome::Success, ..denied("eve", min(3)) };
        assert!(t.observe(&ok).is_empty());
        let alerts = t.observe(&denied("eve", min(4)));
        assert_eq!(alerts.len(), 2);
        assert!(alerts.iter().all(|a| a.actor == "eve" && a.first_at == min(0) && a.last_at == min(4)));
        let alerts = t.observe(&denied("bob", min(5)));
        assert_eq!(alerts.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(), ["denied-burst"]);
    }

    #[test]
    fn actor_id_identifies_the_actor() {
        let mut t = AlertTracker::new(vec![rule(2, 10)]).unwrap();
        let a = NewAuditEvent { actor_id: Some("u1".into()), ..denied("old@example.com", min(0)) };
        let b = NewAuditEvent { actor_id: Some("u1".into()), ..denied("new@example.com", min(1)) };
        let alerts = t.observe(&a).into_iter().chain(t.observe(&b)).collect::<Vec<_>>();
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].actor.as_str(), alerts[0].actor_id.as_deref()),
            ("new@example.com", Some("u1"))
        );
    }

    #[test]
    fn actor_count_is_capped() {
        let mut t = AlertTracker::new(vec![rule(2, 10)]).unwrap().with_max_actors(3);
        for (i, actor) in ["a", "b", "c", "d"].into_iter().enumerate() {
            assert!(t.observe(&denied(actor, min(i as i64))).is_empty());
        }
        assert_eq!(t.tracked(), 3);
        // "a", seen least recently, was forgotten: its count starts over.
        assert!(t.observe(&denied("a", min(5))).is_empty());
        assert!(t.observe(&denied("c", min(5))).len() == 1);
        assert_eq!(t.tracked(), 3);
    }

    #[test]
    fn alert_becomes_an_event_and_is_not_counted() {
        let rule = AlertRule { outcome: AuditOutcome::Success, action_prefix: None, ..rule(1, 10) };
        let mut t = AlertTracker::new(vec![rule]).unwrap();
        let ok = NewAuditEvent::new(min(0), "eve", "template.read", "template", AuditOutcome::Success);
        let alert = t.observe(&ok).pop().unwrap();
        let ev = alert.to_event();
        assert_eq!(
            (ev.action.as_str(), ev.outcome, ev.resource_kind.as_str()),
            (ALERT_ACTION, AuditOutcome::Success, "alert")
        );
        assert_eq!(ev.resource.as_deref(), Some("denied-burst"));
        assert_eq!(ev.at, min(0));
        assert_eq!(ev.details["actor"], "eve");
        assert_eq!(ev.details["count"], 1);
        assert!(t.observe(&ev).is_empty());
    }
}
