# Shared by the suites that drive a live `kiln serve` (tests/clients, tests/schemathesis);
# sourced, with ROOT set to the repository.
#
# venv NAME REQUIREMENTS: a virtualenv under target/ with those pinned packages (made again
# when the requirements change); prints its path.
venv() {
  local dir="$ROOT/target/venvs/$1"
  if [ ! -x "$dir/bin/python" ] || ! cmp -s "$2" "$dir/requirements.txt"; then
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$2"
    cp "$2" "$dir/requirements.txt"
  fi
  echo "$dir"
}

# workspace PREFIX [POSTGRES_SERVER]: WORK (a temporary directory) and KILN_DATA_DIR in it;
# with a PostgreSQL server's URL, a fresh database there as KILN_DATABASE_URL. Both go, and
# the server started as $SERVER stops, when the script exits.
workspace() {
  WORK="$(mktemp -d)"
  SERVER=""
  DATABASE=""
  POSTGRES_SERVER="${2:-}"
  trap cleanup EXIT
  export KILN_DATA_DIR="$WORK/data"
  if [ -n "$POSTGRES_SERVER" ]; then
    DATABASE="${1}_$$"
    psql "$POSTGRES_SERVER/postgres" -qc "CREATE DATABASE $DATABASE" >/dev/null
    export KILN_DATABASE_URL="$POSTGRES_SERVER/$DATABASE"
  fi
}

cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
  if [ -n "$DATABASE" ]; then
    psql "$POSTGRES_SERVER/postgres" -qc "DROP DATABASE IF EXISTS $DATABASE" >/dev/null 2>&1 || true
  fi
}
