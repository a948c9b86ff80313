"""The Prometheus HTTP API over a real socket: every endpoint's JSON, parameters and errors.

Queries run on a stand-in engine (``prom_stub.py``) so that these tests pin the API layer:
parameters, value encoding, envelopes and limits.
"""

from __future__ import annotations

import gzip
import json
import threading
import urllib.error
import urllib.parse
import urllib.request

import polars as pl
import pytest

import tsdb_arrow as ta
from tsdb_arrow.promql.values import Steps
from tsdb_arrow.server.prom_api import QueryOptions
from tsdb_arrow.server.prom_http import PromHttpServer

from .prom_stub import StubEngine, limits_tuple

T0 = 1_700_000_000_000
S0 = T0 // 1000


def write_fixture(db: ta.Database) -> None:
    db.write(
        pl.DataFrame(
            {
                "timestamp": [T0, T0 + 15_000, T0 + 30_000] * 2 + [T0],
                "value": [1.0, 0.0, 1.0, 1.0, float("nan"), 0.5, 0.25],
                "__name__": ["up"] * 6 + ["node_load1"],
                "job": ["api"] * 3 + ["web"] * 3 + [None],
                "instance": ["a"] * 3 + ["b"] * 3 + ["a"],
            }
        )
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = ta.open(tmp_path_factory.mktemp("prom") / "db")
    write_fixture(db)
    engine = StubEngine()
    server = PromHttpServer(
        db,
        "127.0.0.1:0",
        engine=engine,
        limits_factory=limits_tuple,
        # the waiting queries of the concurrency test must outlast a loaded machine
        options=QueryOptions(max_samples=1000, timeout=120.0, max_concurrent=1),
    )
    yield server, engine
    engine.release.set()
    server.stop()
    db.close()


def call(server, path, params=None, *, method="GET", headers=None, raw=False):
    """(status, headers, parsed JSON or raw bytes) of one request."""
    query = urllib.parse.urlencode(params or {}, doseq=True)
    url = f"http://{server.address}{path}"
    data = None
    if method == "POST":
        data = query.encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    elif query:
        url += "?" + query
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            status, got, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, got, body = exc.code, exc.headers, exc.read()
    if raw or got.get("Content-Type") != "application/json":
        return status, got, body
    return status, got, json.loads(body)


def ok(data, warnings=None):
    out = {"status": "success", "data": data}
    if warnings:
        out["warnings"] = warnings
    return out


def bad(kind, message):
    return {"status": "error", "errorType": kind, "error": message}


# -- queries -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_instant_query_answers_a_vector(served, method):
    server, engine = served
    status, headers, body = call(
        server, "/api/v1/query", {"query": "up", "time": S0 + 20}, method=method
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body == ok(
        {
            "resultType": "vector",
            "result": [
                {"metric": {"__name__": "up", "instance": "a", "job": "api"},
                 "value": [S0 + 20, "0"]},
                {"metric": {"__name__": "up", "instance": "b", "job": "web"},
                 "value": [S0 + 20, "NaN"]},
            ],
        }
    )  # fmt: skip
    call_ = engine.calls[-1]
    assert call_["steps"] == Steps(T0 + 20_000, T0 + 20_000, 0)
    assert call_["lookback"] == 300_000 and call_["limits"] == (1000, 120.0)


def test_instant_query_times_rfc3339_and_milliseconds(served):
    server, engine = served
    status, _, body = call(
        server, "/api/v1/query", {"query": "node_load1", "time": "2023-11-14T22:13:20.5Z"}
    )
    assert status == 200
    assert body["data"]["result"] == [
        {"metric": {"__name__": "node_load1", "instance": "a"}, "value": [S0 + 0.5, "0.25"]}
    ]
    assert json.dumps(body["data"]["result"][0]["value"][0]) == "1700000000.5"
    assert engine.calls[-1]["steps"].start == T0 + 500


def test_raw_number_formats(served):
    server, _ = served
    _, _, raw = call(server, "/api/v1/query", {"query": "up", "time": S0 + 15.25}, raw=True)
    assert b'"value":[1700000015.250,"0"]' in raw and b'"value":[1700000015.250,"NaN"]' in raw


def test_query_lookback_delta_and_timeout_are_passed_on(served):
    server, engine = served
    status, _, body = call(
        server,
        "/api/v1/query",
        {"query": "up", "time": S0 + 100, "lookback_delta": "1m", "timeout": "2.5"},
    )
    assert status == 200 and body["data"]["result"] == []  # 70 s past the last sample
    assert engine.calls[-1]["lookback"] == 60_000 and engine.calls[-1]["limits"] == (1000, 2.5)


def test_range_query_answers_a_matrix_sorted_by_labels(served):
    server, _ = served
    status, _, body = call(
        server,
        "/api/v1/query_range",
        {"query": "up", "start": S0 - 15, "end": S0 + 30, "step": "15s"},
    )
    assert status == 200
    assert body == ok(
        {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": "up", "instance": "a", "job": "api"},
                    "values": [[S0, "1"], [S0 + 15, "0"], [S0 + 30, "1"]],
                },
                {
                    "metric": {"__name__": "up", "instance": "b", "job": "web"},
                    "values": [[S0, "1"], [S0 + 15, "NaN"], [S0 + 30, "0.5"]],
                },
            ],
        }
    )


