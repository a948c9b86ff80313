"""Quantiles of Polars frames through DDSketch.

``aggregate`` holds the public aggregations (``quantiles``, ``sketches``, ``merge_sketches``, ...),
``groups`` turns a frame's rows into one sketch per group with the numba passes of ``kernels``,
``bucket_rows`` lays sketches out as a long frame and back, ``plumbing`` checks arguments and runs
a computation eagerly or lazily, and ``stored`` computes quantiles of stored histogram samples.
Public names are re-exported by ``tsdb_arrow.sketch``.
"""
