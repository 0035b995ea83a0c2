//! Property tests for the audit chain: whatever the events and whatever is
//! done to the stored rows, the verifier names the first event where the
//! chain breaks and how; and alert windows behave like a naive reference.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use promptvault_core::audit::{
    Alert, AlertRule, AlertTracker, AuditEvent, AuditOutcome, BreakKind, ChainBreak, ChainHash, Checkpoint,
    NewAuditEvent, VerifyReport, verify_chain,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

fn details() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        "[a-z ]{0,12}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ("[a-z]{1,6}", "[a-z0-9]{0,6}", any::<bool>())
            .prop_map(|(k, v, b)| json!({ k: v, "ok": b, "list": [1, 2.5, null] })),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-z0-9.:-]{0,10}")
}

fn new_event() -> impl Strategy<Value = NewAuditEvent> {
    (
        (0i64..10_000_000_000, opt_text(), "[a-z@.]{1,12}", "(template|auth|label)\\.(read|update|login)"),
        ("[a-z_]{1,10}", opt_text(), 0usize..3, opt_text(), opt_text(), opt_text(), details()),
    )
        .prop_map(
            |(
                (micros, actor_id, actor, action),
                (resource_kind, resource, outcome, reason, request_id, client_addr, details),
            )| NewAuditEvent {
                at: t0() + TimeDelta::microseconds(micros),
                actor_id,
                actor,
                action,
                resource_kind,
                resource,
                outcome: AuditOutcome::ALL[outcome],
                reason,
                request_id,
                client_addr,
                details,
            },
        )
}

/// A sealed chain of 2..24 events with distinct ids.
fn chain() -> impl Strategy<Value = Vec<AuditEvent>> {
    prop::collection::vec(new_event(), 2..24).prop_map(|news| {
        let mut prev = ChainHash::GENESIS;
        news.into_iter()
            .enumerate()
            .map(|(i, new)| {
                let seq = i as i64 + 1;
                let ev = AuditEvent::seal(prev, seq, Uuid::from_u128(0xA0D1_7000 + seq as u128), new);
                prev = ev.hash;
                ev
            })
            .collect()
    })
}

/// A chain and two distinct indices `i < j` in it.
fn chain_and_pair() -> impl Strategy<Value = (Vec<AuditEvent>, usize, usize)> {
    chain().prop_flat_map(|c| {
        let n = c.len();
        (Just(c), 0..n - 1).prop_flat_map(move |(c, i)| (Just(c), Just(i), i + 1..n))
    })
}

/// A chain and one index in it.
fn chain_and_index() -> impl Strategy<Value = (Vec<AuditEvent>, usize)> {
    chain().prop_flat_map(|c| {
        let n = c.len();
        (Just(c), 0..n)
    })
}

const FIELDS: usize = 15;

/// Changes one stored column of `ev` to a different value.
fn edit(ev: &mut AuditEvent, field: usize, new_seq: i64) {
    fn toggle(o: &mut Option<String>) {
        *o = match o.take() {
            None => Some(String::new()),
            Some(_) => None,
        };
    }
    match field {
        0 => ev.seq = new_seq,
        1 => ev.id = Uuid::from_u128(ev.id.as_u128() ^ 1),
        2 => ev.at += TimeDelta::microseconds(1),
        3 => toggle(&mut ev.actor_id),
        4 => ev.actor.push('x'),
        5 => ev.action.push('x'),
        6 => ev.resource_kind.push('x'),
        7 => toggle(&mut ev.resource),
        8 => {
            let i = AuditOutcome::ALL.iter().position(|o| *o == ev.outcome).unwrap();
            ev.outcome = AuditOutcome::ALL[(i + 1) % 3];
        }
        9 => toggle(&mut ev.reason),
        10 => toggle(&mut ev.request_id),
        11 => toggle(&mut ev.client_addr),
        12 => ev.details = json!([ev.details.take()]),
        13 => ev.prev_hash = flip(ev.prev_hash),
        _ => ev.hash = flip(ev.hash),
    }
}

fn flip(h: ChainHash) -> ChainHash {
    let mut b = *h.as_bytes();
    b[7] ^= 0x10;
    ChainHash::from_bytes(b)
}

fn seq_of(i: usize) -> i64 {
    i as i64 + 1
}

fn broken(events: &[AuditEvent]) -> ChainBreak {
    verify_chain(None, events, None).expect_err("the chain should be broken")
}

