"""Turn any `grapevine-migrations ... --json` document into a Markdown job summary.

Handles run documents (migrate, mark), status, check, list and the failure document every
command prints when it cannot run at all (`{"command", "ok": false, "error"}`).  Exits 1 when
the file holds no JSON document, so a crashed step is visible, never a Python traceback.
"""

import json
import sys


def main(path: str) -> int:
    try:
        with open(path) as handle:
            doc = json.load(handle)
    except (OSError, ValueError) as err:
        print(f"### no result: {path} holds no JSON document ({type(err).__name__})")
        return 1
    command = doc.get("command") or "list"
    if "databases" in doc:
        run(command, doc)
    elif command == "check":
        check(doc)
    elif doc.get("ok") is False:
        print(f"### {command}: FAILED\n\n{doc.get('error') or 'unknown error'}")
    elif command == "list":
        print("### list\n")
        for env, files in doc.items():
            print(f"* {env}: {len(files)} migration(s)")
    else:
        print(f"### {command}: ok")
    return 0


def run(command: str, doc: dict) -> None:
    summary = doc.get("summary", {})
    title = (f"### {command}: {summary.get('ok', 0)} ok, {summary.get('failed', 0)} failed,"
             f" {summary.get('skipped', 0)} skipped, {summary.get('applied', 0)} migration(s) applied")
    if doc.get("interrupted"):
        title += " (interrupted)"
    print(title + "\n")
    if doc.get("error"):
        print(f"{doc['error']}\n")
    print("| database | applied | version | result |\n| --- | --- | --- | --- |")
    for db in doc["databases"]:
        result = "skipped" if db.get("skipped") else ("ok" if db.get("ok") else f"FAILED: {db.get('error')}")
        result = result.replace("|", "\\|").replace("\n", " ")
        print(f"| {db['database']} | {len(db.get('applied', []))} | {db.get('version') or '-'} | {result} |")


def check(doc: dict) -> None:
    state = "ok" if doc.get("ok") else "FAILED"
    print(f"### check: {state}, {doc.get('errors', 0)} error(s), {doc.get('warnings', 0)} warning(s)\n")
    for finding in doc.get("findings", []):
        where = f"{finding.get('file')}:{finding.get('line')}" if finding.get("line") else finding.get("file")
        print(f"* {finding.get('level')}: {where}: {finding.get('message')}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
