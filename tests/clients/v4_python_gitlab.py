"""The current python-gitlab against Kiln's v4 API: projects, pipelines, jobs and their
actions, variables, triggers, commit statuses and runners."""

import gitlab

from common import PROJECT, TOKEN, URL, run, wait_for

gl = gitlab.Gitlab(URL, private_token=TOKEN)
state = {}


def project():
    return gl.projects.get(PROJECT)


def jobs_by_name(pipeline):
    return {j.name: j for j in pipeline.jobs.list(get_all=True)}


def test_auth():
    gl.auth()
    assert gl.user.username == "root"


def test_projects():
    p = project()
    assert gl.projects.get(p.id).path_with_namespace == PROJECT
    assert p.id in [x.id for x in gl.projects.list(iterator=True)]
    assert p.id in [x.id for x in gl.projects.list(membership=True, get_all=True)]


def test_pipeline_create_list_get_latest():
    p = project()
    pipeline = p.pipelines.create({"ref": "master", "variables": [{"key": "TARGET", "value": "prod"}]})
    state["pipeline"] = pipeline.id
    assert pipeline.ref == "master"
    assert pipeline.id in [x.id for x in p.pipelines.list(get_all=True)]
    assert p.pipelines.get(pipeline.id).sha == pipeline.sha
    assert p.pipelines.latest(ref="master").id == pipeline.id
    wait_for("build to succeed", lambda: jobs_by_name(p.pipelines.get(pipeline.id))["build"].status == "success")
    wait_for("slow to run", lambda: jobs_by_name(p.pipelines.get(pipeline.id))["slow"].status == "running")
    variables = p.pipelines.get(pipeline.id).variables.list()
    assert [(v.key, v.value) for v in variables] == [("TARGET", "prod")]


def test_jobs_list_iterates_every_page():
    p = project()
    listed = list(p.jobs.list(iterator=True, per_page=2))
    assert len(listed) >= 4, len(listed)
    assert len({j.id for j in listed}) == len(listed)
    failed = p.jobs.list(scope=["failed"], get_all=True)
    assert all(j.status == "failed" for j in failed)


def test_job_trace_artifacts_and_actions():
    p = project()
    jobs = jobs_by_name(p.pipelines.get(state["pipeline"]))
    build = p.jobs.get(jobs["build"].id)
    assert b"made the artifact" in build.trace()
    assert build.artifacts()[:2] == b"PK"
    assert build.artifact("out/hello.txt") == b"hello\n"
    build.keep_artifacts()
    slow = p.jobs.get(jobs["slow"].id)
    slow.cancel()
    assert p.jobs.get(slow.id).status == "canceled"
    retried = p.jobs.get(slow.id).retry()
    assert retried["id"] != slow.id
    p.jobs.get(retried["id"]).cancel()
    deploy = p.jobs.get(jobs["deploy"].id)
    deploy.play()
    wait_for("deploy", lambda: p.jobs.get(deploy.id).status in ("pending", "running", "success"))
    p.jobs.get(build.id).erase()
    assert p.jobs.get(build.id).erased_at is not None


def test_pipeline_cancel_retry_delete():
    p = project()
    pipeline = p.pipelines.create({"ref": "master"})
    wait_for("jobs", lambda: pipeline.jobs.list(get_all=True))
    pipeline.cancel()
    assert p.pipelines.get(pipeline.id).status == "canceled"
    pipeline.retry()
    assert p.pipelines.get(pipeline.id).status != "canceled"
    p.pipelines.get(pipeline.id).cancel()
    p.pipelines.delete(pipeline.id)
    try:
        p.pipelines.get(pipeline.id)
        raise AssertionError("a deleted pipeline was found")
    except gitlab.GitlabGetError as err:
        assert err.response_code == 404


def test_variables():
    p = project()
    p.variables.create({"key": "CLIENT_VAR", "value": "a-long-secret", "masked": True})
    var = p.variables.get("CLIENT_VAR")
    assert var.masked is True and var.value == "a-long-secret"
    var.value = "another-secret"
    var.save()
    assert p.variables.get("CLIENT_VAR").value == "another-secret"
    assert "CLIENT_VAR" in [v.key for v in p.variables.list()]
    p.variables.delete("CLIENT_VAR")
    try:
        p.variables.create({"key": "SHORT", "value": "abc", "masked": True})
        raise AssertionError("a value too short to mask was accepted")
    except gitlab.GitlabCreateError as err:
        assert err.response_code == 400


def test_triggers():
    p = project()
    trigger = p.triggers.create({"description": "from python-gitlab"})
    assert trigger.token.startswith("glptt-")
    assert trigger.id in [t.id for t in p.triggers.list()]
    p.triggers.delete(trigger.id)
    assert trigger.id not in [t.id for t in p.triggers.list()]


def test_commit_statuses_and_runners():
    p = project()
    pipeline = p.pipelines.get(state["pipeline"])
    statuses = p.commits.get(pipeline.sha).statuses.list(get_all=True)
    assert "build" in {s.name for s in statuses}
    commit = p.commits.get(pipeline.sha)
    reported = commit.statuses.create({"state": "running", "name": "external-check",
                                       "target_url": "https://ci.example/1"})
    assert reported.status == "running" and reported.pipeline_id == pipeline.id
    commit.statuses.create({"state": "success", "name": "external-check"})
    names = {s.name: s.status for s in commit.statuses.list(get_all=True)}
    assert names["external-check"] == "success", names
    protected = p.protectedbranches.create({"name": "release/*"})
    assert protected.name in [b.name for b in p.protectedbranches.list()]
    p.protectedbranches.delete("release/*")
    runners = gl.runners.list()
    assert isinstance(runners, list)
    assert "master" in [b.name for b in p.branches.list()]


run([
    test_auth,
    test_projects,
    test_pipeline_create_list_get_latest,
    test_jobs_list_iterates_every_page,
    test_job_trace_artifacts_and_actions,
    test_pipeline_cancel_retry_delete,
    test_variables,
    test_triggers,
    test_commit_statuses_and_runners,
])
