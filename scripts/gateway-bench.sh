#!/usr/bin/env bash
# The gateway's load test (issue 23): on one upstream and one machine, in one run,
#
#   - the gateway with a cached token (RemoteVerifier cache hit) vs nginx `proxy_pass` with no
#     authentication: goal at least 0.9 of nginx's requests/s, p99 at most 100 µs above;
#   - the gateway with authentication vs the same proxy with it off;
#   - the upstream alone, for scale.
#
#   scripts/gateway-bench.sh                        (about 3 min once built)
#   DURATION=2s ROUNDS=1 scripts/gateway-bench.sh   (a short run)
#
# Every proxy (nginx with one worker, the gateway with one tokio worker) runs on core 0; the
# upstream (one tokio worker) and wrk share core 1, so the proxy's core is the one that limits
# and what a proxy costs shows as lost requests/s and as its CPU time per request (read from
# /proc, the column that does not depend on who else runs). Throughput: wrk -t1 -c$CONNECTIONS.
# Latency: wrk -t1 -c1 (one request at a time: the p99 of a request's own way through, not of
# a queue). Rounds are interleaved, so drift hits every row alike; each figure is the median
# of its rounds. Needs wrk and nginx (Debian packages; installed when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-64}"

for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null && ! [[ -x "/usr/sbin/$tool" ]]; then
        echo "gateway-bench.sh: installing $tool" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
    fi
done
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

BIN="$(cargo bench --no-run --bench gateway_server --features gateway,server,authority,remote \
    --message-format=json 2>/dev/null | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)"
[[ -x "$BIN" ]] || { echo "gateway-bench.sh: the gateway_server bench did not build" >&2; exit 1; }