def test_range_query_limit_keeps_the_first_series(served):
    server, _ = served
    params = {"query": "up", "start": S0, "end": S0 + 30, "step": 30, "limit": 1}
    status, _, body = call(server, "/api/v1/query_range", params)
    assert status == 200
    assert [r["metric"]["job"] for r in body["data"]["result"]] == ["api"]


def test_scalar_and_string_results(served):
    server, _ = served
    assert call(server, "/api/v1/query", {"query": "42", "time": S0})[2] == ok(
        {"resultType": "scalar", "result": [S0, "42"]}
    )
    assert call(server, "/api/v1/query", {"query": '"hello"', "time": S0})[2] == ok(
        {"resultType": "string", "result": [S0, "hello"]}
    )
    params = {"query": "42", "start": S0, "end": S0 + 2, "step": 1}
    assert call(server, "/api/v1/query_range", params)[2] == ok(
        {"resultType": "matrix",
         "result": [{"metric": {}, "values": [[S0, "42"], [S0 + 1, "42"], [S0 + 2, "42"]]}]}
    )  # fmt: skip


def test_instant_query_of_a_range_selector_answers_the_window(served):
    server, _ = served
    status, _, body = call(server, "/api/v1/query", {"query": "up[20s]", "time": S0 + 30})
    assert status == 200
    assert body == ok(
        {
            "resultType": "matrix",
            "result": [
                {"metric": {"__name__": "up", "instance": "a", "job": "api"},
                 "values": [[S0 + 15, "0"], [S0 + 30, "1"]]},
                {"metric": {"__name__": "up", "instance": "b", "job": "web"},
                 "values": [[S0 + 15, "NaN"], [S0 + 30, "0.5"]]},
            ],
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "params", "status", "kind", "message"),
    [
        ("/api/v1/query", {}, 400, "bad_data",
         'invalid parameter "query": unknown position: parse error: no expression found in '
         "input"),
        ("/api/v1/query", {"query": "up", "time": "yesterday"}, 400, "bad_data",
         'invalid parameter "time": cannot parse "yesterday" to a valid timestamp'),
        ("/api/v1/query", {"query": "up", "timeout": "soon"}, 400, "bad_data",
         'invalid parameter "timeout": cannot parse "soon" to a valid duration'),
        ("/api/v1/query", {"query": "up", "limit": "-1"}, 400, "bad_data",
         'invalid parameter "limit": cannot parse "-1": limit must be >= 0'),
        ("/api/v1/query", {"query": "execution_error"}, 422, "execution",
         "found duplicate series for the match group"),
        ("/api/v1/query", {"query": "too_many_samples"}, 422, "execution",
         "query processing would load too many samples into memory"),
        ("/api/v1/query", {"query": "slow", "timeout": "0.2"}, 503, "timeout",
         "query timed out in expression evaluation"),
        ("/api/v1/query_range", {"query": "up", "end": S0, "step": 1}, 400, "bad_data",
         'invalid parameter "start": cannot parse "" to a valid timestamp'),
        ("/api/v1/query_range", {"query": "up", "start": S0, "end": S0 - 1, "step": 1}, 400,
         "bad_data", "end timestamp must not be before start time"),
        ("/api/v1/query_range", {"query": "up", "start": S0, "end": S0, "step": "0"}, 400,
         "bad_data",
         "zero or negative query resolution step widths are not accepted. Try a positive "
         "integer"),
        ("/api/v1/query_range", {"query": "up", "start": 0, "end": 11001, "step": 1}, 400,
         "bad_data",
         "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
         "query resolution (?step=XX)"),
        ("/api/v1/label/0bad/values", {}, 400, "bad_data", 'invalid label name: "0bad"'),
        ("/api/v1/series", {}, 400, "bad_data", "no match[] parameter provided"),
        ("/api/v1/series", {"match[]": "up", "start": S0, "end": S0 - 1}, 400, "bad_data",
         "end timestamp must not be before start time"),
    ],
)  # fmt: skip
def test_error_envelopes(served, path, params, status, kind, message):
    server, _ = served
    got_status, headers, body = call(server, path, params)
    assert (got_status, headers["Content-Type"]) == (status, "application/json")
    assert body == bad(kind, message)


