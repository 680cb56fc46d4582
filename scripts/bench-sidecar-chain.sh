#!/usr/bin/env bash
# Two hops, the way every call after a mesh's first one goes: the load → proxy → proxy → app,
# for three chains in one load, so a drift of the VM's speed slows all of them alike:
#   nginx:    nginx → nginx (one worker each, keep-alive; the lean C baseline)
#   sidecars: sidecar A's outbound → sidecar B's inbound, as bench-sidecar.sh runs them
#   variant:  a second pair A' → B' run with $VARIANT_ARGS and $VARIANT_SAMPLING (by default
#             one worker each, 100 % sampling), to try one change against the sidecars above
# For each round it prints the added p50 and p99 per hop (the chain's percentile minus the
# direct connection's, halved).
#
# With SCHED=1 it also records the scheduler (`perf sched record -a`, 6 s) while the load runs
# through the sidecars, then through nginx, and prints how long the proxies' threads waited
# between being woken and running: over two hops a request is woken four times in the proxies,
# and on a 2-core VM those waits, not the proxies' own work, make most of the tail
# (BENCHMARKS.md, "Sidecar", "Mesh-to-mesh hops").
#
# Environment: ROUNDS (3), DURATION (20 s per chain per round), RATE (1000), CONNECTIONS (10),
# VARIANT_ARGS (--concurrency 1), VARIANT_SAMPLING (100), SCHED (0), BUILD (1: the
# profile-guided build of scripts/build-sidecar.sh; 0 uses $MESHTRACE as it is), MESHTRACE
# (target/sidecar-pgo/meshtrace).
# Ports: 14317/14318 sink, 18080 app, sidecar B 18000/18001/18006, A 18100/18101/18106,
# B' 18300/18301/18306, A' 18400/18401/18406, nginx 18206/18207.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=lib/processes.sh
source scripts/lib/processes.sh
# shellcheck source=lib/apt.sh
source scripts/lib/apt.sh
# shellcheck source=lib/nginx.sh
source scripts/lib/nginx.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
RATE=${RATE:-1000}
CONNECTIONS=${CONNECTIONS:-10}
VARIANT_ARGS=${VARIANT_ARGS:---concurrency 1}
VARIANT_SAMPLING=${VARIANT_SAMPLING:-100}
SCHED=${SCHED:-0}
BUILD=${BUILD:-1}
MESHTRACE=${MESHTRACE:-target/sidecar-pgo/meshtrace}
LOADGEN=target/release/meshtrace-loadgen
WORK=$PWD/target/bench/chain-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"

require_free_ports 14317 14318 18080 18000 18001 18006 18100 18101 18106 \
    18300 18301 18306 18400 18401 18406 18206 18207
ensure_nginx
command -v nginx >/dev/null 2>&1 || { echo "nginx is needed for the baseline chain" >&2; exit 1; }
if [ "$SCHED" != 0 ] && ! command -v perf >/dev/null 2>&1; then
    apt_install linux-perf
fi
if [ "$BUILD" != 0 ]; then
    scripts/build-sidecar.sh
    cargo build --release -p loadgen
fi
for binary in "$MESHTRACE" "$LOADGEN"; do
    [ -x "$binary" ] || { echo "$binary is missing: run with BUILD=1" >&2; exit 1; }
done
echo "tree: $(tree_description)"
echo "sidecar binary: $MESHTRACE; variant: $VARIANT_ARGS, sampling $VARIANT_SAMPLING %"

start_sink_and_app "$LOADGEN" "$WORK"
write_nginx_conf "$WORK/nginx-2" 127.0.0.1:18207 127.0.0.1:18080 on
write_nginx_conf "$WORK/nginx-1" 127.0.0.1:18206 127.0.0.1:18207 on
for n in 2 1; do
    nginx -c "$WORK/nginx-$n/nginx.conf" -p "$WORK/nginx-$n" >"$WORK/nginx-$n.log" 2>&1 &
    PIDS+=($!)
done
# The variant pair: the bench configs on their own ports, A' calling B'.
sed -e 's/1800\([016]\)/1830\1/; s/randomSamplingPercentage: 100/randomSamplingPercentage: '"$VARIANT_SAMPLING"'/' \
    bench/sidecar/sidecar-b.yaml >"$WORK/variant-b.yaml"
sed -e 's/1810\([016]\)/1840\1/; s/127.0.0.1:18006/127.0.0.1:18306/' \
    -e 's/randomSamplingPercentage: 100/randomSamplingPercentage: '"$VARIANT_SAMPLING"'/' \
    bench/sidecar/sidecar-a.yaml >"$WORK/variant-a.yaml"
