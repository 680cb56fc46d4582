#!/usr/bin/env bash
# User-space instructions per request in one sidecar, counted by valgrind's callgrind: a figure
# that, unlike CPU time on a shared VM, comes out the same run after run, so small changes to the
# request path can be compared. The kernel's share (most of the sidecar's CPU, see BENCHMARKS.md)
# is not counted.
#
# In one run, for each of two configurations of sidecar B (bench/sidecar/sidecar-b.yaml):
#   baseline: randomSamplingPercentage 0 (every request still routed, headers propagated,
#             Istio metrics recorded; no span made)
#   traced:   randomSamplingPercentage 100 (a span per request, exported to the counting sink)
# the sidecar runs under callgrind (`--concurrency 1`) twice: once idle (start-up and shutdown
# only) and once serving $REQUESTS requests at $RATE requests/s from `meshtrace-loadgen
# http-load`. Instructions per request = (loaded total − idle total) / requests.
#
# The baseline, measured the same way in the same run: nginx (Debian's, one process, no master,
# keep-alive to the app, no access log) relaying the same requests, when nginx is installed or
# can be (`nginx-light`).
#
# With CACHE_SIM=1, callgrind also simulates the caches (`--cache-sim=yes`, about twice as
# slow) and the table adds level-1 instruction-cache misses and data-cache misses (reads and
# writes) per request: a request path that runs through much code once misses the instruction
# cache, which costs time the instruction count does not show.
#
# Environment: REQUESTS (2000), RATE (200), BUILD (1; 0 to use target/release as it is),
# MESHTRACE (target/release/meshtrace; another build of it, to compare two trees in one run:
# target/sidecar-pgo/meshtrace is the build to deploy, see scripts/build-sidecar.sh),
# CACHE_SIM (0).
# Ports as in bench-sidecar.sh (14317/14318 sink, 18080 app, 18000/18001/18006 sidecar B).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=lib/processes.sh
source scripts/lib/processes.sh
# shellcheck source=lib/apt.sh
source scripts/lib/apt.sh
# shellcheck source=lib/nginx.sh
source scripts/lib/nginx.sh

REQUESTS=${REQUESTS:-2000}
RATE=${RATE:-200}
BUILD=${BUILD:-1}
CACHE_SIM=${CACHE_SIM:-0}
CALLGRIND=(valgrind --tool=callgrind)
if [ "$CACHE_SIM" != 0 ]; then CALLGRIND+=(--cache-sim=yes); fi
LOADGEN=target/release/meshtrace-loadgen
MESHTRACE=${MESHTRACE:-target/release/meshtrace}
WORK=target/bench/instructions-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"

if ! command -v valgrind >/dev/null 2>&1; then
    apt_install valgrind
fi
if [ "$BUILD" != 0 ]; then
    cargo build --release -p meshtrace -p loadgen
fi
echo "tree: $(tree_description)"
echo "valgrind: $(valgrind --version)"
echo "binary: $MESHTRACE"

require_free_ports 14317 14318 18080 18000 18001 18006 18206
ensure_nginx

start_sink_and_app "$LOADGEN" "$WORK"
wait_port 127.0.0.1:14317
wait_port 127.0.0.1:18080

sed 's/randomSamplingPercentage: 100/randomSamplingPercentage: 0/' bench/sidecar/sidecar-b.yaml \
    >"$WORK/baseline.yaml"
cp bench/sidecar/sidecar-b.yaml "$WORK/traced.yaml"

# Sends $3 requests at $RATE requests/s to $1, the results in $WORK/load-$2.txt.
load() { # target label requests
    "$LOADGEN" http-load --target "$1" --host echo.bench.svc.cluster.local:9080 \
        --rate "$RATE" --connections 10 --duration $(( ($3 + RATE - 1) / RATE )) --warmup 0 \
        --label "$2" >"$WORK/load-$2.txt"
}

# Runs the sidecar with $1's config under callgrind, sends $2 requests, prints the total.
instructions() {
    local config=$1 requests=$2 out="$WORK/callgrind-$1-$2.out"
    "${CALLGRIND[@]}" --callgrind-out-file="$out" \
        "$MESHTRACE" sidecar --config "$WORK/$config.yaml" --concurrency 1 \
        >"$WORK/sidecar-$config-$requests.log" 2>&1 &
    local pid=$!
    wait_port 127.0.0.1:18006
    if [ "$requests" -gt 0 ]; then
        load 127.0.0.1:18006 "$config" "$requests"
        sleep 2 # the last export batch leaves
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    sed -n 's/^totals: //p' "$out"
}

sent() { sed -n 's/.* ok=\([0-9]*\) .*/\1/p' "$WORK/load-$1.txt"; }

# nginx under callgrind, idle or relaying $1 requests; prints the total.
nginx_instructions() {
    local requests=$1 out="$WORK/callgrind-nginx-$1.out" dir="$PWD/$WORK/nginx-$1"
    write_nginx_conf "$dir" 127.0.0.1:18206 127.0.0.1:18080 off
    "${CALLGRIND[@]}" --callgrind-out-file="$out" nginx -c "$dir/nginx.conf" -p "$dir" \
        >"$dir/nginx.log" 2>&1 &
    local pid=$!
    wait_port 127.0.0.1:18206
    if [ "$requests" -gt 0 ]; then
        load 127.0.0.1:18206 nginx "$requests"
    fi
    # SIGQUIT: nginx's graceful stop, so callgrind writes its totals.
    kill -QUIT "$pid"
    wait "$pid" || true
    sed -n 's/^totals: //p' "$out"
}

# One row: configuration, requests, then callgrind's idle and loaded totals. With the cache
# simulation the totals are "Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw".
row() { # configuration requests idle-totals loaded-totals
    awk -v name="$1" -v requests="$2" -v idle="$3" -v loaded="$4" -v cache="$CACHE_SIM" 'BEGIN {
        split(idle, i, " "); split(loaded, l, " ")
        line = sprintf("| %s | %d | %.0f | %.0f | %.0f |", name, requests, i[1], l[1], (l[1] - i[1]) / requests)
        if (cache != 0) {
            line = line sprintf(" %.0f | %.0f |", (l[4] - i[4]) / requests,
                (l[5] + l[6] - i[5] - i[6]) / requests)
        }
        print line
    }'
}

echo
if [ "$CACHE_SIM" != 0 ]; then
    echo "| configuration | requests | instructions, idle | instructions, loaded | per request | I1 misses per request | D1 misses per request |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
else
    echo "| configuration | requests | instructions, idle | instructions, loaded | per request |"
    echo "|---|---:|---:|---:|---:|"
fi
for config in baseline traced; do
    idle=$(instructions "$config" 0)
    loaded=$(instructions "$config" "$REQUESTS")
    row "$config" "$(sent "$config")" "$idle" "$loaded"
done
if command -v nginx >/dev/null 2>&1; then
    idle=$(nginx_instructions 0)
    loaded=$(nginx_instructions "$REQUESTS")
    row nginx "$(sent nginx)" "$idle" "$loaded"
fi
echo
echo "spans the sink counted (traced run only): $(curl -sS http://127.0.0.1:14318/count)"
echo "outputs: $WORK"
