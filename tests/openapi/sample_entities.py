#!/usr/bin/env python3
"""Writes crates/kiln-server/src/openapi/entities.json: the JSON Schema of each entity Kiln's
presenters write, inferred from a live server's answers (every element of every sampled list,
so a field null in one state and set in another is nullable). Usage:

    sample_entities.py URL TOKEN PROJECT_ID RUNNER_REGISTRATION_TOKEN

against a server holding a project with a finished pipeline (a success, a failure, a manual
job and a bridge); it adds a trigger, a variable, a protected branch and a runner, which
takes the tagged `protocol` job of a pipeline made with $SAMPLED over gitlab-runner's protocol. Run by
tests/openapi/sample.sh, which makes that server. schemathesis checks the answers against
them in CI, so a presenter that changes shape fails there until this is run again.
"""
import json
import sys
import urllib.error
import urllib.request

URL, TOKEN, PROJECT, REGISTRATION = sys.argv[1:5]


def get(path, method="GET", body=None):
    request = urllib.request.Request(
        URL + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"PRIVATE-TOKEN": TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def kind(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def infer(values, never_null=False):
    """The schema of every value in `values` (samples of one field)."""
    present = [v for v in values if v is not None]
    if not present:
        return {}
    kinds = {kind(v) for v in present}
    if kinds == {"integer", "number"}:
        kinds = {"number"}
    if len(kinds) > 1:
        return {}
    (only,) = kinds
    if only == "object":
        schema = infer_object(present)
    elif only == "array":
        items = [item for v in present for item in v]
        schema = {"type": "array", "items": infer(items, never_null=True) if items else {}}
    else:
        schema = {"type": only}
    # A field set in every sample may still be null in a state not sampled (a pending job's
    # runner): only a record's id is never null.
    return schema if never_null else {"anyOf": [schema, {"type": "null"}]}


def infer_object(objects):
    keys = []
    for o in objects:
        for k in o:
            if k not in keys:
                keys.append(k)
    properties = {k: infer([o.get(k) for o in objects], never_null=k == "id") for k in keys}
    required = [k for k in keys if all(k in o for o in objects)]
    return {"type": "object", "properties": properties, "required": required}


def entity(*samples):
    objects = []
    for sample in samples:
        objects.extend(sample if isinstance(sample, list) else [sample])
    return infer_object(objects)


p = f"/api/v4/projects/{PROJECT}"
q = f"/api/v3/projects/{PROJECT}"
pipeline = get(f"{p}/pipelines")[-1]["id"]
sha = get(f"{p}/pipelines/{pipeline}")["sha"]
for path, body in [(f"{p}/triggers", {"description": "sampled"}),
                   (f"{p}/variables", {"key": "SAMPLED", "value": "a value"}),
                   (f"{p}/protected_branches", {"name": "release-*"})]:
    try:
        get(path, "POST", body)
    except urllib.error.HTTPError:
        pass  # made by an earlier run
info = {"name": "gitlab-runner", "version": "17.0.0", "executor": "docker", "features": {"trace_checksum": True}}
registered = get("/api/v4/runners", "POST", {
    "token": REGISTRATION, "description": "sampled", "tag_list": "linux", "info": info})
assert get("/api/v4/runners/verify", "POST", {"token": registered["token"]})["id"] == registered["id"]
# The pipeline with SAMPLED holds `protocol`, a job only the registered runner may take.
with_variables = get(f"{p}/pipeline", "POST", {
    "ref": "master", "variables": [{"key": "SAMPLED", "value": "v", "variable_type": "env_var"}]})["id"]
job_request = get("/api/v4/jobs/request", "POST", {"token": registered["token"], "info": info})
get(f"/api/v4/jobs/{job_request['id']}", "PUT", {"token": job_request["token"], "state": "success"})
entities = {
    "Job": entity(get(f"{p}/jobs"), get(f"{p}/pipelines/{pipeline}/jobs")),
    "Bridge": entity(get(f"{p}/pipelines/{pipeline}/bridges")),
    "Pipeline": entity(get(f"{p}/pipelines/{pipeline}"), get(f"{p}/pipelines/latest")),
    "PipelineVariable": entity(get(f"{p}/pipelines/{with_variables}/variables")),
    "Project": entity(get("/api/v4/projects"), get(p)),
    "User": entity(get("/api/v4/user"), get("/api/v4/users"), get("/api/v4/users/1")),
    "Member": entity(get(f"{p}/members")),
    "Commit": entity(get(f"{p}/repository/commits"), get(f"{p}/repository/commits/{sha}")),
    "Branch": entity(get(f"{p}/repository/branches")),
    "CommitStatus": entity(get(f"{p}/repository/commits/{sha}/statuses")),
    "ProtectedBranch": entity(get(f"{p}/protected_branches")),
    "Trigger": entity(get(f"{p}/triggers")),
    "Version": entity(get("/api/v4/version")),
    "BuildV3": entity(get(f"{q}/builds")),
    "ProjectV3": entity(get("/api/v3/projects"), get(q)),
    "UserV3": entity(get("/api/v3/user"), get("/api/v3/users")),
    "MemberV3": entity(get(f"{q}/members")),
    "CommitV3": entity(get(f"{q}/repository/commits")),
    "BranchV3": entity(get(f"{q}/repository/branches")),
    "CommitStatusV3": entity(get(f"{q}/repository/commits/{sha}/statuses")),
    "TriggerV3": entity(get(f"{q}/triggers")),
    "VariableV3": entity(get(f"{q}/variables")),
    "ProtectedBranchV3": entity(get(f"{q}/protected_branches")),
    "Runner": entity(get("/api/v4/runners/all")),
    "RunnerDetails": entity([get(f"/api/v4/runners/{r['id']}") for r in get("/api/v4/runners/all")]),
    "RunnerV3": entity(get("/api/v3/runners/all")),
    "RunnerDetailsV3": entity([get(f"/api/v3/runners/{r['id']}") for r in get("/api/v3/runners/all")]),
    "Lint": entity(get("/api/v4/ci/lint", "POST", {"content": "job:\n  script: [true]\n"}),
                   get("/api/v4/ci/lint", "POST", {"content": "job: ["})),
    "ProjectLint": entity(get(f"{p}/ci/lint")),
    "LintV3": entity(get("/api/v3/ci/lint", "POST", {"content": "job:\n  script: [true]\n"}),
                     get("/api/v3/ci/lint", "POST", {"content": "job: ["})),
    "JobRequest": entity(job_request),
    "Readiness": entity(get("/-/readiness"), get("/-/readiness?all=1")),
}
json.dump(entities, sys.stdout, indent=1, sort_keys=True)
print()
