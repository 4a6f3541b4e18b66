#!/usr/bin/env bash
# Writes crates/kiln-server/src/openapi/entities.json from a fresh `kiln serve` with a
# pipeline of every kind of job (see sample_entities.py). Run it when a presenter changes.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
cargo build --quiet --bin kiln
KILN="$ROOT/target/debug/kiln"
source "$ROOT/tests/live_server.sh"
workspace kiln_sample ""
REPO="$WORK/repo"
git init -q "$REPO"
git -C "$REPO" checkout -q -B master
cat > "$REPO/.gitlab-ci.yml" <<'YAML'
stages: [build, test]
build:
  script: ["echo built"]
  artifacts:
    paths: [.gitlab-ci.yml]
fail:
  stage: test
  script: ["exit 1"]
manual:
  stage: test
  when: manual
  script: ["true"]
child:
  stage: test
  trigger:
    include: child.yml
protocol:
  rules: [{ if: $SAMPLED }]
  tags: [linux]
  image: alpine:3
  services: [postgres:15]
  variables: { GREETING: hello }
  before_script: ["echo before"]
  script: ["echo $GREETING"]
  after_script: ["echo after"]
  cache: { key: sampled, paths: [vendor/] }
  artifacts: { paths: [out/], expire_in: 1 day }
YAML
printf 'child-job:\n  script: ["true"]\n' > "$REPO/child.yml"
git -C "$REPO" add . && git -C "$REPO" -c user.name=Kiln -c user.email=kiln@example.com commit -q -m CI
"$KILN" admin user create --username root --name Root --email root@example.com --admin >/dev/null
TOKEN="$("$KILN" admin token create --username root)"
PROJECT="$("$KILN" admin project create --path group/app --visibility private --repo "$REPO")"
"$KILN" admin member add --project group/app --username root --access owner >/dev/null
REGISTRATION="$("$KILN" admin runner registration-token)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
"$KILN" serve --listen "127.0.0.1:$PORT" --external-url "$URL" --builds-concurrency 2 >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$URL/-/readiness" >/dev/null 2>&1 && break
  sleep 0.1
done
python3 - "$URL" "$TOKEN" "$PROJECT" <<'PY'
import json, sys, time, urllib.request
url, token, project = sys.argv[1:4]
def call(path, method="GET"):
    request = urllib.request.Request(url + path, method=method, headers={"PRIVATE-TOKEN": token})
    return json.load(urllib.request.urlopen(request, timeout=30))
pipeline = call(f"/api/v4/projects/{project}/pipeline?ref=master", "POST")["id"]
for _ in range(300):
    if call(f"/api/v4/projects/{project}/pipelines/{pipeline}")["status"] not in ("created", "pending", "running"):
        break
    time.sleep(0.1)
PY
python3 "$HERE/sample_entities.py" "$URL" "$TOKEN" "$PROJECT" "$REGISTRATION" \
  > "$ROOT/crates/kiln-server/src/openapi/entities.json"
echo "wrote crates/kiln-server/src/openapi/entities.json"
