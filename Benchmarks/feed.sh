#!/usr/bin/env bash
# The change feed and the export, on one release binary (BIN, default .build/release/tributary):
#   1. feed pages of 1,000 (GET …/changes?limit=1000) against record pages of 1,000
#      (GET …/records?limit=1000) of a 200,000-record source, with wrk -c4 for 5 s each, in
#      two alternating rounds; and one client walking all 200 pages of each, alternated;
#   2. a waiting reader's lag from commit to answer (changed_at against the answer's arrival,
#      one clock), 50 rounds against a one-record upstream that changes on every sync: p50, p99;
#   3. the export of 2,000,000 records as JSON lines (curl | wc): records/s and the node's peak RSS.
# DATABASE=postgres://… runs 1 and 2 on PostgreSQL (an empty database); 3 is SQLite only.
#
#   bash Benchmarks/feed.sh
set -euo pipefail
bin=${BIN:-.build/release/tributary}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'pkill -f "serve --port 18090" || true; kill $upstream 2>/dev/null || true; rm -rf "$work"' EXIT
database=${DATABASE:-sqlite:$work/feed.sqlite}
serve() { pkill -f "serve --port 18090" || true; sleep 1
  "$bin" serve --port 18090 --database "$1" --workers 2 >"$work/log" 2>&1 &
  until grep -q "listening on" "$work/log"; do sleep 0.1; done; }
api() { curl -sf -X "$1" "localhost:18090$2" -H 'content-type: application/json' ${3:+-d "$3"}; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
wait_done() { until api GET "/v1/syncs/$1" | grep -q '"status":"completed"'; do sleep 0.2; done; }

# A one-record upstream whose record changes on every request.
python3 - 18091 >"$work/upstream.log" 2>&1 <<'PY' &
import http.server, json, sys, itertools
counter = itertools.count()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"rows": [{"id": "x", "v": next(counter)}], "next_url": None}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
upstream=$!

serve "$database"
sid=$(api POST /v1/sources '{"name":"feed","kind":"synthetic","config":{"records":200000,"page_size":1000}}' | field "['id']")
syn=$(api POST "/v1/sources/$sid/syncs" | field "['id']")
wait_done "$syn"
echo "## 1. pages of 1,000: wrk -c4 -t2 -d5s, two alternating rounds"
for round in 1 2; do
  for path in "/v1/sources/$sid/changes?limit=1000" "/v1/sources/$sid/records?limit=1000"; do
    result=$(wrk -c4 -t2 -d5s --latency "http://127.0.0.1:18090$path" | awk '/Requests\/sec/{r=$2} / 99%/{p=$2} END{print r " pages/s, p99 " p}')
    echo "round $round  ${path//$sid/{src\}}  $result"
  done
done
echo "## 1b. one client walking every page of 1,000 (200 pages), alternated"
python3 - "$sid" <<'PY'
import json, sys, time, urllib.request
sid = sys.argv[1]
def walk(kind):
    cursor, n, t = None, 0, time.perf_counter()
    while True:
        q = "limit=1000" + (f"&after={cursor}" if cursor else "")
        page = json.load(urllib.request.urlopen(f"http://127.0.0.1:18090/v1/sources/{sid}/{kind}?{q}"))
        n += len(page["items"])
        cursor = page["next_cursor"]
        if (kind == "changes" and not page["has_more"]) or (kind == "records" and cursor is None):
            return n, time.perf_counter() - t
for r in range(3):
    for kind in ("changes", "records"):
        n, s = walk(kind)
        print(f"round {r + 1}  {kind:8s} {n} records in {s:.2f} s: {n / s:,.0f} records/s")
PY

echo "## 2. a waiting reader: commit → answer, 50 rounds"
api POST /v1/sources '{"name":"live","kind":"http-json","config":{"url":"http://127.0.0.1:18091/x","records_path":"/rows","primary_key":"id","pagination":{"type":"next_url","path":"/next_url"}}}' >/dev/null
python3 - <<'PY'
import json, threading, time, urllib.request, datetime
base = "http://127.0.0.1:18090/v1/sources/live"
def get(url): return json.load(urllib.request.urlopen(url))
def post(url): return json.load(urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})))
def sync_to_end():
    s = post(base + "/syncs")
    while get("http://127.0.0.1:18090/v1/syncs/" + s["id"])["status"] not in ("completed", "failed", "cancelled"): time.sleep(0.02)
sync_to_end()
cursor = get(base + "/changes")["next_cursor"]
lags = []
for _ in range(50):
    threading.Timer(0.2, sync_to_end).start()
    page = get(f"{base}/changes?after={cursor}&wait=30")
    arrived = time.time()
    changed = datetime.datetime.fromisoformat(page["items"][0]["changed_at"].replace("Z", "+00:00")).timestamp()
    lags.append((arrived - changed) * 1000)
    cursor = page["next_cursor"]
    time.sleep(0.3)
lags.sort()
print(f"lag ms: p50 {lags[len(lags) // 2]:.1f}, p99 {lags[int(len(lags) * 0.99) - 1]:.1f}, max {lags[-1]:.1f} (n={len(lags)})")
PY

if [ -z "${DATABASE:-}" ]; then
  echo "## 3. export of 2,000,000 records"
  api POST /v1/sources '{"name":"big","kind":"synthetic","config":{"records":1}}' >/dev/null
  sqlite3 "$work/feed.sqlite" "PRAGMA busy_timeout = 10000;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999999)
    INSERT INTO records (source_seq, key, data, hash, created_at, updated_at, sync_seq, seen_sync_seq, change_seq)
    SELECT (SELECT seq FROM sources WHERE name = 'big'), printf('%07d', i),
           CAST(json_object('id', i, 'name', 'record-' || i, 'value', i * 7, 'group', 'g' || (i % 10),
                            'pad', substr(hex(zeroblob(100)), 1, 150)) AS BLOB), i, 1796514039.5, 1796514039.5, 0, 0, i + 1 FROM n;
    INSERT INTO record_feeds (source_seq, head) VALUES ((SELECT seq FROM sources WHERE name = 'big'), 2000000);" >/dev/null
  pid=$(pgrep -f "serve --port 18090")
  for round in 1 2; do
    start=$(date +%s.%N)
    read -r lines bytes < <(curl -sS -H 'Accept: application/x-ndjson' localhost:18090/v1/sources/big/records | wc -lc)
    end=$(date +%s.%N)
    python3 -c "print(f'round $round: {$lines} records, {$bytes / 2**20:.0f} MiB in {$end - $start:.2f} s: {$lines / ($end - $start):,.0f} records/s')"
  done
  echo "node peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print int($2 / 1024)}') MB"
fi
