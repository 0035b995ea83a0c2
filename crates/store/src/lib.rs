//! Persistence for promptvault: the [`Store`] port and its two backends,
//! SQLite (the embedded default) and PostgreSQL.
//!
//! Invariant: row mapping and SQL live here and nowhere else; the domain
//! types in `promptvault-core` carry no database derives. Every write is one
//! transaction. Migrations are plain SQL, embedded, run at start, and never
//! edited once committed.

pub mod crypt;
pub mod cursor;
mod error;
mod governance;
mod lifecycle;
pub mod postgres;
mod rows;
pub mod sqlite;
mod store;
mod types;

use std::sync::Arc;

pub use crypt::{
    DataKeyStatus, EncryptionOptions, EncryptionStatus, InstanceKey, KeyError, MasterKey, SealScope,
};
pub use error::{Conflict, Result, StoreError};
pub use rows::StoredPrompt;
pub use store::{Backend, Store};
pub use types::*;

/// Settings that pick and tune a backend.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://PATH` (or a bare path) or `postgres://…`.
    pub url: String,
    /// PostgreSQL schema holding the tables.
    pub pg_schema: String,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// The master key and what to seal with it.
    pub encryption: EncryptionOptions,
}

impl StoreOptions {
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pg_schema: "prometheus".into(),
            max_connections: 8,
            encryption: EncryptionOptions::default(),
        }
    }
}

/// Opens the store named by the URL and brings its schema up to date.
pub async fn connect(options: &StoreOptions) -> Result<Arc<dyn Store>> {
    let url = options.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(options).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        Ok(Arc::new(sqlite::SqliteStore::open(path, options).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.chars().take(100).collect()))
    }
}
