//! Prometheus metrics at `GET /-/metrics` (text format 0.0.4): HTTP requests by method,
//! route (the route's template, so that the labels stay few whatever is asked) and status
//! with a latency histogram, counted as they are answered; builds by status, the pending
//! queue and the database pools, read at each scrape.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A request matched by no route: one label, whatever its path.
const UNMATCHED: &str = "unmatched";

#[derive(Default)]
struct RouteStats {
    statuses: BTreeMap<u16, u64>,
    /// Requests at or under each bound (not cumulative here; summed when written).
    buckets: [u64; BUCKETS.len()],
    sum_seconds: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    routes: Mutex<HashMap<(String, String), RouteStats>>,
    /// Webhook attempts by event and whether the receiver took them.
    webhook_attempts: Mutex<BTreeMap<(&'static str, bool), u64>>,
}

impl Metrics {
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
        let stats = routes
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        *stats.statuses.entry(status).or_default() += 1;
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            stats.buckets[bucket] += 1;
        }
        stats.sum_seconds += seconds;
        stats.count += 1;
    }

    fn write_http(&self, out: &mut String) {
        let Ok(routes) = self.routes.lock() else {
            return;
        };
        let mut keys: Vec<_> = routes.keys().collect();
        keys.sort();
        out.push_str("# HELP kiln_http_requests_total HTTP requests answered, by method, route and status.\n");
        out.push_str("# TYPE kiln_http_requests_total counter\n");
        for key in &keys {
            let (method, route) = (label(&key.0), label(&key.1));
            for (status, n) in &routes[*key].statuses {
                let _ = writeln!(
                    out,
                    "kiln_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP kiln_http_request_duration_seconds Time to answer an HTTP request (to its headers).\n");
        out.push_str("# TYPE kiln_http_request_duration_seconds histogram\n");
        for key in &keys {
            let (method, route) = (label(&key.0), label(&key.1));
            let stats = &routes[*key];
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(stats.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "kiln_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            let _ = writeln!(
                out,
                "kiln_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                stats.count
            );
            let _ = writeln!(
                out,
                "kiln_http_request_duration_seconds_sum{{{labels}}} {}",
                stats.sum_seconds
            );
            let _ = writeln!(
                out,
                "kiln_http_request_duration_seconds_count{{{labels}}} {}",
                stats.count
            );
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
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| rails_style(m.as_str()));
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    state
        .metrics
        .observe(&method, &route, response.status().as_u16(), seconds);
    response
}

/// `GET /-/metrics`
pub async fn scrape(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    state.metrics.write_http(&mut out);
    state.metrics.write_webhooks(&mut out);
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
