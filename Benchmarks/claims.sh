#!/usr/bin/env bash
# Claim latency with 1,000 / 10,000 / 100,000 queued syncs, on SQLite and PostgreSQL.
# Each size gets a fresh database filled with SQL (one source per sync, all queued), then
# `tributary-bench claim-latency` times 500 claims one at a time, each followed by its finish.
#
#   bash Benchmarks/claims.sh                                   # SQLite only
#   PG=postgres://postgres@127.0.0.1:55432 bash Benchmarks/claims.sh   # and PostgreSQL (creates database "claims")
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-.build/release/tributary}
bench=${BENCH:-.build/release/tributary-bench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in 1000 10000 100000; do
  db="$work/claims-$n.sqlite"
  "$bin" migrate --database "sqlite:$db" >/dev/null
  sqlite3 "$db" <<SQL
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < $n)
INSERT INTO sources (id, seq, name, kind, config, retry, created_at, updated_at)
SELECT printf('src_claim%07d', n), n, 'claim-' || n, 'synthetic', '{"records":1}',
       '{"initial_delay_seconds":2,"max_attempts":5,"max_delay_seconds":300,"multiplier":2}', 0, 0 FROM i;
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < $n)
INSERT INTO syncs (id, seq, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at)
SELECT printf('syn_claim%07d', n), n, printf('src_claim%07d', n), 'queued', 'full', n % 3, 'api', 5, n, n FROM i;
SQL
  echo -n "SQLite "; "$bench" claim-latency --database "sqlite:$db"
done
if [ -n "${PG:-}" ]; then
  for n in 1000 10000 100000; do
    psql "$PG/postgres" -qtA -c "DROP DATABASE IF EXISTS claims" -c "CREATE DATABASE claims" >/dev/null 2>&1
    "$bin" migrate --database "$PG/claims" >/dev/null
    psql "$PG/claims" -qtA <<SQL
INSERT INTO sources (id, name, kind, config, retry, created_at, updated_at)
SELECT 'src_claim' || lpad(i::text, 7, '0'), 'claim-' || i, 'synthetic', '{"records":1}',
       '{"initial_delay_seconds":2,"max_attempts":5,"max_delay_seconds":300,"multiplier":2}', 0, 0
FROM generate_series(1, $n) AS i;
INSERT INTO syncs (id, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at)
SELECT 'syn_claim' || lpad(i::text, 7, '0'), 'src_claim' || lpad(i::text, 7, '0'), 'queued', 'full', i % 3, 'api', 5, i, i
FROM generate_series(1, $n) AS i;
ANALYZE;
SQL
    echo -n "PostgreSQL "; "$bench" claim-latency --database "$PG/claims"
  done
fi
