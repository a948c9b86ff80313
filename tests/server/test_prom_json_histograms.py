"""Native histogram results in the Prometheus API's JSON: byte for byte what Prometheus 3
writes (``MarshalHistogram``, the sample and series codecs), worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tsdb_arrow.promql.native import from_struct
from tsdb_arrow.server.prom_api import PromApi
from tsdb_arrow.server.prom_json_histograms import histogram_objects
from tsdb_arrow.sketch import ExponentialHistogram, histogram_column

# {{schema:0 sum:5 count:4 buckets:[1 2 1]}}: (0.5,1] (1,2] (2,4] = OTel buckets -1, 0, 1.
H = ExponentialHistogram(scale=0, count=4, sum=5.0, positive_offset=-1,
                         positive_counts=np.array([1, 2, 1], np.uint64))
H_JSON = ('{"count":"4","sum":"5","buckets":[[0,"0.5","1","1"],[0,"1","2","2"],'
          '[0,"2","4","1"]]}')
# Zero bucket [-0.5,0.5] and negative Prometheus bucket 1 of schema 1: [-sqrt2,-1).
NEG = ExponentialHistogram(scale=1, count=3, sum=-3.0, zero_count=1, zero_threshold=0.5,
                           negative_offset=0, negative_counts=np.array([2], np.uint64))
NEG_JSON = ('{"count":"3","sum":"-3","buckets":[[1,"-1.414213562373095","-1","2"],'
            '[3,"-0.5","0.5","1"]]}')


def _objects(*hists: ExponentialHistogram) -> list[str]:
    pool = from_struct(_series(histogram_column(list(hists))))
    return histogram_objects(pool, np.arange(len(hists))).to_list()


def _series(column: pa.Array):
    import polars as pl

    return pl.Series("histogram", column)


def test_objects_as_prometheus_writes_them():
    empty = ExponentialHistogram(scale=3, count=0, sum=0.0)
    # zero threshold 0: Prometheus writes the zero bucket as [-0, 0]
    zero = ExponentialHistogram(scale=0, count=2, sum=0.0, zero_count=2)
    # empty buckets are left out; schema 2 bounds are 2**(k/4) as Prometheus' table has them
    # (2**0.5 and 2**0.75 an ulp below the correctly rounded 1.4142135623730951 and
    # 1.681792830507429)
    gaps = ExponentialHistogram(scale=2, count=3, sum=2.5, positive_offset=0,
                                positive_counts=np.array([1, 0, 2], np.uint64))
    # schema -1: OTel bucket 0 is (1,4], 1 is (4,16]
    wide = ExponentialHistogram(scale=-1, count=1, sum=9.0, positive_offset=1,
                                positive_counts=np.array([1], np.uint64))
    assert _objects(H, NEG, empty, zero, gaps, wide) == [
        H_JSON,
        NEG_JSON,
        '{"count":"0","sum":"0"}',
        '{"count":"2","sum":"0","buckets":[[3,"-0","0","2"]]}',
        '{"count":"3","sum":"2.5","buckets":[[0,"1","1.189207115002721","1"],'
        '[0,"1.414213562373095","1.6817928305074288","2"]]}',
        '{"count":"1","sum":"9","buckets":[[0,"4","16","1"]]}',
    ]


def test_buckets_reaching_into_the_zero_bucket_are_cut_at_its_threshold():
    # zero threshold 0.7 inside (0.5,1] and [-1,-0.5): Prometheus cuts them to it
    h = ExponentialHistogram(scale=0, count=4, sum=0.0, zero_count=1, zero_threshold=0.7,
                             positive_offset=-1, positive_counts=np.array([2], np.uint64),
                             negative_offset=-1, negative_counts=np.array([1], np.uint64))
    assert _objects(h) == [
        '{"count":"4","sum":"0","buckets":[[1,"-1","-0.7","1"],[3,"-0.7","0.7","1"],'
        '[0,"0.7","1","2"]]}'
    ]


@pytest.fixture
def api(tmp_path):
    db = ta.open(tmp_path / "db")
    db.write(pa.table({
        "timestamp": [0, 0, 60_000],
        "histogram": histogram_column([H, NEG, H]),
        "__name__": ["lat", "lat", "mixed"],
        "job": ["a", "b", "m"],
    }))
    db.write(pa.table({
        "timestamp": [0, 0],
        "value": [7.0, 1.0],
        "__name__": ["lat", "mixed"],
        "job": ["f", "m"],
    }))
    yield PromApi(db)
    db.close()


def _body(api: PromApi, endpoint: str, **form: str) -> str:
    answer = api.respond(getattr(api, endpoint), {k: [v] for k, v in form.items()})
    assert answer.status == 200, answer.body
    text = answer.body.decode()
    json.loads(text)  # valid JSON
    return text


def test_instant_vector_with_histogram_samples(api):
    body = _body(api, "query", query='lat{job=~"a|b"}', time="30")
    assert body == (
        '{"status":"success","data":{"resultType":"vector","result":['
        '{"metric":{"__name__":"lat","job":"b"},"histogram":[30,' + NEG_JSON + "]},"
        '{"metric":{"__name__":"lat","job":"a"},"histogram":[30,' + H_JSON + "]}]}}"
    )


def test_instant_vector_mixes_floats_and_histograms(api):
    data = json.loads(_body(api, "query", query="lat", time="30"))["data"]["result"]
    by_job = {r["metric"]["job"]: r for r in data}
    assert by_job["f"] == {"metric": {"__name__": "lat", "job": "f"}, "value": [30, "7"]}
    assert by_job["a"]["histogram"] == [30, json.loads(H_JSON)]
    assert "value" not in by_job["a"] and len(data) == 3


def test_limit_counts_histogram_samples(api):
    data = json.loads(_body(api, "query", query="lat", time="30", limit="2"))["data"]["result"]
    assert len(data) == 2


def test_range_query_series_with_values_and_histograms(api):
    body = _body(api, "query_range", query="mixed", start="0", end="120", step="60")
    assert body == (
        '{"status":"success","data":{"resultType":"matrix","result":['
        '{"metric":{"__name__":"mixed","job":"m"},"values":[[0,"1"]],'
        '"histograms":[[60,' + H_JSON + "],[120," + H_JSON + "]]}]}}"
    )


def test_range_vector_with_histograms(api):
    body = _body(api, "query", query="lat[1m]", time="30.5")
    assert body == (
        '{"status":"success","data":{"resultType":"matrix","result":['
        '{"metric":{"__name__":"lat","job":"a"},"histograms":[[0,' + H_JSON + "]]},"
        '{"metric":{"__name__":"lat","job":"b"},"histograms":[[0,' + NEG_JSON + "]]},"
        '{"metric":{"__name__":"lat","job":"f"},"values":[[0,"7"]]}]}}'
    )


def test_float_only_answers_are_unchanged(api):
    body = _body(api, "query", query='lat{job="f"}', time="30")
    assert body == (
        '{"status":"success","data":{"resultType":"vector","result":['
        '{"metric":{"__name__":"lat","job":"f"},"value":[30,"7"]}]}}'
    )
