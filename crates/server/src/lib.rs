//! The promptvault server: REST API, authentication, caches and the usage
//! writer. A library; the `promptvault` binary calls [`start`].
//!
//! Invariant: handlers reach the data only through [`service::Registry`],
//! whose every public method begins with an authorization decision; SQL
//! stays in `promptvault-store`, rules stay in `promptvault-core`.

pub mod api;
pub mod auth;
pub mod content;
pub mod encryption;
pub mod error;
pub mod isolation;
pub mod jwt;
pub mod observability;
pub mod os_keyring;
pub mod password;
pub mod ratelimit;
pub mod secret;
pub mod service;
pub mod session;
pub mod settings;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::ServiceExt;
use promptvault_core::PromptTypeKey;
use promptvault_store::{NewPromptType, Store, StoreError, StoreOptions};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use auth::Bootstrap;
pub use settings::Settings;

use service::cache::Caches;
use service::usage::{self, UsageConfig, UsageWriter};

/// Why the server could not start (or stop cleanly).
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("database: {0}")]
    Store(StoreError),
    #[error("configuration: {0}")]
    Jwt(#[from] jwt::JwtConfigError),
    #[error("{0}")]
    Io(String),
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    /// `https` under TLS, `http` otherwise.
    scheme: &'static str,
    stop: CancellationToken,
    http: JoinHandle<std::io::Result<()>>,
    usage: UsageWriter,
    audit: service::audit::AuditWriter,
    store: Arc<dyn Store>,
    bootstrap: Option<Bootstrap>,
    upkeep: JoinHandle<()>,
}

/// The built-in prompt type new templates get by default.
pub const DEFAULT_TYPE: &str = "general";

