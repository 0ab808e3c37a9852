#!/usr/bin/env bash
# Runs schemathesis over every operation of openapi.yaml against a throwaway tributary node,
# twice: a node without tokens (loopback, no Authorization) and a node with tokens (requests
# carry the admin token). Exits non-zero on any failure or schema error of either pass.
#
# usage: schemathesis.sh TRIBUTARY_BINARY OPENAPI_YAML
# env:   ST_VENV       virtualenv holding schemathesis (default ~/.cache/tributary-tests/schemathesis-venv,
#                      created and filled with pip when missing)
#        ST_VERSION    schemathesis version pinned when the venv is created (default 4.32.5)
#        ST_EXAMPLES   examples per operation (default 50)
#        ST_SEED       seed (default 1: the same cases every run; set "random" for a new one each run)
#        ST_WORKERS    schemathesis workers (default 2)
#        ST_KEEP       1: keep the work directory (reports, server logs) and print its path
#        ST_PASSES     "open token" (default), or one of them
#        ST_PORT_RANGE ports to pick the node's from, LOW-HIGH, or 0 for any free port (the default)
set -uo pipefail

binary=${1:?usage: schemathesis.sh TRIBUTARY_BINARY OPENAPI_YAML}
spec=${2:?usage: schemathesis.sh TRIBUTARY_BINARY OPENAPI_YAML}
binary=$(readlink -f "$binary"); spec=$(readlink -f "$spec")
[ -x "$binary" ] || { echo "not executable: $binary" >&2; exit 2; }
[ -f "$spec" ] || { echo "no such file: $spec" >&2; exit 2; }

venv=${ST_VENV:-${HOME:-/root}/.cache/tributary-tests/schemathesis-venv}
version=${ST_VERSION:-4.32.5}
examples=${ST_EXAMPLES:-50}
seed=${ST_SEED:-1}
workers=${ST_WORKERS:-2}
passes=${ST_PASSES:-open token}

if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv" || exit 2
  "$venv/bin/pip" install --quiet "schemathesis==$version" || exit 2
fi
st="$venv/bin/schemathesis"
echo "schemathesis: $("$st" --version 2>&1) ($st)"

