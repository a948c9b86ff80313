"""Fixed-bucket histograms with Prometheus ``le`` semantics (``histogram``). Public names are
re-exported by ``tsdb_arrow.sketch``."""
