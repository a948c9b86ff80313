"""Real parts end to end: a Debian Prometheus scrapes a real node_exporter and itself each second
and remote-writes to us; then PromQL, label endpoints and promtool against our HTTP API answer what
Prometheus' own API answers on the same data. Skipped where the Debian binaries are absent."""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import tsdb_arrow as ta
from tsdb_arrow.promql.select import is_stale

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
SCRAPE_SECONDS = 36  # a [30s] window after this holds ~30 samples of each series

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None or NODE_EXPORTER is None,
        reason="apt install prometheus prometheus-node-exporter",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(address: str, path: str, params: dict | list) -> dict:
    """The JSON answer of a GET, the error envelope included."""
    url = f"http://{address}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def wait_http(address: str, path: str, proc: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"{name} exited: {proc.stderr.read().decode()}"
        try:
            with urllib.request.urlopen(f"http://{address}{path}", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer on {address} within 30 s")
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stderr.close()


def config(port: int, node_port: int, ours: str, scrape: bool) -> str:
    """Prometheus' configuration; without ``scrape`` the jobs stay but lose their targets, which
    ends their series with stale markers (removing a whole job would write none)."""
    prometheus, node = (f'"127.0.0.1:{p}"' if scrape else "" for p in (port, node_port))
    return f"""
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [{prometheus}]
  - job_name: node
    static_configs:
      - targets: [{node}]
remote_write:
  - url: http://{ours}/api/v1/write
    queue_config:
      batch_send_deadline: 500ms
    metadata_config:
      send_interval: 1s
"""


def raw_dump(address: str, at: float) -> dict:
    """Every stored sample of every series in the 10 minutes before ``at``, by label set."""
    result = get(address, "/api/v1/query", {"query": '{__name__=~".+"}[10m]', "time": at})
    assert result["status"] == "success", result
    return series_of(result["data"]["result"], "values")


class Feed:
    """Both servers over the same, finished samples and the times worth evaluating at."""

    def __init__(self, ours: str, theirs: str, db: ta.Database) -> None:
        self.ours, self.theirs = ours, theirs
        frame = db.select().collect()
        ms = frame["timestamp"].dt.epoch("ms").to_numpy()
        stale = is_stale(frame["value"].to_numpy())
        self.first, self.last = int(ms.min()), int(ms[~stale].max())
        self.stale_markers = int(stale.sum())
        # the sub-second phase furthest from every sample (stale markers included), so that
        # no window edge sits on a sample: Prometheus 2's windows are closed, 3's left-open
        phases = np.unique(ms % 1000)
        gaps = np.diff(np.append(phases, phases[0] + 1000))
        widest = int(np.argmax(gaps))
        self.phase = int(phases[widest] + gaps[widest] // 2) % 1000
        self.sample_phases = set(phases.tolist())

    def at(self, ms: int) -> float:
        """The time in seconds at ``ms`` moved to the phase no sample sits on."""
        return (ms // 1000 * 1000 + self.phase) / 1000

    def instants(self, settle: int = 0) -> list[float]:
        """Early (partial windows), middle, the last seconds, and after the stale markers; none
        in the first ``settle`` ms."""
        span = self.last - self.first
        ms = [self.first + 3000, self.first + span // 2, self.last - 3000, self.last - 1000,
              self.last + 6000]  # fmt: skip
        return [self.at(t) for t in ms if t >= self.first + settle]

    def range(self, settle: int = 0) -> dict:
        return {"start": self.at(self.first + settle), "end": self.at(self.last + 6000), "step": 1}


FRESH_COUNTER = re.compile(r"(?:rate|increase)\(prometheus_\w+\[(\d+)s\]")


def settle(expr: str) -> int:
    """How long after the first sample ``expr`` answers the same in Prometheus 2.42 and 3.

    Prometheus' own counters start near zero with the process, and a window that reaches back
    before a counter's first sample is extrapolated differently since Prometheus 2.51 (the
    zero-point limit applies after the half-interval rule, prometheus/prometheus#13725): there
    2.42 extends ``increase`` to the zero point (e.g. samples 1, 2 a second apart, 28 s into a
    [30s] window, 0.747 s before its end: 2.747), 3 by half an interval (2.247), as we do.
    """
    ranges = [int(r) for r in FRESH_COUNTER.findall(expr)]
    if "@ start()" in expr:
        # the first scrape of each target lands anywhere in the first interval: start where
        # every target has a sample, or both answer nothing
        ranges.append(1)
    return (max(ranges) + 1) * 1000 if ranges else 0


@pytest.fixture(scope="module")
def feed():
    work = Path(tempfile.mkdtemp(prefix="tsdb-arrow-node-"))
    procs: list[subprocess.Popen] = []
    db = ta.open(work / "db")
    server = ta.serve(db, otlp_grpc="off", otlp_http="off", http="127.0.0.1:0", flight="off")
    ours = server.addresses["http"]
    try:
        node_port, port = free_port(), free_port()
        node = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}", "--log.level=error",
             "--no-collector.systemd"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(node)
        wait_http(f"127.0.0.1:{node_port}", "/metrics", node, "node_exporter")
        cfg = work / "prometheus.yml"
        cfg.write_text(config(port, node_port, ours, scrape=True))
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={work / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(prometheus)
        theirs = f"127.0.0.1:{port}"
        wait_http(theirs, "/-/ready", prometheus, "prometheus")
        deadline = time.monotonic() + SCRAPE_SECONDS + 30
        while time.monotonic() < deadline:
            assert prometheus.poll() is None, prometheus.stderr.read().decode()
            if db.series('node_load1{job="node"}').height:
                ms = db.select('node_load1{job="node"}').collect()["timestamp"].dt.epoch("ms")
                if ms.max() - ms.min() >= SCRAPE_SECONDS * 1000:
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"Prometheus did not remote-write {SCRAPE_SECONDS} s of node samples")
        # stop scraping (a reload without targets: Prometheus writes the stale markers), so that
        # both servers end up with the same finished data once the queue has shipped it
        cfg.write_text(config(port, node_port, ours, scrape=False))
        prometheus.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while True:
            time.sleep(1)
            stale = is_stale(db.select('up{job="node"}').collect()["value"].to_numpy()).any()
            now = time.time()
            diff = differences(raw_dump(ours, now), raw_dump(theirs, now))
            if stale and not diff:
                break
            assert time.monotonic() < deadline, (stale, len(diff), diff[:10])
        yield Feed(ours, theirs, db)
    finally:
        for proc in reversed(procs):
            stop(proc)
        server.stop()
        db.close()
        shutil.rmtree(work, ignore_errors=True)


def series_of(result: list, key: str) -> dict:
    out = {}
    for item in result:
        points = [item[key]] if key == "value" else item[key]
        out[tuple(sorted(item["metric"].items()))] = [(float(t), float(v)) for t, v in points]
    return out


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-9)


def differences(mine: dict, theirs: dict) -> list[str]:
    """What differs between two results by label set, empty when they agree."""
    out = [f"only ours: {k}" for k in mine.keys() - theirs.keys()]
    out += [f"only Prometheus: {k}" for k in theirs.keys() - mine.keys()]
    for k in mine.keys() & theirs.keys():
        a, b = mine[k], theirs[k]
        if [t for t, _ in a] != [t for t, _ in b]:
            out.append(f"{k}: times {[t for t, _ in a]} != {[t for t, _ in b]}")
            continue
        out += [f"{k} @{t}: ours {va!r} Prometheus {vb!r}"
                for (t, va), (_, vb) in zip(a, b) if not close(va, vb)]  # fmt: skip
    return out


def topk_differences(mine: dict, theirs: dict) -> list[str]:
    """topk's differences: the same values at each time, and the same value for a series both
    picked; among tied values either side may pick either series."""
    a = {(k, t): v for k, points in mine.items() for t, v in points}
    b = {(k, t): v for k, points in theirs.items() for t, v in points}
    out = [f"{k} @{t}: ours {a[k, t]!r} Prometheus {b[k, t]!r}"
           for k, t in a.keys() & b.keys() if not close(a[k, t], b[k, t])]  # fmt: skip
    for t in {t for _, t in a} | {t for _, t in b}:
        va = sorted(v for (_, u), v in a.items() if u == t)
        vb = sorted(v for (_, u), v in b.items() if u == t)
        if len(va) != len(vb) or not all(map(close, va, vb)):
            out.append(f"@{t}: ours {va} Prometheus {vb}")
    return out


QUERIES = [
    "node_load1",
    "rate(node_cpu_seconds_total[30s])",
    "sum by (mode) (rate(node_cpu_seconds_total[30s]))",
    "histogram_quantile(0.9, sum by (le) "
    "(rate(prometheus_http_request_duration_seconds_bucket[30s])))",
    "topk(3, rate(node_network_receive_bytes_total[30s]))",
    "topk(3, rate(node_cpu_seconds_total[30s]))",
    "max_over_time(rate(node_cpu_seconds_total[10s])[30s:5s])",
    "count by (job) (up)",
    "rate(node_cpu_seconds_total[30s]) * on (instance) group_left (nodename) node_uname_info",
    'increase(node_network_receive_bytes_total{device="eth0"}[20s]) / ignoring (device) '
    "group_left node_load1",
    "avg_over_time(scrape_duration_seconds[30s]) > bool 0",
    "quantile by (job) (0.5, irate(scrape_samples_scraped[5s]) + scrape_series_added)",
    # beyond the list: more of the functions Grafana dashboards of node_exporter use
    "deriv(node_memory_MemFree_bytes[20s])",
    "predict_linear(node_memory_MemAvailable_bytes[30s], 60)",
    "holt_winters(node_load1[30s], 0.5, 0.5)",
    "delta(node_memory_MemFree_bytes[30s])",
    "changes(node_load1[30s]) + on (instance) group_right "
    'resets(node_cpu_seconds_total{cpu="0"}[30s])',
    'rate(node_cpu_seconds_total{mode="idle"}[30s] @ end())',
    "node_load1 @ start()",
    "quantile_over_time(0.9, scrape_duration_seconds[30s])",
    "stddev by (job) (scrape_duration_seconds)",
    'count_values("v", up)',
    'label_replace(rate(node_cpu_seconds_total{mode="user"}[30s]), "c", "cpu-$1", "cpu", "(.*)")',
    "node_load1 offset 10s",
    "rate(node_cpu_seconds_total[30s] offset 5s)",
    "timestamp(node_load1)",
    "histogram_quantile(0.5, rate(prometheus_http_request_duration_seconds_bucket[30s]))",
    "sum by (instance) (rate(node_network_receive_bytes_total[30s])) / on (instance) "
    "sum by (instance) (rate(node_network_transmit_bytes_total[30s]))",
    "absent(no_such_metric) + on () group_left count(up)",
    '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[30s]))',
    "bottomk(2, node_filesystem_avail_bytes)",
]


def test_the_feed_holds_both_targets(feed):
    assert feed.last - feed.first >= SCRAPE_SECONDS * 1000
    assert feed.stale_markers > 0
    jobs = get(feed.ours, "/api/v1/label/job/values", {})["data"]
    assert jobs == ["node", "prometheus"]


@pytest.mark.parametrize("expr", QUERIES)
def test_instant_query_answers_as_prometheus(feed, expr):
    if "[30s:5s]" in expr and 0 in feed.sample_phases:
        pytest.skip("a sample sits on a subquery step: the two versions' windows differ there")
    compare = topk_differences if expr.startswith(("topk", "bottomk")) else differences
    answered, times = 0, feed.instants(settle(expr))
    for at in times:
        mine = get(feed.ours, "/api/v1/query", {"query": expr, "time": at})
        theirs = get(feed.theirs, "/api/v1/query", {"query": expr, "time": at})
        assert mine["status"] == theirs["status"] == "success", (mine, theirs)
        assert mine["data"]["resultType"] == theirs["data"]["resultType"] == "vector"
        a, b = (series_of(r["data"]["result"], "value") for r in (mine, theirs))
        assert not compare(a, b), (expr, at, compare(a, b))
        answered += bool(b)
    assert answered >= len(times) - 1  # after the stale markers there may be none


@pytest.mark.parametrize("expr", QUERIES)
def test_range_query_answers_as_prometheus(feed, expr):
    if "[30s:5s]" in expr and 0 in feed.sample_phases:
        pytest.skip("a sample sits on a subquery step: the two versions' windows differ there")
    params = {"query": expr, **feed.range(settle(expr))}
    mine = get(feed.ours, "/api/v1/query_range", params)
    theirs = get(feed.theirs, "/api/v1/query_range", params)
    assert mine["status"] == theirs["status"] == "success", (mine, theirs)
    assert mine["data"]["resultType"] == theirs["data"]["resultType"] == "matrix"
    a, b = (series_of(r["data"]["result"], "values") for r in (mine, theirs))
    compare = topk_differences if expr.startswith(("topk", "bottomk")) else differences
    assert b and not compare(a, b), (expr, compare(a, b))


def label_params(feed: Feed) -> list[dict]:
    return [{}, {"start": feed.at(feed.first), "end": feed.at(feed.last)}]


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/api/v1/labels", []),
        ("/api/v1/labels", [("match[]", "node_cpu_seconds_total")]),
        ("/api/v1/label/job/values", []),
        ("/api/v1/label/__name__/values", []),
        ("/api/v1/label/mode/values", [("match[]", 'node_cpu_seconds_total{cpu="0"}')]),
        ("/api/v1/series", [("match[]", "up")]),
        ("/api/v1/series", [("match[]", "node_cpu_seconds_total"), ("match[]", "node_load1")]),
    ],
)
def test_label_endpoints_answer_as_prometheus(feed, path, extra):
    for params in label_params(feed):
        query = [*params.items(), *extra]
        mine, theirs = get(feed.ours, path, query), get(feed.theirs, path, query)
        assert mine["status"] == theirs["status"] == "success"
        assert theirs["data"]
        if path == "/api/v1/series":
            key = lambda labels: sorted(labels.items())  # noqa: E731
            assert sorted(mine["data"], key=key) == sorted(theirs["data"], key=key)
        else:
            assert mine["data"] == theirs["data"]  # both sorted


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, "query", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt install prometheus)")
@pytest.mark.parametrize(
    "args",
    [
        ("instant", "{time}", "node_load1"),
        ("instant", "{time}", "count by (job) (up)"),
        ("instant", "{time}", 'rate(node_cpu_seconds_total{mode="idle"}[30s])'),
        ("range", "{range}", "node_load1"),
        ("range", "{range}", 'rate(node_network_receive_bytes_total{device="eth0"}[30s])'),
        ("series", "{span}", "--match=up", "--match=node_load1"),
        ("labels", "{span}", "job"),
        ("labels", "{span}", "__name__"),
    ],
)
def test_promtool_prints_what_it_prints_for_prometheus(feed, args):
    command, when, *rest = args
    t = feed.instants()[2]
    times = {
        "{time}": [f"--time={t}"],
        "{range}": [f"--start={feed.at(feed.first)}", f"--end={t}", "--step=1s"],
        "{span}": [f"--start={feed.at(feed.first)}", f"--end={t}"],
    }[when]
    flags = [a for a in rest if a.startswith("--")]
    rest = [a for a in rest if not a.startswith("--")]
    outputs = []
    for address in (feed.ours, feed.theirs):
        done = promtool(command, *times, *flags, f"http://{address}", *rest)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[1].strip()
    if command == "instant":  # an aggregation's series come in no specified order
        outputs = [sorted(out.splitlines()) for out in outputs]
    assert outputs[0] == outputs[1]