hooks="$(dirname "$(readlink -f "$0")")/schemathesis_hooks.py"
work=$(mktemp -d "${TMPDIR:-/tmp}/tributary-schemathesis.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "${ST_KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on, from ST_PORT_RANGE (LOW-HIGH, or 0, the default, which lets the
# kernel pick any free one).
free_port() {
  python3 - "${ST_PORT_RANGE:-0}" <<'PY'
import random, socket, sys
spec = sys.argv[1]
ports = [0] if spec == "0" else list(range(int(spec.split("-")[0]), int(spec.split("-")[1]) + 1))
random.shuffle(ports)
for port in ports:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); print(s.getsockname()[1]); sys.exit(0)
    except OSError:
        pass
    finally:
        s.close()
sys.exit("no free port in " + spec)
PY
}

# start_node DIR [--token ROLE:TOKEN ...]: a node on a free port with its own SQLite file;
# sets $port. Retries on another port if the one picked was taken meanwhile.
start_node() {
  local dir=$1; shift
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    (cd "$dir" && exec "$binary" serve --database "sqlite:$dir/tributary.sqlite" --port "$port" \
        --node-id st-node --workers 2 --prune-interval 0 "$@" >"$dir/server.log" 2>&1) &
    local pid=$!
    for _ in $(seq 1 100); do
      if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then pids+=("$pid"); return 0; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
  echo "the node did not start; its log:" >&2; cat "$dir/server.log" >&2
  return 1
}

# api METHOD PATH [BODY]: JSON call to the node of this pass; prints the body, fails on non-2xx.
api() {
  local args=(-fsS -X "$1" "http://127.0.0.1:$port$2" -H 'Content-Type: application/json')
  [ -n "$auth" ] && args+=(-H "Authorization: Bearer $auth")
  [ $# -ge 3 ] && args+=(-d "$3")
  curl "${args[@]}"
}
json() { python3 -c 'import json,sys; print(json.load(sys.stdin)'"$1"')'; }

# seed: real sources, syncs (completed, failed, cancelled), records and the node, so that the
# operations with path parameters reach their real handlers and not only 404. Writes a
# schemathesis.toml binding the path parameters to these ids (half the cases; the rest random).
seed() {
  local dir=$1 keep=() victims=() syncs=() s i
  for i in 1 2; do
    s=$(api POST /v1/sources "{\"name\":\"st-keep-$i\",\"kind\":\"synthetic\",\"config\":{\"records\":40,\"page_size\":10}}") || return 1
    keep+=("$(json "['id']" <<<"$s")")
  done
  for i in 1 2 3 4 5 6; do
    s=$(api POST /v1/sources "{\"name\":\"st-victim-$i\",\"kind\":\"synthetic\",\"config\":{\"records\":5}}") || return 1
    victims+=("$(json "['id']" <<<"$s")")
  done
  s=$(api POST /v1/sources '{"name":"st-failing","kind":"synthetic","config":{"records":50,"page_size":10,"fail_every_n_pages":2},"retry":{"max_attempts":1}}') || return 1
  keep+=("$(json "['id']" <<<"$s")")
  s=$(api POST /v1/sources '{"name":"st-slow","kind":"synthetic","config":{"records":1000000,"page_size":10,"delay_ms_per_page":60000}}') || return 1
  keep+=("$(json "['id']" <<<"$s")")
  for i in 0 1 2 3; do
    s=$(api POST "/v1/sources/${keep[$i]}/syncs" '{}') || return 1
    syncs+=("$(json "['id']" <<<"$s")")
  done
  # wait for the first three to end (completed, completed, failed); then cancel the slow one.
  for _ in $(seq 1 100); do
    local done=1
    for i in 0 1 2; do
      case $(api GET "/v1/syncs/${syncs[$i]}" | json "['status']") in completed|failed|cancelled) ;; *) done=0 ;; esac
    done
    [ $done = 1 ] && break
    sleep 0.2
  done
  api POST "/v1/syncs/${syncs[3]}/cancel" >/dev/null || return 1
  # a queued one that stays queued: a paused source's sync is not claimed.
  s=$(api POST /v1/sources '{"name":"st-paused","kind":"synthetic","config":{"records":5}}') || return 1
  keep+=("$(json "['id']" <<<"$s")")
  api POST "/v1/sources/${keep[4]}/pause" >/dev/null || return 1
  s=$(api POST "/v1/sources/${keep[4]}/syncs" '{}') || return 1
  syncs+=("$(json "['id']" <<<"$s")")
  local keys
  keys=$(api GET "/v1/sources/${keep[0]}/records?limit=3" | python3 -c 'import json,sys; print(" ".join(json.dumps(i["key"]) for i in json.load(sys.stdin)["items"]))')
  local quoted_keep quoted_victims quoted_syncs
  quoted_keep=$(printf '"%s", ' "${keep[@]}" st-keep-1)
  quoted_victims=$(printf '"%s", ' "${victims[@]}")
  quoted_syncs=$(printf '"%s", ' "${syncs[@]}")
  cat >"$dir/schemathesis.toml" <<EOF
[dictionaries.sources]
values = [${quoted_keep%, }]
[dictionaries.victims]
values = [${quoted_victims%, }]
[dictionaries.syncs]
values = [${quoted_syncs%, }]
[dictionaries.keys]
values = [${keys// /, }]
[dictionaries.nodes]
values = ["st-node"]

[[operations]]
include-path-regex = '^(/v1)?/sources/\{id\}'
exclude-method = "DELETE"
parameters = { "path.id" = { dictionary = "sources", probability = 0.5 }, "path.key" = { dictionary = "keys", probability = 0.5 } }

[[operations]]
include-path-regex = '^/v1/sources/\{id\}$'
include-method = "DELETE"
parameters = { "path.id" = { dictionary = "victims", probability = 0.5 } }

[[operations]]
include-path-regex = '^(/v1)?/syncs/\{id\}'
parameters = { "path.id" = { dictionary = "syncs", probability = 0.5 } }

# The event streams: /v1/events never ends and /v1/syncs/{id}/events ends with its sync; read
# what comes within a second and move on (a stream cut by this timeout is not a failure).
[[operations]]
include-path-regex = '/events$'
request-timeout = 1
max-stream-events = 5

[[operations]]
include-path-regex = '^/v1/nodes/\{id\}'
parameters = { "path.id" = { dictionary = "nodes", probability = 0.5 } }
EOF
}

status=0
for pass in $passes; do
  dir="$work/$pass"
  mkdir -p "$dir"
  auth=""
  node_args=()
  headers=()
  if [ "$pass" = token ]; then
    auth="st-admin-$(date +%s%N)"
    node_args=(--token "admin:$auth" --token "viewer:st-viewer-$$")
    headers=(-H "Authorization: Bearer $auth")
  fi
  start_node "$dir" "${node_args[@]}" || { status=1; continue; }
  if ! seed "$dir"; then
    echo "$pass: seeding the node failed" >&2; status=1; continue
  fi
  seed_args=(--seed "$seed"); [ "$seed" = random ] && seed_args=()
  cmd=("$st" --config-file "$dir/schemathesis.toml" run "$spec" --url "http://127.0.0.1:$port"
       "${headers[@]}"
       --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,missing_required_header,use_after_free,ensure_resource_availability
       --phases examples,coverage,fuzzing,stateful
       --max-examples "$examples" "${seed_args[@]}" --workers "$workers"
       --request-timeout 10 --generation-database none --no-color
       --report junit --report-junit-path "$dir/junit.xml")
  # The hooks (Tests/Tools/schemathesis_hooks.py) keep the change feed's waits short.
  export SCHEMATHESIS_HOOKS="$hooks"
  printed=("${cmd[@]}")
  [ -n "$auth" ] && printed=("${printed[@]//$auth/<admin-token>}")
  echo "== pass $pass: ${printed[*]}"
  started=$(date +%s)
  (cd "$dir" && "${cmd[@]}") >"$dir/schemathesis.out" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - started ))
  # The summary and failures; the progress lines are in $dir/schemathesis.out.
  sed -n '/^=* FAILURES\|^=* ERRORS\|^=* SUMMARY/,$p' "$dir/schemathesis.out"
  tested=$(sed -n 's/^ *Tested: *\([0-9]*\).*/\1/p' "$dir/schemathesis.out" | tail -1)
  selected=$(sed -n 's/^ *Selected: *\([0-9]*\)\/\([0-9]*\).*/\2/p' "$dir/schemathesis.out" | tail -1)
  echo "== pass $pass: exit $rc, $elapsed s, ${tested:-?} of ${selected:-?} operations tested"
  if [ "$rc" -ne 0 ] || [ -z "$tested" ] || [ "$tested" != "$selected" ] || grep -q "Schema Error\|Cannot generate test data" "$dir/schemathesis.out"; then
    status=1
  fi
  if grep -q "panic\|Fatal error\|fatalError" "$dir/server.log"; then
    echo "== pass $pass: the server's log shows a crash:" >&2; grep -n "panic\|Fatal error\|fatalError" "$dir/server.log" >&2
    status=1
  fi
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "== pass $pass: the node died during the run" >&2; status=1; fi
done
[ "$status" = 0 ] && echo "schemathesis: both passes clean" || echo "schemathesis: FAILED" >&2
exit "$status"
