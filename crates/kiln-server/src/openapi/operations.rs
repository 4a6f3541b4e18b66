//! The operation table: every method of every route Kiln serves, in the order of their
//! paths. A success status of 0 is "some 2xx" (GitLab's actions answer 200 or 201 by version).

use super::{op, Auth, Body, Operation};

pub fn all() -> Vec<Operation> {
    vec![
        op("GET", "/api/openapi.json", "This document", "operations")
            .auth(Auth::None)
            .answers(200, Body::Json("Document")),
        op("GET", "/", "A project page", "web")
            .auth(Auth::Session)
            .answers(200, Body::Html),
        op("GET", "/-/assets/kiln.css", "List assets kiln.css", "web")
            .auth(Auth::None)
            .answers(200, Body::Raw("text/css")),
        op("GET", "/-/assets/kiln.js", "List assets kiln.js", "web")
            .auth(Auth::None)
            .answers(200, Body::Raw("text/javascript")),
        op("GET", "/-/health", "List health", "operations")
            .auth(Auth::None)
            .answers(200, Body::Raw("text/plain")),
        op("GET", "/-/liveness", "List liveness", "operations")
            .auth(Auth::None)
            .answers(200, Body::Json("Status")),
        op("GET", "/-/metrics", "List metrics", "operations")
            .auth(Auth::None)
            .answers(200, Body::Raw("text/plain")),
        op("GET", "/-/readiness", "List readiness", "operations")
            .auth(Auth::None)
            .answers(200, Body::Json("Readiness")),
        op("GET", "/admin/runners", "List admin runners", "web")
            .auth(Auth::Session)
            .answers(200, Body::Html),
        op(
            "POST",
            "/admin/runners/registration_token",
            "Create admin runners registration token",
            "web",
        )
        .auth(Auth::Session)
        .answers(300, Body::Empty),
        op(
            "POST",
            "/admin/runners/{id}/{action}",
            "Act on admin runners",
            "web",
        )
        .auth(Auth::Session)
        .answers(300, Body::Empty),
        op("POST", "/api/v3/ci/lint", "Lint ci", "v3").answers(0, Body::Json("LintV3")),
        op("GET", "/api/v3/projects", "List projects", "v3").answers(200, Body::List("ProjectV3")),
        op("POST", "/api/v3/projects", "Create projects", "v3")
            .answers(201, Body::Json("ProjectV3")),
        op("GET", "/api/v3/projects/{id}", "Show projects", "v3")
            .answers(200, Body::Json("ProjectV3")),
        op("PUT", "/api/v3/projects/{id}", "Update projects", "v3")
            .answers(200, Body::Json("ProjectV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/builds",
            "List projects builds",
            "v3",
        )
        .answers(200, Body::List("BuildV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/builds/artifacts/{*rest}",
            "Show projects builds artifacts",
            "v3",
        )
        .answers(200, Body::Bytes),
        op(
            "GET",
            "/api/v3/projects/{id}/builds/{build_id}",
            "Show projects builds",
            "v3",
        )
        .answers(200, Body::Json("BuildV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/builds/{build_id}/artifacts",
            "List projects builds artifacts",
            "v3",
        )
        .answers(200, Body::Bytes),
        op(
            "POST",
            "/api/v3/projects/{id}/builds/{build_id}/artifacts/keep",
            "Keep the artifacts of projects builds artifacts",
            "v3",
        )
        .answers(0, Body::Json("BuildV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/builds/{build_id}/cancel",
            "Cancel projects builds",
            "v3",
        )
        .answers(0, Body::Json("BuildV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/builds/{build_id}/erase",
            "Erase projects builds",
            "v3",
        )
        .answers(0, Body::Json("BuildV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/builds/{build_id}/play",
            "Play projects builds",
            "v3",
        )
        .answers(0, Body::Json("BuildV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/builds/{build_id}/retry",
            "Retry projects builds",
            "v3",
        )
        .answers(0, Body::Json("BuildV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/builds/{build_id}/trace",
            "List projects builds trace",
            "v3",
        )
        .answers(200, Body::Raw("text/plain")),
        op(
            "GET",
            "/api/v3/projects/{id}/hooks",
            "List projects hooks",
            "v3",
        )
        .answers(200, Body::List("HookV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/hooks",
            "Create projects hooks",
            "v3",
        )
        .answers(201, Body::Json("HookV3")),
        op(
            "DELETE",
            "/api/v3/projects/{id}/hooks/{hook_id}",
            "Delete projects hooks",
            "v3",
        )
        .answers(0, Body::Json("HookV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/hooks/{hook_id}",
            "Show projects hooks",
            "v3",
        )
        .answers(200, Body::Json("HookV3")),
        op(
            "PUT",
            "/api/v3/projects/{id}/hooks/{hook_id}",
            "Update projects hooks",
            "v3",
        )
        .answers(200, Body::Json("HookV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/members",
            "List projects members",
            "v3",
        )
        .answers(200, Body::List("MemberV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/members",
            "Create projects members",
            "v3",
        )
        .answers(201, Body::Json("MemberV3")),
        op(
            "DELETE",
            "/api/v3/projects/{id}/members/{user_id}",
            "Delete projects members",
            "v3",
        )
        .answers(0, Body::Json("Nothing")),
        op(
            "GET",
            "/api/v3/projects/{id}/members/{user_id}",
            "Show projects members",
            "v3",
        )
        .answers(200, Body::Json("MemberV3")),
        op(
            "PUT",
            "/api/v3/projects/{id}/members/{user_id}",
            "Update projects members",
            "v3",
        )
        .answers(200, Body::Json("MemberV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/protected_branches",
            "List projects protected branches",
            "v3",
        )
        .answers(200, Body::List("ProtectedBranchV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/protected_branches",
            "Create projects protected branches",
            "v3",
        )
        .answers(201, Body::Json("ProtectedBranchV3")),
        op(
            "DELETE",
            "/api/v3/projects/{id}/protected_branches/{*name}",
            "Delete projects protected branches",
            "v3",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v3/projects/{id}/protected_branches/{*name}",
            "Show projects protected branches",
            "v3",
        )
        .answers(200, Body::Json("ProtectedBranchV3")),
        op(
            "PATCH",
            "/api/v3/projects/{id}/protected_branches/{*name}",
            "Update projects protected branches",
            "v3",
        )
        .answers(200, Body::Json("ProtectedBranchV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/repository/branches",
            "List projects repository branches",
            "v3",
        )
        .answers(200, Body::List("BranchV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/repository/branches/{*branch}",
            "Show projects repository branches",
            "v3",
        )
        .answers(200, Body::Json("BranchV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/repository/commits",
            "List projects repository commits",
            "v3",
        )
        .answers(200, Body::List("CommitV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/repository/commits/{sha}",
            "Show projects repository commits",
            "v3",
        )
        .answers(200, Body::Json("CommitV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/repository/commits/{sha}/builds",
            "List projects repository commits builds",
            "v3",
        )
        .answers(200, Body::List("BuildV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/repository/commits/{sha}/statuses",
            "List projects repository commits statuses",
            "v3",
        )
        .answers(200, Body::List("CommitStatusV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/runners",
            "List projects runners",
            "v3",
        )
        .answers(200, Body::List("RunnerV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/statuses/{sha}",
            "Act on projects statuses",
            "v3",
        )
        .answers(0, Body::Json("CommitStatusV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/trigger/builds",
            "Create projects trigger builds",
            "v3",
        )
        .answers(201, Body::Json("TriggerRequestV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/triggers",
            "List projects triggers",
            "v3",
        )
        .answers(200, Body::List("TriggerV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/triggers",
            "Create projects triggers",
            "v3",
        )
        .answers(201, Body::Json("TriggerV3")),
        op(
            "DELETE",
            "/api/v3/projects/{id}/triggers/{trigger}",
            "Delete projects triggers",
            "v3",
        )
        .answers(0, Body::Json("TriggerV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/triggers/{trigger}",
            "Show projects triggers",
            "v3",
        )
        .answers(200, Body::Json("TriggerV3")),
        op(
            "PUT",
            "/api/v3/projects/{id}/triggers/{trigger}",
            "Update projects triggers",
            "v3",
        )
        .answers(200, Body::Json("TriggerV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/variables",
            "List projects variables",
            "v3",
        )
        .answers(200, Body::List("VariableV3")),
        op(
            "POST",
            "/api/v3/projects/{id}/variables",
            "Create projects variables",
            "v3",
        )
        .answers(201, Body::Json("VariableV3")),
        op(
            "DELETE",
            "/api/v3/projects/{id}/variables/{key}",
            "Delete projects variables",
            "v3",
        )
        .answers(0, Body::Json("VariableV3")),
        op(
            "GET",
            "/api/v3/projects/{id}/variables/{key}",
            "Show projects variables",
            "v3",
        )
        .answers(200, Body::Json("VariableV3")),
        op(
            "PUT",
            "/api/v3/projects/{id}/variables/{key}",
            "Update projects variables",
            "v3",
        )
        .answers(200, Body::Json("VariableV3")),
        op("GET", "/api/v3/runners", "List runners", "v3").answers(200, Body::List("RunnerV3")),
        op("GET", "/api/v3/runners/all", "List runners all", "v3")
            .answers(200, Body::List("RunnerV3")),
        op("DELETE", "/api/v3/runners/{id}", "Delete runners", "v3")
            .answers(0, Body::Json("RunnerDetailsV3")),
        op("GET", "/api/v3/runners/{id}", "Show runners", "v3")
            .answers(200, Body::Json("RunnerDetailsV3")),
        op("PUT", "/api/v3/runners/{id}", "Update runners", "v3")
            .answers(200, Body::Json("RunnerDetailsV3")),
        op("GET", "/api/v3/user", "List user", "v3").answers(200, Body::Json("UserV3")),
        op("GET", "/api/v3/users", "List users", "v3").answers(200, Body::List("UserV3")),
        op("GET", "/api/v3/users/{user_id}", "Show users", "v3").answers(200, Body::Json("UserV3")),
        op("GET", "/api/v3/version", "List version", "v3").answers(200, Body::Json("Version")),
        op(
            "GET",
            "/api/v4/admin/ci/variables",
            "List admin ci variables",
            "v4",
        )
        .answers(200, Body::List("Variable")),
        op(
            "POST",
            "/api/v4/admin/ci/variables",
            "Create admin ci variables",
            "v4",
        )
        .answers(201, Body::Json("Variable")),
        op(
            "DELETE",
            "/api/v4/admin/ci/variables/{key}",
            "Delete admin ci variables",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/admin/ci/variables/{key}",
            "Show admin ci variables",
            "v4",
        )
        .answers(200, Body::Json("Variable")),
        op(
            "PUT",
            "/api/v4/admin/ci/variables/{key}",
            "Update admin ci variables",
            "v4",
        )
        .answers(200, Body::Json("Variable")),
        op("POST", "/api/v4/ci/lint", "Lint ci", "v4").answers(0, Body::Json("Lint")),
        op("GET", "/api/v4/job", "List job", "v4").answers(200, Body::Json("Job")),
        op(
            "POST",
            "/api/v4/jobs/request",
            "Request jobs",
            "runner protocol",
        )
        .auth(Auth::Runner)
        .answers(0, Body::Json("JobRequest")),
        op("PUT", "/api/v4/jobs/{id}", "Update jobs", "runner protocol")
            .auth(Auth::Runner)
            .answers(200, Body::Json("StatusCode")),
        op(
            "GET",
            "/api/v4/jobs/{id}/artifacts",
            "List jobs artifacts",
            "runner protocol",
        )
        .auth(Auth::Runner)
        .answers(200, Body::Bytes),
        op(
            "POST",
            "/api/v4/jobs/{id}/artifacts",
            "Create jobs artifacts",
            "runner protocol",
        )
        .auth(Auth::Runner)
        .answers(201, Body::Json("StatusCode")),
        op(
            "PATCH",
            "/api/v4/jobs/{id}/trace",
            "Update jobs trace",
            "runner protocol",
        )
        .auth(Auth::Runner)
        .answers(202, Body::Json("StatusCode")),
        op("GET", "/api/v4/projects", "List projects", "v4").answers(200, Body::List("Project")),
        op("POST", "/api/v4/projects", "Create projects", "v4").answers(201, Body::Json("Project")),
        op("GET", "/api/v4/projects/{id}", "Show projects", "v4")
            .answers(200, Body::Json("Project")),
        op("PUT", "/api/v4/projects/{id}", "Update projects", "v4")
            .answers(200, Body::Json("Project")),
        op(
            "GET",
            "/api/v4/projects/{id}/ci/lint",
            "Lint projects ci",
            "v4",
        )
        .answers(200, Body::Json("ProjectLint")),
        op(
            "POST",
            "/api/v4/projects/{id}/ci/lint",
            "Lint projects ci",
            "v4",
        )
        .answers(0, Body::Json("ProjectLint")),
        op(
            "GET",
            "/api/v4/projects/{id}/hooks",
            "List projects hooks",
            "v4",
        )
        .answers(200, Body::List("Hook")),
        op(
            "POST",
            "/api/v4/projects/{id}/hooks",
            "Create projects hooks",
            "v4",
        )
        .answers(201, Body::Json("Hook")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/hooks/{hook_id}",
            "Delete projects hooks",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/projects/{id}/hooks/{hook_id}",
            "Show projects hooks",
            "v4",
        )
        .answers(200, Body::Json("Hook")),
        op(
            "PUT",
            "/api/v4/projects/{id}/hooks/{hook_id}",
            "Update projects hooks",
            "v4",
        )
        .answers(200, Body::Json("Hook")),
        op(
            "GET",
            "/api/v4/projects/{id}/hooks/{hook_id}/events",
            "List projects hooks events",
            "v4",
        )
        .answers(200, Body::List("HookLog")),
        op(
            "POST",
            "/api/v4/projects/{id}/hooks/{hook_id}/test/{trigger}",
            "Send a test of projects hooks",
            "v4",
        )
        .answers(201, Body::Json("Message")),
        op(
            "GET",
            "/api/v4/projects/{id}/jobs",
            "List projects jobs",
            "v4",
        )
        .answers(200, Body::List("Job")),
        op(
            "GET",
            "/api/v4/projects/{id}/jobs/artifacts/{*rest}",
            "Show projects jobs artifacts",
            "v4",
        )
        .answers(200, Body::Bytes),
        op(
            "GET",
            "/api/v4/projects/{id}/jobs/{job_id}",
            "Show projects jobs",
            "v4",
        )
        .answers(200, Body::Json("Job")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/jobs/{job_id}/artifacts",
            "Delete projects jobs artifacts",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/projects/{id}/jobs/{job_id}/artifacts",
            "List projects jobs artifacts",
            "v4",
        )
        .answers(200, Body::Bytes),
        op(
            "POST",
            "/api/v4/projects/{id}/jobs/{job_id}/artifacts/keep",
            "Keep the artifacts of projects jobs artifacts",
            "v4",
        )
        .answers(0, Body::Json("Job")),
        op(
            "GET",
            "/api/v4/projects/{id}/jobs/{job_id}/artifacts/{*artifact_path}",
            "Show projects jobs artifacts",
            "v4",
        )
        .answers(200, Body::Bytes),
        op(
            "POST",
            "/api/v4/projects/{id}/jobs/{job_id}/cancel",
            "Cancel projects jobs",
            "v4",
        )
        .answers(0, Body::Json("Job")),
        op(
            "POST",
            "/api/v4/projects/{id}/jobs/{job_id}/erase",
            "Erase projects jobs",
            "v4",
        )
        .answers(0, Body::Json("Job")),
        op(
            "POST",
            "/api/v4/projects/{id}/jobs/{job_id}/play",
            "Play projects jobs",
            "v4",
        )
        .answers(0, Body::Json("Job")),
        op(
            "POST",
            "/api/v4/projects/{id}/jobs/{job_id}/retry",
            "Retry projects jobs",
            "v4",
        )
        .answers(0, Body::Json("Job")),
        op(
            "GET",
            "/api/v4/projects/{id}/jobs/{job_id}/trace",
            "List projects jobs trace",
            "v4",
        )
        .answers(200, Body::Raw("text/plain")),
        op(
            "GET",
            "/api/v4/projects/{id}/members",
            "List projects members",
            "v4",
        )
        .answers(200, Body::List("Member")),
        op(
            "POST",
            "/api/v4/projects/{id}/members",
            "Create projects members",
            "v4",
        )
        .answers(201, Body::Json("Member")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/members/{user_id}",
            "Delete projects members",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/projects/{id}/members/{user_id}",
            "Show projects members",
            "v4",
        )
        .answers(200, Body::Json("Member")),
        op(
            "PUT",
            "/api/v4/projects/{id}/members/{user_id}",
            "Update projects members",
            "v4",
        )
        .answers(200, Body::Json("Member")),
        op(
            "POST",
            "/api/v4/projects/{id}/pipeline",
            "Create projects pipeline",
            "v4",
        )
        .answers(201, Body::Json("Pipeline")),
        op(
            "GET",
            "/api/v4/projects/{id}/pipeline_schedules",
            "List projects pipeline schedules",
            "v4",
        )
        .answers(200, Body::List("PipelineSchedule")),
        op(
            "POST",
            "/api/v4/projects/{id}/pipeline_schedules",
            "Create projects pipeline schedules",
            "v4",
        )
        .answers(201, Body::Json("PipelineScheduleDetails")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}",
            "Delete projects pipeline schedules",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}",
            "Show projects pipeline schedules",
            "v4",
        )
        .answers(200, Body::Json("PipelineScheduleDetails")),
        op(
            "PUT",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}",
            "Update projects pipeline schedules",
            "v4",
        )
        .answers(200, Body::Json("PipelineScheduleDetails")),
        op(
            "POST",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/play",
            "Play projects pipeline schedules",
            "v4",
        )
        .answers(201, Body::Json("Message")),
        op(
            "POST",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/take_ownership",
            "Take ownership of projects pipeline schedules",
            "v4",
        )
        .answers(201, Body::Json("PipelineScheduleDetails")),
        op(
            "POST",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables",
            "Create projects pipeline schedules variables",
            "v4",
        )
        .answers(201, Body::Json("Variable")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables/{key}",
            "Delete projects pipeline schedules variables",
            "v4",
        )
        .answers(202, Body::Json("Variable")),
        op(
            "PUT",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables/{key}",
            "Update projects pipeline schedules variables",
            "v4",
        )
        .answers(200, Body::Json("Variable")),
        op(
            "GET",
            "/api/v4/projects/{id}/pipelines",
            "List projects pipelines",
            "v4",
        )
        .answers(200, Body::List("PipelineBasic")),
        op(
            "GET",
            "/api/v4/projects/{id}/pipelines/latest",
            "List projects pipelines latest",
            "v4",
        )
        .answers(200, Body::Json("Pipeline")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/pipelines/{pipeline_id}",
            "Delete projects pipelines",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/projects/{id}/pipelines/{pipeline_id}",
            "Show projects pipelines",
            "v4",
        )
        .answers(200, Body::Json("Pipeline")),
        op(
            "GET",
            "/api/v4/projects/{id}/pipelines/{pipeline_id}/bridges",
            "List projects pipelines bridges",
            "v4",
        )
        .answers(200, Body::List("Bridge")),
        op(
            "POST",
            "/api/v4/projects/{id}/pipelines/{pipeline_id}/cancel",
            "Cancel projects pipelines",
            "v4",
        )
        .answers(0, Body::Json("Pipeline")),
        op(
            "GET",
            "/api/v4/projects/{id}/pipelines/{pipeline_id}/jobs",
            "List projects pipelines jobs",
            "v4",
        )
        .answers(200, Body::List("Job")),
        op(
            "POST",
            "/api/v4/projects/{id}/pipelines/{pipeline_id}/retry",
            "Retry projects pipelines",
            "v4",
        )
        .answers(0, Body::Json("Pipeline")),
        op(
            "GET",
            "/api/v4/projects/{id}/pipelines/{pipeline_id}/variables",
            "List projects pipelines variables",
            "v4",
        )
        .answers(200, Body::List("PipelineVariable")),
        op(
            "GET",
            "/api/v4/projects/{id}/protected_branches",
            "List projects protected branches",
            "v4",
        )
        .answers(200, Body::List("ProtectedBranch")),
        op(
            "POST",
            "/api/v4/projects/{id}/protected_branches",
            "Create projects protected branches",
            "v4",
        )
        .answers(201, Body::Json("ProtectedBranch")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/protected_branches/{*name}",
            "Delete projects protected branches",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/projects/{id}/protected_branches/{*name}",
            "Show projects protected branches",
            "v4",
        )
        .answers(200, Body::Json("ProtectedBranch")),
        op(
            "PATCH",
            "/api/v4/projects/{id}/protected_branches/{*name}",
            "Update projects protected branches",
            "v4",
        )
        .answers(200, Body::Json("ProtectedBranch")),
        op(
            "POST",
            "/api/v4/projects/{id}/push_hook",
            "Receive a push event (GitLab, GitHub, Gitea, Forgejo)",
            "v4",
        )
        .auth(Auth::Signature)
        .answers(0, Body::Json("PushOutcome")),
        op(
            "GET",
            "/api/v4/projects/{id}/repository/branches",
            "List projects repository branches",
            "v4",
        )
        .answers(200, Body::List("Branch")),
        op(
            "GET",
            "/api/v4/projects/{id}/repository/branches/{*branch}",
            "Show projects repository branches",
            "v4",
        )
        .answers(200, Body::Json("Branch")),
        op(
            "GET",
            "/api/v4/projects/{id}/repository/commits",
            "List projects repository commits",
            "v4",
        )
        .answers(200, Body::List("Commit")),
        op(
            "GET",
            "/api/v4/projects/{id}/repository/commits/{sha}",
            "Show projects repository commits",
            "v4",
        )
        .answers(200, Body::Json("Commit")),
        op(
            "GET",
            "/api/v4/projects/{id}/repository/commits/{sha}/statuses",
            "List projects repository commits statuses",
            "v4",
        )
        .answers(200, Body::List("CommitStatus")),
        op(
            "GET",
            "/api/v4/projects/{id}/runners",
            "List projects runners",
            "v4",
        )
        .answers(200, Body::List("Runner")),
        op(
            "POST",
            "/api/v4/projects/{id}/statuses/{sha}",
            "Act on projects statuses",
            "v4",
        )
        .answers(0, Body::Json("CommitStatus")),
        op(
            "POST",
            "/api/v4/projects/{id}/trigger/pipeline",
            "Create projects trigger pipeline",
            "v4",
        )
        .answers(201, Body::Json("Pipeline")),
        op(
            "GET",
            "/api/v4/projects/{id}/triggers",
            "List projects triggers",
            "v4",
        )
        .answers(200, Body::List("Trigger")),
        op(
            "POST",
            "/api/v4/projects/{id}/triggers",
            "Create projects triggers",
            "v4",
        )
        .answers(201, Body::Json("Trigger")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/triggers/{trigger}",
            "Delete projects triggers",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/projects/{id}/triggers/{trigger}",
            "Show projects triggers",
            "v4",
        )
        .answers(200, Body::Json("Trigger")),
        op(
            "PUT",
            "/api/v4/projects/{id}/triggers/{trigger}",
            "Update projects triggers",
            "v4",
        )
        .answers(200, Body::Json("Trigger")),
        op(
            "GET",
            "/api/v4/projects/{id}/variables",
            "List projects variables",
            "v4",
        )
        .answers(200, Body::List("Variable")),
        op(
            "POST",
            "/api/v4/projects/{id}/variables",
            "Create projects variables",
            "v4",
        )
        .answers(201, Body::Json("Variable")),
        op(
            "DELETE",
            "/api/v4/projects/{id}/variables/{key}",
            "Delete projects variables",
            "v4",
        )
        .answers(204, Body::Empty),
        op(
            "GET",
            "/api/v4/projects/{id}/variables/{key}",
            "Show projects variables",
            "v4",
        )
        .answers(200, Body::Json("Variable")),
        op(
            "PUT",
            "/api/v4/projects/{id}/variables/{key}",
            "Update projects variables",
            "v4",
        )
        .answers(200, Body::Json("Variable")),
        op(
            "DELETE",
            "/api/v4/runners",
            "Delete runners",
            "runner protocol",
        )
        .auth(Auth::Runner)
        .answers(204, Body::Empty),
        op("GET", "/api/v4/runners", "List runners", "v4").answers(200, Body::List("Runner")),
        op(
            "POST",
            "/api/v4/runners",
            "Create runners",
            "runner protocol",
        )
        .auth(Auth::Runner)
        .answers(201, Body::Json("RunnerToken")),
        op("GET", "/api/v4/runners/all", "List runners all", "v4")
            .answers(200, Body::List("Runner")),
        op(
            "POST",
            "/api/v4/runners/verify",
            "Verify runners",
            "runner protocol",
        )
        .auth(Auth::Runner)
        .answers(0, Body::Json("RunnerToken")),
        op("DELETE", "/api/v4/runners/{id}", "Delete runners", "v4").answers(204, Body::Empty),
        op("GET", "/api/v4/runners/{id}", "Show runners", "v4")
            .answers(200, Body::Json("RunnerDetails")),
        op("PUT", "/api/v4/runners/{id}", "Update runners", "v4")
            .answers(200, Body::Json("RunnerDetails")),
        op("GET", "/api/v4/user", "List user", "v4").answers(200, Body::Json("User")),
        op("GET", "/api/v4/users", "List users", "v4").answers(200, Body::List("User")),
        op("GET", "/api/v4/users/{user_id}", "Show users", "v4").answers(200, Body::Json("User")),
        op("GET", "/api/v4/version", "List version", "v4").answers(200, Body::Json("Version")),
        op("GET", "/users/sign_in", "Sign in users", "web")
            .auth(Auth::None)
            .answers(200, Body::Html),
        op("POST", "/users/sign_in", "Sign in users", "web")
            .auth(Auth::None)
            .answers(300, Body::Empty),
        op("POST", "/users/sign_out", "Sign out users", "web")
            .auth(Auth::Session)
            .answers(300, Body::Empty),
        op("GET", "/{namespace}/{repo}", "A project page", "web")
            .auth(Auth::Session)
            .answers(200, Body::Html),
        op("GET", "/{namespace}/{repo}/-/events", "List events", "web")
            .auth(Auth::Session)
            .answers(200, Body::Raw("text/event-stream")),
        op("GET", "/{namespace}/{repo}/-/jobs", "List jobs", "web")
            .auth(Auth::Session)
            .answers(200, Body::Html),
        op("GET", "/{namespace}/{repo}/-/jobs/{id}", "Show jobs", "web")
            .auth(Auth::Session)
            .answers(200, Body::Html),
        op(
            "GET",
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/browse",
            "List jobs artifacts browse",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Html),
        op(
            "GET",
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/browse/{*dir}",
            "Show jobs artifacts browse",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Html),
        op(
            "GET",
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/download",
            "List jobs artifacts download",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Bytes),
        op(
            "POST",
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/keep",
            "Keep the artifacts of jobs artifacts",
            "web",
        )
        .auth(Auth::Session)
        .answers(300, Body::Empty),
        op(
            "GET",
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/raw/{*path}",
            "Show jobs artifacts raw",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Bytes),
        op(
            "GET",
            "/{namespace}/{repo}/-/jobs/{id}/events",
            "List jobs events",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Raw("text/event-stream")),
        op(
            "GET",
            "/{namespace}/{repo}/-/jobs/{id}/log",
            "List jobs log",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Json("LogWindow")),
        op(
            "GET",
            "/{namespace}/{repo}/-/jobs/{id}/log/search",
            "List jobs log search",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Json("LogSearch")),
        op(
            "GET",
            "/{namespace}/{repo}/-/jobs/{id}/raw",
            "List jobs raw",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Bytes),
        op(
            "POST",
            "/{namespace}/{repo}/-/jobs/{id}/{action}",
            "Act on jobs",
            "web",
        )
        .auth(Auth::Session)
        .answers(300, Body::Empty),
        op(
            "GET",
            "/{namespace}/{repo}/-/pipelines",
            "List pipelines",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Html),
        op(
            "POST",
            "/{namespace}/{repo}/-/pipelines",
            "Create pipelines",
            "web",
        )
        .auth(Auth::Session)
        .answers(300, Body::Empty),
        op(
            "GET",
            "/{namespace}/{repo}/-/pipelines/{id}",
            "Show pipelines",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Html),
        op(
            "POST",
            "/{namespace}/{repo}/-/pipelines/{id}/cancel",
            "Cancel pipelines",
            "web",
        )
        .auth(Auth::Session)
        .answers(300, Body::Empty),
        op(
            "POST",
            "/{namespace}/{repo}/-/pipelines/{id}/retry",
            "Retry pipelines",
            "web",
        )
        .auth(Auth::Session)
        .answers(300, Body::Empty),
        op(
            "GET",
            "/{namespace}/{repo}/-/settings/ci_cd",
            "List settings ci cd",
            "web",
        )
        .auth(Auth::Session)
        .answers(200, Body::Html),
        op(
            "POST",
            "/{namespace}/{repo}/-/settings/ci_cd/{*form}",
            "Act on settings ci cd",
            "web",
        )
        .auth(Auth::Session)
        .answers(300, Body::Empty),
        op(
            "GET",
            "/{namespace}/{repo}/badges/{*badge}",
            "Show badges",
            "web",
        )
        .auth(Auth::None)
        .answers(200, Body::Svg),
        op(
            "POST",
            "/{namespace}/{repo}/git-receive-pack",
            "Create git-receive-pack",
            "git",
        )
        .answers(200, Body::Bytes),
        op(
            "POST",
            "/{namespace}/{repo}/git-upload-pack",
            "Create git-upload-pack",
            "git",
        )
        .answers(200, Body::Bytes),
        op(
            "GET",
            "/{namespace}/{repo}/info/refs",
            "List info refs",
            "git",
        )
        .answers(200, Body::Bytes),
    ]
}
