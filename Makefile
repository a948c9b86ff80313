# The two set-up commands of the README; each bootstraps its own virtual environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ./data
SAMPLE := tests/data/real_node_1s_15m.parquet

.PHONY: run test test-fast bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## make run: load the shipped real metrics into ./data, run a few selections, print what is stored,
## then serve ./data and send it a live OpenTelemetry SDK feed (the server stops by itself)
run: $(BIN)/.installed
	rm -rf $(DATA)
	$(BIN)/tsdb-arrow load $(SAMPLE) --data $(DATA)
	$(BIN)/tsdb-arrow query 'node_load1' --data $(DATA) --limit 5
	$(BIN)/tsdb-arrow query 'node_cpu_seconds_total{mode!="idle", cpu=~"0|1"}' --data $(DATA) --limit 5
	$(BIN)/tsdb-arrow info --data $(DATA)
	$(BIN)/python -m tsdb_arrow.server.demo --data $(DATA)

## make test: the whole test suite, slow tests included, on two workers
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 -q

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

## make bench: tsdb-arrow side by side with Parquet, Prometheus and VictoriaMetrics
bench: $(BIN)/.installed
	-bash benchmarks/install_peers.sh
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.durability
	$(BIN)/python -m benchmarks.compaction
	$(BIN)/python -m benchmarks.otlp
	$(BIN)/python -m benchmarks.remote_write
	$(BIN)/python -m benchmarks.flight
	$(BIN)/python -m pytest -q -p no:randomly tests/server/test_prom_http_prometheus.py tests/server/test_prom_http_node_exporter.py
	$(BIN)/python -m benchmarks.promql

lint: $(BIN)/.installed
	$(BIN)/ruff check tsdb_arrow tests benchmarks

clean:
	rm -rf $(VENV) $(DATA) bench-work
