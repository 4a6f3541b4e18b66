//! Integration tests: the real server on an ephemeral port over a fresh database (SQLite by
//! default, PostgreSQL with `KILN_TEST_DATABASE_URL`), talked to over HTTP.

mod helpers;

mod api_edges;
mod auth;
mod builds_v3;
mod cluster;
mod commit_statuses;
mod health;
mod http_edge;
mod http_limits;
mod jobs_v4;
mod openapi;
mod pagination;
mod pipelines;
mod pipelines_v4;
mod projects;
mod protected_branches;
mod push_hook;
mod route_matrix;
mod runner_protocol;
mod runners_api;
mod schedules;
mod triggers;
mod variables;
mod web;
mod web_badges;
mod web_log;
mod web_matrix;
mod web_settings;
mod webhooks;
