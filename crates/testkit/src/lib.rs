//! Test fixtures shared by the store and server test suites.
//!
//! Every test gets a database of its own: a new SQLite file in a temporary
//! directory, or a new schema in the PostgreSQL named by
//! `PROMPTVAULT_TEST_DATABASE_URL`. [`run_cases`] registers each case once per
//! backend; without that variable the PostgreSQL cases are reported as
//! ignored (never as passed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use libtest_mimic::{Arguments, Trial};
use promptvault_store::{Store, StoreOptions};

/// The variable naming the PostgreSQL server for tests.
pub const PG_ENV: &str = "PROMPTVAULT_TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }
}

/// A database that exists for one test and is removed afterwards.
#[derive(Debug)]
pub struct TestDb {
    pub kind: Kind,
    pub options: StoreOptions,
    /// Keeps the SQLite directory alive.
    pub dir: tempfile::TempDir,
    pg_admin_url: Option<String>,
}

impl TestDb {
    /// Makes a fresh database of `kind`.
    ///
    /// # Panics
    /// When PostgreSQL is asked for and `PROMPTVAULT_TEST_DATABASE_URL` is unset.
    pub async fn new(kind: Kind) -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        match kind {
            Kind::Sqlite => {
                let path = dir.path().join("promptvault.db");
                let mut options = StoreOptions::new(format!("sqlite://{}", path.display()));
                options.encryption.master = Some(promptvault_store::MasterKey::generate());
                TestDb { kind, options, dir, pg_admin_url: None }
            }
            Kind::Postgres => {
                let url =
                    std::env::var(PG_ENV).unwrap_or_else(|_| panic!("set {PG_ENV} to run PostgreSQL tests"));
                let schema = format!("pv_test_{}", uuid::Uuid::new_v4().simple());
                let mut options = StoreOptions::new(url.clone());
                options.pg_schema = schema;
                options.max_connections = 4;
                options.encryption.master = Some(promptvault_store::MasterKey::generate());
                TestDb { kind, options, dir, pg_admin_url: Some(url) }
            }
        }
    }

    /// Opens the store (migrating it).
    pub async fn open(&self) -> Arc<dyn Store> {
        promptvault_store::connect(&self.options).await.expect("open the test store")
    }

    /// Runs raw SQL against the test database, bypassing the store: for
    /// tests that tamper with rows the way an attacker or a bad disk would.
    pub async fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                use sqlx::Connection;
                let url = &self.options.url;
                let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect sqlite");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.expect("raw sql");
            }
            Kind::Postgres => {
                use sqlx::Connection;
                let url = self.pg_admin_url.as_deref().unwrap_or_default();
                let mut conn = sqlx::PgConnection::connect(url).await.expect("connect postgres");
                let sql = format!("SET search_path TO {}; {sql}", self.options.pg_schema);
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect("raw sql");
            }
        }
    }

    /// Runs a raw query returning one integer (a count, say), bypassing the
    /// store: for tests that look at what is really stored.
    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Connection;
        match self.kind {
            Kind::Sqlite => {
                let mut conn =
                    sqlx::SqliteConnection::connect(&self.options.url).await.expect("connect sqlite");
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut conn)
                    .await
                    .expect("raw query")
            }
            Kind::Postgres => {
                let url = self.pg_admin_url.as_deref().unwrap_or_default();
                let mut conn = sqlx::PgConnection::connect(url).await.expect("connect postgres");
                let set = format!("SET search_path TO {}", self.options.pg_schema);
                sqlx::raw_sql(sqlx::AssertSqlSafe(set)).execute(&mut conn).await.expect("search path");
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut conn)
                    .await
                    .expect("raw query")
            }
        }
    }

    /// Drops the PostgreSQL schema (the SQLite directory goes with `self`).
    pub async fn cleanup(&self) {
        if let Some(url) = &self.pg_admin_url {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
                let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.options.pg_schema);
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
            }
        }
    }
}

pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A test case: receives a fresh database of one kind.
pub type Case = fn(Arc<TestDb>) -> CaseFuture;

/// Runs every case against SQLite, and against PostgreSQL when configured.
pub fn run_cases(cases: &[(&'static str, Case)]) -> ! {
    run_suite(cases, &[])
}

/// Like [`run_cases`], plus cases that only mean something on PostgreSQL
/// (several processes sharing one database); without a database those are
/// reported as ignored.
pub fn run_suite(cases: &[(&'static str, Case)], postgres_only: &[(&'static str, Case)]) -> ! {
    let args = Arguments::from_args();
    let pg = std::env::var(PG_ENV).is_ok();
    let mut trials = Vec::new();
    let runs = cases
        .iter()
        .flat_map(|&(name, case)| [(name, case, Kind::Sqlite), (name, case, Kind::Postgres)])
        .chain(postgres_only.iter().map(|&(name, case)| (name, case, Kind::Postgres)));
    for (name, case, kind) in runs {
        let trial = Trial::test(format!("{}::{name}", kind.name()), move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let db = Arc::new(TestDb::new(kind).await);
                let outcome = tokio::spawn(case(db.clone())).await;
                db.cleanup().await;
                outcome.map_err(|e| {
                    if e.is_panic() {
                        let p = e.into_panic();
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_else(|| "test panicked".to_owned())
                            .into()
                    } else {
                        e.to_string().into()
                    }
                })
            })
        });
        trials.push(trial.with_ignored_flag(kind == Kind::Postgres && !pg));
    }
    libtest_mimic::run(&args, trials).exit()
}

/// Builds the list for [`run_cases`] from async functions taking `Arc<TestDb>`.
#[macro_export]
macro_rules! cases {
    ($($name:path),* $(,)?) => {
        &[$((stringify!($name), |db| Box::pin($name(db)) as $crate::CaseFuture)),*]
    };
}
