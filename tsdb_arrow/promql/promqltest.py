"""``tsdb-arrow promqltest FILE...``: run Prometheus' PromQL test scripts through our engine.

Each file loads into a fresh temporary database (``clear`` starts another). Every ``eval`` is
checked against its expected series, values (Prometheus' tolerance: relative 1e-6), failure
and annotations; a failure listed in the exclusions file (``file.test:LINE reason``) is
reported but does not fail the run.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.errors import QueryError, TsdbError
from tsdb_arrow.promql.testfile import STALE, Clear, Eval, Load, parse_script
from tsdb_arrow.promql.testfile_histograms import TestHistogram

EXCLUSIONS = Path(__file__).with_name("promqltest_exclusions.txt")
EPSILON = 1e-6
_STALE_NAN = np.array([0x7FF0000000000002], np.uint64).view(np.float64)[0]


@dataclass
class FileResult:
    """Outcome of one test file: evals run, and the failures as (line, reason)."""

    path: Path
    total: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """How many evals passed."""
        return self.total - len(self.failures)


def almost_equal(a: float, b: float, epsilon: float = EPSILON) -> bool:
    """Prometheus' ``almost.Equal``: both NaN, equal, or relatively within ``epsilon``."""
    from tsdb_arrow.promql.classic_histograms import almost_equal as kernel

    return bool(kernel(float(a), float(b), epsilon))


def load_frame(cmd: Load) -> pl.DataFrame | None:
    """The samples of a ``load`` command as one long frame for ``db.write``."""
    rows: list[dict[str, object]] = []
    for series in cmd.series:
        for i, point in enumerate(series.points):
            if point is None or isinstance(point, TestHistogram):
                continue
            value = _STALE_NAN if point == STALE else float(point)  # type: ignore[arg-type]
            rows.append({**series.labels, "timestamp": i * cmd.interval, "value": value})
    if not rows:
        return None
    names = sorted({k for r in rows for k in r} - {"timestamp", "value"})
    data = {n: pl.Series(n, [r.get(n) for r in rows], pl.String) for n in names}
    data["timestamp"] = pl.Series("timestamp", [r["timestamp"] for r in rows], pl.Int64)
    data["value"] = pl.Series("value", np.array([r["value"] for r in rows], np.float64))
    return pl.DataFrame(data)


def load_histogram_table(cmd: Load) -> pa.Table | None:
    """The native histogram samples of a ``load`` command as a table for ``db.write``."""
    from tsdb_arrow.sketch import histogram_column

    rows = [(series.labels, i * cmd.interval, point)
            for series in cmd.series for i, point in enumerate(series.points)
            if isinstance(point, TestHistogram) and point.storable]
    if not rows:
        return None
    names = sorted({k for labels, _, _ in rows for k in labels})
    data = {n: pa.array([labels.get(n) for labels, _, _ in rows], pa.string()) for n in names}
    data["timestamp"] = pa.array([t for _, t, _ in rows], pa.int64())
    data["histogram"] = histogram_column([h.to_sample() for _, _, h in rows])
    return pa.table(data)


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if v not in (None, "")))


Point = tuple[int, "float | TestHistogram"]


