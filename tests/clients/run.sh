#!/usr/bin/env bash
# The client suites: python-gitlab 1.4.0 (API v3), the current python-gitlab (API v4) and its
# `gitlab` command line, each in a virtualenv with pinned versions, against a real
# `kiln serve` (SQLite, or the database in KILN_DATABASE_URL) on a free local port, with a
# real repository and real pipelines. Stops the server on exit.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

cargo build --quiet --bin kiln
KILN="$ROOT/target/debug/kiln"
source "$ROOT/tests/live_server.sh"
OLD="$(venv python-gitlab-1.4 "$HERE/requirements-v3.txt")"
NEW="$(venv python-gitlab-current "$HERE/requirements-v4.txt")"
workspace kiln_clients "${KILN_CLIENTS_POSTGRES:-}"

# A repository whose pipeline has an artifact, a failing job, a long one to cancel and a
# manual one to play.
REPO="$WORK/repo"
git init -q "$REPO"
git -C "$REPO" checkout -q -B master
cat > "$REPO/.gitlab-ci.yml" <<'YAML'
stages: [build, test]
build:
  stage: build
  script:
    - mkdir -p out && echo hello > out/hello.txt
    - echo made the artifact
  artifacts:
    paths: [out/]
test:
  stage: test
  script: ["echo failing; exit 1"]
  allow_failure: true
slow:
  stage: test
  script: ["sleep 120"]
deploy:
  stage: test
  when: manual
  script: ["echo deploying $TARGET"]
YAML
git -C "$REPO" add . && git -C "$REPO" -c user.name=Kiln -c user.email=kiln@example.com commit -q -m "CI for the clients"

"$KILN" admin user create --username root --name Root --email root@example.com --admin >/dev/null
TOKEN="$("$KILN" admin token create --username root)"
"$KILN" admin project create --path group/app --visibility private --repo "$REPO" >/dev/null
"$KILN" admin member add --project group/app --username root --access owner >/dev/null

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
"$KILN" serve --listen "127.0.0.1:$PORT" --external-url "$URL" --builds-concurrency 3 \
  >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$URL/api/v4/version?private_token=$TOKEN" >/dev/null 2>&1 && break
  sleep 0.1
done

export KILN_URL="$URL" KILN_TOKEN="$TOKEN" KILN_PROJECT=group/app PYTHONPATH="$HERE"
status=0
echo "-- python-gitlab 1.4.0 (API v3)"
"$OLD/bin/python" "$HERE/v3_python_gitlab_1_4.py" || status=1
echo "-- python-gitlab $("$NEW/bin/python" -c 'import gitlab; print(gitlab.__version__)') (API v4)"
"$NEW/bin/python" "$HERE/v4_python_gitlab.py" || status=1

echo "-- the gitlab command line"
cat > "$WORK/gitlab.cfg" <<CFG
[global]
default = kiln

[kiln]
url = $URL
private_token = $TOKEN
api_version = 4
CFG
cli() { "$NEW/bin/gitlab" -c "$WORK/gitlab.cfg" "$@"; }
check() { # check WHAT EXPECTED OUTPUT
  if grep -q -- "$2" <<<"$3"; then echo "ok   $1"; else echo "FAIL $1: no '$2' in:"; echo "$3"; status=1; fi
}
check "current-user get" "username: root" "$(cli current-user get 2>&1)"
check "project get" "path_with_namespace: group/app" "$(cli project get --id group/app 2>&1)"
PROJECT_ID="$(cli -o json project get --id group/app | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
check "project-pipeline list" '"ref": "master"' "$(cli -o json project-pipeline list --project-id "$PROJECT_ID" 2>&1)"
check "project-job list" '"name": "build"' "$(cli -o json project-job list --project-id "$PROJECT_ID" --get-all 2>&1)"
check "project-variable create" "key: CLI_VAR" "$(cli project-variable create --project-id "$PROJECT_ID" --key CLI_VAR --value from-cli 2>&1)"

if [ "$status" -ne 0 ]; then
  echo "== the server's log =="; tail -50 "$WORK/serve.log"
fi
exit "$status"