/// Opens the store, prepares it and starts serving.
pub async fn start(settings: Settings) -> Result<Server, StartError> {
    // Transport first: nothing is opened for a start that would be refused.
    let tls_files = settings.tls.files().map_err(settings::SettingsError::Invalid)?;
    tls::check_plain_http(settings.listen, tls_files.is_some(), settings.allow_insecure_http)
        .map_err(settings::SettingsError::Invalid)?;
    let tls_config = match tls_files {
        Some((cert, key)) => Some(tls::load(cert, key).await.map_err(StartError::Io)?),
        None => None,
    };
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        StartError::Io(format!("cannot create data directory {}: {e}", settings.data_dir.display()))
    })?;
    // The governance files are checked before anything is opened.
    let governance_files = service::governance::read_files(&settings.governance)?;
    let idp = identity_provider(&settings.auth.jwt)?;
    let mut options = StoreOptions::new(settings.database_url().expose());
    options.pg_schema = settings.pg_schema.clone();
    options.max_connections = settings.max_connections;
    let keys = encryption::resolve(&settings).map_err(|e| StartError::Io(format!("encryption: {e}")))?;
    options.encryption = keys.options.clone();
    encryption::save_generated(&keys).map_err(|e| StartError::Io(format!("encryption: {e}")))?;
    let opened = promptvault_store::connect(&options).await;
    encryption::settle_generated(&keys, opened.is_ok());
    let store = opened.map_err(StartError::Store)?;
    drop(keys);
    let signer = encryption::InstanceSigner::load(store.as_ref()).await.map_err(StartError::Store)?;
    let stop = CancellationToken::new();
    let reseal = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(encryption::reencrypt_worker(
        store.clone(),
        reseal.clone(),
        settings.encryption.reencrypt_batch.max(1),
        Duration::from_secs(settings.encryption.reencrypt_interval_seconds.max(1)),
        stop.clone(),
    ));
    let bootstrap = auth::bootstrap(&store, settings.admin_token.as_ref(), &settings.data_dir).await?;
    ensure_default_type(&store).await?;
    service::governance::apply_files(store.as_ref(), &settings.governance, governance_files).await?;
    let governance = Arc::new(
        service::governance::Governance::new(settings.governance.checks.clone())
            .map_err(|e| StartError::Io(format!("configuration: governance.checks: {e}")))?,
    );
    // Subscribed before the first load, so no change slips in between.
    let governance_changes = store.subscribe();
    governance.reload(store.as_ref()).await.map_err(|e| StartError::Io(format!("governance: {e}")))?;
    tokio::spawn(governance.clone().follow(Arc::downgrade(&store), governance_changes));

    let caches = Arc::new(Caches::new(settings.cache.max_entries));
    tokio::spawn(caches.clone().follow(store.subscribe()));
    let (recorder, usage) = usage::start(
        store.clone(),
        UsageConfig {
            batch_size: settings.usage.batch_size,
            flush_interval: Duration::from_millis(settings.usage.flush_interval_ms),
            queue_capacity: settings.usage.queue_capacity,
        },
    );
    let alerts = promptvault_core::audit::AlertTracker::new(settings.audit.alerts.clone())
        .map_err(|e| StartError::Io(format!("configuration: audit.alerts: {e}")))?;
    let (audit_log, audit) = service::audit::start(store.clone(), settings.audit.detail, alerts);
    let content = content::ContentPolicy::new(settings.content.clone(), content::FilterRegistry::default())
        .map_err(|e| StartError::Io(format!("configuration: {e}")))?;
    let engine = match settings.render_workers()? {
        None => isolation::Engine::InProcess,
        Some(config) => {
            let program = config.program.display().to_string();
            let pool = Arc::new(isolation::Pool::new(config));
            pool.check().await.map_err(|e| {
                StartError::Io(format!(
                    "the render worker ({program}) does not work: {e}; set [render] worker_command, or isolation = \"none\""
                ))
            })?;
            isolation::Engine::Isolated(pool)
        }
    };
    let registry = Arc::new(
        service::Registry::new(
            store.clone(),
            caches,
            recorder,
            audit_log,
            settings.default_label(),
            settings.render_limits(),
        )
        .with_governance(governance)
        .with_protected_labels(settings.protected_labels())
        .with_sessions(settings.auth.sessions)
        .with_encryption(signer, reseal)
        .with_content(Arc::new(content))
        .with_delivery(settings.deployment_rules.clone())
        .with_engine(engine),
    );
    let metrics = observability::metrics_handle();
    let upkeep = {
        let handle = metrics.clone();
        let store = store.clone();
        let retention_days = settings.audit.retention_days;
        tokio::spawn(async move {
            let mut last_purge: Option<std::time::Instant> = None;
            let mut last_sweep = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                handle.run_upkeep();
                if last_sweep.elapsed() >= Duration::from_secs(600) {
                    last_sweep = std::time::Instant::now();
                    match store.delete_expired_sessions(chrono::Utc::now()).await {
                        Ok(n) if n > 0 => tracing::info!(sessions = n, "expired web sessions removed"),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %crate::content::redact_secrets(&e.to_string()), "could not remove expired web sessions")
                        }
                    }
                }
                if retention_days > 0 && last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                    last_purge = Some(std::time::Instant::now());
                    purge_audit(&store, retention_days).await;
                }
            }
        })
    };
    let mut auth =
        auth::Authenticator::new(store.clone(), registry.auth_epoch(), registry.audit_log().clone())
            .with_sessions(settings.auth.sessions);
    if let Some(idp) = idp {
        check_default_role(&store, idp.default_role()).await;
        auth = auth.with_identity_provider(idp);
    }
    let auth = Arc::new(auth);
    let limiter = settings.rate_limit.limiter().map_err(settings::SettingsError::Invalid)?;
    let state = state::AppState { registry, auth, metrics, body_limit: settings.body_limit_bytes, limiter };
    let mut router = api::app(state);
    if tls_config.is_some() {
        router = router.layer(SetResponseHeaderLayer::overriding(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static(tls::HSTS),
        ));
    }
    let app = axum::middleware::map_request(|req| async move { api::rewrite_uri(req) }).layer(router);
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| StartError::Io(format!("cannot listen on {}: {e}", settings.listen)))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| StartError::Io(format!("cannot read the listening address: {e}")))?;
    let signal = stop.clone();
    let scheme = if tls_config.is_some() { "https" } else { "http" };
    let http = match tls_config {
        None => tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { signal.cancelled().await })
                .await
        }),
        Some(config) => {
            let listener = listener
                .into_std()
                .map_err(|e| StartError::Io(format!("cannot listen on {}: {e}", settings.listen)))?;
            let handle = axum_server::Handle::new();
            let server = axum_server::tls_rustls::from_tcp_rustls(listener, config)
                .map_err(|e| StartError::Io(format!("cannot listen on {}: {e}", settings.listen)))?
                .handle(handle.clone());
            // Same as plain HTTP: stop accepting, let requests in flight finish.
            tokio::spawn(async move {
                signal.cancelled().await;
                handle.graceful_shutdown(None);
            });
            // axum-server hands hyper's body type; a router adapts it to axum's.
            let app = axum::Router::new().fallback_service(app);
            tokio::spawn(async move {
                server.serve(app.into_make_service_with_connect_info::<SocketAddr>()).await
            })
        }
    };
    tracing::info!(%local_addr, scheme, backend = store.backend().as_str(), "promptvault listening");
    Ok(Server { local_addr, scheme, stop, http, usage, audit, store, bootstrap, upkeep })
}

