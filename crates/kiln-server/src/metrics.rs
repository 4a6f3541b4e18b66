//! Prometheus metrics at `GET /-/metrics` (text format 0.0.4): HTTP requests by method,
//! route (the route's template, so that the labels stay few whatever is asked) and status
//! with a latency histogram, counted as they are answered; builds' wait for a runner,
//! runners in a long poll, trace bytes and webhook attempts, counted as they happen; builds
//! by status, the pending queue, pending deliveries and the database pools, read at each
//! scrape.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A request matched by no route: one label, whatever its path.
const UNMATCHED: &str = "unmatched";

/// Upper bounds of the claim-wait histogram's buckets, in seconds: a build may wait for a
/// runner for minutes.
const WAIT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Observations by bucket (not cumulative here; summed when written), their sum and count.
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<u64>,
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: vec![0; bounds.len()],
            sum_seconds: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        if let Some(bucket) = self.bounds.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket] += 1;
        }
        self.sum_seconds += seconds;
        self.count += 1;
    }

    /// The series of `name` with `labels` (`a="b",c="d"`, or empty).
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

struct RouteStats {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats {
            statuses: BTreeMap::new(),
            latency: Histogram::new(&BUCKETS),
        }
    }
}

pub struct Metrics {
    /// By route template (as axum writes it) and method: a request allocates nothing.
    routes: Mutex<HashMap<String, HashMap<String, RouteStats>>>,
    /// Webhook attempts by event and whether the receiver took them.
    webhook_attempts: Mutex<BTreeMap<(&'static str, bool), u64>>,
    /// How long claimed builds waited for a runner (queued → claimed).
    claim_wait: Mutex<Histogram>,
    /// Runners waiting in a long poll now.
    long_poll_waiters: AtomicI64,
    /// Trace bytes received from runners (remote and embedded).
    trace_bytes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            routes: Mutex::default(),
            webhook_attempts: Mutex::default(),
            claim_wait: Mutex::new(Histogram::new(&WAIT_BUCKETS)),
            long_poll_waiters: AtomicI64::new(0),
            trace_bytes: AtomicU64::new(0),
        }
    }
}