def _actual_series(value: object, ev: Eval) -> list[tuple[tuple, list[Point]]]:
    """The result as (labels, [(time, value or histogram)]) per series, in result order."""
    from tsdb_arrow.promql import labels as lab
    from tsdb_arrow.promql.testfile_histograms import from_pool
    from tsdb_arrow.promql.values import InstantVector, RangeVector, Scalar, Steps

    times = Steps(ev.start, ev.end, ev.step).times
    if isinstance(value, Scalar):
        return [((), list(zip(times.tolist(), value.values.tolist(), strict=True)))]
    if isinstance(value, InstantVector):
        out = []
        hist = value.hist if value.hist is not None else np.full(value.present.shape, -1)
        for i, labels in enumerate(lab.rows(value.labels)):
            points: list[Point] = []
            for j in np.flatnonzero(value.present[i] | (hist[i] >= 0)).tolist():
                h = int(hist[i, j])
                v = from_pool(value.pool, h) if h >= 0 else float(value.values[i, j])
                points.append((int(times[j]), v))
            if points:
                out.append((_key(labels), points))
        return out
    if isinstance(value, RangeVector):
        end = int(value.window_ends[0])
        out = []
        hs = value.hists
        for i, labels in enumerate(lab.rows(value.labels)):
            lo, hi = value.offsets[i], value.offsets[i + 1]
            ts, vs = value.timestamps[lo:hi], value.values[lo:hi]
            keep = (ts > end - value.range) & (ts <= end)
            points = list(zip(ts[keep].tolist(), vs[keep].tolist(), strict=True))
            if hs is not None:
                a, b = hs.offsets[i], hs.offsets[i + 1]
                for t, r in zip(hs.timestamps[a:b].tolist(), hs.rows[a:b].tolist(), strict=True):
                    if end - value.range < t <= end:
                        points.append((t, from_pool(hs.pool, r)))
                points.sort(key=lambda p: p[0])
            if points:
                out.append((_key(labels), points))
        return out
    raise QueryError(f"unexpected result type {type(value).__name__}")


def _same_point(want: object, got: object) -> bool:
    """Floats within Prometheus' tolerance, histograms as its runner compares them."""
    from tsdb_arrow.promql.testfile_histograms import same_histogram

    if isinstance(want, TestHistogram) or isinstance(got, TestHistogram):
        return (isinstance(want, TestHistogram) and isinstance(got, TestHistogram)
                and same_histogram(want, got, almost_equal))
    return almost_equal(want, got)  # type: ignore[arg-type]


def _expected_series(ev: Eval) -> list[tuple[tuple, list[Point]]]:
    if ev.range_vector is not None:
        start, _, step = ev.range_vector
    else:
        start, step = ev.start, ev.step
    out = []
    for series in ev.series:
        points = []
        for i, p in enumerate(series.points):
            if p is None:
                continue
            if isinstance(p, TestHistogram):
                points.append((start + i * step, p))
                continue
            points.append((start + i * step, _STALE_NAN if p == STALE else float(p)))  # type: ignore[arg-type]
        if ev.instant and ev.range_vector is None:
            points = [(ev.start, v) for _, v in points[:1]]
        out.append((_key(series.labels), points))
    return out


def _compare(ev: Eval, value: object) -> str | None:
    from tsdb_arrow.promql.values import Scalar, String

    if ev.string is not None:
        if not isinstance(value, String) or value.value != ev.string:
            return f"expected string {ev.string!r}, got {value!r}"
        return None
    if ev.scalar is not None:
        if not isinstance(value, Scalar) or not almost_equal(float(value.values[0]), ev.scalar):
            return f"expected scalar {ev.scalar}, got {value!r}"
        return None
    actual = _actual_series(value, ev)
    expected = _expected_series(ev)
    act = {k: pts for k, pts in actual}
    exp = {k: pts for k, pts in expected}
    if len(act) != len(actual):
        return "result has two series with the same labels"
    missing = [k for k in exp if k not in act]
    extra = [k for k in act if k not in exp]
    if missing or extra:
        return f"series differ: missing {missing[:3]}, unexpected {extra[:3]}"
    for k, pts in exp.items():
        got = act[k]
        if len(got) != len(pts) or any(
            t1 != t2 or not _same_point(v1, v2)
            for (t1, v1), (t2, v2) in zip(pts, got, strict=False)
        ):
            return f"{dict(k)}: expected {pts[:6]}, got {got[:6]}"
    if ev.has("ordered") and [k for k, _ in actual] != [k for k, _ in expected]:
        return "series not in the expected order"
    return None


def _matches(expect: object, message: str) -> bool:
    if expect.match == "msg":  # type: ignore[attr-defined]
        return message.strip() == expect.text.strip()  # type: ignore[attr-defined]
    if expect.match == "regex":  # type: ignore[attr-defined]
        return re.search(expect.text, message) is not None  # type: ignore[attr-defined]
    return True


