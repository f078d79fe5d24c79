# Helpers shared by the benchmark scripts (sourced, not run).
#
# After sourcing: $WORK is a fresh temporary folder, PIDS an array; every PID
# added to PIDS is killed and $WORK removed when the script exits.

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
# A stopped script cleans up too (bash runs the EXIT trap on exit, not on a
# fatal signal).
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for COMMAND...: polls COMMAND until it succeeds, for at most 20 s.
wait_for() {
  local end=$((SECONDS + 20))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "not ready: $*" >&2; exit 1; }
    sleep 0.05
  done
}

# cpu_of PID...: CPU seconds (user + system) the processes have used so far,
# threads that have ended included (/proc/PID/stat counts them; GStreamer's
# pipeline threads end with each publish). A process that has exited, such
# as nginx's cache loader, counts nothing.
cpu_of() {
  local t=0 p
  for p in "$@"; do
    t=$((t + $(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null | awk '{s += $12 + $13} END {print s + 0}')))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", t / hz}'
}

# The median of numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# start_nginx_cache PORT ORIGIN_PORT [EXTRA_DIRECTIVES] [SERVER_DIRECTIVES]:
# nginx with proxy_cache (2 workers, keep-alive to the origin, cache lock,
# X-Cache-Status) on 127.0.0.1:PORT in front of 127.0.0.1:ORIGIN_PORT; its PID
# goes to PIDS. EXTRA_DIRECTIVES go in the location, SERVER_DIRECTIVES in the
# server (e.g. a second `listen ... ssl http2` with its certificate).
start_nginx_cache() {
  local port=$1 origin=$2 extra=${3:-} server=${4:-}
  mkdir -p "$WORK/nginx-$port/cache"
  cat > "$WORK/nginx-$port/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 2;
pid $WORK/nginx-$port/nginx.pid;
error_log $WORK/nginx-$port/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  proxy_cache_path $WORK/nginx-$port/cache keys_zone=hls:16m max_size=256m inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$origin; keepalive 32; }
  server {
    listen 127.0.0.1:$port;
    $server
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache hls;
      proxy_cache_lock on;
      add_header X-Cache-Status \$upstream_cache_status always;
      $extra
    }
  }
}
CONF
  nginx -c "$WORK/nginx-$port/nginx.conf" & PIDS+=($!)
}

# start_varnish PORT ORIGIN_PORT [VCL_BACKEND_RESPONSE]: Varnish (malloc
# storage, X-Cache-Status) on 127.0.0.1:PORT in front of 127.0.0.1:ORIGIN_PORT.
start_varnish() {
  local port=$1 origin=$2 beresp=${3:-}
  cat > "$WORK/varnish-$port.vcl" <<VCL
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$origin"; }
sub vcl_backend_response { $beresp }
sub vcl_deliver { if (obj.hits > 0) { set resp.http.X-Cache-Status = "HIT"; } else { set resp.http.X-Cache-Status = "MISS"; } }
VCL
  varnishd -F -a "127.0.0.1:$port" -f "$WORK/varnish-$port.vcl" -s malloc,256m -n "$WORK/varnish-$port" > "$WORK/varnish-$port.log" 2>&1 & PIDS+=($!)
}