def test_parse_errors_are_bad_data(served):
    server, engine = served
    before = len(engine.calls)
    for expr in ("sum(", "rate(up)"):
        status, _, body = call(server, "/api/v1/query", {"query": expr})
        assert status == 400 and body["errorType"] == "bad_data"
        assert body["error"].startswith('invalid parameter "query": ')
    assert len(engine.calls) == before  # never evaluated


def test_bad_selector_in_match_is_bad_data(served):
    server, _ = served
    status, _, body = call(server, "/api/v1/series", {"match[]": '{job=~".*"}'})
    assert status == 400 and body["errorType"] == "bad_data"
    assert 'invalid parameter "match[]"' in body["error"]


# -- series and labels ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_series(served, method):
    server, _ = served
    status, _, body = call(
        server, "/api/v1/series", {"match[]": ['up{job="web"}', "node_load1"]}, method=method
    )
    assert status == 200
    assert body == ok(
        [
            {"__name__": "node_load1", "instance": "a"},
            {"__name__": "up", "instance": "b", "job": "web"},
        ]
    )


def test_series_and_labels_of_a_time_range(served):
    server, _ = served
    both = {"match[]": ["up", "node_load1"]}
    assert call(server, "/api/v1/series", {**both, "start": S0 + 100})[2] == ok([])
    assert call(server, "/api/v1/series", {**both, "start": S0 + 1, "end": S0 + 30})[2] == ok(
        [
            {"__name__": "up", "instance": "a", "job": "api"},
            {"__name__": "up", "instance": "b", "job": "web"},
        ]
    )
    assert call(server, "/api/v1/series", {**both, "end": S0})[2]["data"][0] == {
        "__name__": "node_load1", "instance": "a",
    }  # fmt: skip
    # label names and values, as Prometheus: every series of a block (the head is one, here
    # spanning S0..S0+30) that the range touches, whether or not its samples fall inside
    params = {"match[]": '{instance="a"}', "start": S0 + 1}
    assert call(server, "/api/v1/labels", params)[2] == ok(["__name__", "instance", "job"])
    assert call(server, "/api/v1/label/__name__/values", params)[2] == ok(["node_load1", "up"])
    params = {"match[]": "node_load1", "start": S0 + 1}
    assert call(server, "/api/v1/labels", params)[2] == ok(["__name__", "instance"])
    params = {"match[]": "node_load1", "start": S0 + 31}
    assert call(server, "/api/v1/labels", params)[2] == ok([])
    assert call(server, "/api/v1/label/__name__/values", {"start": S0 + 100})[2] == ok([])
    names = ok(["node_load1", "up"])
    assert call(server, "/api/v1/label/__name__/values", {"start": S0 + 1})[2] == names
    assert call(server, "/api/v1/labels", {"end": S0})[2] == ok(["__name__", "instance", "job"])
    assert call(server, "/api/v1/label/job/values", {"end": S0 - 1})[2] == ok([])


