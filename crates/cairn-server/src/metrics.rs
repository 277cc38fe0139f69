//! Prometheus metrics: requests by route and status, request latency, watchers held and
//! configs cached.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use dashmap::DashMap;
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
        let (held, watched_keys) = state.service.watch_counts();
        metrics::gauge!("cairn_watchers_held").set(held as f64);
        metrics::gauge!("cairn_watched_keys").set(watched_keys as f64);
        metrics::gauge!("cairn_configs_cached").set(state.service.configs_cached() as f64);
        metrics::gauge!("cairn_grpc_connections").set(state.grpc_connections.len() as f64);
        metrics::gauge!("cairn_grpc_listens").set(state.grpc_connections.listens() as f64);
        let unbuffered = state.connections.unbuffered.load(Ordering::Relaxed);
        metrics::counter!("cairn_long_polls_unbuffered_total").absolute(unbuffered);
        let direct = state.connections.direct_reads.load(Ordering::Relaxed);
        metrics::counter!("cairn_reads_direct_total").absolute(direct);
        self.handle.render()
    }
}

/// The metric handles of one route, method and status, registered once: looking a
/// labelled metric up by its labels on every request costs more than serving a read.
struct Handles {
    requests: metrics::Counter,
    latency: metrics::Histogram,
}

/// A route is known by the address of its template: axum hands every request of a route
/// a clone of the same shared string, so no copy of the template is made per request.
type HandleKey = (usize, Method, u16);

static HANDLES: OnceLock<DashMap<HandleKey, Handles, foldhash::fast::RandomState>> =
    OnceLock::new();

/// Counts a request of `route` answered with `status` after `elapsed` seconds. The
/// handles are used where they are kept, not cloned out: a wake-up answers thousands
/// of watches at once.
fn count(route: &str, method: &Method, status: u16, elapsed: f64) {
    let map = HANDLES.get_or_init(DashMap::default);
    let key = (route.as_ptr() as usize, method.clone(), status);
    let count = |handles: &Handles| {
        handles.requests.increment(1);
        handles.latency.record(elapsed);
    };
    if let Some(found) = map.get(&key) {
        return count(&found);
    }
    let made = Handles {
        requests: metrics::counter!("cairn_http_requests_total",
            "method" => method.as_str().to_owned(),
            "route" => route.to_owned(),
            "status" => status.to_string()),
        latency: metrics::histogram!(LATENCY,
            "method" => method.as_str().to_owned(),
            "route" => route.to_owned()),
    };
    count(&made);
    map.insert(key, made);
}

/// Counts and times a request answered without the router (the connection layer's
/// direct reads) under the route template the router would have matched.
pub fn record(route: &'static str, method: &Method, status: u16, started: Instant) {
    count(route, method, status, started.elapsed().as_secs_f64());
}

/// Middleware counting each request by route template and status, and timing it. Its
/// future wraps the route's inline — no box, no clone of the inner service — because a
/// parked long poll keeps it for as long as it waits (see BENCHMARKS.md).
#[derive(Clone, Copy, Default)]
pub struct Track;

impl<S> tower::Layer<S> for Track {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

/// A route's service with [`Track`] around it.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Tracked<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        TrackedFuture {
            route: request.extensions().get::<MatchedPath>().cloned(),
            method: request.method().clone(),
            started: Instant::now(),
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's response future, counted and timed when it completes.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
        method: Method,
        started: Instant,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &output {
            count(
                this.route.as_ref().map_or("unmatched", |r| r.as_str()),
                this.method,
                response.status().as_u16(),
                this.started.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(output)
    }
}

/// Counts a failed database call. Called where store errors become service or auth
/// errors, so the count is true whichever surface (or background task) met it.
pub fn database_error(during: &'static str) {
    metrics::counter!("cairn_database_errors_total", "during" => during).increment(1);
}