/// The `[auth.jwt]` identity provider, when enabled; bad settings stop the
/// start with what to change.
fn identity_provider(settings: &jwt::JwtSettings) -> Result<Option<auth::IdentityProvider>, StartError> {
    if !settings.enabled {
        if settings.hs256_secret.is_some()
            || settings.hs256_secret_file.is_some()
            || settings.jwks_url.is_some()
        {
            tracing::warn!("auth.jwt has keys configured but enabled = false: JWTs are not accepted");
        }
        return Ok(None);
    }
    // reqwest needs a TLS provider installed before the first client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .user_agent(concat!("promptvault/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| StartError::Io(format!("cannot build the HTTP client for auth.jwt.jwks_url: {e}")))?;
    let idp = auth::IdentityProvider::new(settings, http)?;
    tracing::info!(?idp, "bearer JWTs of the identity provider are accepted");
    Ok(Some(idp))
}

/// Warns when provisioned users would get no role because the default one
/// does not exist (a custom role may still be created later).
async fn check_default_role(store: &Arc<dyn Store>, role: Option<&str>) {
    let Some(role) = role else { return };
    if promptvault_core::authz::builtin::role_named(role).is_some() {
        return;
    }
    if let Ok(None) = store.get_role(role).await {
        tracing::warn!(role, "auth.jwt.default_role is neither a built-in nor a custom role (yet)");
    }
}

/// Retention: purges audit events older than the configured age (hourly),
/// and records the purge as an event of its own.
async fn purge_audit(store: &Arc<dyn Store>, days: u32) {
    use promptvault_core::audit::{AuditOutcome, NewAuditEvent};
    let now = promptvault_core::model::truncate_to_micros(chrono::Utc::now());
    let before = now - chrono::Duration::days(i64::from(days));
    match store.purge_audit(before, now).await {
        Ok(r) if r.purged > 0 => {
            tracing::info!(purged = r.purged, days, "audit retention purge");
            let mut ev = NewAuditEvent::new(now, "system", "audit.delete", "audit", AuditOutcome::Success);
            ev.reason = Some(format!("retention: events older than {days} days"));
            ev.details = serde_json::json!({
                "purged": r.purged,
                "through_seq": r.checkpoint.as_ref().map(|c| c.through_seq),
            });
            if let Err(e) = store.append_audit(vec![ev]).await {
                tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "could not record the retention purge");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %crate::content::redact_secrets(&e.to_string()), "audit retention purge failed")
        }
    }
}

async fn ensure_default_type(store: &Arc<dyn Store>) -> Result<(), StartError> {
    let key = PromptTypeKey::parse(DEFAULT_TYPE).map_err(|e| StartError::Io(e.to_string()))?;
    if store.get_prompt_type(&key).await.map_err(StartError::Store)?.is_some() {
        return Ok(());
    }
    let created = store
        .create_prompt_type(
            NewPromptType {
                key,
                name: "General".into(),
                schema: None,
                policy: promptvault_core::authz::TypePolicy::default(),
            },
            promptvault_core::model::truncate_to_micros(chrono::Utc::now()).into(),
        )
        .await;
    match created {
        // Another process created it meanwhile: fine.
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(StartError::Store(e)),
    }
}

impl Server {
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the server answers: `https://…` under TLS, `http://…` without.
    #[must_use]
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.local_addr)
    }

    /// What the first start created, if this was it.
    #[must_use]
    pub fn bootstrap(&self) -> Option<&Bootstrap> {
        self.bootstrap.as_ref()
    }

    /// Stops accepting connections, lets requests in flight finish, writes
    /// every queued usage record, and closes the database.
    pub async fn shutdown(self) -> Result<(), StartError> {
        self.stop.cancel();
        let served = self.http.await;
        self.usage.shutdown().await;
        self.audit.shutdown().await;
        self.upkeep.abort();
        self.store.close().await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StartError::Io(format!("server error: {e}"))),
            Err(e) => Err(StartError::Io(format!("server task failed: {e}"))),
        }
    }
}
