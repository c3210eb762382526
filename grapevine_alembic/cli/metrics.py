"""``migrate --metrics-file PATH`` / ``--pushgateway URL``: the run in Prometheus's text format.

Written with prometheus-client (its own registry, never the process-global one) every
``progress.interval()`` seconds while the run goes and once more when it ends, so a node exporter's
textfile collector or a Pushgateway sees a rollout move.  Control counts in the files applied and the
retries; ``tenants_total`` and the duration histogram are the tenant databases.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UsageError
from .progress import interval

PREFIX = "grapevine_migrate"
JOB = "grapevine_migrate"
# a no-op tenant takes a few ms, a real one seconds to minutes
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, float("inf"))


def check_destinations(metrics_file: str | None, pushgateway: str | None) -> None:
    """Refuse before the run what could only fail after it: a missing folder, a URL that is not http(s)."""
    if metrics_file and not Path(metrics_file).resolve().parent.is_dir():
        raise UsageError(f"--metrics-file {metrics_file}: the folder {Path(metrics_file).parent} does not exist")
    if pushgateway:
        parts = urlsplit(pushgateway)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--pushgateway takes an http(s) URL such as http://127.0.0.1:9091"
                             f" (got {pushgateway!r})")


def outcome(result) -> str:
    if result.unreachable:
        return "unreachable"
    if result.skipped:
        return "skipped"
    return "ok" if result.ok else "failed"


class RunMetrics:
    """A watcher of a fan-out (``start``, ``finish``, ``done``) that keeps the run's metrics and writes them."""

    def __init__(self, path: str | None, pushgateway: str | None, say):
        # lazy: prometheus-client loads only for a run that asked for metrics
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.path, self.pushgateway, self.say = path, pushgateway, say
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.tenants = Counter(f"{PREFIX}_tenants", "Tenant databases by outcome.", ["outcome"], registry=registry)
        for name in ("ok", "failed", "unreachable", "skipped"):
            self.tenants.labels(name)  # every outcome present from the start, at 0
        self.duration = Histogram(f"{PREFIX}_tenant_duration_seconds", "Time each tenant database took.",
                                  buckets=BUCKETS, registry=registry)
        self.files = Counter(f"{PREFIX}_files_applied", "Migration files applied.", registry=registry)
        self.retries = Counter(f"{PREFIX}_retries", "Attempts after a database's first.", registry=registry)
        Gauge(f"{PREFIX}_run_start_time_seconds", "When the run started (Unix time).",
              registry=registry).set(time.time())
        self.end = Gauge(f"{PREFIX}_run_end_time_seconds", "When the run ended (Unix time); 0 while it runs.",
                         registry=registry)
        self.versions = Gauge(f"{PREFIX}_databases_at_version", "Databases at each version after the run.",
                              ["version"], registry=registry)
        self.heard: set[int] = set()
        self.lock = threading.Lock()
        self.push_failed = False
        self.stopped = threading.Event()
        self.ticker = threading.Thread(target=self._tick, name="metrics", daemon=True)

    def __enter__(self):
        self.write()
        self.ticker.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.ticker.join()

    def start(self, target, wave) -> None:
        pass  # a start changes no count

    def finish(self, result, wave) -> None:
        with self.lock:
            self.heard.add(id(result))
            self.files.inc(len(result.applied))
            self.retries.inc(max(result.attempts - 1, 0))
            if result.target.env == "tenant":
                self.tenants.labels(outcome(result)).inc()
                self.duration.observe(result.seconds)

    def done(self, results) -> None:
        """The run ended: the tenants it never started, the versions, the end time; the last write."""
        from .report import version_counts  # lazy: only the end of a run needs it

        with self.lock:
            for result in results:
                if id(result) not in self.heard and result.target.env == "tenant":
                    self.tenants.labels(outcome(result)).inc()
            for version, count in version_counts(results):
                self.versions.labels(version).set(count)
            self.end.set(time.time())
        self.write()

    def write(self) -> None:
        from prometheus_client import push_to_gateway, write_to_textfile  # lazy: see __init__

        with self.lock:
            if self.path:
                write_to_textfile(self.path, self.registry)  # atomic: a scrape never reads half a file
            if self.pushgateway:
                try:
                    push_to_gateway(self.pushgateway, job=JOB, registry=self.registry, timeout=5)
                except OSError as error:  # the run goes on: metrics are a view of it, not part of it
                    if not self.push_failed:
                        self.say(f"metrics: could not push to {self.pushgateway}: {error}")
                    self.push_failed = True

    def _tick(self) -> None:
        every = interval()
        while not self.stopped.wait(every):
            self.write()
