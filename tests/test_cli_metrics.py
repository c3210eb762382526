"""``migrate --metrics-file`` / ``--pushgateway``: the run in Prometheus's text format, read back with
prometheus-client's own parser; rewritten while the run goes; pushed to a Pushgateway (a recorder on
127.0.0.1 here); a bad destination refused before anything runs."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from prometheus_client.parser import text_string_to_metric_families

FAILS_ON_M0 = ("DO $$ BEGIN IF current_database() = 'db_m0' THEN RAISE EXCEPTION 'm0 refuses'; END IF; END $$;\n"
               "CREATE TABLE t (x int);\n")
SLOW = "SELECT pg_sleep(0.4);\n"


def _fleet(project, ids, sql):
    project.migrate_control()
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    project.clear("tenant")
    project.write("tenant", "20240101000000_a.sql", sql)


def _samples(text: str) -> dict:
    """{(name, labels as sorted tuple): value} of every sample, as prometheus-client parses them."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _assert_run_of_three_ok_one_failed(samples: dict, project) -> None:
    def one(name, **labels):
        return samples[(f"grapevine_migrate_{name}", tuple(sorted(labels.items())))]

    assert one("tenants_total", outcome="ok") == 3 and one("tenants_total", outcome="failed") == 1
    assert one("tenants_total", outcome="skipped") == 0 and one("tenants_total", outcome="unreachable") == 0
    assert one("tenant_duration_seconds_count") == 4 and one("tenant_duration_seconds_sum") > 0
    assert one("tenant_duration_seconds_bucket", le="+Inf") == 4
    assert one("files_applied_total") == 3 and one("retries_total") == 0
    assert 0 < one("run_start_time_seconds") <= one("run_end_time_seconds") <= time.time()
    assert one("databases_at_version", version="20240101000000") == 3
    assert one("databases_at_version", version="error") == 1  # m0 failed


def test_metrics_file_holds_the_run_in_prometheus_text_format(project, tmp_path):
    _fleet(project, ["m0", "m1", "m2", "m3"], FAILS_ON_M0)
    path = tmp_path / "migrate.prom"
    result = project.cli("migrate", "--all-tenants", "--retries", "0", "--metrics-file", str(path))
    assert result.returncode == 1, result.stderr
    _assert_run_of_three_ok_one_failed(_samples(path.read_text()), project)


def test_metrics_file_is_rewritten_while_the_run_goes(project, tmp_path):
    _fleet(project, [f"s{i}" for i in range(5)], SLOW)
    path = tmp_path / "migrate.prom"
    run = project.spawn("migrate", "--all-tenants", "--max-parallel", "1", "--metrics-file", str(path),
                        env={"GRAPEVINE_PROGRESS_INTERVAL": "0.2"})
    seen = []
    while run.poll() is None:
        if path.exists():
            samples = _samples(path.read_text())
            seen.append((samples[("grapevine_migrate_tenants_total", (("outcome", "ok"),))],
                         samples[("grapevine_migrate_run_end_time_seconds", ())]))
        time.sleep(0.1)
    assert run.wait() == 0, run.stderr.read()
    assert any(0 < ok < 5 and end == 0 for ok, end in seen), seen  # part-way, the run not over
    final = _samples(path.read_text())
    assert final[("grapevine_migrate_tenants_total", (("outcome", "ok"),))] == 5
    assert final[("grapevine_migrate_run_end_time_seconds", ())] > 0


class _Recorder(BaseHTTPRequestHandler):
    pushes: list = []

    def _record(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.pushes.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_PUT = do_POST = _record

    def log_message(self, *args):
        pass


def test_pushgateway_receives_the_same_metrics(project):
    _fleet(project, ["m0", "m1", "m2", "m3"], FAILS_ON_M0)
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = project.cli("migrate", "--all-tenants", "--retries", "0", "--pushgateway", url)
    finally:
        server.shutdown()
    assert result.returncode == 1, result.stderr
    assert _Recorder.pushes and all(path == "/metrics/job/grapevine_migrate" for _, path, _ in _Recorder.pushes)
    _assert_run_of_three_ok_one_failed(_samples(_Recorder.pushes[-1][2]), project)


def test_unreachable_pushgateway_is_one_line_and_the_run_goes_on(project):
    _fleet(project, ["m1"], "CREATE TABLE t (x int);\n")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = project.cli("migrate", "--all-tenants", "--pushgateway", f"http://127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "could not push" in line]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "Traceback" not in result.stderr
    assert project.version("db_m1") == "20240101000000"


def test_bad_metrics_destination_is_refused_before_anything_runs(project, tmp_path):
    _fleet(project, ["m1"], "CREATE TABLE t (x int);\n")
    for flag, value, words in (("--metrics-file", str(tmp_path / "no" / "such" / "m.prom"), "does not exist"),
                               ("--pushgateway", "ftp://127.0.0.1/", "takes an http(s) URL")):
        result = project.cli("migrate", "--all-tenants", flag, value)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"error: {flag}") and words in result.stderr
    assert project.version("db_m1") is None
