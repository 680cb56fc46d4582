#!/usr/bin/env bash
# The sidecar's cost per hop, for the "Sidecar" section of BENCHMARKS.md. In one script run, for
# each of $ROUNDS rounds, one load of $RATE requests/s over $CONNECTIONS keep-alive HTTP/1.1
# connections per target, on four targets that take turns of $SLICE s, $DURATION s each (after
# $WARMUP s not recorded):
#   direct:   load → app
#   nginx:    load → nginx → app (the baseline proxy)
#   one hop:  load → sidecar B inbound → app
#   two hops: load → sidecar A outbound (Host: echo.bench.svc.cluster.local:9080)
#                  → sidecar B inbound → app
# Taking turns of a second is what makes the targets comparable on a shared VM: its speed
# drifts over minutes (the same binary has used half as much CPU again ten minutes later), and
# a drift now slows every target alike instead of whichever ran during it.
# The app is `meshtrace-loadgen echo` (a fixed 6-byte 200 OK), the load is
# `meshtrace-loadgen http-load` (constant rate, every latency recorded, exact percentiles), the
# sidecars are `meshtrace sidecar` with bench/sidecar/sidecar-{a,b}.yaml (100 % sampling) and
# export their spans over OTLP/gRPC to a counting sink, `meshtrace-loadgen sink`, whose count
# is read before and after every round. The load reads each proxy's CPU time
# (/proc/PID/stat utime and stime) at every turn's start and end and charges it to that turn's
# target; it reads VmHWM at the end. The summary gives the kernel's part (stime) apart.
#
# Before measuring it waits, up to $QUIET_WAIT s, for a quiet machine (1-minute load average
# below $QUIET_LOAD and no rustc running), then measures anyway and says so. Finally, when perf
# works and PROFILE is not 0, it profiles both sidecars under the two-hop load (figures of that
# run not reported).
#
# Benchmarks, not tests: nothing here fails on a slow result. Everything talks to 127.0.0.1 on
# fixed ports (14317/14318 sink, 18080 app, 180xx sidecar B, 181xx sidecar A).
# Output goes to the terminal and to target/bench/sidecar-TIMESTAMP.log.
#
# nginx comes from Debian (`nginx-light`, installed when missing and apt-get works; without it
# the baseline run is skipped and the summary says so).
#
# Environment: RATE (1000), CONNECTIONS (10), DURATION (30), WARMUP (3), SLICE (1), ROUNDS (1),
# QUIET_WAIT (600), QUIET_LOAD (0.8), PROFILE (1 when perf is installed), PROFILE_SECONDS (15),
# BUILD (1; 0 to use the binaries already built), PGO (1: the sidecars run the build to deploy,
# scripts/build-sidecar.sh's profile-guided target/sidecar-pgo/meshtrace; 0: the cargo profile
# below, as built), CARGO_PROFILE (with PGO=0; sidecar: size-optimised with fat LTO; `release`
# builds faster).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=lib/processes.sh
source scripts/lib/processes.sh
# shellcheck source=lib/apt.sh
source scripts/lib/apt.sh
# shellcheck source=lib/nginx.sh
source scripts/lib/nginx.sh

RATE=${RATE:-1000}
CONNECTIONS=${CONNECTIONS:-10}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-3}
SLICE=${SLICE:-1}
ROUNDS=${ROUNDS:-1}
# Extra arguments for both sidecars, e.g. SIDECAR_ARGS="--concurrency 1".
SIDECAR_ARGS=${SIDECAR_ARGS:-}
QUIET_WAIT=${QUIET_WAIT:-600}
QUIET_LOAD=${QUIET_LOAD:-0.8}
PROFILE_SECONDS=${PROFILE_SECONDS:-15}
BUILD=${BUILD:-1}
PGO=${PGO:-1}
CARGO_PROFILE=${CARGO_PROFILE:-sidecar}
if command -v perf >/dev/null 2>&1; then PROFILE=${PROFILE:-1}; else PROFILE=0; fi

OUT=target/bench
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOG="$OUT/sidecar-$STAMP.log"
WORK="$OUT/sidecar-$STAMP"
mkdir -p "$WORK"
exec > >(tee "$LOG") 2>&1

LOADGEN=target/release/meshtrace-loadgen
if [ "$PGO" != 0 ]; then
    MESHTRACE=target/sidecar-pgo/meshtrace
    BUILT="profile-guided (scripts/build-sidecar.sh)"
