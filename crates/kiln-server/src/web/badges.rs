//! Badges as GitLab draws them: `/NS/PROJECT/badges/REF/pipeline.svg` (the newest pipeline
//! of the ref; `ignore_skipped`) and `…/coverage.svg` (the newest successful pipeline's
//! coverage, or `job=`'s; `min_good`, `min_acceptable`, `min_medium`), both with `key_text`
//! and `key_width`. Readable by whoever may read the project's builds (anyone, for a public
//! one), and never cached, so a README shows the status of now.

use super::log::escape;
use super::pipelines::{failed, project_for};
use super::session::Visitor;
use crate::query::QueryPairs;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kiln_core::PageRequest;
use kiln_store::{PipelineFilter, ProjectRecord};

const MAX_KEY_TEXT: usize = 64;
const MAX_KEY_WIDTH: u32 = 512;
const DEFAULT_KEY_WIDTH: u32 = 62;

/// What a badge shows: its two halves.
#[derive(Debug, PartialEq)]
pub struct Badge {
    pub key_text: String,
    pub key_width: u32,
    pub value_text: String,
    pub value_width: u32,
    pub value_color: &'static str,
}

/// `key_text` and `key_width` as GitLab takes them: too long or out of range is the default.
fn key(query: &QueryPairs, entity: &str) -> (String, u32) {
    let text = query
        .get("key_text")
        .filter(|t| t.chars().count() <= MAX_KEY_TEXT)
        .unwrap_or(entity)
        .to_owned();
    let width = query
        .get("key_width")
        .and_then(|w| w.parse::<u32>().ok())
        .filter(|w| (1..=MAX_KEY_WIDTH).contains(w))
        .unwrap_or(DEFAULT_KEY_WIDTH);
    (text, width)
}

/// The pipeline badge of a status (`None`: no pipeline, "unknown").
pub fn pipeline_badge(status: Option<&str>, query: &QueryPairs) -> Badge {
    let status = status.unwrap_or("unknown");
    let value_color = match status {
        "success" => "#4c1",
        "failed" => "#e05d44",
        "running" | "pending" => "#dfb317",
        "preparing" => "#a7a7a7",
        _ => "#9f9f9f",
    };
    let (key_text, key_width) = key(query, "pipeline");
    Badge {
        key_text,
        key_width,
        value_text: if status == "success" {
            "passed"
        } else {
            status
        }
        .to_owned(),
        value_width: 54,
        value_color,
    }
}

/// GitLab's thresholds: each falls back to its default, or under the one above it.
fn thresholds(query: &QueryPairs) -> (f64, f64, f64) {
    let number = |name: &str| {
        query
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let good = Some(number("min_good"))
        .filter(|g| (3..=100).contains(g))
        .unwrap_or(95);
    let acceptable = Some(number("min_acceptable"))
        .filter(|a| (2..=good - 1).contains(a))
        .unwrap_or_else(|| 90.min(good - 1));
    let medium = Some(number("min_medium"))
        .filter(|m| (1..=acceptable - 1).contains(m))
        .unwrap_or_else(|| 75.min(acceptable - 1));
    (good as f64, acceptable as f64, medium as f64)
}

/// The coverage badge of a coverage (`None`: "unknown").
pub fn coverage_badge(coverage: Option<f64>, query: &QueryPairs) -> Badge {
    let (key_text, key_width) = key(query, "coverage");
    let coverage = coverage.map(|c| (c * 100.0).round() / 100.0);
    let (good, acceptable, medium) = thresholds(query);
    let value_color = match coverage {
        Some(c) if (good..=100.0).contains(&c) => "#4c1",
        Some(c) if (acceptable..=good).contains(&c) => "#a3c51c",
        Some(c) if (medium..=acceptable).contains(&c) => "#dfb317",
        Some(c) if (0.0..=medium).contains(&c) => "#e05d44",
        _ => "#9f9f9f",
    };
    Badge {
        key_text,
        key_width,
        value_text: coverage.map_or_else(|| "unknown".to_owned(), |c| format!("{c:.2}%")),
        value_width: if coverage.is_some() { 54 } else { 58 },
        value_color,
    }
}

/// GitLab's `badge.svg.erb`.
pub fn svg(badge: &Badge) -> String {
    let (key_w, value_w) = (badge.key_width, badge.value_width);
    let width = key_w + value_w;
    let (key_x, value_x) = (key_w / 2, key_w + value_w / 2);
    let (key, value) = (escape(&badge.key_text), escape(&badge.value_text));
    let color = badge.value_color;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20">
  <linearGradient id="b" x2="0" y2="100%">
    <stop offset="0" stop-color="#bbb" stop-opacity=".1"/>
    <stop offset="1" stop-opacity=".1"/>
  </linearGradient>

  <mask id="a">
    <rect width="{width}" height="20" rx="3" fill="#fff"/>
  </mask>

  <g mask="url(#a)">
    <path fill="#555" d="M0 0h {key_w}v 20H 0z"/>
    <path fill="{color}" d="M{key_w} 0h {value_w}v 20H {key_w}z"/>
    <path fill="url(#b)" d="M0 0h {width}v 20H 0z"/>
  </g>

  <g fill="#fff" text-anchor="middle">
    <g font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11">
      <text x="{key_x}" y="15" fill="#010101" fill-opacity=".3">{key}</text>
      <text x="{key_x}" y="14">{key}</text>
      <text x="{value_x}" y="15" fill="#010101" fill-opacity=".3">{value}</text>
      <text x="{value_x}" y="14">{value}</text>
    </g>
  </g>
</svg>
"##
    )
}

