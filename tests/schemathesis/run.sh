#!/usr/bin/env bash
# schemathesis (pinned in requirements.txt) against a real `kiln serve` (SQLite, or a fresh
# database on the PostgreSQL server in KILN_SCHEMATHESIS_POSTGRES), from the server's own
# /api/openapi.json: every operation, with the path parameters of a real project, pipeline
# and job so that requests reach the handlers: no answer may be a 5xx, and every answer's status,
# media type and body must be what the document says. Stops the server on exit.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

cargo build --quiet --bin kiln
KILN="$ROOT/target/debug/kiln"
source "$ROOT/tests/live_server.sh"
VENV="$(venv schemathesis "$HERE/requirements.txt")"
workspace kiln_schemathesis "${KILN_SCHEMATHESIS_POSTGRES:-}"

REPO="$WORK/repo"
git init -q "$REPO"
git -C "$REPO" checkout -q -B master
printf 'build:\n  script: ["echo built"]\n  artifacts:\n    paths: [.gitlab-ci.yml]\n' > "$REPO/.gitlab-ci.yml"
git -C "$REPO" add . && git -C "$REPO" -c user.name=Kiln -c user.email=kiln@example.com commit -q -m "CI"

"$KILN" admin user create --username root --name Root --email root@example.com --admin >/dev/null
TOKEN="$("$KILN" admin token create --username root)"
PROJECT="$("$KILN" admin project create --path group/app --visibility private --repo "$REPO")"
"$KILN" admin member add --project group/app --username root --access owner >/dev/null

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
"$KILN" serve --listen "127.0.0.1:$PORT" --external-url "$URL" --builds-concurrency 1 --webhook-timeout 1 \
  >"$WORK/serve.log" 2>&1 &
SERVER=$!
# api METHOD PATH [JSON]: the id of what the call answers (of its first element for a list).
api() { python3 - "$URL/api/v4$2" "$1" "$TOKEN" "${3:-}" <<'PY'
import json, sys, urllib.request
url, method, token, body = sys.argv[1:5]
request = urllib.request.Request(url, method=method, data=body.encode() or None,
    headers={"PRIVATE-TOKEN": token, "Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=30) as answer:
    value = json.load(answer)
print((value[0] if isinstance(value, list) else value).get("id", ""))
PY
}
for _ in $(seq 1 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$URL/-/readiness" >/dev/null 2>&1 && break
  sleep 0.1
done
PIPELINE="$(api POST "/projects/$PROJECT/pipeline?ref=master")"
JOB="$(api GET "/projects/$PROJECT/pipelines/$PIPELINE/jobs")"
USER_ID="$(api GET /user)"
HOOK="$(api POST "/projects/$PROJECT/hooks" '{"url": "https://93.184.215.14/hook"}')"
SCHEDULE="$(api POST "/projects/$PROJECT/pipeline_schedules" '{"description": "nightly", "ref": "master", "cron": "0 1 * * *"}')"
TRIGGER="$(api POST "/projects/$PROJECT/triggers" '{"description": "deploys"}')"
api POST "/projects/$PROJECT/variables" '{"key": "KEY", "value": "a value"}' >/dev/null
api POST "/projects/$PROJECT/pipeline_schedules/$SCHEDULE/variables" '{"key": "KEY", "value": "v"}' >/dev/null
for _ in $(seq 1 100); do
  python3 -c 'import json, sys, urllib.request; sys.exit(0 if json.load(urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers={"PRIVATE-TOKEN": sys.argv[2]})))["status"] in ("success", "failed") else 1)' \
    "$URL/api/v4/projects/$PROJECT/jobs/$JOB" "$TOKEN" 2>/dev/null && break
  sleep 0.2
done

cat > "$WORK/schemathesis.toml" <<TOML
[parameters]
"path.id" = "$PROJECT"
"path.namespace" = "group"
"path.repo" = "app"
"path.pipeline_id" = "$PIPELINE"
"path.job_id" = "$JOB"
"path.build_id" = "$JOB"
"path.sha" = "$(git -C "$REPO" rev-parse HEAD)"
"path.user_id" = "$USER_ID"
"path.hook_id" = "$HOOK"
"path.schedule_id" = "$SCHEDULE"
"path.trigger" = "$TRIGGER"
"path.key" = "KEY"
"path.branch" = "master"
"path.name" = "master"
TOML
# The document is valid OpenAPI 3.1 before anything is fuzzed from it.
"$VENV/bin/python" - "$URL/api/openapi.json" <<'PY'
import json, sys, urllib.request
from openapi_spec_validator import validate
validate(json.load(urllib.request.urlopen(sys.argv[1], timeout=30)))
print("the document is valid OpenAPI 3.1")
PY
status=0
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$URL/api/openapi.json" \
  --header "PRIVATE-TOKEN: $TOKEN" --checks "${KILN_SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}" --phases examples,fuzzing \
  --max-examples "${KILN_SCHEMATHESIS_EXAMPLES:-25}" --workers 2 --seed 1 --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "== the server's log =="; grep -E "WARN|ERROR" "$WORK/serve.log" | tail -50 || true
fi
exit "$status"
