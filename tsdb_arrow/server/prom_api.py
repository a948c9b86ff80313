"""The Prometheus HTTP API's endpoints as functions of a request form, without sockets.

As Prometheus' ``web/api/v1/api.go``: every endpoint returns the encoded ``data`` (and
warnings) or raises ``ApiError`` with its ``errorType``; :meth:`PromApi.respond` is the one
place that turns either into the JSON envelope and the HTTP status. Queries are evaluated by
``tsdb_arrow.promql.engine.evaluate`` (or an engine handed in, e.g. by tests).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import polars as pl

from tsdb_arrow.errors import (
    ClosedError,
    ConfigError,
    QueryError,
    QueryLimitError,
    SelectorError,
    TsdbError,
)
from tsdb_arrow.model import REF
from tsdb_arrow.server import prom_json
from tsdb_arrow.server.prom_params import (
    MAX_TIME,
    MIN_TIME,
    BadData,
    Form,
    check_label_name,
    parse_duration,
    parse_limit,
    parse_time,
    time_range,
    value,
)

if TYPE_CHECKING:
    from tsdb_arrow.database import Database
    from tsdb_arrow.promql.values import Steps, Value

log = logging.getLogger("tsdb_arrow.server")

#: Prometheus' ``errorType`` values and the HTTP status each is answered with.
STATUS = {
    "bad_data": 400,
    "execution": 422,
    "canceled": 503,
    "timeout": 503,
    "unavailable": 503,
    "not_found": 404,
    "internal": 500,
}
JSON = (("Content-Type", "application/json"),)
#: At most this many points per series in a range query (Prometheus' limit).
MAX_POINTS = 11_000

Engine = Callable[..., "Value"]
#: What an endpoint returns: the encoded ``data``, its warnings and its infos.
Result = tuple[str | memoryview | prom_json.Stream, Sequence[str], Sequence[str]]


@dataclass(frozen=True)
class QueryOptions:
    """Limits of the query endpoints; the defaults are Prometheus' (``--query.*`` flags)."""

    max_samples: int = 50_000_000
    timeout: float = 120.0
    max_concurrent: int = 20
    lookback: int = 300_000

    def __post_init__(self) -> None:
        if self.max_samples < 1 or self.max_concurrent < 1:
            raise ConfigError(
                f"query max_samples ({self.max_samples}) and max_concurrent "
                f"({self.max_concurrent}) must be at least 1"
            )
        if not self.timeout > 0 or self.lookback < 1:
            raise ConfigError(
                f"the query timeout ({self.timeout} s) and lookback ({self.lookback} ms) must be "
                "positive"
            )