/// `GET /NS/PROJECT/badges/REF/pipeline.svg` and `…/coverage.svg` (REF may hold slashes).
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, rest)): Path<(String, String, String)>,
    query: QueryPairs,
) -> Response {
    let drawn = async {
        let (project, _) = project_for(&state, &visitor, (&namespace, &repo)).await?;
        let badge = match rest.rsplit_once('/') {
            Some((ref_name, "pipeline.svg")) if !ref_name.is_empty() => {
                let ignore = query
                    .get("ignore_skipped")
                    .is_some_and(|v| v == "true" || v == "1");
                let status = state
                    .store
                    .pipelines()
                    .latest_status(project.id, ref_name, ignore)
                    .await?;
                pipeline_badge(status.as_deref(), &query)
            }
            Some((ref_name, "coverage.svg")) if !ref_name.is_empty() => {
                let coverage = coverage_of(&state, &project, ref_name, query.get("job")).await?;
                coverage_badge(coverage, &query)
            }
            _ => return Err(ApiError::NotFoundMessage("404 Not found")),
        };
        Ok::<_, ApiError>(badge)
    };
    match drawn.await {
        Ok(badge) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CONTENT_DISPOSITION, "inline"),
                // GitLab's no_cache_headers: a badge shows the status of now.
                (
                    header::CACHE_CONTROL,
                    "max-age=0, private, must-revalidate, no-store",
                ),
                (header::PRAGMA, "no-cache"),
                (header::EXPIRES, "Fri, 01 Jan 1990 00:00:00 GMT"),
            ],
            svg(&badge),
        )
            .into_response(),
        Err(err) => failed(&visitor, err),
    }
}

/// The coverage of the ref's newest successful pipeline, or of its newest successful job
/// named `job`.
async fn coverage_of(
    state: &AppState,
    project: &ProjectRecord,
    ref_name: &str,
    job: Option<&str>,
) -> Result<Option<f64>, ApiError> {
    if let Some(job) = job.filter(|j| !j.is_empty()) {
        return Ok(state
            .store
            .builds()
            .job_coverage(project.id, ref_name, job)
            .await?);
    }
    let filter = PipelineFilter {
        status: Some("success".to_owned()),
        ref_name: Some(ref_name.to_owned()),
        ..PipelineFilter::default()
    };
    let page = PageRequest {
        page: 1,
        per_page: 1,
    };
    let (pipelines, _) = state
        .store
        .pipelines()
        .find(project.id, &filter, page)
        .await?;
    Ok(pipelines.first().and_then(|p| p.coverage))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> QueryPairs {
        let text: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        QueryPairs::parse(Some(&text))
    }

    #[test]
    fn pipeline_badges_follow_gitlabs_drawing_rules() {
        let none = query(&[]);
        let passed = pipeline_badge(Some("success"), &none);
        assert_eq!(
            passed,
            Badge {
                key_text: "pipeline".into(),
                key_width: 62,
                value_text: "passed".into(),
                value_width: 54,
                value_color: "#4c1"
            }
        );
        assert_eq!(pipeline_badge(Some("failed"), &none).value_color, "#e05d44");
        assert_eq!(
            pipeline_badge(Some("running"), &none).value_color,
            "#dfb317"
        );
        assert_eq!(pipeline_badge(Some("manual"), &none).value_color, "#9f9f9f");
        let unknown = pipeline_badge(None, &none);
        assert_eq!(
            (unknown.value_text.as_str(), unknown.value_color),
            ("unknown", "#9f9f9f")
        );
        let custom = pipeline_badge(
            Some("success"),
            &query(&[("key_text", "build"), ("key_width", "80")]),
        );
        assert_eq!((custom.key_text.as_str(), custom.key_width), ("build", 80));
        let out_of_range = pipeline_badge(
            Some("success"),
            &query(&[("key_text", &"x".repeat(65)), ("key_width", "513")]),
        );
        assert_eq!(
            (out_of_range.key_text.as_str(), out_of_range.key_width),
            ("pipeline", 62)
        );
    }

    #[test]
    fn coverage_badges_colour_by_thresholds() {
        let none = query(&[]);
        let at = |c: f64| coverage_badge(Some(c), &none).value_color;
        assert_eq!(
            [at(95.0), at(90.0), at(75.0), at(10.0)],
            ["#4c1", "#a3c51c", "#dfb317", "#e05d44"]
        );
        let shown = coverage_badge(Some(87.456), &none);
        assert_eq!(
            (shown.value_text.as_str(), shown.value_width),
            ("87.46%", 54)
        );
        let unknown = coverage_badge(None, &none);
        assert_eq!(
            (unknown.value_text.as_str(), unknown.value_width),
            ("unknown", 58)
        );
        // min_good 50: acceptable falls to 49 (under good), medium to 48.
        let low = query(&[("min_good", "50")]);
        assert_eq!(coverage_badge(Some(49.5), &low).value_color, "#a3c51c");
        assert_eq!(coverage_badge(Some(48.5), &low).value_color, "#dfb317");
    }

    #[test]
    fn the_svg_is_gitlabs_with_its_text_escaped() {
        let badge = pipeline_badge(Some("success"), &query(&[("key_text", "<a&b>")]));
        let svg = svg(&badge);
        assert!(svg
            .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"116\" height=\"20\">"));
        assert!(svg.contains("<path fill=\"#4c1\" d=\"M62 0h 54v 20H 62z\"/>"));
        assert!(svg.contains("<text x=\"31\" y=\"14\">&lt;a&amp;b&gt;</text>"));
        assert!(svg.contains("<text x=\"89\" y=\"14\">passed</text>"));
    }
}