def _check_annotations(ev: Eval, kind: str, notes: list[str]) -> str | None:
    expects = [e for e in ev.expects if e.kind == kind]
    if ev.has(f"no_{kind}") and notes:
        return f"unexpected {kind}: {notes}"
    for e in expects:
        if not any(_matches(e, n) for n in notes):
            return f"expected {kind} {e.text!r}, got {notes}"
    if expects:
        for n in notes:
            if not any(_matches(e, n) for e in expects):
                return f"unexpected {kind}: {n!r}"
    return None


def run_eval(db: object, ev: Eval) -> str | None:
    """Why ``ev`` failed against ``db``, or None when it passed."""
    from tsdb_arrow.promql import annotations
    from tsdb_arrow.promql.engine import evaluate
    from tsdb_arrow.promql.values import Steps

    steps = Steps(ev.start, ev.end, ev.step)
    with annotations.collect() as notes:
        try:
            value = evaluate(db, ev.expr, steps)
        except QueryError as exc:
            fails = [e for e in ev.expects if e.kind == "fail"]
            if not fails:
                return f"error: {exc}"
            for e in fails:
                if not _matches(e, str(exc)):
                    return f"error {str(exc)!r} does not match {e.text!r}"
            return None
    if ev.has("fail"):
        return "expected an error, the query succeeded"
    problem = _compare(ev, value)
    if problem:
        return problem
    return _check_annotations(ev, "warn", notes.warnings) or _check_annotations(
        ev, "info", notes.infos
    )


def run_file(path: Path) -> FileResult:
    """Run every command of one test file against fresh temporary databases."""
    import tsdb_arrow as ta

    result = FileResult(path)
    commands = parse_script(path.read_text())
    with tempfile.TemporaryDirectory(prefix="promqltest-") as tmp:
        generation = 0
        db = ta.open(Path(tmp) / "0")
        try:
            for cmd in commands:
                if isinstance(cmd, Clear):
                    db.close()
                    generation += 1
                    db = ta.open(Path(tmp) / str(generation))
                elif isinstance(cmd, Load):
                    frame = load_frame(cmd)
                    if frame is not None:
                        db.write(frame)
                    hists = load_histogram_table(cmd)
                    if hists is not None:
                        db.write(hists)
                elif isinstance(cmd, Eval):
                    result.total += 1
                    try:
                        problem = run_eval(db, cmd)
                    except TsdbError as exc:
                        problem = f"error: {exc}"
                    except Exception as exc:  # a bug of ours: report it as this eval's failure
                        problem = f"crash: {type(exc).__name__}: {exc}"
                    if problem:
                        result.failures.append((cmd.line, problem))
        finally:
            db.close()
    return result


def read_exclusions(path: Path) -> dict[str, str]:
    """``{"file.test:LINE": reason}`` from an exclusions file (``#`` comments)."""
    out = {}
    if not path.exists():
        return out
    for raw in path.read_text().splitlines():
        text = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if not text:
            continue
        key, _, reason = text.partition(" ")
        out[key] = reason.strip()
    return out


def main(
    files: Sequence[str],
    *,
    exclusions: Path = EXCLUSIONS,
    verbose: bool = False,
    out: object = None,
) -> int:
    """Run the files, print ``FILE: passed P of T evals`` each; 1 on an unexcluded failure."""
    stream = out or sys.stdout
    excluded = read_exclusions(exclusions)
    bad = 0
    total = passed = 0
    for name in files:
        path = Path(name)
        result = run_file(path)
        total += result.total
        passed += result.passed
        print(f"{path}: passed {result.passed} of {result.total} evals", file=stream)
        for line, problem in result.failures:
            key = f"{path.name}:{line}"
            if key in excluded:
                if verbose:
                    print(f"  {key}: excluded ({excluded[key]}): {problem}", file=stream)
                continue
            bad += 1
            print(f"  {key}: FAILED: {problem}", file=stream)
    print(f"total: passed {passed} of {total} evals, {bad} unexcluded failures", file=stream)
    return 1 if bad else 0


def failures(files: Iterable[str]) -> list[str]:
    """``file.test:LINE`` of every failing eval (to write an exclusions file)."""
    return [f"{Path(n).name}:{line}" for n in files for line, _ in run_file(Path(n)).failures]
