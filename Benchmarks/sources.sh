#!/usr/bin/env bash
# GET /v1/sources with 10,000 sources (each with a history: one finished sync, completed,
# failed or cancelled, and a second completed one on every fourth), inserted with SQL into
# one SQLite file; `tributary serve --workers 0`; wrk -c32 for 5 s on three pages: the first
# 50, 50 after the 1,000th source, and a page of 1,000. Each binary in BINS serves the same
# file in turn, two rounds.
#
#   bash Benchmarks/sources.sh
#   BINS="/tmp/before/tributary .build/release/tributary" bash Benchmarks/sources.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bins=(${BINS:-.build/release/tributary})
n=${SOURCES:-10000}
work=$(mktemp -d)
trap 'pkill -f "serve --port 18081" || true; rm -rf "$work"' EXIT
db="$work/sources.sqlite"
"${bins[0]}" migrate --database "sqlite:$db" >/dev/null
sqlite3 "$db" <<SQL
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < $n)
INSERT INTO sources (id, seq, name, kind, config, retry, created_at, updated_at, schedule_every_seconds)
SELECT printf('src_list%07d', n), n, 'list-' || n, 'synthetic', '{"records":1,"api_key":"secret"}',
       '{"initial_delay_seconds":2,"max_attempts":5,"max_delay_seconds":300,"multiplier":2}', 0, 0,
       CASE WHEN n % 2 = 0 THEN 3600 END FROM i;
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < $n)
INSERT INTO syncs (id, seq, source_id, status, mode, priority, trigger, max_attempts, queued_at, started_at, finished_at, run_at, records_read)
SELECT printf('syn_list%07d', n), n, printf('src_list%07d', n), CASE n % 3 WHEN 0 THEN 'completed' WHEN 1 THEN 'failed' ELSE 'cancelled' END,
       'full', 0, 'api', 5, strftime('%s', 'now') - 600, strftime('%s', 'now') - 590, strftime('%s', 'now') - 580, 0, 10 FROM i;
WITH RECURSIVE i(n) AS (SELECT 4 UNION ALL SELECT n + 4 FROM i WHERE n + 4 <= $n)
INSERT INTO syncs (id, seq, source_id, status, mode, priority, trigger, max_attempts, queued_at, started_at, finished_at, run_at, records_read)
SELECT printf('syn_list%07d', $n + n), $n + n, printf('src_list%07d', n), 'completed',
       'full', 0, 'api', 5, strftime('%s', 'now') - 60, strftime('%s', 'now') - 50, strftime('%s', 'now') - 40, 0, 10 FROM i;
SQL
for round in 1 2; do
  for bin in "${bins[@]}"; do
    pkill -f "serve --port 18081" || true; sleep 1
    "$bin" serve --port 18081 --database "sqlite:$db" --workers 0 >"$work/log" 2>&1 &
    until grep -q "listening on" "$work/log"; do sleep 0.1; done
    cursor=$(curl -sf "http://127.0.0.1:18081/v1/sources?limit=1000" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
    for page in "limit=50" "limit=50&cursor=$cursor" "limit=1000"; do
      curl -sf "http://127.0.0.1:18081/v1/sources?$page" >/dev/null || { echo "GET /v1/sources?$page failed"; exit 1; }
      result=$(wrk -c32 -t2 -d5s --latency "http://127.0.0.1:18081/v1/sources?$page" | awk '/Requests\/sec/{r=$2} / 99%/{p=$2} END{print r " requests/s, p99 " p}')
      echo "round $round  $bin  ?${page/$cursor/<after 1,000>}  $result"
    done
  done
done
