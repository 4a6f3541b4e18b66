//! Projects, members and users as each version shows them: GitLab 8.x's `Entities::Project`
//! and current GitLab's `Entities::Project` / `BasicProjectDetails`, `Entities::Member`.
//!
//! Kiln keeps no namespace records: a namespace is the first part of a project's path, shown
//! with an id derived from that path (stable on every server) and kind `group`.

use super::time::utc;
use super::v3::gravatar;
use super::ApiVersion;
use kiln_core::{AccessLevel, Visibility};
use kiln_store::{MemberRecord, ProjectAccess, ProjectRecord, UserRecord};
use serde_json::{json, Value};

/// A namespace's id: FNV-1a of its path, within 31 bits.
pub fn namespace_id(path: &str) -> i64 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in path.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i64::from(hash & 0x7fff_ffff)
}

pub fn visibility_level(visibility: Visibility) -> i64 {
    match visibility {
        Visibility::Private => 0,
        Visibility::Internal => 10,
        Visibility::Public => 20,
    }
}

pub struct Presenter<'a> {
    pub external_url: &'a str,
    pub version: ApiVersion,
}

impl Presenter<'_> {
    /// The project's web page, its HTTP clone URL and its SSH one.
    pub fn urls(&self, p: &ProjectRecord) -> (String, String, String) {
        let host = self
            .external_url
            .split_once("://")
            .map_or(self.external_url, |(_, rest)| rest)
            .split(['/', ':'])
            .next()
            .unwrap_or("localhost")
            .to_owned();
        let web = format!("{}/{}", self.external_url, p.full_path());
        (
            web.clone(),
            format!("{web}.git"),
            format!("git@{host}:{}.git", p.full_path()),
        )
    }

    /// `simple=true` in v4: `BasicProjectDetails`.
    pub fn simple(&self, p: &ProjectRecord) -> Value {
        let (web, http, ssh) = self.urls(p);
        json!({
            "id": p.id,
            "description": "",
            "name": p.name,
            "name_with_namespace": format!("{} / {}", p.namespace, p.name),
            "path": p.path,
            "path_with_namespace": p.full_path(),
            "created_at": utc(p.created_at),
            "default_branch": p.default_branch,
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": ssh,
            "http_url_to_repo": http,
            "web_url": web,
            "readme_url": null,
            "forks_count": 0,
            "avatar_url": null,
            "star_count": 0,
            "last_activity_at": utc(p.created_at),
            "namespace": self.namespace(p),
        })
    }

    fn namespace(&self, p: &ProjectRecord) -> Value {
        let id = namespace_id(&p.namespace);
        match self.version {
            ApiVersion::V3 => json!({
                "id": id,
                "name": p.namespace,
                "path": p.namespace,
                "kind": "group",
                "full_path": p.namespace,
            }),
            ApiVersion::V4 => json!({
                "id": id,
                "name": p.namespace,
                "path": p.namespace,
                "kind": "group",
                "full_path": p.namespace,
                "parent_id": null,
                "avatar_url": null,
                "web_url": format!("{}/groups/{}", self.external_url, p.namespace),
            }),
        }
    }

    /// The whole project, with the caller's permissions in it.
    pub fn project(&self, access: &ProjectAccess) -> Value {
        let p = &access.project;
        let permissions = json!({
            "project_access": access.access.map(|level| json!({
                "access_level": level.value(),
                "notification_level": 3,
            })),
            "group_access": null,
        });
        let (web, http, ssh) = self.urls(p);
        match self.version {
            ApiVersion::V3 => json!({
                "id": p.id,
                "description": "",
                "default_branch": p.default_branch,
                "tag_list": [],
                "public": p.visibility == Visibility::Public,
                "archived": false,
                "visibility_level": visibility_level(p.visibility),
                "ssh_url_to_repo": ssh,
                "http_url_to_repo": http,
                "web_url": web,
                "name": p.name,
                "name_with_namespace": format!("{} / {}", p.namespace, p.name),
                "path": p.path,
                "path_with_namespace": p.full_path(),
                "container_registry_enabled": false,
                "issues_enabled": false,
                "merge_requests_enabled": false,
                "wiki_enabled": false,
                "builds_enabled": true,
                "snippets_enabled": false,
                "lfs_enabled": false,
                "created_at": utc(p.created_at),
                "last_activity_at": utc(p.created_at),
                "shared_runners_enabled": true,
                "creator_id": null,
                "namespace": self.namespace(p),
                "avatar_url": null,
                "star_count": 0,
                "forks_count": 0,
                "open_issues_count": 0,
                "public_builds": true,
                "shared_with_groups": [],
                "only_allow_merge_if_build_succeeds": false,
                "request_access_enabled": false,
                "permissions": permissions,
            }),
            ApiVersion::V4 => {
                let mut out = self.simple(p);
                let more = json!({
                    "visibility": p.visibility.as_str(),
                    "repository_access_level": "enabled",
                    "builds_access_level": "enabled",
                    "jobs_enabled": true,
                    "archived": false,
                    "empty_repo": p.repo_url.is_none(),
                    "shared_runners_enabled": true,
                    "public_jobs": true,
                    "build_timeout": p.build_timeout,
                    "ci_config_path": null,
                    "creator_id": null,
                    "import_status": "none",
                    "open_issues_count": 0,
                    "shared_with_groups": [],
                    "only_allow_merge_if_pipeline_succeeds": false,
                    "request_access_enabled": false,
                    "permissions": permissions,
                    "_links": {
                        "self": format!("{}/api/v4/projects/{}", self.external_url, p.id),
                        "members": format!("{}/api/v4/projects/{}/members", self.external_url, p.id),
                    },
                });
                super::merge_json(&mut out, more);
                out
            }
        }
    }

    /// `Entities::Member`: the user (v3 `UserBasic`, v4 `UserBasic`) and their level.
    pub fn member(&self, m: &MemberRecord) -> Value {
        let mut out = self.user_basic(&m.user);
        super::merge_json(
            &mut out,
            json!({ "access_level": m.access.value(), "expires_at": null }),
        );
        out
    }

    pub fn user_basic(&self, u: &UserRecord) -> Value {
        let web_url = match self.version {
            ApiVersion::V3 => format!("{}/u/{}", self.external_url, u.username),
            ApiVersion::V4 => format!("{}/{}", self.external_url, u.username),
        };
        json!({
            "id": u.id,
            "username": u.username,
            "name": u.name,
            "state": u.state,
            "locked": false,
            "avatar_url": gravatar(&u.email),
            "web_url": web_url,
        })
    }

    /// `GET /users/:id` and `/users?username=`: a user as any signed-in caller sees them.
    pub fn user(&self, u: &UserRecord) -> Value {
        let mut out = self.user_basic(u);
        super::merge_json(
            &mut out,
            json!({
                "created_at": utc(u.created_at),
                "bio": u.bio.clone().unwrap_or_default(),
                "location": "",
                "public_email": null,
                "skype": u.skype,
                "linkedin": u.linkedin,
                "twitter": u.twitter,
                "website_url": u.website_url,
                "organization": "",
            }),
        );
        out
    }
}

/// The level named in a member request: a number of GitLab's levels.
pub fn access_level(raw: &str) -> Option<AccessLevel> {
    raw.parse::<i64>().ok().and_then(AccessLevel::from_value)
}