/// Counts a runner as waiting in a long poll for as long as it lives.
pub struct Waiting<'a>(&'a Metrics);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.long_poll_waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A build claimed after waiting `seconds` since it was queued.
    pub fn claimed_after(&self, seconds: f64) {
        if let Ok(mut histogram) = self.claim_wait.lock() {
            histogram.observe(seconds.max(0.0));
        }
    }

    /// A runner starts waiting in a long poll; it stops when the guard goes.
    pub fn long_poll(&self) -> Waiting<'_> {
        self.long_poll_waiters.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    pub fn trace_received(&self, bytes: usize) {
        self.trace_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn write_runners(&self, out: &mut String) {
        out.push_str("# HELP kiln_build_claim_wait_seconds How long builds waited for a runner, from queued to claimed.\n");
        out.push_str("# TYPE kiln_build_claim_wait_seconds histogram\n");
        if let Ok(histogram) = self.claim_wait.lock() {
            histogram.write(out, "kiln_build_claim_wait_seconds", "");
        }
        out.push_str("# HELP kiln_long_poll_waiters Runners waiting in POST /api/v4/jobs/request now.\n# TYPE kiln_long_poll_waiters gauge\n");
        let _ = writeln!(
            out,
            "kiln_long_poll_waiters {}",
            self.long_poll_waiters.load(Ordering::Relaxed)
        );
        out.push_str("# HELP kiln_trace_bytes_total Bytes of job logs received.\n# TYPE kiln_trace_bytes_total counter\n");
        let _ = writeln!(
            out,
            "kiln_trace_bytes_total {}",
            self.trace_bytes.load(Ordering::Relaxed)
        );
    }

    /// Counts one attempt at a webhook delivery.
    pub fn webhook_attempt(&self, event: kiln_store::HookEvent, delivered: bool) {
        if let Ok(mut attempts) = self.webhook_attempts.lock() {
            *attempts.entry((event.as_str(), delivered)).or_default() += 1;
        }
    }

    fn write_webhooks(&self, out: &mut String) {
        let Ok(attempts) = self.webhook_attempts.lock() else {
            return;
        };
        out.push_str("# HELP kiln_webhook_attempts_total Webhook delivery attempts, by event and outcome (delivered: a 2xx answer).\n");
        out.push_str("# TYPE kiln_webhook_attempts_total counter\n");
        for ((event, delivered), n) in attempts.iter() {
            let outcome = if *delivered { "delivered" } else { "failed" };
            let _ = writeln!(
                out,
                "kiln_webhook_attempts_total{{event=\"{event}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), HashMap::new());
        }
        let Some(methods) = routes.get_mut(route) else {
            return;
        };
        if !methods.contains_key(method) {
            methods.insert(method.to_owned(), RouteStats::default());
        }
        let Some(stats) = methods.get_mut(method) else {
            return;
        };
        *stats.statuses.entry(status).or_default() += 1;
        stats.latency.observe(seconds);
    }

    fn write_http(&self, out: &mut String) {
        let Ok(routes) = self.routes.lock() else {
            return;
        };
        let mut series: Vec<((&str, String), &RouteStats)> = routes
            .iter()
            .flat_map(|(route, methods)| {
                methods
                    .iter()
                    .map(move |(method, stats)| ((method.as_str(), rails_style(route)), stats))
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        out.push_str("# HELP kiln_http_requests_total HTTP requests answered, by method, route and status.\n");
        out.push_str("# TYPE kiln_http_requests_total counter\n");
        for ((method, route), stats) in &series {
            let (method, route) = (label(method), label(route));
            for (status, n) in &stats.statuses {
                let _ = writeln!(
                    out,
                    "kiln_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP kiln_http_request_duration_seconds Time to answer an HTTP request (to its headers).\n");
        out.push_str("# TYPE kiln_http_request_duration_seconds histogram\n");
        for ((method, route), stats) in &series {
            let labels = format!("method=\"{}\",route=\"{}\"", label(method), label(route));
            stats
                .latency
                .write(out, "kiln_http_request_duration_seconds", &labels);
        }
    }
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A route template as GitLab names its routes (`/projects/:id/jobs`, `/raw/*path`), which
/// also keeps braces out of label values, where naive parsers stop.
fn rails_style(template: &str) -> String {
    template
        .replace("{*", "*")
        .replace('{', ":")
        .replace('}', "")
}

/// Counts each request under its route's template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    state
        .metrics
        .observe(method.as_str(), route, response.status().as_u16(), seconds);
    response
}

/// `GET /-/metrics`
pub async fn scrape(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    state.metrics.write_http(&mut out);
    state.metrics.write_webhooks(&mut out);
    state.metrics.write_runners(&mut out);
    match state.store.gauges().await {
        Ok(gauges) => write_gauges(&mut out, &gauges, kiln_store::now_ms()),
        Err(err) => tracing::warn!(error = %err, "metrics: the database did not answer"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn write_gauges(out: &mut String, gauges: &kiln_store::Gauges, now: i64) {
    out.push_str(
        "# HELP kiln_builds Builds of every project, by status.\n# TYPE kiln_builds gauge\n",
    );
    for (status, n) in &gauges.builds {
        let _ = writeln!(out, "kiln_builds{{status=\"{}\"}} {n}", label(status));
    }
    out.push_str("# HELP kiln_pending_builds Builds waiting for a runner.\n# TYPE kiln_pending_builds gauge\n");
    let _ = writeln!(out, "kiln_pending_builds {}", gauges.pending);
    out.push_str("# HELP kiln_pending_oldest_age_seconds How long the longest-waiting pending build has waited.\n# TYPE kiln_pending_oldest_age_seconds gauge\n");
    let age = gauges
        .oldest_pending_queued_at
        .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
    let _ = writeln!(out, "kiln_pending_oldest_age_seconds {age}");
    out.push_str("# HELP kiln_webhook_pending_deliveries Webhook deliveries waiting to be sent.\n# TYPE kiln_webhook_pending_deliveries gauge\n");
    let _ = writeln!(
        out,
        "kiln_webhook_pending_deliveries {}",
        gauges.pending_deliveries
    );
    out.push_str("# HELP kiln_db_pool_connections Database connections, by pool and state.\n# TYPE kiln_db_pool_connections gauge\n");
    for (pool, size, idle) in &gauges.pools {
        let _ = writeln!(
            out,
            "kiln_db_pool_connections{{pool=\"{pool}\",state=\"idle\"}} {idle}"
        );
        let in_use = size.saturating_sub(*idle);
        let _ = writeln!(
            out,
            "kiln_db_pool_connections{{pool=\"{pool}\",state=\"in_use\"}} {in_use}"
        );
    }
}