fn assert_break(b: &ChainBreak, seq: i64, expected_seq: i64, kind: BreakKind) {
    assert_eq!((b.seq, b.expected_seq, b.kind), (seq, expected_seq, kind), "{}", b.message);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn intact_chain_verifies(events in chain()) {
        let n = events.len();
        let last = &events[n - 1];
        let report = verify_chain(None, &events, None).unwrap();
        prop_assert_eq!(report, VerifyReport { checked: n as u64, last_seq: Some(last.seq), head: last.hash });
        // Against any head kept along the way.
        for ev in &events {
            prop_assert!(verify_chain(None, &events, Some(ev.head())).is_ok());
        }
        // Through serde, as a store would give the rows back.
        let json = serde_json::to_string(&events).unwrap();
        let back: Vec<AuditEvent> = serde_json::from_str(&json).unwrap();
        prop_assert!(verify_chain(None, &back, Some(last.head())).is_ok());
    }

    #[test]
    fn any_single_field_edit_is_named(
        (mut events, k) in chain_and_index(),
        field in 0..FIELDS,
        new_seq in -3i64..40,
    ) {
        let old_seq = events[k].seq;
        let new_seq = if new_seq == old_seq { old_seq + 100 } else { new_seq };
        edit(&mut events[k], field, new_seq);
        let b = broken(&events);
        let at = if field == 0 { new_seq } else { old_seq };
        assert_break(&b, at, old_seq, BreakKind::Edited);
    }

    #[test]
    fn deleting_rows_is_named((mut events, a, b) in chain_and_pair()) {
        // Delete a..b (not the last row): the gap shows at the row after it,
        // whether or not the first row is among the deleted.
        let after = events[b].seq;
        events.drain(a..b);
        assert_break(&broken(&events), after, seq_of(a), BreakKind::Missing);
    }

    #[test]
    fn deleting_the_newest_rows_needs_a_kept_head((mut events, a) in chain_and_index()) {
        prop_assume!(a > 0);
        let head = events[events.len() - 1].head();
        events.truncate(a);
        // The rows alone still form a valid, shorter chain...
        let report = verify_chain(None, &events, None).unwrap();
        prop_assert_eq!(report.last_seq, Some(seq_of(a - 1)));
        // ...but not against the head kept elsewhere.
        let b = verify_chain(None, &events, Some(head)).unwrap_err();
        assert_break(&b, head.0, seq_of(a), BreakKind::Missing);
    }

    #[test]
    fn swapping_whole_rows_is_reordered((mut events, i, j) in chain_and_pair()) {
        // Read in insertion order: the later row shows up first.
        events.swap(i, j);
        assert_break(&broken(&events), seq_of(j), seq_of(i), BreakKind::Reordered);
    }

    #[test]
    fn swapping_seqs_is_edited((mut events, i, j) in chain_and_pair()) {
        // Read ORDER BY seq: each seq now holds the other row's content.
        let (si, sj) = (events[i].seq, events[j].seq);
        events[i].seq = sj;
        events[j].seq = si;
        events.sort_by_key(|e| e.seq);
        assert_break(&broken(&events), si, si, BreakKind::Edited);
    }

    #[test]
    fn swapping_contents_but_not_seqs_is_edited((mut events, i, j) in chain_and_pair()) {
        let (si, sj) = (events[i].seq, events[j].seq);
        events.swap(i, j);
        events[i].seq = si;
        events[j].seq = sj;
        assert_break(&broken(&events), si, si, BreakKind::Edited);
    }

    #[test]
    fn resealed_edit_is_relinked((mut events, k) in chain_and_index(), field in 1..13usize) {
        let n = events.len();
        let head = events[n - 1].head();
        edit(&mut events[k], field, 0);
        events[k].hash = events[k].recompute();
        if k + 1 < n {
            assert_break(&broken(&events), seq_of(k + 1), seq_of(k + 1), BreakKind::Relinked);
        } else {
            // The newest event: only a kept head tells.
            prop_assert!(verify_chain(None, &events, None).is_ok());
            let b = verify_chain(None, &events, Some(head)).unwrap_err();
            assert_break(&b, head.0, head.0, BreakKind::Relinked);
        }
    }

    #[test]
    fn rewritten_tail_is_caught_only_by_a_later_head(
        (mut events, k, m) in chain_and_pair(),
        field in 1..13usize,
    ) {
        // Head kept at row m; the attacker rewrites row k (k < m) and
        // re-seals everything after it.
        let head = events[m].head();
        let late_head = events[k].head();
        edit(&mut events[k], field, 0);
        for i in k..events.len() {
            events[i].prev_hash = if i == 0 { ChainHash::GENESIS } else { events[i - 1].hash };
            events[i].hash = events[i].recompute();
        }
        prop_assert!(verify_chain(None, &events, None).is_ok());
        let b = verify_chain(None, &events, Some(head)).unwrap_err();
        assert_break(&b, head.0, head.0, BreakKind::Relinked);
        // A head at the rewritten row itself catches it there.
        let b = verify_chain(None, &events, Some(late_head)).unwrap_err();
        assert_break(&b, late_head.0, late_head.0, BreakKind::Relinked);
        // A head before the rewrite cannot see it.
        if k > 0 {
            prop_assert!(verify_chain(None, &events, Some(events[k - 1].head())).is_ok());
        }
    }

    #[test]
    fn checkpoint_start((events, p) in chain_and_index()) {
        // Purge rows 0..=p, keep a checkpoint.
        let n = events.len();
        let cp = Checkpoint::after(&events[p], p as u64 + 1, t0());
        let rest = &events[p + 1..];
        let full = verify_chain(None, &events, None).unwrap();
        let report = verify_chain(Some(&cp), rest, Some(events[n - 1].head())).unwrap();
        prop_assert_eq!(report.checked, (n - p - 1) as u64);
        prop_assert_eq!((report.last_seq, report.head), (full.last_seq, full.head));
        if rest.is_empty() {
            return Ok(());
        }
        let next = seq_of(p + 1);
        // A checkpoint with the wrong hash.
        let wrong = Checkpoint { last_hash: flip(cp.last_hash), ..cp.clone() };
        assert_break(&verify_chain(Some(&wrong), rest, None).unwrap_err(), next, next, BreakKind::Relinked);
        // A checkpoint claiming fewer purged events: a gap.
        let short = Checkpoint { through_seq: cp.through_seq - 1, ..cp.clone() };
        assert_break(&verify_chain(Some(&short), rest, None).unwrap_err(), next, next - 1, BreakKind::Missing);
        // A checkpoint claiming more: the first event should be gone.
        let long = Checkpoint { through_seq: cp.through_seq + 1, ..cp.clone() };
        assert_break(&verify_chain(Some(&long), rest, None).unwrap_err(), next, next + 1, BreakKind::Reordered);
        // Without the checkpoint the purge looks like a deletion.
        assert_break(&verify_chain(None, rest, None).unwrap_err(), next, 1, BreakKind::Missing);
    }
}

