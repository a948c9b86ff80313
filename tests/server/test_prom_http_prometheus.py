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
        # promtool's default range is the year around now; the samples are from 2023
        done = promtool(
            "series", "--match=up", "--match=node_load1", f"--start={S0}", f"--end={S0 + 30}",
            served,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            '{__name__="node_load1", instance="a"}',
            '{__name__="up", instance="a", job="api"}',
            '{__name__="up", instance="b", job="web"}',
        ]

    def test_series_out_of_the_range(self, served):
        done = promtool("series", "--match=up", served)
        assert (done.returncode, done.stdout) == (0, "")

    def test_labels(self, served):
        span = [f"--start={S0}", f"--end={S0 + 30}"]
        done = promtool("labels", *span, served, "job")
        assert (done.returncode, done.stdout) == (0, "api\nweb\n")
        done = promtool("labels", *span, served, "__name__")
        assert (done.returncode, done.stdout) == (0, "node_load1\nup\n")
        # promtool's default range is the year around now: no block (nor the head) of 2023
        done = promtool("labels", served, "job")
        assert (done.returncode, done.stdout) == (0, "")

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


def _get(address: str, path: str, params: dict) -> dict:
    url = f"http://{address}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    """Our server and a Prometheus that scrapes itself each second and remote-writes to us;
    yields once at least 12 s of samples have arrived, stops both after the module."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (apt install prometheus)")
    tmp_path = tmp_path_factory.mktemp("prometheus")
    db = ta.open(tmp_path / "db")
    server = ta.serve(db, otlp_grpc="off", otlp_http="off", http="127.0.0.1:0", flight="off")
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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert prometheus.poll() is None, prometheus.stderr.read().decode()
            if db.series('up{job="prometheus"}').height:
                ts = db.select('up{job="prometheus"}').collect()["timestamp"].dt.epoch("ms")
                if ts.max() - ts.min() >= 12_000:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("Prometheus did not remote-write 12 s of samples within 120 s")
        time.sleep(3)  # the batches of the scrapes before now have arrived
        yield db, server.addresses["http"], port
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


@pytest.mark.slow
def test_prometheus_remote_writes_its_own_scrapes_to_us(feed):
    db, ours, port = feed
    samples = db.select('up{job="prometheus"}').collect()
    assert set(samples["instance"]) == {f"127.0.0.1:{port}"}
    assert samples["value"].to_list() == [1.0] * samples.height
    # what we stored is what Prometheus stored: the same raw samples of a counter
    stored = db.select('prometheus_http_requests_total{handler="/metrics"}').collect()
    times = stored["timestamp"].dt.epoch("ms")
    theirs = _get(
        f"127.0.0.1:{port}",
        "/api/v1/query",
        {
            "query": 'prometheus_http_requests_total{handler="/metrics"}[1h]',
            "time": times.max() / 1000,
        },
    )["data"]["result"]
    assert len(theirs) == 1
    their_samples = {(round(float(t) * 1000), float(v)) for t, v in theirs[0]["values"]}
    ours_samples = set(zip(times.to_list(), stored["value"].to_list()))
    assert len(ours_samples) >= 10 and ours_samples <= their_samples
    # and the metadata Prometheus sent is answered
    deadline = time.monotonic() + 30
    while True:
        metadata = _get(ours, "/api/v1/metadata", {"metric": "prometheus_build_info"})["data"]
        if metadata or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert metadata["prometheus_build_info"][0]["type"] == "gauge"


QUERIES = [
    "up",
    "rate(prometheus_http_requests_total[5s])",
    "sum by (handler) (rate(prometheus_http_requests_total[5s]))",
    "histogram_quantile(0.9, sum by (le) "
    "(rate(prometheus_http_request_duration_seconds_bucket[5s])))",
    # values that never tie (alloc and heap_alloc are equal, and topk would pick either)
    'topk(2, {__name__=~"go_memstats_(sys|alloc)_bytes|process_resident_memory_bytes"})',
    "max_over_time(rate(prometheus_http_requests_total[3s])[6s:1s])",
]


def _series(result: list, key: str) -> dict:
    out = {}
    for item in result:
        points = [item[key]] if key == "value" else item[key]
        out[tuple(sorted(item["metric"].items()))] = [(float(t), float(v)) for t, v in points]
    return out


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if len(a[k]) != len(b[k]):
            return False
        for (ta_, va), (tb, vb) in zip(a[k], b[k]):
            if ta_ != tb or not (
                (np.isnan(va) and np.isnan(vb)) or np.isclose(va, vb, rtol=1e-9, atol=0)
            ):
                return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("expr", QUERIES)
def test_same_answers_as_prometheus(feed, expr):
    """Instant and range queries answered by the real engine equal Prometheus' own, at times
    no sample sits on (Prometheus 2's windows are closed, 3's left-open; see the issue)."""
    db, ours, port = feed
    ts = db.select('up{job="prometheus"}').collect()["timestamp"].dt.epoch("ms").to_numpy()
    phases = set((ts % 1000).tolist())
    if 0 in phases and "[6s:1s]" in expr:
        pytest.skip("a sample sits on a subquery step: the two versions' windows differ there")
    phase = next(p for p in range(250, 1250) if p % 1000 not in phases) % 1000
    end = (int(ts.max()) - 2000) // 1000 * 1000 + phase
    start = end - 6000
    theirs_address = f"127.0.0.1:{port}"
    for path, params, key in [
        ("/api/v1/query", {"query": expr, "time": end / 1000}, "value"),
        ("/api/v1/query_range",
         {"query": expr, "start": start / 1000, "end": end / 1000, "step": 1}, "values"),
    ]:  # fmt: skip
        mine = _get(ours, path, params)
        theirs = _get(theirs_address, path, params)
        assert mine["status"] == theirs["status"] == "success", (mine, theirs)
        assert mine["data"]["resultType"] == theirs["data"]["resultType"]
        a, b = _series(mine["data"]["result"], key), _series(theirs["data"]["result"], key)
        assert a and _same(a, b), (expr, path, a, b)
