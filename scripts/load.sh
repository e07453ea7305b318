#!/usr/bin/env bash
# Load test: a one-route axum server (examples/load_server.rs) in each configuration, driven
# by wrk on 127.0.0.1, in one run. Prints requests/s and p99 latency for each, with the ratio
# to the unprotected server, the server's CPU time per request, the time a 100 000-token
# file takes to load, and p99 while the token file is being reloaded.
#
#   scripts/load.sh                       (about 90 s once built; needs root to install wrk)
#   DURATION=5s CONNECTIONS=64 scripts/load.sh
#
# On a machine with at least 2 cores, the server is pinned to core 0 with one tokio worker
# and wrk to core 1, so the two do not fight over a core and the server's core is the
# bottleneck: what the layer costs shows up as lost throughput.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-7s}"
CONNECTIONS="${CONNECTIONS:-128}"
FEATURES=file,remote,authority

if ! command -v wrk >/dev/null; then
    echo "load.sh: installing wrk" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

cargo build --quiet --release --example load_server --features "$FEATURES"
server_bin=target/release/examples/load_server

work="$(mktemp -d)"
server_pid=""
reload_pid=""
cleanup() {
    [[ -n "$reload_pid" ]] && kill "$reload_pid" 2>/dev/null || true
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [[ "$(nproc)" -ge 2 ]] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0)
    pin_wrk=(taskset -c 1)
else
    pin_server=()
    pin_wrk=()
fi

# start_server MODE [ARGS...]: starts the server, waits (at most 60 s) until it listens, and
# sets $url and $token.
start_server() {
    local log="$work/server.log"
    : >"$log"
    TOKIO_WORKER_THREADS=1 "${pin_server[@]}" "$server_bin" --mode "$1" "${@:2}" >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 600); do
        if grep -q '^listening on ' "$log"; then
            url="$(sed -n 's/^listening on //p' "$log")/"
            token="$(sed -n 's/^token: //p' "$log")"
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; echo "load.sh: server ($1) died" >&2; exit 1; }
        sleep 0.1
    done
    echo "load.sh: server ($1) did not start" >&2
    exit 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# to_ms VALUE: wrk's latency (like 812.00us, 1.23ms, 2.01s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# drive NAME TOKEN EXPECT: runs wrk against $url with the token and records requests/s and
# p99 under NAME. EXPECT is "ok" (every answer must be 2xx) or "refused" (none may be).
declare -a names=() rates=() p99s=() cpus=()
clk_tck="$(getconf CLK_TCK)"
# cpu_ticks: user + system time the server has used so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
drive() {
    local name="$1" token="$2" expect="$3" out="$work/wrk.out" ticks_before ticks_after
    ticks_before="$(cpu_ticks)"
    "${pin_wrk[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
        -H "Authorization: Bearer $token" "$url" >"$out"
    ticks_after="$(cpu_ticks)"
    local total non2xx rate p99 cpu
    total="$(awk '/requests in/ {print $1}' "$out")"
    # Server CPU time per request, in microseconds: what the protection costs the server,
    # whether or not its core was the bottleneck.
    cpu="$(echo "($ticks_after - $ticks_before) * 1000000 / $clk_tck / $total" | bc -l)"
    non2xx="$(awk '/Non-2xx or 3xx responses/ {print $5}' "$out")"
    non2xx="${non2xx:-0}"
    if [[ "$expect" == ok && "$non2xx" != 0 ]]; then
        cat "$out" >&2; echo "load.sh: $name: $non2xx of $total answers were not 2xx" >&2; exit 1
    fi
    if [[ "$expect" == refused && "$non2xx" != "$total" ]]; then
        cat "$out" >&2; echo "load.sh: $name: only $non2xx of $total answers were refusals" >&2; exit 1
    fi
    rate="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
    names+=("$name"); rates+=("$rate"); p99s+=("$p99"); cpus+=("$cpu")
    printf '  %-34s %10.0f req/s   p99 %8.3f ms   server cpu %6.2f us/req\n' \
        "$name" "$rate" "$p99" "$cpu" >&2
}