else
    MESHTRACE=target/$CARGO_PROFILE/meshtrace
    BUILT="cargo profile $CARGO_PROFILE"
fi
APP=127.0.0.1:18080
SINK=127.0.0.1:14317
SINK_STATS=127.0.0.1:14318
B_INBOUND=127.0.0.1:18006
A_OUTBOUND=127.0.0.1:18101
NGINX=127.0.0.1:18206
SERVICE=echo.bench.svc.cluster.local:9080

if [ "$BUILD" != 0 ]; then
    echo "== build"
    if [ "$PGO" != 0 ]; then
        scripts/build-sidecar.sh
    else
        cargo build --profile "$CARGO_PROFILE" -p meshtrace
    fi
    cargo build --release -p loadgen
fi
ensure_nginx

echo
echo "== machine"
echo "nproc:  $(nproc)"
echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
    "$(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') MHz"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "rustc:  $(rustc --version)"
echo "nginx:  $(nginx -v 2>&1 || echo 'not installed')"
echo "build:  meshtrace: $BUILT; load tool, app, sink: release"
echo "clock:  $(getconf CLK_TCK) ticks/s"
echo "tree:   $(tree_description)"
if [ "$PGO" != 0 ]; then
    # With BUILD=0 the binary may be older than the tree: say what it was built from.
    echo "sidecar binary built from: $(cat "$MESHTRACE.tree" 2>/dev/null || echo 'unknown')"
fi

# Everything started here is stopped on exit, by pid.
require_free_ports 14317 14318 18080 18206 18000 18001 18006 18100 18101 18106

echo
echo "== start"
start_sink_and_app "$LOADGEN" "$WORK"
NGINX_PID=
NGINX_MASTER=
if command -v nginx >/dev/null 2>&1; then
    write_nginx_conf "$PWD/$WORK/nginx" "$NGINX" "$APP" on
    nginx -c "$PWD/$WORK/nginx/nginx.conf" -p "$PWD/$WORK/nginx" >"$WORK/nginx.log" 2>&1 &
    NGINX_MASTER=$!
    PIDS+=("$NGINX_MASTER")
fi
"$MESHTRACE" sidecar --config bench/sidecar/sidecar-b.yaml $SIDECAR_ARGS >"$WORK/sidecar-b.log" 2>&1 &
B_PID=$!
PIDS+=("$B_PID")
"$MESHTRACE" sidecar --config bench/sidecar/sidecar-a.yaml $SIDECAR_ARGS >"$WORK/sidecar-a.log" 2>&1 &
A_PID=$!
PIDS+=("$A_PID")
for address in "$SINK" "$SINK_STATS" "$APP" "$B_INBOUND" "$A_OUTBOUND"; do wait_port "$address"; done
echo "sink, app, sidecar B (pid $B_PID), sidecar A (pid $A_PID) are up"
VIAS=("direct $APP" "one-hop $B_INBOUND" "two-hop $A_OUTBOUND")
if [ -n "$NGINX_MASTER" ] && wait_port "$NGINX"; then
    # The worker does the proxying; the master only supervises it.
    NGINX_PID=$(pgrep -f "nginx: worker process" -P "$NGINX_MASTER" | head -n 1 || true)
    echo "nginx worker: pid ${NGINX_PID:-?}"
    VIAS+=("nginx $NGINX")
fi
sink_spans() {
    curl -sS "http://$SINK_STATS/count" | sed -n 's/.*"spans":\([0-9]*\).*/\1/p'
}

smoke_before=$(sink_spans)
for via in "${VIAS[@]}"; do
    set -- $via
    host=$2
    [ "$1" = two-hop ] && host=$SERVICE
    echo "$1: $(curl -sS -o /dev/null -w '%{http_code}' -H "Host: $host" "http://$2/")"
done
# The checks' three spans (one hop, two hops) leave with a partial batch, up to the batch
# timeout later: wait for them, so that round 1 does not count them.
for _ in $(seq 1 30); do
    [ $(( $(sink_spans) - smoke_before )) -ge 3 ] && break
    sleep 0.5
done
echo "spans of the checks at the sink: $(( $(sink_spans) - smoke_before ))"

echo
echo "== waiting for a quiet machine (1-minute load < $QUIET_LOAD, no rustc; up to $QUIET_WAIT s)"
waited=0
while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    rustc=$(pgrep -c -x rustc || true)
    if awk -v l="$load" -v q="$QUIET_LOAD" 'BEGIN { exit !(l < q) }' && [ "$rustc" = 0 ]; then
        echo "quiet after ${waited} s: load $(cut -d' ' -f1-3 /proc/loadavg), no rustc"
        break
    fi
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
        echo "NOT QUIET after ${QUIET_WAIT} s (load $(cut -d' ' -f1-3 /proc/loadavg), $rustc rustc); measuring anyway"
        break
    fi
    sleep 10
    waited=$((waited + 10))
