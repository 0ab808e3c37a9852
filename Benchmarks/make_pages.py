#!/usr/bin/env python3
"""Writes N static JSON pages of ~240-byte records for the ingest benchmark.

Page k is {"rows": [...], "next_url": "page-(k+1).json" | null}, served by any static
file server (python3 -m http.server). Deterministic: the same arguments, the same bytes.
"""
import json, os, sys

out, records, page_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
pages = (records + page_size - 1) // page_size
for p in range(pages):
    rows = []
    for i in range(p * page_size, min(records, (p + 1) * page_size)):
        rows.append({"id": i, "name": f"Customer {i:07d}", "email": f"customer{i}@example.com",
                     "country": ["DE", "FR", "US", "JP", "BR"][i % 5], "balance": round(i * 1.37 % 10000, 2),
                     "updated_at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.000Z",
                     "notes": "x" * 60})
    nxt = f"page-{p + 2}.json" if p + 1 < pages else None
    with open(os.path.join(out, f"page-{p + 1}.json"), "w") as f:
        json.dump({"rows": rows, "next_url": nxt}, f, separators=(",", ":"))
size = os.path.getsize(os.path.join(out, "page-1.json")) / page_size
print(f"{pages} pages, about {size:.0f} bytes per record")
