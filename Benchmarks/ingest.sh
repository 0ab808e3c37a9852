#!/usr/bin/env bash
# Ingest benchmark: 200,000 records of ~240 bytes in pages of 1,000 from a static
# server on loopback, into SQLite; Tributary and a minimal Python loader side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${RECORDS:-200000}
dir=$(mktemp -d)
python3 Benchmarks/make_pages.py "$dir" "$records" 1000
port=${PORT:-18765}
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dir" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
swift build -c release --product tributary-bench >/dev/null
echo "| loader | records | runs | median | throughput | peak RSS |"
echo "|---|---|---|---|---|---|"
.build/release/tributary-bench ingest --url "http://127.0.0.1:$port/page-1.json" --runs 3
python3 Benchmarks/python_loader.py "http://127.0.0.1:$port/page-1.json"
