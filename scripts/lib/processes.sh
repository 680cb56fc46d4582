# Helpers for the benchmark scripts, which start servers on fixed loopback ports and must stop
# them whatever happens. Source it, then `PIDS+=($!)` after each background start.

PIDS=()

# Stops everything in PIDS (SIGTERM: meshtrace, the load tools and nginx all shut down on it),
# waits for it and empties PIDS. Installed on EXIT; call it directly to stop earlier.
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # Forgotten once reaped: a later call (the EXIT trap) must not signal a reused pid.
    PIDS=()
}
trap cleanup EXIT

# Starts the sidecar benchmarks' counting OTLP/gRPC sink (127.0.0.1:14317, its count on
# 127.0.0.1:14318) and their app (`meshtrace-loadgen echo`, 127.0.0.1:18080), logging to DIR,
# with the load tool at LOADGEN. The callers wait for the ports they need.
start_sink_and_app() { # LOADGEN DIR
    "$1" sink --listen 127.0.0.1:14317 --protocol grpc --stats 127.0.0.1:14318 \
        >"$2/sink.log" 2>&1 &
    PIDS+=($!)
    "$1" echo --listen 127.0.0.1:18080 >"$2/app.log" 2>&1 &
    PIDS+=($!)
}

# Waits up to 30 s for something to listen on host:port.
wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

# Exits when any of the given loopback ports is taken.
require_free_ports() {
    for port in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "port $port is already in use; stop whatever listens there first" >&2
            exit 1
        fi
    done
}

# The commit measured, and whether the working tree differs from it.
tree_description() {
    echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
}
