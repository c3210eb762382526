"""The --report page for a large fleet: its size and how long headless Chromium takes to load and draw it.

    python bench/report.py [--tenants 10000] [--repeat 3] [--keep DIR]

Synthetic results (no database): most tenants at head, some behind, 1% failing with one of three
errors, durations spread over two servers.  The page is built by the same code as `--report`,
written to a file, then opened with `chromium --headless --dump-dom`; the page's own marker
(`id="rendered-ok"`) must be in the DOM, and carries the page's time from navigation until its
script has drawn (`performance.now()`).  Printed: that time and the browser's whole run (its start
included), the best of --repeat.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grapevine_alembic.database.state.result import DatabaseResult  # noqa: E402
from grapevine_alembic.database.state.target import Target  # noqa: E402
from grapevine_alembic.overview import page  # noqa: E402
from grapevine_alembic.settings import ConnectionSpec  # noqa: E402

VERSIONS = ["20250101000000", "20250201000000", "20250301000000"]


def synthetic(count: int) -> list[DatabaseResult]:
    rng = random.Random(7)
    results = []
    for i in range(count):
        spec = ConnectionSpec("127.0.0.1", 5432 + i % 2, "app", None, f"db_t{i:05d}")
        result = DatabaseResult(Target("tenant", spec, tenant_id=f"t{i:05d}"), seconds=rng.lognormvariate(-2.5, 0.6))
        if rng.random() < 0.01:
            result.fail(f'file 20250301000000_x.sql line 3: relation "orders_{i % 3}" does not exist'
                        f' (database db_t{i:05d})')
            result.before = VERSIONS[1]
        else:
            result.before = VERSIONS[1]
            result.after = VERSIONS[2] if rng.random() < 0.9 else VERSIONS[1]
        results.append(result)
    return results


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    sys.exit("no chromium on PATH (apt-get install chromium)")


def load_seconds(browser: str, path: Path) -> tuple[float, float]:
    """The browser's whole run (its start included), and the page's own time from navigation to drawn."""
    started = time.perf_counter()
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600",
                           "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    drawn = re.search(r'id="rendered-ok" data-ms="(\d+)"', done.stdout)
    if not drawn:
        sys.exit(f"the page did not draw: {done.stderr[-500:]}")
    return seconds, int(drawn.group(1)) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="write the page here instead of a temp folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="grapevine-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = synthetic(args.tenants)
    started = time.perf_counter()
    text = page.build("migrate", results, heads={"tenant": VERSIONS[-1]})
    build_s = time.perf_counter() - started
    path = folder / "report.html"
    path.write_text(text, encoding="utf-8")
    browser = chromium()
    runs = [load_seconds(browser, path) for _ in range(args.repeat)]
    print(f"tenants {args.tenants}: page {path.stat().st_size / 1024:.0f} KiB, built in {build_s:.3f} s;"
          f" in Chromium loaded and drawn {min(r[1] for r in runs):.3f} s after navigation (best of {args.repeat});"
          f" chromium --headless --dump-dom {min(r[0] for r in runs):.2f} s with its start; {path}")
    if args.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
