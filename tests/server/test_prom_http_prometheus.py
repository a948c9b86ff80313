"""Real Prometheus parts against our API: promtool's queries, and a Prometheus server that
scrapes itself and remote-writes to us. Skipped where the Debian binaries are absent."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

import tsdb_arrow as ta
from tsdb_arrow.server.prom_http import PromHttpServer

from .prom_stub import StubEngine, limits_tuple
from .test_prom_http import S0, write_fixture

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = ta.open(tmp_path_factory.mktemp("promtool") / "db")
    write_fixture(db)
    server = PromHttpServer(db, "127.0.0.1:0", engine=StubEngine(), limits_factory=limits_tuple)
    yield f"http://{server.address}"
    server.stop()
    db.close()


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, "query", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt install prometheus)")
class TestPromtool:
    def test_series(self, served):
        done = promtool("series", "--match=up", "--match=node_load1", served)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            '{__name__="node_load1", instance="a"}',
            '{__name__="up", instance="a", job="api"}',
            '{__name__="up", instance="b", job="web"}',
        ]

    def test_labels(self, served):
        done = promtool("labels", served, "job")
        assert (done.returncode, done.stdout) == (0, "api\nweb\n")
        done = promtool("labels", served, "__name__")
        assert (done.returncode, done.stdout) == (0, "node_load1\nup\n")

    def test_instant(self, served):
        done = promtool("instant", f"--time={S0 + 20}", served, "up")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            'up{instance="a", job="api"} => 0 @[1700000020]',
            'up{instance="b", job="web"} => NaN @[1700000020]',
        ]

    def test_range(self, served):
        done = promtool("range", f"--start={S0}", f"--end={S0 + 30}", "--step=15s", served, "up")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            'up{instance="a", job="api"} =>',
            "1 @[1700000000]",
            "0 @[1700000015]",
            "1 @[1700000030]",
            'up{instance="b", job="web"} =>',
            "1 @[1700000000]",
            "NaN @[1700000015]",
            "0.5 @[1700000030]",
        ]

    def test_error(self, served):
        done = promtool("instant", served, "sum(")
        assert done.returncode == 1
        assert done.stderr.startswith('query error: bad_data: invalid parameter "query": ')


def _prometheus_query(port: int, expr: str, at: float) -> list:
    query = urllib.parse.urlencode({"query": expr, "time": at})
    url = f"http://127.0.0.1:{port}/api/v1/query?{query}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())["data"]["result"]


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (apt install ...)")
def test_prometheus_remote_writes_its_own_scrapes_to_us(tmp_path):
    db = ta.open(tmp_path / "db")
    server = ta.serve(db, otlp_grpc="off", otlp_http="off", http="127.0.0.1:0")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
remote_write:
  - url: http://{server.addresses["http"]}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
    metadata_config:
      send_interval: 1s
"""
    )
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        samples = None
        while time.monotonic() < deadline:
            assert prometheus.poll() is None, prometheus.stderr.read().decode()
            if db.series('up{job="prometheus"}').height:
                samples = db.select('up{job="prometheus"}').collect()
                if samples.height >= 3:
                    break
            time.sleep(0.5)
        assert samples is not None and samples.height >= 3, "no samples arrived in 90 s"
        assert set(samples["instance"]) == {f"127.0.0.1:{port}"}
        assert samples["value"].to_list() == [1.0] * samples.height
        # what we stored is what Prometheus stored: the same raw samples of a counter
        stored = db.select('prometheus_http_requests_total{handler="/metrics"}').collect()
        assert stored.height > 0
        last = stored["timestamp"].dt.epoch("ms").max()
        theirs = _prometheus_query(
            port, 'prometheus_http_requests_total{handler="/metrics"}[1h]', last / 1000
        )
        assert len(theirs) == 1
        their_samples = {(round(float(t) * 1000), float(v)) for t, v in theirs[0]["values"]}
        ours = set(zip(stored["timestamp"].dt.epoch("ms").to_list(), stored["value"].to_list()))
        assert ours and ours <= their_samples
        assert np.all(np.diff(stored["timestamp"].dt.epoch("ms").to_numpy()) > 0)
        # and the metadata Prometheus sent is answered
        with urllib.request.urlopen(
            f"http://{server.addresses['http']}/api/v1/metadata?metric=prometheus_build_info",
            timeout=30,
        ) as r:
            metadata = json.loads(r.read())["data"]
        deadline = time.monotonic() + 30
        while not metadata and time.monotonic() < deadline:
            time.sleep(0.5)
            with urllib.request.urlopen(
                f"http://{server.addresses['http']}/api/v1/metadata?metric=prometheus_build_info",
                timeout=30,
            ) as r:
                metadata = json.loads(r.read())["data"]
        assert metadata["prometheus_build_info"][0]["type"] == "gauge"
    finally:
        prometheus.terminate()
        try:
            prometheus.wait(30)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait()
        prometheus.stderr.close()
        server.stop()
        db.close()
