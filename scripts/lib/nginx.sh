# The nginx baseline of the sidecar benchmarks: the same reverse proxy in every script.
# Needs scripts/lib/apt.sh sourced first.

# Writes DIR/nginx.conf: one worker, keep-alive to the app at APP, no access log, listening on
# LISTEN; MASTER is `on` (nginx as a daemon-less master and worker) or `off` (one process, for
# callgrind).
write_nginx_conf() { # DIR LISTEN APP MASTER
    local dir=$1 listen=$2 app=$3 master=$4
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<NGINX
# One worker, as a sidecar would run at this rate; keep-alive to the app; no access log.
worker_processes 1;
master_process $master;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    upstream app { server $app; keepalive 32; }
    server {
        listen $listen;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
        }
    }
}
NGINX
}

# Installs Debian's nginx-light when nginx is missing; says so when it cannot, and the caller
# skips its nginx baseline (checking `command -v nginx` again).
ensure_nginx() {
    command -v nginx >/dev/null 2>&1 && return 0
    echo "== installing nginx-light for the baseline"
    apt_install nginx-light || echo "cannot install nginx; the nginx baseline is skipped"
}