done

RESULTS="$WORK/results.txt"
: >"$RESULTS"
measure_round() { # round
    local round=$1
    echo
    echo "== round $round: the targets take turns of ${SLICE} s, ${DURATION} s each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    local before after
    before=$(sink_spans)
    # One Host for all: the app and nginx ignore it, the sidecars route by it.
    local cmd=("$LOADGEN" http-load --host "$SERVICE" --rate "$RATE" --connections "$CONNECTIONS"
        --duration "$DURATION" --warmup "$WARMUP" --slice "$SLICE" --target "direct-$round=$APP")
    [ -n "$NGINX_PID" ] && cmd+=(--target "nginx-$round=$NGINX" --watch "nginx=$NGINX_PID")
    cmd+=(--target "one-hop-$round=$B_INBOUND" --target "two-hop-$round=$A_OUTBOUND"
        --watch "sidecar-A=$A_PID" --watch "sidecar-B=$B_PID")
    echo "\$ ${cmd[*]}"
    "${cmd[@]}" | tee "$WORK/round-$round.txt"
    grep -E '^(RESULT|WATCH) ' "$WORK/round-$round.txt" >>"$RESULTS"
    sleep 3 # the sidecars' export batches flush
    after=$(sink_spans)
    # One span per one-hop request and two per two-hop request, as the load sent them (warm-up
    # included).
    local expected
    expected=$(awk '/^RESULT / {
        sent = 0
        for (i = 2; i <= NF; i++) {
            split($i, f, "=")
            if (f[1] == "label") label = f[2]
            if (f[1] == "ok" || f[1] == "failed" || f[1] == "warmup") sent += f[2]
        }
        if (label ~ /^one-hop-/) spans += sent
        if (label ~ /^two-hop-/) spans += 2 * sent
    }
    END { printf "%d", spans }' "$WORK/round-$round.txt")
    echo "spans exported to the sink during this round: $((after - before)) (expected $expected)"
    echo "SPANS label=round-$round spans=$((after - before)) expected=$expected" >>"$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
    measure_round "$round"
done

echo
echo "== summary (latency in µs; CPU per sidecar over the window; peak RSS = VmHWM since start)"
awk -v rounds="$ROUNDS" '
function kv(line, key,    n, i, parts, f) {
    n = split(line, parts, " ")
    for (i = 1; i <= n; i++) { split(parts[i], f, "="); if (f[1] == key) return f[2] }
    return ""
}
/^RESULT / { l = kv($0, "label"); rps[l] = kv($0, "rps"); ok[l] = kv($0, "ok"); failed[l] = kv($0, "failed")
             p50[l] = kv($0, "p50_us"); p90[l] = kv($0, "p90_us"); p99[l] = kv($0, "p99_us"); p999[l] = kv($0, "p999_us"); mx[l] = kv($0, "max_us") }
/^WATCH /  { l = kv($0, "label"); n = kv($0, "name"); cpu[l, n] = kv($0, "cpu_s"); sys[l, n] = kv($0, "system_s"); secs[l] = kv($0, "seconds"); hwm[l, n] = kv($0, "hwm_kib") }
/^SPANS /  { l = kv($0, "label"); spans[l] = kv($0, "spans"); expected[l] = kv($0, "expected") }
END {
    print "| run | achieved rps | ok / failed | p50 | p90 | p99 | p99.9 | max | vCPU per 1,000 rps: sidecar A / sidecar B / nginx | A / B / nginx peak RSS (MiB) |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    split("direct nginx one-hop two-hop", kinds, " ")
    for (r = 1; r <= rounds; r++) {
        for (k = 1; k <= 4; k++) {
            l = kinds[k] "-" r
            if (!(l in rps)) continue
            krps = rps[l] / 1000
            printf "| %s | %.1f | %d / %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.4f / %.4f / %.4f | %.1f / %.1f / %.1f |\n",
                l, rps[l], ok[l], failed[l], p50[l], p90[l], p99[l], p999[l], mx[l],
                cpu[l, "sidecar-A"] / secs[l] / krps, cpu[l, "sidecar-B"] / secs[l] / krps,
                cpu[l, "nginx"] / secs[l] / krps,
                hwm[l, "sidecar-A"] / 1024, hwm[l, "sidecar-B"] / 1024, hwm[l, "nginx"] / 1024
        }
    }
    print ""
    print "| round | added p50 per hop: one hop / two hops ÷ 2 / nginx (µs) | added p90 | added p99 | vCPU per 1,000 rps per sidecar: one hop (B) / two hops (A, B) / nginx | CPU-s per 1,000 requests per sidecar: one hop / two hops (mean of A, B) / nginx | of which in the kernel: one hop (B) / nginx | spans exported / expected |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|"
    for (r = 1; r <= rounds; r++) {
        d = "direct-" r; o = "one-hop-" r; t = "two-hop-" r; n = "nginx-" r
        bo = cpu[o, "sidecar-B"] / secs[o] / (rps[o] / 1000)
        at = cpu[t, "sidecar-A"] / secs[t] / (rps[t] / 1000)
        bt = cpu[t, "sidecar-B"] / secs[t] / (rps[t] / 1000)
        has_nginx = (n in rps)
        ng = has_nginx ? cpu[n, "nginx"] / secs[n] / (rps[n] / 1000) : 0
        # The kernel part (stime): what relaying costs whatever the proxy code does.
        bo_sys = sys[o, "sidecar-B"] / secs[o] / (rps[o] / 1000)
        ng_sys = has_nginx ? sys[n, "nginx"] / secs[n] / (rps[n] / 1000) : 0
        # CPU-seconds per 1,000 requests equals vCPU per 1,000 rps (both are CPU-s / requests × 1000).
        printf "| %d | %.0f / %.0f / %s | %.0f / %.0f / %s | %.0f / %.0f / %s | %.4f / %.4f, %.4f / %s | %.4f / %.4f / %s | %.4f / %s | %d / %d |\n", r,
            p50[o] - p50[d], (p50[t] - p50[d]) / 2, has_nginx ? sprintf("%.0f", p50[n] - p50[d]) : "–",
            p90[o] - p90[d], (p90[t] - p90[d]) / 2, has_nginx ? sprintf("%.0f", p90[n] - p90[d]) : "–",
            p99[o] - p99[d], (p99[t] - p99[d]) / 2, has_nginx ? sprintf("%.0f", p99[n] - p99[d]) : "–",
            bo, at, bt, has_nginx ? sprintf("%.4f", ng) : "–",
            bo, (at + bt) / 2, has_nginx ? sprintf("%.4f", ng) : "–",
            bo_sys, has_nginx ? sprintf("%.4f", ng_sys) : "–",
            spans["round-" r], expected["round-" r]
    }
}' "$RESULTS"
echo
echo "peak RSS at the end (VmHWM over each sidecar's whole life):" \
    "A $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$A_PID/status")," \
    "B $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$B_PID/status")"

