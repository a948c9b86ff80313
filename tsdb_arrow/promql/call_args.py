"""Arguments of a PromQL function call: kind checks and per-step views of scalars/strings."""

from __future__ import annotations

import numpy as np

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql.annotations import position
from tsdb_arrow.promql.values import Call, InstantVector, RangeVector, Scalar, String

KIND_NAMES = {Scalar: "a scalar", InstantVector: "an instant vector",
              RangeVector: "a range vector", String: "a string"}


def check_args(call: Call, kinds: tuple[type, ...], required: int | None = None,
               variadic: bool = False) -> None:
    """Refuse arguments of the wrong number or kind with a message naming the function."""
    required = len(kinds) if required is None else required
    n = len(call.args)
    if n < required or (n > len(kinds) and not variadic):
        want = f"{required}" if required == len(kinds) and not variadic else (
            f"at least {required}" if variadic else f"{required} to {len(kinds)}")
        raise QueryError(f"{call.name}() takes {want} argument(s), got {n}")
    for i, arg in enumerate(call.args):
        kind = kinds[min(i, len(kinds) - 1)]
        if not isinstance(arg, kind):
            raise QueryError(
                f"{call.name}(): argument {i + 1} must be {KIND_NAMES[kind]}, got "
                f"{KIND_NAMES.get(type(arg), type(arg).__name__)}; see the function's "
                "signature in the PromQL documentation"
            )


def n_steps(call: Call) -> int:
    """Number of evaluation steps (taken from a vector argument when there is one)."""
    for arg in call.args:
        if isinstance(arg, InstantVector):
            return arg.values.shape[1]
        if isinstance(arg, RangeVector):
            return len(arg.window_ends)
    return len(call.steps)


def scalar_arg(call: Call, i: int, default: float | None = None) -> np.ndarray:
    """Argument ``i`` as one float per step (``default`` when the argument is left out)."""
    n = n_steps(call)
    if i >= len(call.args):
        return np.full(n, default, dtype=np.float64)
    values = np.asarray(call.args[i].values, dtype=np.float64)
    return np.ascontiguousarray(np.broadcast_to(values.reshape(-1), (n,)) if values.size == 1
                                else values)


def string_arg(call: Call, i: int) -> str:
    """Argument ``i``, a string literal."""
    return call.args[i].value


def arg_position(call: Call, i: int) -> str:
    """`` (line:column)`` of argument ``i`` in the query, as annotations end (or empty)."""
    return position(call.arg_exprs[i]) if i < len(call.arg_exprs) and call.arg_exprs[i] else ""
