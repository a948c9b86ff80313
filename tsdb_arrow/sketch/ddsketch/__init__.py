"""DDSketch, bit-compatible with the ``ddsketch`` package.

``mapping`` (values to keys), ``arrays`` (many sketches held flat), ``search`` (quantiles of
many sketches at once) and ``codec`` (their bytes) are the leaves; ``sketch`` holds the one-sketch
type ``Sketch`` on top of them, and ``interop`` converts to and from the package's objects and
protobuf. Public names are re-exported by ``tsdb_arrow.sketch``.
"""