class ApiError(Exception):
    """An answer with ``{"status":"error","errorType":kind,"error":message}``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def status(self) -> int:
        return STATUS.get(self.kind, 500)


@dataclass(frozen=True)
class Answer:
    """What an endpoint returns: HTTP status and the JSON body (a large one as a ``Stream``
    written while it is sent)."""

    status: int
    body: bytes | prom_json.Stream
    headers: tuple[tuple[str, str], ...] = ()


def default_engine() -> Engine:
    """``promql.engine.evaluate``, imported on the first query (it loads numba kernels)."""
    from tsdb_arrow.promql.engine import evaluate

    return evaluate


def _query_limits(max_samples: int, timeout: float) -> object:
    from tsdb_arrow.promql.engine import QueryLimits

    return QueryLimits(max_samples=max_samples, timeout=timeout)


class PromApi:
    """The endpoints over one database; ``respond`` runs one and never raises."""

    def __init__(
        self,
        db: Database,
        *,
        options: QueryOptions | None = None,
        engine: Engine | None = None,
        limits_factory: Callable[[int, float], object] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.options = options or QueryOptions()
        self._engine = engine
        self._limits = limits_factory or _query_limits
        self._now = now
        self.metadata_store: dict[str, list[dict[str, str]]] = {}
        self._metadata_lock = threading.Lock()

    # -- the envelope -------------------------------------------------------------------------

    def respond(self, endpoint: Callable[..., Result], *args: Any) -> Answer:
        """Run ``endpoint`` and turn its data or its error into Prometheus' envelope."""
        try:
            data, warnings, infos = endpoint(*args)
        except BadData as exc:
            return error_answer("bad_data", str(exc))
        except ApiError as exc:
            return error_answer(exc.kind, exc.message)
        except ClosedError as exc:
            return error_answer("unavailable", str(exc))
        except Exception as exc:  # an answer, not a dropped connection; the log has the trace
            log.exception("Prometheus API request failed")
            return error_answer("internal", f"{type(exc).__name__}: {exc}")
        return Answer(200, prom_json.success(data, warnings, infos), JSON)

    # -- queries ------------------------------------------------------------------------------

    def query(self, form: Form) -> Result:
        """``/api/v1/query``: evaluate at ``time`` (default now)."""
        from tsdb_arrow.promql.values import Steps

        expr = _expr(form)
        text = value(form, "time")
        at = round(self._now() * 1000) if text is None else parse_time(text, "time")
        steps = Steps(at, at, 0)
        result, warnings, infos = self._evaluate(expr, steps, form)
        return prom_json.encode_instant(result, at, limit=parse_limit(form)), warnings, infos

    def query_range(self, form: Form) -> Result:
        """``/api/v1/query_range``: evaluate at ``start``, ``start + step``, ... ``<= end``."""
        from tsdb_arrow.promql.values import Steps

        start = parse_time(value(form, "start") or "", "start")
        end = parse_time(value(form, "end") or "", "end")
        if end < start:
            raise BadData("end timestamp must not be before start time")
        step = parse_duration(value(form, "step") or "", "step")
        if step <= 0:
            raise BadData(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer"
            )
        if (end - start) // step > MAX_POINTS:
            raise BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        expr = _expr(form)
        steps = Steps(start, end, step)
        result, warnings, infos = self._evaluate(expr, steps, form)
        return prom_json.encode_range(result, steps, limit=parse_limit(form)), warnings, infos

    def _evaluate(
        self, expr: str, steps: Steps, form: Form
    ) -> tuple[Value, Sequence[str], Sequence[str]]:
        """The value of ``expr`` with the warnings and infos the engine raised."""
        from tsdb_arrow.promql.engine import PARSE_ERROR, parse

        timeout = self.options.timeout
        text = value(form, "timeout")
        if text is not None:
            timeout = min(timeout, parse_duration(text, "timeout") / 1000)
        lookback = self.options.lookback
        text = value(form, "lookback_delta")
        if text is not None:
            lookback = parse_duration(text, "lookback_delta")
            if lookback < 0:
                raise BadData('invalid parameter "lookback_delta": must not be negative')
            lookback = lookback or self.options.lookback
        try:
            parse(expr)  # syntax and type errors answer 400, as Prometheus' parser's do
        except QueryError as exc:
            reason = str(exc).removeprefix(PARSE_ERROR)
            raise BadData(f'invalid parameter "query": {reason}') from None
        engine = self._engine or default_engine()
        started = time.monotonic()
        try:
            with _annotations() as notes:
                result = engine(
                    self.db,
                    expr,
                    steps,
                    lookback=lookback,
                    limits=self._limits(self.options.max_samples, timeout),
                )
            return result, notes.warnings, notes.infos
        except QueryLimitError as exc:
            timed_out = time.monotonic() - started >= timeout * 0.99
            raise ApiError("timeout" if timed_out else "execution", str(exc)) from None
        except SelectorError as exc:
            raise BadData(str(exc)) from None
        except QueryError as exc:
            raise ApiError("execution", str(exc)) from None
        except ClosedError:
            raise
        except TsdbError as exc:
            raise ApiError("execution", str(exc)) from None

    # -- series and labels ---------------------------------------------------------------------

    def _matched(self, form: Form, *, required: bool, whole_blocks: bool = False) -> pl.DataFrame:
        """The label sets (no ``series_ref``) of the series of every ``match[]``; every series
        when none is given and that is allowed.

        With ``start`` or ``end``, only series with samples in that range, as Prometheus
        decides it, without reading samples: from the chunks' time spans for the series
        endpoint, from whole blocks (the head as one) for the label endpoints
        (``whole_blocks``), which read the index of each block the range touches.
        """
        lo, hi = time_range(form)
        start = None if lo <= MIN_TIME else lo  # promtool sends the boundaries for "all"
        end = None if hi >= MAX_TIME else hi
        selectors = [s for s in form.get("match[]", []) if s != ""]
        if not selectors:
            if required:
                raise BadData("no match[] parameter provided")
            return self.db._series_between(None, start, end, whole_blocks=whole_blocks).drop(REF)
        frames = []
        for selector in selectors:
            try:
                frames.append(
                    self.db._series_between(selector, start, end, whole_blocks=whole_blocks)
                )
            except SelectorError as exc:
                raise BadData(f'invalid parameter "match[]": {exc}') from None
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
        frame = frame.drop(REF, strict=False)
        return frame.unique(maintain_order=True) if len(frames) > 1 else frame

    def series(self, form: Form) -> Result:
        """``/api/v1/series``: the label sets of the series matching any ``match[]``."""
        limit = parse_limit(form)
        frame = self._matched(form, required=True)
        frame = frame.select(c for c in frame.columns if frame[c].null_count() < frame.height)
        warnings: list[str] = []
        if limit and frame.height > limit:
            frame = frame[pl.Series(prom_json.sort_key(frame).arg_sort()[:limit])]
            warnings.append("results truncated due to limit")
        return prom_json.label_sets(frame), warnings, ()

    def labels(self, form: Form) -> Result:
        """``/api/v1/labels``: the label names the (matching) series have, sorted."""
        limit = parse_limit(form)
        frame = self._matched(form, required=False, whole_blocks=True)
        names = sorted(
            c
            for c in frame.columns
            if frame.height and frame[c].null_count() < frame.height
            and (frame[c].drop_nulls() != "").any()
        )  # fmt: skip
        return _truncated(names, limit)

    def label_values(self, name: str, form: Form) -> Result:
        """``/api/v1/label/<name>/values``: the values of label ``name``, sorted."""
        check_label_name(name)
        limit = parse_limit(form)
        frame = self._matched(form, required=False, whole_blocks=True)
        if name not in frame.columns:
            return "[]", (), ()
        values = frame[name].drop_nulls().unique()
        values = sorted(v for v in values.filter(values != "").to_list())
        return _truncated(values, limit)

    # -- metadata and status -------------------------------------------------------------------

    def remember_metadata(self, entries: dict[str, dict[str, str]]) -> None:
        """Keep the metric metadata a remote-write request carried (in memory)."""
        with self._metadata_lock:
            for metric, entry in entries.items():
                self.metadata_store[metric] = [entry]

    def metadata(self, form: Form) -> Result:
        """``/api/v1/metadata``: type, help and unit per metric, as remote write sent them."""
        limit = parse_limit(form)
        metric = value(form, "metric")
        with self._metadata_lock:
            items = sorted(self.metadata_store.items())
        if metric is not None:
            items = [(m, e) for m, e in items if m == metric]
        if limit:
            items = items[:limit]
        return prom_json.json_object(dict(items)), (), ()

    def query_exemplars(self, form: Form) -> Result:
        """``/api/v1/query_exemplars``: no exemplars are stored (remote write skips them)."""
        _expr(form)
        time_range(form)
        return "[]", (), ()

    def rules(self, form: Form) -> Result:
        """``/api/v1/rules``: no recording or alerting rules run here (Grafana asks)."""
        return '{"groups":[]}', (), ()

    def alerts(self, form: Form) -> Result:
        """``/api/v1/alerts``: no alerts fire here (Grafana asks)."""
        return '{"alerts":[]}', (), ()

    def buildinfo(self, form: Form) -> Result:
        """``/api/v1/status/buildinfo``: this server's version (Grafana reads it)."""
        import tsdb_arrow

        info = {
            "version": tsdb_arrow.__version__,
            "revision": "",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }
        return prom_json.json_object(info), (), ()


@contextlib.contextmanager
def _annotations() -> Iterator[Any]:
    """The engine's annotation collector (``promql.annotations``), or an empty one without."""
    try:
        from tsdb_arrow.promql.annotations import collect
    except ImportError:  # an engine without annotations
        yield SimpleNamespace(warnings=[], infos=[])
        return
    with collect() as notes:
        yield notes


def _expr(form: Form) -> str:
    expr = value(form, "query")
    if expr is None:
        raise BadData(
            'invalid parameter "query": unknown position: parse error: no expression found in input'
        )
    return expr


def _truncated(items: list[str], limit: int) -> Result:
    if limit and len(items) > limit:
        return prom_json.strings(items[:limit]), ["results truncated due to limit"], ()
    return prom_json.strings(items), (), ()


def error_answer(kind: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """The error envelope with the status Prometheus gives ``kind``."""
    return Answer(STATUS.get(kind, 500), prom_json.error(kind, message), JSON + headers)
