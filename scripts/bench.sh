#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md: builds release binaries, describes the machine, then
# runs `meshtrace-loadgen run` for
#   1. OTLP/gRPC → batch → OTLP/gRPC at $RATE spans/s,
#   2. the same as fast as possible (--max), to find the ceiling,
#   3. OTLP/HTTP → batch → OTLP/gRPC at $RATE spans/s,
#   4. the baseline: the load tool driving its sink directly (no collector) at $RATE spans/s,
#   5. the baseline as fast as possible, to show what the load tool alone can reach,
# and finally (when `perf` works and PROFILE is not 0) profiles the collector under run 1's
# load, in a separate run whose figures are not reported.
#
# Benchmarks, not tests: nothing here fails on a slow result. Everything talks to 127.0.0.1.
# Output goes to the terminal and to target/bench/bench-TIMESTAMP.log.
#
# Environment: RATE (default 100000), DURATION seconds (20), MAX_CONCURRENCY (32),
# PROFILE (1 when perf is installed; 0 to skip), PROFILE_SECONDS (10).
set -euo pipefail

cd "$(dirname "$0")/.."

RATE=${RATE:-100000}
DURATION=${DURATION:-20}
MAX_CONCURRENCY=${MAX_CONCURRENCY:-32}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
if command -v perf >/dev/null 2>&1; then PROFILE=${PROFILE:-1}; else PROFILE=0; fi

OUT=target/bench
mkdir -p "$OUT"
LOG="$OUT/bench-$(date -u +%Y%m%dT%H%M%SZ).log"
exec > >(tee "$LOG") 2>&1

echo "== build"
cargo build --release -p meshtrace -p loadgen

LOADGEN=target/release/meshtrace-loadgen
COLLECTOR=target/release/meshtrace

echo
echo "== machine"
echo "nproc:  $(nproc)"
echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
    "$(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') MHz"
if command -v lscpu >/dev/null 2>&1; then
    echo "        $(lscpu | grep -E '^(Hypervisor vendor|Thread\(s\) per core|L3 cache)' | sed 's/  */ /g' | paste -sd ';' -)"
fi
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "rustc:  $(rustc --version)"
echo "clock:  $(getconf CLK_TCK) ticks/s"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15-minute load average before the runs)"

ROWS=()
bench() {
    local title=$1
    shift
    echo
    echo "== $title"
    echo "\$ meshtrace-loadgen $*"
    local result="$OUT/run.txt"
    "$LOADGEN" "$@" | tee "$result"
    ROWS+=("$(tail -n 1 "$result")")
}

bench "1. OTLP/gRPC → batch → OTLP/gRPC at $RATE spans/s" \
    run --collector "$COLLECTOR" --protocol grpc --rate "$RATE" --duration "$DURATION"
bench "2. OTLP/gRPC → batch → OTLP/gRPC, as fast as possible" \
    run --collector "$COLLECTOR" --protocol grpc --max --concurrency "$MAX_CONCURRENCY" --duration "$DURATION"
bench "3. OTLP/HTTP → batch → OTLP/gRPC at $RATE spans/s" \
    run --collector "$COLLECTOR" --protocol http --rate "$RATE" --duration "$DURATION"
bench "4. baseline: load tool → sink, no collector, at $RATE spans/s" \
    run --baseline --protocol grpc --rate "$RATE" --duration "$DURATION"
bench "5. baseline: load tool → sink, no collector, as fast as possible" \
    run --baseline --protocol grpc --max --concurrency "$MAX_CONCURRENCY" --duration "$DURATION"

echo
echo "== summary"
echo "| run | offered spans/s | delivered spans/s | collector CPU (cores) | spans per collector CPU-s | collector peak RSS (MiB) | loadgen CPU (cores) | refused spans | failed spans | lost spans |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"

if [ "$PROFILE" != 0 ]; then
    echo
    echo "== profile: the collector under run 1's load (perf record -e cpu-clock, ${PROFILE_SECONDS} s; figures not reported)"
    stderr="$OUT/profile-run.err"
    "$LOADGEN" run --collector "$COLLECTOR" --protocol grpc --rate "$RATE" \
        --duration "$((PROFILE_SECONDS + 4))" >"$OUT/profile-run.out" 2>"$stderr" &
    run_pid=$!
    pid=""
    for _ in $(seq 1 300); do
        pid=$(sed -n 's/^collector ready: pid \([0-9]*\).*/\1/p' "$stderr" | head -n 1)
        [ -n "$pid" ] && break
        sleep 0.1
    done
    if [ -n "$pid" ]; then
        sleep 3 # past the warm-up
        if perf record -e cpu-clock -F 999 -p "$pid" -o "$OUT/perf.data" -- sleep "$PROFILE_SECONDS" >/dev/null 2>&1; then
            echo "-- top symbols by self time (whole process):"
            perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol --percent-limit 0.7 2>/dev/null |
                grep -v '^#' | grep -v '^$' | awk '{$1 = $1; print}' | cut -c 1-120 | head -n 40
            echo "-- by shared object:"
            perf report -i "$OUT/perf.data" --stdio --no-children --sort dso 2>/dev/null |
                grep -v '^#' | grep -v '^$' | awk '{$1 = $1; print}' | head -n 8
        else
            echo "perf record failed (perf_event_paranoid is $(cat /proc/sys/kernel/perf_event_paranoid))"
        fi
    else
        echo "the collector did not start; see $stderr"
    fi
    wait "$run_pid" || true
fi

echo
echo "log: $LOG"