# reload_during NAME EVERY: drives the file-mode server while rewriting its token file every
# EVERY seconds (a new inode, as an atomic writer or a Kubernetes secret update makes), each
# rewrite a full reload; then waits (at most 10 s) for the last reload to be reported and
# sets $reloads to the number the server reported during the run.
reload_during() {
    local before rewrites
    before="$(grep -c '^reloaded' "$work/server.log" || true)"
    : >"$work/rewrites"
    ( while true; do
        sleep "$2"
        cp "$work/tokens.json" "$work/tokens.json.new"
        mv -f "$work/tokens.json.new" "$work/tokens.json"
        echo >>"$work/rewrites"
      done ) &
    reload_pid=$!
    drive "$1" "$token" ok
    kill "$reload_pid"; wait "$reload_pid" 2>/dev/null || true; reload_pid=""
    rewrites="$(wc -l <"$work/rewrites")"
    for _ in $(seq 100); do
        reloads=$(( $(grep -c '^reloaded' "$work/server.log" || true) - before ))
        [[ "$reloads" -ge "$rewrites" ]] && break
        sleep 0.1
    done
    if grep -q '^reload failed' "$work/server.log"; then
        grep '^reload failed' "$work/server.log" >&2; echo "load.sh: a reload failed" >&2; exit 1
    fi
}

echo "load.sh: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), wrk -t1 -c$CONNECTIONS -d$DURATION" >&2

start_server none
drive "none (unprotected)" "$token" ok
# A well-formed token that no store below holds.
stranger="$token"
stop_server

start_server tower-http
drive "tower-http bearer" "$token" ok
stop_server

start_server memory --tokens 1000
drive "memory (1k tokens)" "$token" ok
drive "memory, refused (unknown token)" "$stranger" refused
# The same token with its last (checksum) character changed: refused before any lookup.
if [[ "${token: -1}" == a ]]; then typo="${token%?}b"; else typo="${token%?}a"; fi
drive "memory, refused (bad checksum)" "$typo" refused
stop_server

start_server file --tokens 1000 --token-file "$work/tokens.json" --poll-ms 100
drive "file (1k tokens)" "$token" ok
reload_during "file (1k), reloading every 1 s" 1
reloads_1k="$reloads"
stop_server

start_server file --tokens 100000 --token-file "$work/tokens.json" --poll-ms 100
load_100k="$(sed -n 's/^loaded 100000 tokens in \(.*\) ms$/\1/p' "$work/server.log")"
drive "file (100k tokens)" "$token" ok
reload_during "file (100k), reloading every 2 s" 2
reloads_100k="$reloads"
stop_server

start_server remote
drive "remote (cache hits)" "$token" ok
stop_server

# The floor again: the two runs of it show how much the machine drifted during the test.
start_server none
drive "none, again at the end" "$token" ok
stop_server

# The baseline is the mean of the two unprotected runs.
last=$(( ${#rates[@]} - 1 ))
base_rate="$(echo "(${rates[0]} + ${rates[$last]}) / 2" | bc -l)"
echo
printf '| %-34s | %10s | %9s | %9s | %15s |\n' configuration "req/s" "% of none" "p99 (ms)" "server µs/req"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..12})" \
    "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..16})"
for i in "${!names[@]}"; do
    printf '| %-34s | %10.0f | %8.1f%% | %9.3f | %15.2f |\n' "${names[$i]}" "${rates[$i]}" \
        "$(echo "100 * ${rates[$i]} / $base_rate" | bc -l)" "${p99s[$i]}" "${cpus[$i]}"
done
echo
echo "100k-token file loaded in ${load_100k:-?} ms"
echo "reloads during the reload runs: ${reloads_1k} (1k tokens), ${reloads_100k} (100k tokens)"
echo "% of none is against the mean of the two unprotected runs; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
