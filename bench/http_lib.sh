# Sourced by bench/http.sh, bench/http_ab.sh and bench/http_cost.sh: the nginx configs the
# forwarding benches share (one worker, no access log, keep-alive that never runs out in a
# run), the upstream's small JSON bucket listing, and the peer, nginx proxy_pass to that
# upstream with upstream keep-alive and the bearer token set, as tether forwards; and tetherd's
# config for the same (the storage plugin, a static token). $tmp must be set (the configs, pid
# files and nginx's temporary files go there).

# http_port: a free loopback TCP port
http_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# http_nginx_conf FILE PORT SERVER-BLOCK-BODY [HTTP-BLOCK-EXTRA] [MAIN-EXTRA]
http_nginx_conf() {
  cat > "$1" <<NGINX
worker_processes 1;
daemon off;
${5:-}
pid $1.pid;
error_log $1.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp;
  proxy_temp_path $tmp;
  ${4:-}
  server {
    listen 127.0.0.1:$2;
    client_max_body_size 0;
    keepalive_requests 1000000;
$3
  }
}
NGINX
}

# The upstream's answer to GET /storage/v1/b/bench/o: a one-object listing.
HTTP_LISTING="
    location = /storage/v1/b/bench/o { default_type application/json;
      return 200 '{\"kind\":\"storage#objects\",\"items\":[{\"name\":\"a\",\"size\":\"1\"}]}\n'; }"

# http_nginx_proxy FILE PORT UPSTREAM-PORT [MAIN-EXTRA]: the peer
http_nginx_proxy() {
  http_nginx_conf "$1" "$2" "
    location / { proxy_pass http://up; proxy_http_version 1.1;
      proxy_set_header Connection ''; proxy_set_header Authorization 'Bearer bench-token';
      proxy_request_buffering off; proxy_buffering off; }" \
    "upstream up { server 127.0.0.1:$3; keepalive 64; keepalive_requests 1000000; }" "${4:-}"
}

# http_tether_conf FILE HTTP-PORT ADMIN-PORT UPSTREAM-PORT: tetherd forwarding /storage/v1/... to
# the upstream with the token in $BENCH_TOKEN
http_tether_conf() {
  cat > "$1" <<YAML
admin: {listen: ["tcp://127.0.0.1:$3"]}
http: {listen: ["tcp://127.0.0.1:$2"], max_connections: 10000}
log: {level: warn}
credentials: {source: static, static_token_env: BENCH_TOKEN}
upstream: {max_host_connections: 0}
storage: {endpoint: "http://127.0.0.1:$4"}
YAML
}

# http_ticks PID: the CPU time (utime + stime, in clock ticks) of a process so far
http_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# http_nginx_worker CONF: the pid of the one worker of the nginx started with CONF
http_nginx_worker() {
  for _ in $(seq 50); do [ -s "$1.pid" ] && break; sleep 0.1; done
  pgrep -P "$(cat "$1.pid")" | head -1
}