def test_series_limit_warns(served):
    server, _ = served
    status, _, body = call(server, "/api/v1/series", {"match[]": "up", "limit": 1})
    assert status == 200
    assert body == ok(
        [{"__name__": "up", "instance": "a", "job": "api"}], ["results truncated due to limit"]
    )


def test_labels_and_values(served):
    server, _ = served
    assert call(server, "/api/v1/labels")[2] == ok(["__name__", "instance", "job"])
    assert call(server, "/api/v1/labels", {"match[]": "node_load1"})[2] == ok(
        ["__name__", "instance"]
    )
    assert call(server, "/api/v1/label/__name__/values")[2] == ok(["node_load1", "up"])
    assert call(server, "/api/v1/label/job/values")[2] == ok(["api", "web"])
    assert call(server, "/api/v1/label/job/values", {"match[]": "node_load1"})[2] == ok([])
    assert call(server, "/api/v1/label/nope/values")[2] == ok([])
    assert call(server, "/api/v1/label/instance/values", {"limit": 1})[2] == ok(
        ["a"], ["results truncated due to limit"]
    )


def test_buildinfo_metadata_ready_healthy(served):
    server, _ = served
    status, _, body = call(server, "/api/v1/status/buildinfo")
    assert status == 200 and body["status"] == "success"
    assert body["data"]["version"] == ta.__version__
    assert set(body["data"]) == {
        "version", "revision", "branch", "buildUser", "buildDate", "goVersion",
    }  # fmt: skip
    assert call(server, "/api/v1/metadata", {"metric": "nothing"})[2] == ok({})
    assert call(server, "/-/ready")[:3:2] == (200, b"tsdb-arrow is Ready.\n")
    assert call(server, "/-/healthy")[:3:2] == (200, b"tsdb-arrow is Healthy.\n")
    assert call(server, "/-/healthy", method="HEAD")[:3:2] == (200, b"")


def test_endpoints_grafana_asks_for_that_have_nothing_here(served):
    server, _ = served
    params = {"query": "up", "start": S0, "end": S0 + 30}
    assert call(server, "/api/v1/query_exemplars", params)[2] == ok([])
    assert call(server, "/api/v1/rules")[2] == ok({"groups": []})
    assert call(server, "/api/v1/alerts")[2] == ok({"alerts": []})


def test_unknown_path_and_method(served):
    server, _ = served
    assert call(server, "/api/v1/nothing")[:3:2] == (404, b"404 page not found\n")
    status, headers, _ = call(server, "/api/v1/write")
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, _ = call(server, "/api/v1/labels", method="DELETE")
    assert status == 405


def test_gzip_when_accepted(served):
    server, _ = served
    params = {"query": "up", "start": S0, "end": S0 + 30, "step": "0.1"}
    plain = call(server, "/api/v1/query_range", params, raw=True)
    zipped = call(server, "/api/v1/query_range", params, raw=True,
                  headers={"Accept-Encoding": "gzip, deflate"})  # fmt: skip
    assert "Content-Encoding" not in plain[1]
    assert zipped[1]["Content-Encoding"] == "gzip" and len(zipped[2]) < len(plain[2])
    assert gzip.decompress(zipped[2]) == plain[2]
    assert len(json.loads(plain[2])["data"]["result"][0]["values"]) == 301


