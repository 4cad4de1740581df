#!/usr/bin/python3
"""Parses Prometheus text format from stdin with the reference parser (python3-prometheus-client)
and prints the families as JSON: [{"name", "type", "samples": [[name, labels, value], ...]}].
Exits 1 with the parser's message if the text is not valid exposition format."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    families = [
        {
            "name": f.name,
            "type": f.type,
            "samples": [[s.name, s.labels, s.value] for s in f.samples],
        }
        for f in text_string_to_metric_families(sys.stdin.read())
    ]
except Exception as e:  # the parser raises ValueError and friends on malformed input
    print(f"invalid exposition format: {e}", file=sys.stderr)
    sys.exit(1)
json.dump(families, sys.stdout)
