"""PromQL binary operators: arithmetic, comparisons (with and without ``bool``), set operators,
with ``on``/``ignoring`` matching and ``group_left``/``group_right``, over all steps at once."""

from __future__ import annotations

import numpy as np
import polars as pl

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql import labels as lab
from tsdb_arrow.promql.values import METRIC_NAME, InstantVector, Scalar, Value

ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})
COMPARISON = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET = frozenset({"and", "or", "unless"})


def arithmetic(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a op b`` elementwise with Go's float semantics (``%`` is ``math.Mod``)."""
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
    raise QueryError(f"operator {op} is not supported")


def compare(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a op b`` elementwise as booleans (NaN compares unequal to everything)."""
    with np.errstate(invalid="ignore"):
        return {
            "==": np.equal,
            "!=": np.not_equal,
            ">": np.greater,
            "<": np.less,
            ">=": np.greater_equal,
            "<=": np.less_equal,
        }[op](a, b)


def binary(op: str, lhs: Value, rhs: Value, modifier: object) -> Value:
    """``lhs op rhs`` for scalars and instant vectors, as Prometheus evaluates it."""
    return_bool = bool(modifier is not None and modifier.return_bool)  # type: ignore[attr-defined]
    if op in COMPARISON and not return_bool and isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        raise QueryError("comparisons between scalars must use BOOL modifier")
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        if op in COMPARISON:
            return Scalar(compare(op, lhs.values, rhs.values).astype(np.float64))
        return Scalar(arithmetic(op, lhs.values, rhs.values))
    if isinstance(lhs, InstantVector) and isinstance(rhs, InstantVector):
        if op in SET:
            return _set_op(op, lhs, rhs, modifier)
        return _vector_vector(op, lhs, rhs, modifier, return_bool)
    if isinstance(lhs, InstantVector) and isinstance(rhs, Scalar):
        return _vector_scalar(op, lhs, rhs.values, return_bool, swapped=False)
    if isinstance(lhs, Scalar) and isinstance(rhs, InstantVector):
        return _vector_scalar(op, rhs, lhs.values, return_bool, swapped=True)
    raise QueryError(
        f"binary operator {op} is only defined between scalars and instant vectors, got "
        f"{type(lhs).__name__} and {type(rhs).__name__}"
    )


def _vector_scalar(
    op: str, vec: InstantVector, scalar: np.ndarray, return_bool: bool, *, swapped: bool
) -> InstantVector:
    if op in SET:
        raise QueryError(f"set operator {op} not allowed in binary scalar expression")
    s = np.broadcast_to(scalar[None, :], vec.values.shape)
    a, b = (s, vec.values) if swapped else (vec.values, s)
    labels = vec.labels
    if op in COMPARISON:
        hit = compare(op, a, b)
        if return_bool:
            values, present = hit.astype(np.float64), vec.present
            labels = lab.drop_name(labels)
        else:
            values, present = vec.values, vec.present & hit
    else:
        values, present = arithmetic(op, a, b), vec.present
        labels = lab.drop_name(labels)
    out = InstantVector(labels, values, present)
    if vec.has_histograms:
        out = _scalar_histograms(op, vec, out, s, swapped=swapped)
    return lab.merge_same_labels(lab.only_present(out))


def _scalar_histograms(
    op: str, vec: InstantVector, out: InstantVector, s: np.ndarray, *, swapped: bool
) -> InstantVector:
    """``out`` with the histogram cells of ``vec`` combined with scalar ``s`` as Prometheus
    does: ``h * s``, ``s * h`` and ``h / s`` scale the histogram; anything else drops it."""
    from tsdb_arrow.promql import native_ops

    assert vec.hist is not None
    is_h = vec.hist >= 0
    if op == "*" or (op == "/" and not swapped):
        with np.errstate(divide="ignore"):
            factor = s if op == "*" else 1.0 / s
        h = native_ops.scaled(vec, np.ascontiguousarray(factor), np.ones(is_h.shape, bool))
        return InstantVector(out.labels, out.values, out.present & ~is_h, None, h.hist, h.pool)
    return InstantVector(out.labels, out.values, out.present & ~is_h)


def _signatures(
    lhs: InstantVector, rhs: InstantVector, matching: object
) -> tuple[np.ndarray, np.ndarray, int]:
    """Match-group numbers of the left and right series (equal number = they match)."""
    on = matching is not None and str(matching.type).endswith("Include")  # type: ignore[attr-defined]
    names = list(matching.labels) if matching is not None else []  # type: ignore[attr-defined]
    both = lab.concat([lab.grouping_keys(v.labels, names, without=not on) for v in (lhs, rhs)])
    ids, uniq = lab.group_ids(both)
    return ids[: len(lhs)], ids[len(lhs) :], max(uniq.height, 1)


def _presence(sigs: np.ndarray, present: np.ndarray, n_sig: int) -> np.ndarray:
    """How many series of each match group are present per step, ``[n_sig, n_steps]``."""
    from tsdb_arrow.promql.kernels import group_presence

    return group_presence(sigs.astype(np.int64), n_sig, present)[0]


def _set_op(op: str, lhs: InstantVector, rhs: InstantVector, modifier: object) -> InstantVector:
    matching = getattr(modifier, "matching", None)
    if lhs.has_histograms or rhs.has_histograms:
        return _set_op_histograms(op, lhs, rhs, matching)
    lsig, rsig, n_sig = _signatures(lhs, rhs, matching)
    if op == "and":
        right = _presence(rsig, rhs.present, n_sig) > 0
        return lab.only_present(_with_present(lhs, lhs.present & right[lsig]))
    if op == "unless":
        right = _presence(rsig, rhs.present, n_sig) > 0
        return lab.only_present(_with_present(lhs, lhs.present & ~right[lsig]))
    left = _presence(lsig, lhs.present, n_sig) > 0
    extra = lab.only_present(_with_present(rhs, rhs.present & ~left[rsig]))
    if len(extra) == 0:
        return lhs
    if len(lhs) == 0:
        return extra
    labels = lab.concat([lhs.labels, extra.labels])
    out = InstantVector(
        labels,
        np.concatenate([lhs.values, extra.values]),
        np.concatenate([lhs.present, extra.present]),
    )
    return lab.merge_same_labels(out)


def _set_op_histograms(
    op: str, lhs: InstantVector, rhs: InstantVector, matching: object
) -> InstantVector:
    """``and``, ``or``, ``unless`` when a side holds histogram samples: a histogram sample is
    a sample like any other for matching."""
    from tsdb_arrow.promql import native_ops
    from tsdb_arrow.promql.native_arith import concat

    lsig, rsig, n_sig = _signatures(lhs, rhs, matching)
    l_occ, r_occ = native_ops.occupied(lhs), native_ops.occupied(rhs)
    if op in ("and", "unless"):
        right = _presence(rsig, r_occ, n_sig) > 0
        keep = l_occ & (right[lsig] if op == "and" else ~right[lsig])
        return lab.only_present(native_ops.select(lhs, keep))
    left = _presence(lsig, l_occ, n_sig) > 0
    extra = lab.only_present(native_ops.select(rhs, r_occ & ~left[rsig]))
    if len(extra) == 0:
        return lhs
    if len(lhs) == 0:
        return extra
    shape = lhs.present.shape
    l_hist = lhs.hist if lhs.hist is not None else np.full(shape, -1, np.int64)
    e_hist = extra.hist if extra.hist is not None else np.full(extra.present.shape, -1, np.int64)
    pool = lhs.pool
    if extra.pool is not None and pool is not None and extra.pool is not pool:
        e_hist = np.where(e_hist >= 0, e_hist + len(pool), -1)
        pool = concat(pool, extra.pool)
    elif pool is None:
        pool = extra.pool
    out = InstantVector(
        lab.concat([lhs.labels, extra.labels]),
        np.concatenate([lhs.values, extra.values]),
        np.concatenate([lhs.present, extra.present]),
        None,
        np.concatenate([l_hist, e_hist]),
        pool,
    )
    return lab.merge_same_labels(out)


def _with_present(vec: InstantVector, present: np.ndarray) -> InstantVector:
    return InstantVector(vec.labels, vec.values, present, vec.timestamps)


def _vector_vector(
    op: str, lhs: InstantVector, rhs: InstantVector, modifier: object, return_bool: bool
) -> InstantVector:
    card = str(modifier.card) if modifier is not None else "OneToOne"  # type: ignore[attr-defined]
    matching = getattr(modifier, "matching", None)
    include = list(getattr(modifier, "group_labels", None) or [])
    one_to_one = card.endswith("OneToOne")
    swapped = card.endswith("OneToMany")
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    n_steps = lhs.present.shape[1]
    if len(many) == 0 or len(one) == 0:
        return _empty(n_steps)
    from tsdb_arrow.promql.kernels import group_presence, single_partner

    msig, osig, n_sig = _signatures(many, one, matching)
    hists = lhs.has_histograms or rhs.has_histograms
    m_occ, o_occ = many.present, one.present
    if hists:
        from tsdb_arrow.promql.native_ops import occupied

        m_occ, o_occ = occupied(many), occupied(one)
    one_count, one_idx = group_presence(osig.astype(np.int64), n_sig, o_occ)
    active = m_occ.any(axis=0) & o_occ.any(axis=0)
    dup = (one_count > 1) & active[None, :]
    if dup.any():
        sig = int(np.argwhere(dup)[0][0])
        side = "left" if swapped else "right"
        both = [lab.rows(one.labels)[i] for i in np.flatnonzero(osig == sig)[:2]]
        group = _format_labels({k: v for k, v in both[0].items() if _matching_label(k, matching)})
        listed = ", ".join(sorted(_format_labels(b) for b in both))
        raise QueryError(
            f"found duplicate series for the match group {group} on the {side} hand-side of the "
            f"operation: [{listed}];many-to-many matching not allowed: matching labels must be "
            "unique on one side"
        )
    match = one_idx[msig]  # [n_many, n_steps]
    matched = m_occ & (match >= 0)
    steps = np.broadcast_to(np.arange(n_steps)[None, :], match.shape)
    other = np.where(matched, one.values[np.maximum(match, 0), steps], np.nan)
    a, b = (other, many.values) if swapped else (many.values, other)
    if op in COMPARISON:
        hit = compare(op, a, b)
        if return_bool:
            values, kept = hit.astype(np.float64), matched
        else:
            values, kept = a, matched & hit
    else:
        values, kept = arithmetic(op, a, b), matched
    h_out, pool = None, None
    if hists:
        h_out, kept, pool, values = _pair_histograms(
            op, many, one, match, matched, other, kept, values, swapped=swapped,
            return_bool=return_bool,
        )
    if one_to_one:
        per_sig = _presence(msig, matched, n_sig)
        if (per_sig > 1).any():
            raise QueryError(
                "multiple matches for labels: many-to-one matching must be explicit "
                "(group_left/group_right)"
            )
    # One output series per (many-side series, one-side series) pair that produced a sample;
    # one-to-one, or each series matched with one partner throughout, needs no pairing pass.
    partner, simple = single_partner(match, kept)
    if simple or not include:
        rows = np.flatnonzero(kept.any(axis=1))
        pair_many, pair_one = rows, np.maximum(partner[rows], 0)
        out_values = np.where(kept[rows], values[rows], 0.0)
        out_present = kept[rows]
        out_hist = None if h_out is None else np.where(kept[rows], h_out[rows], -1)
    else:
        pr, pc = np.nonzero(kept)
        pair_one = match[pr, pc]
        pairs = (
            pl.DataFrame({"m": pr, "o": pair_one}).unique(maintain_order=True).with_row_index("p")
        )
        pid = (
            pl.DataFrame({"m": pr, "o": pair_one})
            .join(pairs, on=["m", "o"], how="left", maintain_order="left")["p"]
            .to_numpy()
        )
        out_values = np.zeros((pairs.height, n_steps))
        out_present = np.zeros((pairs.height, n_steps), bool)
        out_values[pid, pc] = values[pr, pc]
        out_present[pid, pc] = True
        out_hist = None
        if h_out is not None:
            out_hist = np.full(out_present.shape, -1, np.int64)
            out_hist[pid, pc] = h_out[pr, pc]
        pair_many, pair_one = pairs["m"].to_numpy(), pairs["o"].to_numpy()
    labels = _result_labels(
        many.labels[pair_many],
        one.labels[pair_one] if include else None,
        op,
        matching,
        include,
        one_to_one=one_to_one,
        drop=op in ARITHMETIC or return_bool,
    )
    message = (
        lab.DUPLICATE_LABELSET
        if one_to_one
        else "multiple matches for labels: grouping labels must ensure unique matches"
    )
    if out_hist is not None:
        out_present = out_present & (out_hist < 0)
    out = InstantVector(labels, out_values, out_present, None, out_hist, pool)
    return lab.merge_same_labels(out, message)


def _pair_histograms(
    op: str, many: InstantVector, one: InstantVector, match: np.ndarray, matched: np.ndarray,
    other: np.ndarray, kept: np.ndarray, values: np.ndarray, *, swapped: bool,
    return_bool: bool,
) -> tuple[np.ndarray, np.ndarray, object, np.ndarray]:
    """The histogram results of matched cells, which cells keep a result, the pool and the
    float values: arithmetic is ``native_ops.pair_cells``; ``==`` and ``!=`` compare two
    histograms (``bool`` gives 1 or 0, else the left histogram is kept); any other pairing of
    a histogram has no result, with Prometheus' info."""
    from tsdb_arrow.promql import annotations, native_ops
    from tsdb_arrow.promql.native_arith import concat, equal_rows

    steps = np.broadcast_to(np.arange(match.shape[1])[None, :], match.shape)
    partner = np.maximum(match, 0)
    m_hist = native_ops.hist_of(many)
    o_hist = np.where(matched, native_ops.hist_of(one)[partner, steps], -1)
    m_float = matched & many.present
    o_float = matched & one.present[partner, steps]
    any_h = (m_hist >= 0) | (o_hist >= 0)
    sides = [(m_hist, many.values, m_float, many.pool), (o_hist, other, o_float, one.pool)]
    (a_h, a_v, a_f, a_p), (b_h, b_v, b_f, b_p) = sides[::-1] if swapped else sides
    if op in COMPARISON:
        h_out = np.full(match.shape, -1, np.int64)
        both = matched & (a_h >= 0) & (b_h >= 0)
        pool = None
        ok = np.zeros(match.shape, bool)
        if op in ("==", "!=") and both.any():
            pool = a_p if (b_p is None or b_p is a_p) else concat(a_p, b_p)  # type: ignore[arg-type]
            shift = 0 if pool is a_p else len(a_p)  # type: ignore[arg-type]
            r, c = np.nonzero(both)
            same = equal_rows(pool, a_h[r, c], b_h[r, c] + shift)
            hit = same if op == "==" else ~same
            values = values.copy()
            if return_bool:
                values[r, c] = hit.astype(np.float64)
                ok[r, c] = True
            else:
                ok[r[hit], c[hit]] = True
                h_out[r[hit], c[hit]] = a_h[r[hit], c[hit]]
        mixed = matched & any_h & ~(both & (op in ("==", "!=")))
        if mixed.any():
            kinds = np.where(a_h >= 0, "histogram", "float"), np.where(b_h >= 0, "histogram",
                                                                        "float")
            r, c = np.argwhere(mixed)[0]
            annotations.info(
                "PromQL info: incompatible sample types encountered for binary operator "
                f'"{op}": {kinds[0][r, c]} {op} {kinds[1][r, c]}'
            )
        return h_out, (kept & ~any_h) | ok, pool, values
    h_out, ok, pool = native_ops.pair_cells(op, a_h, b_h, a_v, b_v, a_f, b_f, matched, a_p, b_p)
    return h_out, (kept & ~any_h) | ok, pool, values


def _result_labels(
    many: pl.DataFrame,
    one: pl.DataFrame | None,
    op: str,
    matching: object,
    include: list[str],
    *,
    one_to_one: bool,
    drop: bool,
) -> pl.DataFrame:
    labels = lab.drop_name(many) if drop else many
    if one_to_one and matching is not None:
        names = set(matching.labels)  # type: ignore[attr-defined]
        if str(matching.type).endswith("Include"):  # type: ignore[attr-defined]
            labels = lab.keep_columns(labels, [c for c in labels.columns if c in names])
        else:
            labels = lab.keep_columns(labels, [c for c in labels.columns if c not in names])
    if include and one is not None:
        extra = {
            name: (
                one[name]
                if name in one.columns
                else pl.repeat(None, one.height, dtype=pl.String, eager=True)
            )
            for name in include
        }
        labels = labels.with_columns(pl.Series(k, v, pl.String) for k, v in extra.items())
    return labels


def _empty(n_steps: int) -> InstantVector:
    return InstantVector(
        pl.DataFrame(schema={METRIC_NAME: pl.String}).drop(METRIC_NAME),
        np.zeros((0, n_steps)),
        np.zeros((0, n_steps), bool),
    )


def _matching_label(name: str, matching: object) -> bool:
    if matching is None:
        return name != METRIC_NAME
    names = set(matching.labels)  # type: ignore[attr-defined]
    if str(matching.type).endswith("Include"):  # type: ignore[attr-defined]
        return name in names
    return name not in names and name != METRIC_NAME


def format_labels(labels: dict[str, str]) -> str:
    """A label set as Prometheus prints it: ``{__name__="x", a="b"}``, names sorted."""
    import json

    inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(labels.items()))
    return "{" + inner + "}"


_format_labels = format_labels