start_sidecar() { # CONFIG [ARGS...]; the pid goes to PIDS and SIDECAR_PID
    "$MESHTRACE" sidecar --config "$@" >"$WORK/$(basename "$1" .yaml).log" 2>&1 &
    SIDECAR_PID=$!
    PIDS+=("$SIDECAR_PID")
}
read -r -a variant_args <<<"$VARIANT_ARGS"
start_sidecar bench/sidecar/sidecar-b.yaml
SIDECAR_PIDS=$SIDECAR_PID
start_sidecar bench/sidecar/sidecar-a.yaml
SIDECAR_PIDS="$SIDECAR_PIDS $SIDECAR_PID"
start_sidecar "$WORK/variant-b.yaml" "${variant_args[@]}"
start_sidecar "$WORK/variant-a.yaml" "${variant_args[@]}"
for port in 18080 18006 18101 18306 18401 18206 18207; do wait_port "127.0.0.1:$port"; done

summary() { # ROUND-FILE
    awk '
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
          sub(/-[0-9]+$/, "", f["label"]); p50[f["label"]] = f["p50_us"]; p99[f["label"]] = f["p99_us"] }
        END {
            printf "direct p50 %.0f p99 %.0f µs; added per hop, p50 / p99:", p50["direct"], p99["direct"]
            n = split("nginx sidecars variant", names, " ")
            for (i = 1; i <= n; i++) {
                t = names[i]
                printf "  %s %.0f / %.0f", t, (p50[t] - p50["direct"]) / 2, (p99[t] - p99["direct"]) / 2
            }
            printf "\n"
        }' "$1"
}

for round in $(seq 1 "$ROUNDS"); do
    "$LOADGEN" http-load --host echo.bench.svc.cluster.local:9080 --rate "$RATE" \
        --connections "$CONNECTIONS" --duration "$DURATION" --warmup 3 --slice 1 \
        --target "direct-$round=127.0.0.1:18080" --target "nginx-$round=127.0.0.1:18206" \
        --target "sidecars-$round=127.0.0.1:18101" --target "variant-$round=127.0.0.1:18401" \
        | grep '^RESULT' >"$WORK/round-$round.txt"
    echo "round $round: $(summary "$WORK/round-$round.txt")"
done

# How long the proxies' threads waited to run once woken (perf sched timehist's "sch delay"),
# for threads named THREAD-PREFIX… and, when PIDS is given, of those processes only.
delays() { # PERF-DATA THREAD-PREFIX [PIDS]
    perf sched timehist -i "$1" 2>/dev/null | awk -v prefix="$2" -v pids=" ${3:-} " '
        NR > 3 && index($3, prefix) == 1 {
            id = $3; sub(/^.*\[/, "", id); sub(/\]$/, "", id); sub(/^.*\//, "", id)
            if (pids == "  " || index(pids, " " id " ") > 0) print $5 * 1000
        }' | sort -n | awk '
        { d[NR] = $1; if ($1 > 40) late++ }
        END {
            if (NR == 0) { print "no switch-ins recorded"; exit }
            printf "%d switch-ins; wait p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f µs; over 40 µs: %d\n",
                NR, d[int(NR * .5)], d[int(NR * .9)], d[int(NR * .99)], d[int(NR * .999)], late
        }'
}

if [ "$SCHED" != 0 ]; then
    for chain in sidecars:18101:sidecar-worker nginx:18206:nginx; do
        IFS=: read -r name port threads <<<"$chain"
        pids=""
        [ "$name" = sidecars ] && pids=$SIDECAR_PIDS
        "$LOADGEN" http-load --target "127.0.0.1:$port" --host echo.bench.svc.cluster.local:9080 \
            --rate "$RATE" --connections "$CONNECTIONS" --duration 14 --warmup 2 --label "$name" \
            >"$WORK/sched-load-$name.txt" &
        load=$!
        PIDS+=("$load")
        sleep 4
        if perf sched record -a -o "$WORK/sched-$name.data" -- sleep 6 \
            >"$WORK/sched-$name.log" 2>&1; then
            result=$(delays "$WORK/sched-$name.data" "$threads" "$pids")
        else
            result="perf sched record failed (see $WORK/sched-$name.log)"
        fi
        wait "$load" || true
        PIDS=("${PIDS[@]/$load/}")
        echo "scheduler, $name chain ($threads threads): $result"
    done
fi
echo "outputs: $WORK"
