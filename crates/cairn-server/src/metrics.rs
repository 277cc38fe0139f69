//! Prometheus metrics: requests by route and status, request latency, watchers held and
//! configs cached.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::api::AppState;

const LATENCY: &str = "cairn_http_request_duration_seconds";

/// The process-wide recorder; several nodes in one process (tests) share it.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

pub struct Metrics {
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        let handle = HANDLE
            .get_or_init(|| {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full(LATENCY.to_owned()),
                        &[
                            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                            2.5, 5.0, 10.0, 30.0, 60.0,
                        ],
                    )
                    .expect("bucket list is not empty")
                    .install_recorder()
                    .expect("no other metrics recorder is installed")
            })
            .clone();
        Self { handle }
    }
}

impl Metrics {
    /// The metrics in Prometheus text format, with gauges refreshed from `state`.
    pub fn render(&self, state: &AppState) -> String {
        metrics::gauge!("cairn_watchers_held").set(state.service.hub().held() as f64);
        metrics::gauge!("cairn_watched_keys").set(state.service.hub().watched_keys() as f64);
        metrics::gauge!("cairn_configs_cached").set(state.service.cache().len() as f64);
        self.handle.render()
    }
}

/// Middleware counting each request by route template and status, and timing it.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("cairn_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(LATENCY, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
