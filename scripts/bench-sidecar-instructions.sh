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
# Environment: REQUESTS (2000), RATE (200), BUILD (1; 0 to use target/release as it is),
# MESHTRACE (target/release/meshtrace; another build of it, to compare two trees in one run).
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

"$LOADGEN" sink --listen 127.0.0.1:14317 --protocol grpc --stats 127.0.0.1:14318 >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
"$LOADGEN" echo --listen 127.0.0.1:18080 >"$WORK/app.log" 2>&1 &
PIDS+=($!)
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
    valgrind --tool=callgrind --callgrind-out-file="$out" \
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
    valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$dir/nginx.conf" -p "$dir" \
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

echo
echo "| configuration | requests | instructions, idle | instructions, loaded | per request |"
echo "|---|---:|---:|---:|---:|"
for config in baseline traced; do
    idle=$(instructions "$config" 0)
    loaded=$(instructions "$config" "$REQUESTS")
    requests=$(sent "$config")
    echo "| $config | $requests | $idle | $loaded | $(( (loaded - idle) / requests )) |"
done
if command -v nginx >/dev/null 2>&1; then
    idle=$(nginx_instructions 0)
    loaded=$(nginx_instructions "$REQUESTS")
    requests=$(sent nginx)
    echo "| nginx | $requests | $idle | $loaded | $(( (loaded - idle) / requests )) |"
fi
echo
echo "spans the sink counted (traced run only): $(curl -sS http://127.0.0.1:14318/count)"
echo "outputs: $WORK"
