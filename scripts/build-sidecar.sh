#!/usr/bin/env bash
# The build to deploy as a sidecar: `cargo build --profile sidecar` (size-optimised, fat LTO)
# guided by a profile of the sidecar's own hot path (LLVM profile-guided optimisation). The
# result is target/sidecar-pgo/meshtrace, the same program as target/sidecar/meshtrace.
#
# Why: a sidecar's request path runs once per request through a lot of code (hyper's HTTP/1
# server and client, tokio, the tracer), and at opt-level "s" the compiler cannot tell the hot
# part from the rest. With the profile it inlines and lays out the hot path for speed and keeps
# the rest small. callgrind counted 64,251 → 44,605 user-space instructions per traced request,
# and 2,798 → 1,897 instruction-cache misses (BENCHMARKS.md, "Sidecar", "A profile-guided
# build").
#
# Three steps, each in its own target directory so that the usual builds' caches stay intact:
#   1. an instrumented build (target/pgo-generate), whose sidecars write raw profiles;
#   2. a training run: two instrumented sidecars relay a short mixed load (below) while the
#      counting sink takes their spans; the raw profiles are merged with llvm-profdata;
#   3. the build that uses the merged profile (target/pgo-use), copied to target/sidecar-pgo,
#      with meshtrace.tree naming the commit it was built from.
# About 7 minutes on 2 cores: two fat-LTO builds.
#
# The training load, on the benchmark's fixed loopback ports (scripts/bench-sidecar.sh):
#   - HTTP/1.1 keep-alive into sidecar B's inbound listener, 100 % sampled, and through sidecar
#     A's outbound listener (a service name routed to B), with `meshtrace-loadgen http-load`;
#   - with curl: gRPC over HTTP/2 with prior knowledge (through sidecar A to the sink: HTTP/2 on
#     both sides, trailers), absolute-form requests to the outbound listener
#     (an app with HTTP_PROXY), incoming W3C and B3 contexts sampled and not, a request id and
#     force-trace headers, and a refused upstream (503, `UF`/`URX`).
# Paths it does not take (gRPC streaming, WebSocket, most errors) get no profile counts, and LLVM
# builds code without counts for size, as the plain `sidecar` profile builds everything.
#
# The profile must come from the same sources and compiler, so it is made on every run, never
# kept: llvm-profdata must be of rustc's LLVM major version (Debian's `llvm-N`, installed when
# missing and apt-get works).
#
# Environment: TRAIN_SECONDS (5; the seconds of each HTTP/1.1 load).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=lib/processes.sh
source scripts/lib/processes.sh
# shellcheck source=lib/apt.sh
source scripts/lib/apt.sh

TRAIN_SECONDS=${TRAIN_SECONDS:-5}
GENERATE=target/pgo-generate
USE=target/pgo-use
OUT=target/sidecar-pgo
RAW="$PWD/$GENERATE/profiles"
PROFILE="$PWD/$GENERATE/sidecar.profdata"
LOADGEN=target/release/meshtrace-loadgen

