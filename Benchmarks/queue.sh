#!/usr/bin/env bash
# Queue throughput on PostgreSQL: SYNCS one-page syncs already queued, NODES `tributary serve`
# processes draining them. Prints syncs started and completed per second.
#
#   bash Benchmarks/queue.sh postgres://postgres@127.0.0.1:55432/bench
#   SYNCS=2000 NODES=3 WORKERS=16 bash Benchmarks/queue.sh URL
#
# The syncs are inserted with SQL (not through the API) with a run_at a few seconds ahead,
# after the nodes are up: every node sees the whole queue become runnable at one instant T0.
set -euo pipefail
url=${1:?usage: queue.sh postgres://USER@HOST:PORT/EMPTY_DB}
syncs=${SYNCS:-2000}
nodes=${NODES:-3}
workers=${WORKERS:-16}
bin=${BIN:-.build/release/tributary}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" migrate --database "$url" >/dev/null
psql "$url" -qtA -c "TRUNCATE sources, syncs, sync_attempts, records, record_errors, idempotency_keys, nodes CASCADE"
for n in $(seq 1 "$nodes"); do
  "$bin" serve --database "$url" --port 0 --workers "$workers" --node-id "bench-$n" >"$work/n$n.log" 2>&1 &
done
for n in $(seq 1 "$nodes"); do
  until grep -q "listening on" "$work/n$n.log"; do sleep 0.1; done
done
t0=$(python3 -c 'import time; print(f"{time.time() + 3:.3f}")')
psql "$url" -qtA <<SQL
INSERT INTO sources (id, name, kind, config, retry, created_at, updated_at)
SELECT 'src_bench' || lpad(i::text, 7, '0'), 'bench-' || i, 'synthetic', '{"page_size":1,"records":1}',
       '{"initial_delay_seconds":2,"max_attempts":5,"max_delay_seconds":300,"multiplier":2}', $t0 - 10, $t0 - 10
FROM generate_series(1, $syncs) AS i;
INSERT INTO syncs (id, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at)
SELECT 'syn_bench' || lpad(i::text, 7, '0'), 'src_bench' || lpad(i::text, 7, '0'), 'queued', 'full', 0, 'api', 5, $t0, $t0
FROM generate_series(1, $syncs) AS i;
SQL
until [ "$(psql "$url" -qtA -c "SELECT count(*) FROM syncs WHERE status = 'completed'")" = "$syncs" ]; do sleep 0.2; done
psql "$url" -qtA -F ' ' <<SQL
SELECT 'syncs', count(*),
       'started_per_s', round(($syncs / (max(started_at) - $t0))::numeric, 0),
       'completed_per_s', round(($syncs / (max(finished_at) - $t0))::numeric, 0),
       'drain_s', round((max(finished_at) - $t0)::numeric, 3),
       'nodes', (SELECT count(DISTINCT node) FROM sync_attempts),
       'records', (SELECT count(*) FROM records)
FROM syncs;
SELECT 'per_node', node, count(*) FROM sync_attempts GROUP BY node ORDER BY node;
SELECT 'attempts_per_sync_max', max(attempt) FROM syncs;
SQL
