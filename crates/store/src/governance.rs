//! Approval workflows and custom compliance checks: the rules both backends
//! apply when writing them, written once.
//!
//! A backend opens a transaction, locks the table (PostgreSQL: `LOCK TABLE
//! … IN EXCLUSIVE MODE`, so two writers cannot both claim a classification;
//! SQLite: the single writer), reads every row (there are few), asks a
//! planner here what to write or why to refuse, refuses when a version in
//! review would lose the workflow governing it, writes the [`Plan`] and its
//! audit event, and commits.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use promptvault_core::SecurityClassification;
use promptvault_core::compliance::{BUILTIN_KEYS, CheckDefinition};
use promptvault_core::model::Revision;
use promptvault_core::workflow::{WorkflowDefinition, WorkflowSet};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Conflict, Result, StoreError};
use crate::types::{ConfigSource, Expect, FileSync, Put, Stored};

/// A table of definitions: its name, its key column, and what a row is
/// called in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    pub name: &'static str,
    pub key: &'static str,
    pub what: &'static str,
}

/// A kind of stored definition.
pub(crate) trait Definition:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + 'static
{
    const TABLE: Table;
    fn key(&self) -> &str;
}

impl Definition for WorkflowDefinition {
    const TABLE: Table = Table { name: "approval_workflow", key: "name", what: "workflow" };
    fn key(&self) -> &str {
        &self.name
    }
}

impl Definition for CheckDefinition {
    const TABLE: Table = Table { name: "compliance_check", key: "key", what: "check" };
    fn key(&self) -> &str {
        &self.key
    }
}

/// A row as both backends read it.
pub(crate) struct ConfigRow {
    pub key: String,
    pub definition: Value,
    pub source: String,
    pub updated_at: DateTime<Utc>,
    pub revision: i64,
}

impl ConfigRow {
    pub fn decode<D: Definition>(self) -> Result<Stored<D>> {
        let what = D::TABLE.what;
        let def: D = serde_json::from_value(self.definition)
            .map_err(|e| StoreError::corrupt(format!("{what} {:?}: {e}", self.key)))?;
        if def.key() != self.key {
            return Err(StoreError::corrupt(format!(
                "{what} {:?} holds the definition of {:?}",
                self.key,
                def.key()
            )));
        }
        let source = ConfigSource::parse(&self.source)
            .ok_or_else(|| StoreError::corrupt(format!("{what} {:?}: source {:?}", self.key, self.source)))?;
        Ok(Stored { def, source, updated_at: self.updated_at, revision: Revision(self.revision) })
    }
}

/// One row to write.
pub(crate) enum RowOp {
    Insert {
        key: String,
        definition: Value,
        source: ConfigSource,
    },
    /// Replaces the definition and source, and bumps the revision.
    Update {
        key: String,
        definition: Value,
        source: ConfigSource,
    },
    Delete {
        key: String,
    },
}

/// What one write does: the rows to write, the classifications whose
/// workflow changes (no version of them may be in review), and what the
/// write returns.
pub(crate) struct Plan<T> {
    pub ops: Vec<RowOp>,
    pub lost: Vec<SecurityClassification>,
    pub result: T,
}

fn json<D: Definition>(def: &D) -> Result<Value> {
    serde_json::to_value(def).map_err(|e| StoreError::corrupt(format!("{}: {e}", D::TABLE.what)))
}

fn decode_all<D: Definition>(rows: Vec<ConfigRow>) -> Result<Vec<Stored<D>>> {
    rows.into_iter().map(ConfigRow::decode).collect()
}

/// Creates or replaces one definition, written through the API.
fn plan_put<D: Definition>(
    rows: &[Stored<D>],
    def: D,
    put: Put,
    at: DateTime<Utc>,
) -> Result<Plan<Stored<D>>> {
    let what = D::TABLE.what;
    let key = def.key().to_owned();
    let current = rows.iter().find(|r| r.def.key() == key);
    let definition = json(&def)?;
    let source = ConfigSource::Api;
    let (op, revision) = match (put, current) {
        (Put::Create, Some(_)) => return Err(Conflict::AlreadyExists { what, name: key }.into()),
        (Put::Create, None) => (RowOp::Insert { key, definition, source }, Revision::FIRST),
        (Put::Replace(_), None) => return Err(StoreError::NotFound(format!("{what} {key}"))),
        (Put::Replace(expect), Some(current)) => {
            expect.check(what, current.revision)?;
            (RowOp::Update { key, definition, source }, current.revision.next())
        }
    };
    Ok(Plan { ops: vec![op], lost: Vec::new(), result: Stored { def, source, updated_at: at, revision } })
}

fn plan_delete<D: Definition>(rows: &[Stored<D>], key: &str, expect: Expect) -> Result<Plan<()>> {
    let what = D::TABLE.what;
    let current = rows
        .iter()
        .find(|r| r.def.key() == key)
        .ok_or_else(|| StoreError::NotFound(format!("{what} {key}")))?;
    expect.check(what, current.revision)?;
    Ok(Plan { ops: vec![RowOp::Delete { key: key.to_owned() }], lost: Vec::new(), result: () })
}

