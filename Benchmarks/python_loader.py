#!/usr/bin/env python3
"""The minimal Python loader the ingest benchmark compares with: urllib + json.loads +
executemany upsert into SQLite, one transaction per page, following next_url."""
import json, sqlite3, sys, time, urllib.request, urllib.parse, tempfile, os, resource

url = sys.argv[1]
path = os.path.join(tempfile.mkdtemp(), "py.sqlite")
db = sqlite3.connect(path)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE records (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
start = time.perf_counter()
count = 0
while url:
    with urllib.request.urlopen(url) as r:
        page = json.loads(r.read())
    rows = page["rows"]
    with db:
        db.executemany("INSERT INTO records (key, data) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET data = excluded.data",
                       [(str(row["id"]), json.dumps(row)) for row in rows])
    count += len(rows)
    nxt = page.get("next_url")
    url = urllib.parse.urljoin(url, nxt) if nxt else None
elapsed = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"| python json.loads + executemany | {count} | {elapsed:.2f} s | {elapsed:.2f} s | {int(count / elapsed)} records/s | {rss} MB |")
