"""OpenTelemetry exponential histograms: one sample held exactly, merged exactly, stored compactly.

An OTel exponential histogram at *scale* ``s`` has base ``b = 2 ** (2 ** -s)``; bucket index ``i``
counts the values ``v`` with ``b ** i < |v| <= b ** (i + 1)`` (upper-inclusive, like a
Prometheus ``le`` bucket). Positive and negative values have separate bucket arrays, each a
contiguous run of counts starting at an ``offset`` (the index of its first bucket); values with
``|v| <= zero_threshold`` go to ``zero_count``. Scales run from -10 (base ``2 ** 1024``) to 20.

Downscaling and merging
    Going from scale ``s`` to ``s - d`` merges ``2 ** d`` neighbouring buckets: index ``i``
    becomes ``i >> d`` (an arithmetic shift, i.e. floor division, also for negative indices).
    Merging two histograms downscales the finer one to the coarser scale and adds counts bucket by
    bucket; with ``max_size`` it keeps downscaling until each side spans fewer than ``max_size``
    buckets, which is what the OpenTelemetry SDK's ``ExponentialBucketHistogramAggregation``
    does. Counts stay exact integers throughout (uint64, never float).

DDSketch correspondence
    A DDSketch logarithmic mapping with ``gamma = b`` and offset 0 gives key
    ``k = ceil(log_gamma(v))``, so key ``k`` covers ``(gamma ** (k - 1), gamma ** k]``: the very
    same interval as OTel bucket ``i = k - 1``. The correspondence is exact and lossless:

    * positive bucket ``i``  <->  positive key ``k = i + 1`` (same count);
    * negative bucket ``i`` (of ``|v|``)  <->  negative key ``k = i + 1`` (DDSketch also keys
      negative values by their magnitude);
    * ``zero_count``  <->  the sketch's zero bucket.

    The sketch's representative of key ``k`` is ``2 * gamma ** k / (1 + gamma)``, within relative
    accuracy ``alpha = (gamma - 1) / (gamma + 1)`` of every value of the bucket. The ``ddsketch``
    package's ``key(v)`` agrees with ``i + 1`` except for values on (or within float rounding of)
    a bucket boundary: it computes ``log2(v) * multiplier`` in floating point, so an exact power
    of the base, which OTel puts in bucket ``i`` (its upper edge), can come out one key higher.
    The conversion here works on bucket indices, never on re-mapped values, so it is exact; see
    ``docs/sketches.md``. Scales below -5 have no DDSketch counterpart: their ``alpha`` rounds to
    1.0 in float64, which no DDSketch mapping accepts.

Byte layout
    ``to_bytes`` / ``from_bytes`` use a fixed 60-byte little-endian header followed by the
    positive then the negative bucket counts at 1, 2, 4 or 8 bytes each (the smallest width that
    holds the largest count); the table is in ``docs/sketches.md``.

Modules
    ``index`` maps values to bucket indices (and back to boundaries), ``buckets`` does the
    arithmetic on (offset, counts) sides, ``histogram`` holds the sample ``ExponentialHistogram``,
    ``codec`` its bytes and ``ddsketch`` the lossless conversion to and from ``Sketch``.
"""