if [ "$PROFILE" != 0 ]; then
    echo
    echo "== profile: both sidecars under the two-hop load (perf record -e cpu-clock -g, ${PROFILE_SECONDS} s; figures not reported)"
    "$LOADGEN" http-load --target "$A_OUTBOUND" --host "$SERVICE" --rate "$RATE" \
        --connections "$CONNECTIONS" --duration "$PROFILE_SECONDS" --warmup 3 --label profile \
        >"$WORK/profile-load.txt" 2>&1 &
    load_pid=$!
    sleep 2
    if perf record -e cpu-clock -F 999 -g -p "$A_PID,$B_PID" -o "$WORK/perf.data" \
        -- sleep "$PROFILE_SECONDS" >"$WORK/perf-record.log" 2>&1; then
        echo "-- top symbols by self time (both sidecars):"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol --percent-limit 0.8 -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | awk '{$1 = $1; print}' | cut -c 1-140 | head -n 45
        echo "-- by shared object:"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | awk '{$1 = $1; print}' | head -n 8
        echo "-- inclusive (children), top entries:"
        perf report -i "$WORK/perf.data" --stdio --children --sort symbol --percent-limit 4 -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | awk '{$1 = $1; print}' | cut -c 1-140 | head -n 45
    else
        echo "perf record failed (perf_event_paranoid is $(cat /proc/sys/kernel/perf_event_paranoid)); see $WORK/perf-record.log"
    fi
    wait "$load_pid" || true
fi

echo
echo "== stop"
cleanup
trap - EXIT
echo "still running: $(pgrep -a meshtrace || echo none)"
echo "log: $LOG"
