"""Reads Prometheus text exposition from the file named by argv[1] with prometheus_client's parser (the reference
implementation) and prints every sample as JSON: {"name{label=value,...}": value}, labels sorted.
Fails (exit 1) on text the parser refuses."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = {}
types = {}
with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
for family in text_string_to_metric_families(text):
    types[family.name] = family.type
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
json.dump({"samples": samples, "types": types}, sys.stdout)
