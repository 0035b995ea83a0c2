//! The process-wide metrics recorder.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder, installed on first use. Metrics are process-wide by
/// nature; this is the one piece of global state, and it only counts.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("promptvault_usage_batch_seconds".into()),
                        &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
                    )
                });
            let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(h) => h,
                // Another recorder owns the process (e.g. an embedding
                // application); keep a private one so /metrics still works.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe_counter!("http_requests_total", "HTTP requests by method, route and status");
            describe_histogram!("http_request_duration_seconds", Unit::Seconds, "HTTP request latency");
            describe_counter!("promptvault_renders_total", "Templates rendered");
            describe_counter!("promptvault_cache_lookups_total", "Cache lookups by cache and result");
            describe_gauge!("promptvault_usage_queue_depth", "Usage records waiting to be written");
            describe_counter!("promptvault_usage_records_written_total", "Usage records written");
            describe_counter!("promptvault_usage_write_errors_total", "Failed usage batch writes");
            describe_histogram!(
                "promptvault_usage_batch_seconds",
                Unit::Seconds,
                "Time to write one usage batch"
            );
            handle
        })
        .clone()
}