# llvm-profdata of rustc's own LLVM: the raw profile format changes between LLVM versions.
llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
find_profdata() {
    for candidate in "llvm-profdata-$llvm_major" "/usr/lib/llvm-$llvm_major/bin/llvm-profdata"; do
        if command -v "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
if ! PROFDATA=$(find_profdata); then
    echo "== installing llvm-$llvm_major for llvm-profdata (rustc uses LLVM $llvm_major)"
    apt_install --no-install-recommends "llvm-$llvm_major" || {
        echo "llvm-profdata for LLVM $llvm_major is needed and could not be installed;" \
            "\`cargo build --profile sidecar\` builds without a profile" \
            "(scripts/bench-sidecar.sh: PGO=0)" >&2
        exit 1
    }
    PROFDATA=$(find_profdata) ||
        { echo "llvm-$llvm_major is installed but has no llvm-profdata" >&2; exit 1; }
fi

# The training's ports, checked before minutes of building.
TRAINING_PORTS=(14317 14318 18080 18000 18001 18006 18100 18101 18106)
require_free_ports "${TRAINING_PORTS[@]}"

echo "== 1/3: instrumented build ($GENERATE)"
cargo build --release -p loadgen
rm -rf "$RAW"
RUSTFLAGS="-Cprofile-generate=$RAW" CARGO_TARGET_DIR=$GENERATE \
    cargo build --profile sidecar -p meshtrace
# Build scripts ran instrumented too and left their own profiles: only the sidecars' count.
rm -rf "$RAW"
mkdir -p "$RAW"

echo "== 2/3: training"
require_free_ports "${TRAINING_PORTS[@]}"
LOG="$GENERATE/training"
mkdir -p "$LOG"
start_sink_and_app "$LOADGEN" "$LOG"
sidecars=()
for side in a b; do
    LLVM_PROFILE_FILE="$RAW/sidecar-%p.profraw" "$GENERATE/sidecar/meshtrace" sidecar \
        --config "bench/sidecar/sidecar-$side.yaml" >"$LOG/sidecar-$side.log" 2>&1 &
    sidecars+=($!)
    PIDS+=($!)
done
for address in 127.0.0.1:14317 127.0.0.1:18080 127.0.0.1:18006 127.0.0.1:18101; do
    wait_port "$address"
done
SERVICE=echo.bench.svc.cluster.local:9080
for target in 127.0.0.1:18006 127.0.0.1:18101; do
    "$LOADGEN" http-load --target "$target" --host "$SERVICE" --rate 1000 \
        --duration "$TRAIN_SECONDS" --warmup 0 --label "training-$target" | grep '^RESULT'
done
# curl's exit status is checked: a training request that fails means the sidecar is broken.
requests() { # COUNT URL [curl arguments]: COUNT requests to URL1 .. URLCOUNT
    local count=$1 url=$2
    shift 2
    curl -sS -o /dev/null --fail-with-body --fail-early "$@" "$url[1-$count]"
}
# gRPC over HTTP/2 with prior knowledge, through sidecar A to the sink (an empty OTLP export).
# One connection each: this curl fails the second request on a prior-knowledge connection.
printf '\0\0\0\0\0' >"$LOG/empty-export.grpc"
for _ in $(seq 100); do
    curl -sS -o /dev/null --fail-with-body --http2-prior-knowledge \
        -H 'Host: otel-sink.bench.svc.cluster.local:4317' -H 'content-type: application/grpc' \
        -H 'te: trailers' --data-binary "@$LOG/empty-export.grpc" \
        http://127.0.0.1:18101/opentelemetry.proto.collector.trace.v1.TraceService/Export
done
requests 200 "http://$SERVICE/absolute/" --proxy http://127.0.0.1:18101
requests 100 "http://127.0.0.1:18006/w3c/" \
    -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
    -H 'tracestate: congo=t61rcWkgMzE' -H 'baggage: user=1'
requests 100 "http://127.0.0.1:18006/unsampled/" \
    -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'
requests 100 "http://127.0.0.1:18006/b3/" -H 'x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7' \
    -H 'x-b3-spanid: e457b5a2e4d86bd1' -H 'x-b3-sampled: 1'
requests 100 "http://127.0.0.1:18006/b3-single/" \
    -H 'b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0'
requests 100 "http://127.0.0.1:18006/forced/" \
    -H 'x-request-id: 9e8f6a1c-0b7d-4c3e-8a2f-1d5b6c7e8f90' -H 'x-envoy-force-trace: true'
# Passthrough to a port nobody listens on: refused, retried, answered 503.
refused=$(curl -sS -o /dev/null -w '%{http_code}\n' --proxy http://127.0.0.1:18101 \
    "http://127.0.0.1:1/refused/[1-20]" | sort -u)
[ "$refused" = 503 ] || { echo "refused upstream answered $refused, not 503" >&2; exit 1; }
# SIGTERM: the sidecars drain, export their spans and write their profiles as they exit.
for pid in "${sidecars[@]}"; do kill -TERM "$pid"; done
for pid in "${sidecars[@]}"; do
    wait "$pid" || { echo "instrumented sidecar $pid exited with status $?" >&2; exit 1; }
done
cleanup
shopt -s nullglob
profiles=("$RAW"/*.profraw)
[ "${#profiles[@]}" -eq 2 ] ||
    { echo "expected the two sidecars' raw profiles, found ${#profiles[@]}" >&2; exit 1; }
"$PROFDATA" merge -o "$PROFILE" "${profiles[@]}"

echo "== 3/3: optimised build ($USE)"
RUSTFLAGS="-Cprofile-use=$PROFILE" CARGO_TARGET_DIR=$USE cargo build --profile sidecar -p meshtrace
mkdir -p "$OUT"
cp "$USE/sidecar/meshtrace" "$OUT/meshtrace"
tree_description >"$OUT/meshtrace.tree"
echo "built $OUT/meshtrace from $(cat "$OUT/meshtrace.tree")"