work="$(mktemp -d)"
declare -A pid=() url=() token=()
cleanup() {
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [[ "$(nproc)" -ge 2 ]] && command -v taskset >/dev/null; then
    proxy_core=(taskset -c 0)
    other_core=(taskset -c 1)
else
    proxy_core=()
    other_core=()
fi

# start NAME CORE MODE [ARGS...]: starts a gateway_server and waits until it listens.
start() {
    local name="$1" log="$work/$1.log" pin
    : >"$log"
    if [[ "$2" == proxy ]]; then pin=("${proxy_core[@]}"); else pin=("${other_core[@]}"); fi
    TOKIO_WORKER_THREADS=1 "${pin[@]}" "$BIN" --mode "$3" "${@:4}" >"$log" 2>&1 &
    pid[$name]=$!
    for _ in $(seq 600); do
        if grep -q '^listening on ' "$log"; then
            url[$name]="$(sed -n 's/^listening on //p' "$log")"
            token[$name]="$(sed -n 's/^token: //p' "$log")"
            return 0
        fi
        kill -0 "${pid[$name]}" 2>/dev/null || { cat "$log" >&2; echo "gateway-bench.sh: $name died" >&2; exit 1; }
        sleep 0.1
    done
    echo "gateway-bench.sh: $name did not start" >&2
    exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || awk 'BEGIN{srand(); print 20000 + int(rand() * 20000)}'; }

start upstream other upstream
start gateway proxy gateway --upstream "${url[upstream]}"
start proxy proxy proxy --upstream "${url[upstream]}"

# nginx: one worker on the proxy core, keep-alive connections to the upstream, as a tuned
# reverse proxy is set up (without them every request would open a connection).
nginx_port="$(free_port)"
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream app { server ${url[upstream]#http://}; keepalive 128; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
"${proxy_core[@]}" "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx.log" 2>&1 &
pid[nginx]=$!
url[nginx]="http://127.0.0.1:$nginx_port"
token[nginx]=none
for _ in $(seq 100); do
    curl -fsS "${url[nginx]}/" >/dev/null 2>&1 && break
    kill -0 "${pid[nginx]}" 2>/dev/null || { cat "$work/nginx.log" "$work/nginx/error.log" >&2; exit 1; }
    sleep 0.1
done
# nginx's master forks its worker: CPU time is the worker's (the master only waits).
nginx_worker() { pgrep -P "$(cat "$work/nginx/nginx.pid")" | head -1; }

to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}
clk_tck="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# drive NAME CONNECTIONS: wrk against NAME; sets $rate, $p99 (ms) and $cpu (the proxy's µs
# per request; the upstream's own for the upstream row). Every answer must be 2xx.
drive() {
    local name="$1" out="$work/wrk.out" counted before after total non2xx
    if [[ "$name" == nginx ]]; then counted="$(nginx_worker)"; else counted="${pid[$name]}"; fi
    before="$(cpu_ticks "$counted")"
    "${other_core[@]}" wrk -t1 -c"$2" -d"$DURATION" --latency \
        -H "Authorization: Bearer ${token[$name]}" "${url[$name]}/" >"$out"
    after="$(cpu_ticks "$counted")"
    total="$(awk '/requests in/ {print $1}' "$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses/ {print $5}' "$out")"
    if [[ "${non2xx:-0}" != 0 ]]; then
        cat "$out" >&2; echo "gateway-bench.sh: $name: $non2xx of $total answers were not 2xx" >&2; exit 1
    fi
    rate="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
    cpu="$(echo "($after - $before) * 1000000 / $clk_tck / $total" | bc -l)"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "gateway-bench.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $DURATION per run, $ROUNDS rounds" >&2

names=(upstream nginx proxy gateway)
labels=("upstream alone" "nginx proxy_pass, no auth" "gateway, auth off (Proxy alone)" "gateway, RemoteVerifier cache hit")
declare -A rates=() cpus=() p99s=()
for round in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        drive "${names[$i]}" "$CONNECTIONS"
        rates[$i]+=" $rate"; cpus[$i]+=" $cpu"
        r="$rate" c="$cpu"
        drive "${names[$i]}" 1
        p99s[$i]+=" $p99"
        printf '  round %d  %-36s %9.0f req/s   %7.2f us cpu/req   p99 (c=1) %7.3f ms\n' \
            "$round" "${labels[$i]}" "$r" "$c" "$p99" >&2
    done
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo
echo "| proxy | req/s (c=$CONNECTIONS) | vs nginx | CPU µs/req | p99 at c=1 | p99 added vs nginx |"
echo "|---|---:|---:|---:|---:|---:|"
nginx_rate="$(median ${rates[1]})"
nginx_p99="$(median ${p99s[1]})"
for i in "${!names[@]}"; do
    r="$(median ${rates[$i]})"; c="$(median ${cpus[$i]})"; p="$(median ${p99s[$i]})"
    printf '| %s | %.0f | %.2f | %.1f | %.0f µs | %+.0f µs |\n' "${labels[$i]}" "$r" \
        "$(echo "$r / $nginx_rate" | bc -l)" "$c" "$(echo "$p * 1000" | bc -l)" \
        "$(echo "($p - $nginx_p99) * 1000" | bc -l)"
done
gw_rate="$(median ${rates[3]})"; gw_p99="$(median ${p99s[3]})"
off_rate="$(median ${rates[2]})"
echo
ratio="$(echo "$gw_rate / $nginx_rate" | bc -l)"
added="$(echo "($gw_p99 - $nginx_p99) * 1000" | bc -l)"
met() { if [[ "$(echo "$1" | bc -l)" == 1 ]]; then echo met; else echo missed; fi; }
printf 'gateway vs nginx: %.2f of its requests/s (goal >= 0.9: %s); p99 %+.0f us (goal <= 100 us: %s)\n' \
    "$ratio" "$(met "$ratio >= 0.9")" "$added" "$(met "$added <= 100")"
printf 'gateway with auth vs auth off: %.2f of its requests/s\n' "$(echo "$gw_rate / $off_rate" | bc -l)"
