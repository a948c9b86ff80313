"""``ta.connect``: the Arrow Flight client of ``tsdb-arrow serve``, with the local API.

Imported on first use of ``ta.connect`` (it loads ``pyarrow.flight``), never by ``import
tsdb_arrow``.
"""

from __future__ import annotations

from tsdb_arrow.client.client import Client, connect

__all__ = ["Client", "connect"]
