//! The v4 shapes (`lib/api/entities/ci/pipeline.rb`).

use super::time::utc;
use super::v3::{Presenter as V3, User};
use kiln_store::{PipelineRecord, ProjectRecord, UserRecord};
use serde::Serialize;

#[derive(Serialize)]
pub struct Pipeline<'a> {
    pub id: i64,
    pub iid: i64,
    pub project_id: i64,
    pub sha: &'a str,
    #[serde(rename = "ref")]
    pub ref_name: &'a str,
    pub status: &'a str,
    pub source: &'a str,
    pub tag: bool,
    pub yaml_errors: Option<&'a str>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub web_url: String,
    pub user: Option<User<'a>>,
}

pub struct Presenter<'a> {
    pub external_url: &'a str,
}

impl Presenter<'_> {
    pub fn pipeline<'b>(
        &self,
        project: &ProjectRecord,
        p: &'b PipelineRecord,
        user: Option<&'b UserRecord>,
    ) -> Pipeline<'b> {
        let updated = p.finished_at.or(p.started_at).unwrap_or(p.created_at);
        Pipeline {
            id: p.id,
            iid: p.id,
            project_id: p.project_id,
            sha: &p.sha,
            ref_name: &p.ref_name,
            status: &p.status,
            source: &p.source,
            tag: p.tag,
            yaml_errors: p.yaml_errors.as_deref(),
            created_at: utc(p.created_at),
            updated_at: utc(updated),
            started_at: p.started_at.map(utc),
            finished_at: p.finished_at.map(utc),
            web_url: format!(
                "{}/{}/pipelines/{}",
                self.external_url,
                project.full_path(),
                p.id
            ),
            user: user.map(|u| {
                V3 {
                    external_url: self.external_url,
                }
                .user(u)
            }),
        }
    }
}