/// Makes the file's definitions the stored ones with source `file`: new
/// names are inserted, changed ones (or ones last written through the API)
/// replaced, unchanged ones left alone, and rows from the file that it no
/// longer lists deleted. Rows written through the API that the file does
/// not list stay.
fn plan_sync<D: Definition>(rows: &[Stored<D>], defs: &[D]) -> Result<Plan<FileSync>> {
    let mut ops = Vec::new();
    let mut sync = FileSync::default();
    let source = ConfigSource::File;
    let mut seen = HashSet::new();
    for def in defs {
        let key = def.key().to_owned();
        if !seen.insert(key.clone()) {
            return Err(Conflict::AlreadyExists { what: D::TABLE.what, name: key }.into());
        }
        match rows.iter().find(|r| r.def.key() == key) {
            Some(r) if r.def == *def && r.source == source => {}
            Some(_) => {
                ops.push(RowOp::Update { key: key.clone(), definition: json(def)?, source });
                sync.updated.push(key);
            }
            None => {
                ops.push(RowOp::Insert { key: key.clone(), definition: json(def)?, source });
                sync.created.push(key);
            }
        }
    }
    for r in rows {
        let key = r.def.key();
        if r.source == source && !seen.contains(key) {
            ops.push(RowOp::Delete { key: key.to_owned() });
            sync.removed.push(key.to_owned());
        }
    }
    Ok(Plan { ops, lost: Vec::new(), result: sync })
}

/// The definitions as they are once `ops` are applied.
fn after<D: Definition>(rows: &[Stored<D>], ops: &[RowOp]) -> Result<Vec<D>> {
    let mut defs: BTreeMap<String, D> =
        rows.iter().map(|r| (r.def.key().to_owned(), r.def.clone())).collect();
    for op in ops {
        match op {
            RowOp::Insert { key, definition, .. } | RowOp::Update { key, definition, .. } => {
                let def: D = serde_json::from_value(definition.clone())
                    .map_err(|e| StoreError::corrupt(format!("{}: {e}", D::TABLE.what)))?;
                defs.insert(key.clone(), def);
            }
            RowOp::Delete { key } => {
                defs.remove(key);
            }
        }
    }
    Ok(defs.into_values().collect())
}

/// Checks that the stored workflows stay a valid set and finds the
/// classifications whose stored workflow changes to another or to none.
fn settle_workflows<T>(rows: &[Stored<WorkflowDefinition>], mut plan: Plan<T>) -> Result<Plan<T>> {
    let next = after(rows, &plan.ops)?;
    WorkflowSet::new(next.clone())
        .map_err(|e| Conflict::WorkflowSet { code: e.code(), message: e.to_string() })?;
    let governing = |defs: &[&WorkflowDefinition], c: SecurityClassification| {
        defs.iter().find(|d| d.applies_to(c)).map(|d| d.name.clone())
    };
    let before: Vec<&WorkflowDefinition> = rows.iter().map(|r| &r.def).collect();
    let after: Vec<&WorkflowDefinition> = next.iter().collect();
    plan.lost = SecurityClassification::ALL
        .into_iter()
        .filter(|c| {
            let was = governing(&before, *c);
            was.is_some() && was != governing(&after, *c)
        })
        .collect();
    Ok(plan)
}

pub(crate) fn plan_workflow_put(
    rows: Vec<ConfigRow>,
    def: WorkflowDefinition,
    put: Put,
    at: DateTime<Utc>,
) -> Result<Plan<Stored<WorkflowDefinition>>> {
    let rows = decode_all(rows)?;
    let plan = plan_put(&rows, def, put, at)?;
    settle_workflows(&rows, plan)
}

pub(crate) fn plan_workflow_delete(rows: Vec<ConfigRow>, name: &str, expect: Expect) -> Result<Plan<()>> {
    let rows = decode_all(rows)?;
    let plan = plan_delete::<WorkflowDefinition>(&rows, name, expect)?;
    settle_workflows(&rows, plan)
}

pub(crate) fn plan_workflow_sync(
    rows: Vec<ConfigRow>,
    defs: &[WorkflowDefinition],
) -> Result<Plan<FileSync>> {
    let rows = decode_all(rows)?;
    let plan = plan_sync(&rows, defs)?;
    settle_workflows(&rows, plan)
}

fn refuse_builtin_key(def: &CheckDefinition) -> Result<()> {
    if BUILTIN_KEYS.contains(&def.key.as_str()) {
        return Err(Conflict::AlreadyExists { what: "check", name: def.key.clone() }.into());
    }
    Ok(())
}

pub(crate) fn plan_check_put(
    rows: Vec<ConfigRow>,
    def: CheckDefinition,
    put: Put,
    at: DateTime<Utc>,
) -> Result<Plan<Stored<CheckDefinition>>> {
    refuse_builtin_key(&def)?;
    plan_put(&decode_all(rows)?, def, put, at)
}

pub(crate) fn plan_check_delete(rows: Vec<ConfigRow>, key: &str, expect: Expect) -> Result<Plan<()>> {
    plan_delete::<CheckDefinition>(&decode_all(rows)?, key, expect)
}

pub(crate) fn plan_check_sync(rows: Vec<ConfigRow>, defs: &[CheckDefinition]) -> Result<Plan<FileSync>> {
    defs.iter().try_for_each(refuse_builtin_key)?;
    plan_sync(&decode_all(rows)?, defs)
}
