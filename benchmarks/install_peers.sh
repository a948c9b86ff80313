#!/usr/bin/env bash
# Install the benchmark's peers from Debian packages when they are missing and it is possible:
#   prometheus        -> promtool (the Prometheus TSDB bulk loader) and the prometheus server
#                        (benchmarks.promql queries it)
#   victoria-metrics  -> the single-node VictoriaMetrics server
#   prometheus-node-exporter -> the real target of tests/server/test_prom_http_node_exporter.py
# Never fails the run: a peer that cannot be installed shows as "not installed" in the table.
# Called by `make bench` before `python -m benchmarks.run`.

set -u

log() { echo "install_peers: $*" >&2; }

missing=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)

if [ ${#missing[@]} -eq 0 ]; then
    log "prometheus, promtool, victoria-metrics and prometheus-node-exporter already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get here; missing: ${missing[*]} (their rows will say 'not installed')"
    exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo_cmd=(sudo -n)
    else
        log "not root and no password-less sudo; missing: ${missing[*]}"
        exit 0
    fi
fi

log "installing ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
# The packages ship services (prometheus on *:9090, victoria-metrics on *:8428,
# node_exporter on *:9100); the benchmark
# starts its own loopback-only server, so keep apt from starting theirs: a temporary
# policy-rc.d that refuses every service start, removed again on exit.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    if printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null \
        && "${sudo_cmd[@]}" chmod 755 "$policy"; then
        trap '"${sudo_cmd[@]}" rm -f "$policy"' EXIT
    fi
fi
"${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1 || log "apt-get update failed; trying the install anyway"
for pkg in "${missing[@]}"; do
    # one package at a time, so that one that is unavailable does not block the other;
    # policy-rc.d may refuse to start the prometheus service: that is fine, only promtool is used.
    if "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; then
        log "installed $pkg"
    else
        log "could not install $pkg (its row will say 'not installed')"
    fi
done
exit 0
