//! What every handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Authenticator;
use crate::service::Registry;

#[derive(Clone, Debug)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub auth: Arc<Authenticator>,
    pub metrics: PrometheusHandle,
    pub body_limit: usize,
    /// Token buckets per credential, when `[rate_limit]` is enabled.
    pub limiter: Option<Arc<crate::ratelimit::RateLimiter>>,
}
