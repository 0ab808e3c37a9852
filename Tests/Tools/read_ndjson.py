"""Reads a JSON-lines export as a client would, in constant memory, and checks it.

usage: read_ndjson.py URL
Prints "<lines> <first key> <last key>"; exits 1 if a line is not a JSON object with a key,
if the keys are not strictly increasing, or if the stream ends without a final newline.
"""
import json
import sys
import urllib.request

request = urllib.request.Request(sys.argv[1], headers={"Accept": "application/x-ndjson"})
count, first, last, tail = 0, None, None, b""
with urllib.request.urlopen(request, timeout=120) as response:
    if response.headers.get("Content-Type") != "application/x-ndjson":
        sys.exit(f"content type {response.headers.get('Content-Type')}")
    while True:
        chunk = response.read(1 << 16)
        if not chunk:
            break
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            key = json.loads(line)["key"]
            if last is not None and key <= last:
                sys.exit(f"key {key!r} after {last!r}")
            first = key if first is None else first
            last = key
            count += 1
if tail:
    sys.exit(f"the stream ended inside a line: {tail[:80]!r}")
print(count, first, last)
