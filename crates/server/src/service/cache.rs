//! In-memory caches of resolved versions and compiled templates.
//!
//! Resolved versions are dropped when the store announces a change to their
//! template (in this process, or from other processes over PostgreSQL
//! NOTIFY). A read that started before a change must not re-insert what it
//! read after the change: every change bumps a generation, and an insert
//! only happens if the generation did not move during the read. Compiled
//! templates are keyed by version id and content hash, so they never go
//! stale; they are only bounded in number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::isolation::Prepared;
use promptvault_core::TemplateName;
use promptvault_core::model::{Label, Template, Version};
use promptvault_core::refs::TemplateRef;
use promptvault_store::{ChangeNotice, VersionSelector};
use tokio::sync::broadcast;

/// A selector as a hashable key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SelectorKey {
    Seq(u32),
    Semver(String),
    Label(String),
    Latest,
}

impl From<&VersionSelector> for SelectorKey {
    fn from(s: &VersionSelector) -> Self {
        match s {
            VersionSelector::Seq(n) => SelectorKey::Seq(*n),
            VersionSelector::Semver(v) => SelectorKey::Semver(v.to_string()),
            VersionSelector::Label(l) => SelectorKey::Label(l.to_string()),
            VersionSelector::Latest => SelectorKey::Latest,
        }
    }
}

pub type Resolved = Arc<(Template, Version)>;

/// A version's content: its id and content hash.
type ContentKey = (promptvault_core::VersionId, [u8; 32]);

/// Identifies a compiled template: the version, its content, and the
/// versions its includes resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompiledKey {
    pub version: promptvault_core::VersionId,
    pub hash: [u8; 32],
    pub includes: Vec<(String, promptvault_core::VersionId, [u8; 32])>,
}

pub struct Caches {
    resolved: RwLock<HashMap<TemplateName, HashMap<SelectorKey, Resolved>>>,
    labels: RwLock<HashMap<TemplateName, Arc<Vec<Label>>>>,
    compiled: RwLock<HashMap<CompiledKey, Arc<Prepared>>>,
    /// The references of each version's body (finding them scans the source).
    references: RwLock<HashMap<ContentKey, Arc<Vec<TemplateRef>>>>,
    generation: AtomicU64,
    max_entries: usize,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Caches {
    #[must_use]
    pub fn new(max_entries: usize) -> Self {
        Self {
            resolved: RwLock::new(HashMap::new()),
            labels: RwLock::new(HashMap::new()),
            compiled: RwLock::new(HashMap::new()),
            references: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            max_entries: max_entries.max(16),
        }
    }

    /// The generation to pass back to [`insert_resolved`](Self::insert_resolved).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get_resolved(&self, name: &TemplateName, key: &SelectorKey) -> Option<Resolved> {
        let hit = self.resolved.read().ok()?.get(name)?.get(key).cloned();
        metrics::counter!("promptvault_cache_lookups_total", "cache" => "resolved", "result" => if hit.is_some() { "hit" } else { "miss" }).increment(1);
        hit
    }

    /// Caches a read unless a change happened since `generation` was taken.
    pub fn insert_resolved(&self, generation: u64, name: TemplateName, key: SelectorKey, value: Resolved) {
        let Ok(mut map) = self.resolved.write() else { return };
        // Checked under the write lock: `invalidate` bumps the generation
        // before it takes the lock, so a stale read can never slip in.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let total: usize = map.values().map(HashMap::len).sum();
        if total >= self.max_entries {
            map.clear();
        }
        map.entry(name).or_default().insert(key, value);
    }

    pub fn get_labels(&self, name: &TemplateName) -> Option<Arc<Vec<Label>>> {
        self.labels.read().ok()?.get(name).cloned()
    }

    /// Caches a template's labels unless a change happened since `generation`.
    pub fn insert_labels(&self, generation: u64, name: TemplateName, labels: Arc<Vec<Label>>) {
        let Ok(mut map) = self.labels.write() else { return };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.max_entries {
            map.clear();
        }
        map.insert(name, labels);
    }

    pub fn get_compiled(&self, key: &CompiledKey) -> Option<Arc<Prepared>> {
        let hit = self.compiled.read().ok()?.get(key).cloned();
        metrics::counter!("promptvault_cache_lookups_total", "cache" => "compiled", "result" => if hit.is_some() { "hit" } else { "miss" }).increment(1);
        hit
    }

    pub fn insert_compiled(&self, key: CompiledKey, value: Arc<Prepared>) {
        let Ok(mut map) = self.compiled.write() else { return };
        if map.len() >= self.max_entries {
            map.clear();
        }
        map.insert(key, value);
    }

    /// The references of a version, found once per version and content.
    pub fn references(
        &self,
        version: &Version,
    ) -> Result<Arc<Vec<TemplateRef>>, promptvault_core::refs::RefError> {
        let key = (version.id, *version.content_hash.as_bytes());
        if let Some(hit) = self.references.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let found = Arc::new(promptvault_core::refs::body_references(&version.content.body)?);
        if let Ok(mut map) = self.references.write() {
            if map.len() >= self.max_entries {
                map.clear();
            }
            map.insert(key, found.clone());
        }
        Ok(found)
    }

    /// Drops what a change may have made stale.
    pub fn invalidate(&self, notice: &ChangeNotice) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut map) = self.resolved.write() {
            match &notice.template {
                Some(name) => {
                    map.remove(name);
                }
                None => map.clear(),
            }
        }
        if let Ok(mut map) = self.labels.write() {
            match &notice.template {
                Some(name) => {
                    map.remove(name);
                }
                None => map.clear(),
            }
        }
    }

    /// Follows the store's change notices until the channel closes.
    pub async fn follow(self: Arc<Self>, mut changes: broadcast::Receiver<ChangeNotice>) {
        loop {
            match changes.recv().await {
                Ok(notice) => self.invalidate(&notice),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Notices were missed: anything may be stale.
                    self.invalidate(&ChangeNotice { template: None });
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}
