"""python-gitlab 1.4.0 with api_version='3' against Kiln: the calls a GitLab 8.x script
makes, from gl.auth() to each build action."""

import gitlab

from common import PROJECT, TOKEN, URL, run, wait_for

gl = gitlab.Gitlab(URL, private_token=TOKEN, api_version="3")
state = {}


def project():
    return gl.projects.get(PROJECT)


def builds_by_name():
    return {b.name: b for b in reversed(project().builds.list(all=True))}


def test_auth_and_user():
    gl.auth()
    assert gl.user.username == "root", gl.user.username
    assert gl.user.is_admin is True


def test_projects_get_by_path_and_id_and_list():
    by_path = project()
    by_id = gl.projects.get(by_path.id)
    assert by_id.path_with_namespace == PROJECT
    assert by_path.id in [p.id for p in gl.projects.list(all=True)]
    state["project_id"] = by_path.id


def test_triggers_and_trigger_build():
    p = project()
    trigger = p.triggers.create({})
    assert trigger.token in [t.token for t in p.triggers.list()]
    p.trigger_build("master", trigger.token, {"TARGET": "staging"})
    builds = wait_for("the triggered builds", lambda: builds_by_name() or None)
    assert {"build", "test", "slow", "deploy"} <= set(builds), sorted(builds)
    wait_for("build to succeed", lambda: builds_by_name()["build"].status == "success")
    wait_for("slow to run", lambda: builds_by_name()["slow"].status == "running")
    wait_for("test to fail", lambda: builds_by_name()["test"].status == "failed")


def test_builds_list_by_scope():
    p = project()
    failed = p.builds.list(scope="failed", all=True)
    assert failed and all(b.status == "failed" for b in failed), [b.status for b in failed]
    both = p.builds.list(scope=["success", "failed"], all=True)
    assert {b.status for b in both} <= {"success", "failed"}


def test_commit_builds():
    build = builds_by_name()["build"]
    commit = project().commits.get(build.commit.id)
    assert commit.id == build.commit.id
    names = {b.name for b in commit.builds()}
    assert "build" in names, names


def test_trace_artifacts_and_keep():
    build = project().builds.get(builds_by_name()["build"].id)
    trace = build.trace()
    assert b"made the artifact" in trace, trace
    archive = build.artifacts()
    assert archive[:2] == b"PK", archive[:10]
    build.keep_artifacts()


def test_cancel_retry_play_erase():
    p = project()
    slow = builds_by_name()["slow"]
    p.builds.get(slow.id).cancel()
    assert p.builds.get(slow.id).status == "canceled"
    failed = builds_by_name()["test"]
    p.builds.get(failed.id).retry()
    retried = wait_for("the retried build", lambda: builds_by_name()["test"].id != failed.id)
    assert retried
    deploy = builds_by_name()["deploy"]
    assert deploy.status == "manual", deploy.status
    p.builds.get(deploy.id).play()
    wait_for("deploy to run", lambda: p.builds.get(deploy.id).status in ("pending", "running", "success"))
    build = builds_by_name()["build"]
    p.builds.get(build.id).erase()
    erased = p.builds.get(build.id)
    assert erased.trace() == b"", erased.trace()


def test_variables():
    p = project()
    p.variables.create({"key": "CLIENT_VAR", "value": "v3value"})
    assert p.variables.get("CLIENT_VAR").value == "v3value"
    assert "CLIENT_VAR" in [v.key for v in p.variables.list()]
    p.variables.delete("CLIENT_VAR")
    assert "CLIENT_VAR" not in [v.key for v in p.variables.list()]


def test_errors_are_gitlabs():
    try:
        gl.projects.get("group/none")
        raise AssertionError("a missing project was found")
    except gitlab.GitlabGetError as err:
        assert err.response_code == 404, err.response_code


run([
    test_auth_and_user,
    test_projects_get_by_path_and_id_and_list,
    test_triggers_and_trigger_build,
    test_builds_list_by_scope,
    test_commit_builds,
    test_trace_artifacts_and_keep,
    test_cancel_retry_play_erase,
    test_variables,
    test_errors_are_gitlabs,
])
