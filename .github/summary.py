"""Turn a `grapevine-migrations ... --json` document into a Markdown job summary."""

import json
import sys

doc = json.load(open(sys.argv[1]))
summary = doc["summary"]
print(f"### {doc['command']}: {summary['ok']} ok, {summary['failed']} failed, {summary['skipped']} skipped,"
      f" {summary['applied']} migration(s) applied\n")
print("| database | applied | version | result |\n| --- | --- | --- | --- |")
for db in doc["databases"]:
    result = "skipped" if db["skipped"] else ("ok" if db["ok"] else f"FAILED: {db['error']}")
    print(f"| {db['database']} | {len(db['applied'])} | {db['version'] or '-'} | {result} |")
