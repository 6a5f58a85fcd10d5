# Sourced by the repro scripts: a fresh Aurora (Postgres + NATS, rate limits off, no
# worker) on a free port, torn down on exit. Needs: BIN (the aurora binary), curl, jq, psql.
set -euo pipefail
BIN=${BIN:-${1:-target/release/aurora}}
[ -x "$BIN" ] || { echo "usage: $0 PATH-TO-AURORA (or BIN=...)" >&2; exit 2; }
SERVER=${AURORA_LOAD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS=${AURORA_LOAD_NATS_URL:-nats://127.0.0.1:4222}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ID="repro_$(date +%s)_$$"
DB="aurora_load_$ID"
WORK=$(mktemp -d /tmp/aurora-repro.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
psql -q -X "$SERVER" -c "CREATE DATABASE $DB"
PIDS=()
teardown() {
  kill "${PIDS[@]}" 2>/dev/null || true
  kill "$AURORA" 2>/dev/null || true
  wait "$AURORA" 2>/dev/null || true
  psql -q -X "$SERVER" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  stem=$(printf 'aurora_load_%s' "$ID" | tr 'a-z-' 'A-Z_')
  python3 "$HERE/nats_streams.py" --url "$NATS" delete "${stem}_EVENTS" "${stem}_AUDIT_HEADS" >/dev/null || true
  rm -rf "$WORK"
}
trap teardown EXIT
DATABASE_URL="${SERVER%/*}/$DB" NATS_URL="$NATS" AURORA_NATS_PREFIX="aurora_load_$ID" \
  AURORA_LISTEN="127.0.0.1:$PORT" AURORA_DATA_DIR="$WORK" AURORA_RATE_LIMITS=off \
  AURORA_LOG=warn AURORA_WORKER=false "$BIN" serve >"$WORK/aurora.log" 2>&1 &
AURORA=$!
for _ in $(seq 100); do curl -fs "$URL/ready" >/dev/null && break; sleep 0.2; done
curl -fs "$URL/ready" >/dev/null || { cat "$WORK/aurora.log"; exit 1; }
# register NAME: registers NAME with the password "correct horse battery".
register() {
  curl -fs -X POST "$URL/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"correct horse battery\"}" >/dev/null
}
# login NAME: prints the status code of one login.
login() {
  curl -s -o /dev/null -w '%{http_code}\n' -X POST "$URL/api/v1/auth/login" \
    -H 'content-type: application/json' -d "{\"username\":\"$1\",\"password\":\"correct horse battery\"}"
}
export -f login; export URL
