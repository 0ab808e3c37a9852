#!/usr/bin/env bash
# API read throughput with wrk (apt-get install wrk): for each binary in BINS (default the
# release build), serve on :18080 over one SQLite file and run wrk -c32 for 5 s on each read
# path; two rounds, alternating the binaries. The first binary prepares the file: a source
# with 5,000 records and one completed sync. DATABASE=postgres://… reads from PostgreSQL instead
# (an empty database).
#
#   bash Benchmarks/reads.sh
#   BINS="/tmp/before/tributary .build/release/tributary" bash Benchmarks/reads.sh
set -euo pipefail
bins=(${BINS:-.build/release/tributary})
work=$(mktemp -d)
trap 'pkill -f "serve --port 18080" || true; rm -rf "$work"' EXIT
serve() { pkill -f "serve --port 18080" || true; sleep 1
  "$1" serve --port 18080 --database "${DATABASE:-sqlite:$work/reads.sqlite}" --workers 2 >"$work/log" 2>&1 &
  until grep -q "listening on" "$work/log"; do sleep 0.1; done; }
serve "${bins[0]}"
sid=$(curl -s -X POST localhost:18080/v1/sources -H 'content-type: application/json' \
  -d '{"name":"reads","kind":"synthetic","config":{"records":5000,"page_size":500}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
syn=$(curl -s -X POST "localhost:18080/v1/sources/$sid/syncs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
until curl -s "localhost:18080/v1/syncs/$syn" | grep -q '"status":"completed"'; do sleep 0.2; done
for round in 1 2; do
  for bin in "${bins[@]}"; do
    serve "$bin"
    for path in /healthz "/v1/syncs/$syn" "/v1/sources/$sid" "/v1/sources/$sid/records?limit=50" "/v1/sources?limit=50"; do
      result=$(wrk -c32 -t2 -d5s --latency "http://127.0.0.1:18080$path" | awk '/Requests\/sec/{r=$2} / 99%/{p=$2} END{print r " requests/s, p99 " p}')
      echo "round $round  $bin  ${path//$sid/{src\}}  $result" | sed "s/$syn/{syn}/"
    done
  done
done