def test_concurrent_queries_wait_for_a_slot_then_are_refused(served):
    server, engine = served  # max_concurrent=1: one runs, four wait, the sixth is refused
    engine.release.clear()
    engine.entered.clear()
    results: list = []
    first = threading.Thread(
        target=lambda: results.append(call(server, "/api/v1/query", {"query": "blocked"}))
    )
    first.start()
    assert engine.entered.wait(30)

    def query() -> None:
        results.append(call(server, "/api/v1/query", {"query": "42"}))

    waiting = [threading.Thread(target=query) for _ in range(4)]
    for t in waiting:
        t.start()
    for _ in range(3000):
        if server.app._waiting == 4:
            break
        threading.Event().wait(0.01)
    assert server.app._waiting == 4
    status, headers, body = call(server, "/api/v1/query", {"query": "42"})
    assert status == 503 and headers["Retry-After"] == "1"
    assert body["errorType"] == "unavailable" and "too many queries" in body["error"]
    engine.release.set()
    for t in [first, *waiting]:
        t.join(30)
    assert sorted(r[0] for r in results) == [200] * 5


def test_bearer_token(tmp_path):
    db = ta.open(tmp_path / "db")
    write_fixture(db)
    server = PromHttpServer(db, "127.0.0.1:0", auth_token="s3cret", engine=StubEngine(),
                            limits_factory=limits_tuple)  # fmt: skip
    try:
        status, headers, body = call(server, "/api/v1/series", {"match[]": "up"})
        assert (status, body) == (401, b"Unauthorized\n")
        assert headers["WWW-Authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer guess"}
        assert call(server, "/api/v1/labels", headers=wrong)[:3:2] == (401, b"Unauthorized\n")
        right = {"Authorization": "Bearer s3cret"}
        assert call(server, "/api/v1/labels", headers=right)[2] == ok(
            ["__name__", "instance", "job"]
        )
        assert call(server, "/-/ready")[0] == 200  # probes need no token
    finally:
        server.stop()
        db.close()


def test_serve_starts_and_stops_the_listener(tmp_path):
    db = ta.open(tmp_path / "db")
    with ta.serve(db, otlp_grpc="off", otlp_http="off", http="127.0.0.1:0", flight="off") as server:
        address = server.addresses["http"]
        with urllib.request.urlopen(f"http://{address}/api/v1/labels", timeout=30) as r:
            assert json.loads(r.read()) == ok([])
        with pytest.raises(ta.ServerError, match="cannot listen for the Prometheus HTTP API"):
            ta.serve(db, otlp_grpc="off", otlp_http="off", http=address, flight="off")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{address}/-/ready", timeout=5)
    with pytest.raises(ta.ServerError, match="HOST:PORT"):
        ta.serve(db, otlp_grpc="off", otlp_http="off", http="9090")
    db.close()


def test_query_options_refuse_bad_values():
    with pytest.raises(ta.ConfigError, match="at least 1"):
        QueryOptions(max_concurrent=0)
    with pytest.raises(ta.ConfigError, match="positive"):
        QueryOptions(timeout=0)


def test_tsdb_arrow_serve_answers_queries_with_the_engine(tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    db = ta.open(tmp_path / "db")
    write_fixture(db)
    db.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).with_name("tsdb-arrow")
    command = [str(cli), "serve", "--data", str(tmp_path / "db"), "--otlp-grpc", "off",
               "--otlp-http", "off", "--http", f"127.0.0.1:{port}", "--flight", "off",
               "--query-timeout", "300"]  # fmt: skip  (a fresh clone compiles the kernels)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        try:
            lines = []
            for line in p.stdout:
                lines.append(line.strip())
                if line.strip() == "tsdb-arrow: ready":
                    break
            assert f"tsdb-arrow: http listening on 127.0.0.1:{port}" in lines, lines

            class Address:
                address = f"127.0.0.1:{port}"

            status, _, body = call(
                Address, "/api/v1/query", {"query": "sum by (job) (up)", "time": S0 + 20}
            )
            assert status == 200
            assert sorted((r["metric"]["job"], r["value"][1]) for r in body["data"]["result"]) == [
                ("api", "0"),
                ("web", "NaN"),
            ]
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(60) == 0, p.stderr.read()
