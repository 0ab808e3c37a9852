#!/usr/bin/env bash
# Statistics latency and prune time on a long history, on SQLite and PostgreSQL.
# For each size: a fresh database filled with SQL: N finished syncs (one attempt each) of
# 100 sources, ending uniformly over the last 60 days (1-100 s long, 5 % failed, 2 %
# cancelled), plus 2,000 queued syncs of 2,000 other sources for a worker to claim.
# Then `tributary-bench stats-latency` (every window, 30 runs) and `prune-time` (30 days,
# newest 20 per source: about half the history goes) while one claimer runs.
#
#   bash Benchmarks/history.sh                                        # SQLite, 100k and 1M
#   PG=postgres://postgres@127.0.0.1:55432 bash Benchmarks/history.sh  # and PostgreSQL
#   SIZES="100000" bash Benchmarks/history.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-.build/release/tributary}
bench=${BENCH:-.build/release/tributary-bench}
sizes=${SIZES:-100000 1000000}
if [ -n "${KEEP:-}" ]; then work=$KEEP; mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
now=$(date +%s)
retry='{"initial_delay_seconds":2,"max_attempts":5,"max_delay_seconds":300,"multiplier":2}'
for n in $sizes; do
  db="$work/history-$n.sqlite"
  "$bin" migrate --database "sqlite:$db" >/dev/null
  sqlite3 "$db" <<SQL
.output /dev/null
PRAGMA journal_mode = WAL;
.output stdout
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < 2100)
INSERT INTO sources (id, seq, name, kind, config, retry, created_at, updated_at)
SELECT printf('src_hist%07d', n), n, 'hist-' || n, 'synthetic', '{"records":1}', '$retry', 0, 0 FROM i;
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < $n),
  v AS (SELECT n, $now - n * (5184000.0 / $n) AS fin, 1 + (n * 7919) % 100 AS dur FROM i)
INSERT INTO syncs (id, seq, source_id, status, mode, priority, trigger, attempt, max_attempts, queued_at, run_at,
                   started_at, finished_at, run_seconds, records_read, records_created, records_updated, records_unchanged)
SELECT printf('syn_hist%08d', n), n, printf('src_hist%07d', 1 + n % 100),
       CASE WHEN n % 20 = 0 THEN 'failed' WHEN n % 50 = 1 THEN 'cancelled' ELSE 'completed' END,
       'full', 0, 'schedule', 1, 5, fin - dur - 1, fin - dur - 1, fin - dur, fin, dur,
       (n * 31) % 1000, (n * 7) % 50, (n * 3) % 50, (n * 31) % 1000 - (n * 7) % 50 - (n * 3) % 50 FROM v;
INSERT INTO sync_attempts (sync_id, number, started_at, finished_at, status, node)
SELECT id, 1, started_at, finished_at, status, 'bench' FROM syncs;
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < 2000)
INSERT INTO syncs (id, seq, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at)
SELECT printf('syn_queue%07d', n), $n + n, printf('src_hist%07d', 100 + n), 'queued', 'full', 0, 'api', 5, n, n FROM i;
ANALYZE;
SQL
  echo -n "SQLite $n: "; "$bench" stats-latency --database "sqlite:$db"
  echo -n "SQLite $n: "; "$bench" prune-time --database "sqlite:$db" --batch "${BATCH:-200}"
  [ -n "${KEEP:-}" ] || rm -f "$db"*
done
if [ -n "${PG:-}" ]; then
  for n in $sizes; do
    psql "$PG/postgres" -qtA -c "DROP DATABASE IF EXISTS history" -c "CREATE DATABASE history" >/dev/null 2>&1
    "$bin" migrate --database "$PG/history" >/dev/null
    psql "$PG/history" -qtA <<SQL
INSERT INTO sources (id, name, kind, config, retry, created_at, updated_at)
SELECT 'src_hist' || lpad(i::text, 7, '0'), 'hist-' || i, 'synthetic', '{"records":1}', '$retry', 0, 0
FROM generate_series(1, 2100) AS i;
INSERT INTO syncs (id, source_id, status, mode, priority, trigger, attempt, max_attempts, queued_at, run_at,
                   started_at, finished_at, run_seconds, records_read, records_created, records_updated, records_unchanged)
SELECT 'syn_hist' || lpad(n::text, 8, '0'), 'src_hist' || lpad((1 + n % 100)::text, 7, '0'),
       CASE WHEN n % 20 = 0 THEN 'failed' WHEN n % 50 = 1 THEN 'cancelled' ELSE 'completed' END,
       'full', 0, 'schedule', 1, 5, fin - dur - 1, fin - dur - 1, fin - dur, fin, dur,
       (n * 31) % 1000, (n * 7) % 50, (n * 3) % 50, (n * 31) % 1000 - (n * 7) % 50 - (n * 3) % 50
FROM (SELECT n, $now - n * (5184000.0 / $n) AS fin, 1 + (n * 7919) % 100 AS dur FROM generate_series(1::bigint, $n) AS n) v;
INSERT INTO sync_attempts (sync_id, number, started_at, finished_at, status, node)
SELECT id, 1, started_at, finished_at, status, 'bench' FROM syncs;
INSERT INTO syncs (id, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at)
SELECT 'syn_queue' || lpad(i::text, 7, '0'), 'src_hist' || lpad((100 + i)::text, 7, '0'), 'queued', 'full', 0, 'api', 5, i, i
FROM generate_series(1, 2000) AS i;
VACUUM ANALYZE;
SQL
    echo -n "PostgreSQL $n: "; "$bench" stats-latency --database "$PG/history"
    echo -n "PostgreSQL $n: "; "$bench" prune-time --database "$PG/history" --batch "${BATCH:-200}"
  done
fi