// Alerts against a naive reference that keeps every timestamp.

fn reference(
    threshold: usize,
    window: TimeDelta,
    times: &[DateTime<Utc>],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut fired = Vec::new();
    let mut counted: Vec<DateTime<Utc>> = Vec::new();
    let mut quiet_until: Option<DateTime<Utc>> = None;
    for &t in times {
        counted.push(t);
        let inside: Vec<_> = counted.iter().copied().filter(|c| *c > t - window).collect();
        if inside.len() >= threshold && quiet_until.is_none_or(|q| t >= q) {
            fired.push((inside[inside.len() - threshold], t));
            counted.clear();
            quiet_until = Some(t + window);
        }
    }
    fired
}

proptest! {
    #[test]
    fn alerts_match_the_reference(
        threshold in 1u32..6,
        window_minutes in 1u32..30,
        gaps in prop::collection::vec(0i64..600, 1..60),
    ) {
        let rule = AlertRule {
            name: "r".into(),
            outcome: AuditOutcome::Denied,
            action_prefix: None,
            threshold,
            window_minutes,
        };
        let mut tracker = AlertTracker::new(vec![rule]).unwrap();
        let mut t = t0();
        let times: Vec<DateTime<Utc>> = gaps
            .iter()
            .map(|g| {
                t += TimeDelta::seconds(*g);
                t
            })
            .collect();
        let mut got: Vec<Alert> = Vec::new();
        for at in &times {
            got.extend(tracker.observe(&NewAuditEvent::new(*at, "eve", "auth.login", "session", AuditOutcome::Denied)));
        }
        let window = TimeDelta::minutes(i64::from(window_minutes));
        let want = reference(threshold as usize, window, &times);
        let got_spans: Vec<_> = got.iter().map(|a| (a.first_at, a.last_at)).collect();
        prop_assert_eq!(got_spans, want);
        for pair in got.windows(2) {
            prop_assert!(pair[1].last_at - pair[0].last_at >= window, "fired twice within one window");
        }
        for a in &got {
            prop_assert_eq!(a.count, threshold);
            prop_assert!(a.last_at - a.first_at < window);
        }
    }
}
