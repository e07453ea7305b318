#!/usr/bin/env bash
# Load test: a one-route axum server (examples/load_server.rs) in each configuration, driven
# by wrk on 127.0.0.1. Prints, in one run, the ratio table of issue 13: requests/s (median of
# ROUNDS interleaved rounds), the ratio to bare axum, p99 and the server's CPU time per request;
# then the token authority's introspection rate on one core, the RemoteVerifier miss path
# (one loopback introspection round trip per request) p50/p99, and the extra rows (bad
# checksum, 100k-token file, reloads under load).
#
#   scripts/load.sh                                  (about 4 min once built; needs root to install wrk)
#   DURATION=2s ROUNDS=1 EXTRAS=0 scripts/load.sh    (a short run, about 30 s)
#   COMPARE_BIN=/path/to/other/load_server scripts/load.sh
#                                (before/after: every row with both servers in turn, each round)
#
# On a machine with at least 2 cores, every server is pinned to core 0 with one tokio worker
# and wrk to core 1, so the two do not fight over a core and the server's core is the
# bottleneck: what the layer costs shows up as lost throughput. All the servers of the ratio
# table are started first and stay up; each round drives each of them in turn (idle servers
# use no CPU), so slow drift of the machine hits every configuration alike.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-5}"
CONNECTIONS="${CONNECTIONS:-128}"
EXTRAS="${EXTRAS:-1}"

if ! command -v wrk >/dev/null; then
    echo "load.sh: installing wrk" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

# SERVER_BIN lets a second checkout's server run under this script (before/after comparisons);
# COMPARE_BIN adds a second server binary, driven beside the first in every round.
if [[ -z "${SERVER_BIN:-}" ]]; then
    # The load server is an example of the examples package (examples/), with its `load`
    # feature (the file, remote and authority verifiers and tower-http's bearer check).
    cargo build --quiet --release -p protected-endpoint-examples --example load_server --features load
    SERVER_BIN=target/release/examples/load_server
fi
bins=("$SERVER_BIN")
[[ -n "${COMPARE_BIN:-}" ]] && bins+=("$COMPARE_BIN")

work="$(mktemp -d)"
declare -A pid=() url=() token=() subject=()
reload_pid=""
cleanup() {
    [[ -n "$reload_pid" ]] && kill "$reload_pid" 2>/dev/null || true
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
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

# start_server NAME MODE [ARGS...]: starts a server, waits (at most 60 s) until it listens,
# and records its pid, url, token (and subject) under NAME.
start_server() {
    local name="$1" log="$work/$1.log"
    : >"$log"
    TOKIO_WORKER_THREADS=1 "${pin_server[@]}" "${bin:-$SERVER_BIN}" --mode "$2" "${@:3}" >"$log" 2>&1 &
    pid[$name]=$!
    for _ in $(seq 600); do
        if grep -q '^listening on ' "$log"; then
            url[$name]="$(sed -n 's/^listening on //p' "$log")"
            token[$name]="$(sed -n 's/^token: //p' "$log")"
            subject[$name]="$(sed -n 's/^subject: //p' "$log")"
            return 0
        fi
        kill -0 "${pid[$name]}" 2>/dev/null || { cat "$log" >&2; echo "load.sh: server $name died" >&2; exit 1; }
        sleep 0.1
    done
    echo "load.sh: server $name did not start" >&2
    exit 1
}

stop_server() {
    kill "${pid[$1]}" 2>/dev/null || true
    wait "${pid[$1]}" 2>/dev/null || true
    unset "pid[$1]"
}

# to_ms VALUE: wrk's latency (like 812.00us, 1.23ms, 2.01s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

clk_tck="$(getconf CLK_TCK)"
# cpu_ticks PID: user + system time the process has used so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# drive SERVER TOKEN EXPECT [WRK ARGS...]: runs wrk against SERVER and sets $rate, $p50, $p99
# (ms) and $cpu (server µs per request). EXPECT is "ok" (every answer must be 2xx) or
# "refused" (none may be).
drive() {
    local server="$1" tok="$2" expect="$3" out="$work/wrk.out" before after total non2xx
    before="$(cpu_ticks "${pid[$server]}")"
    "${pin_wrk[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${@:4}" \
        -H "Authorization: Bearer $tok" "${url[$server]}${path:-/}" >"$out"
    after="$(cpu_ticks "${pid[$server]}")"
    total="$(awk '/requests in/ {print $1}' "$out")"
    cpu="$(echo "($after - $before) * 1000000 / $clk_tck / $total" | bc -l)"
    non2xx="$(awk '/Non-2xx or 3xx responses/ {print $5}' "$out")"
    non2xx="${non2xx:-0}"
    if [[ "$expect" == ok && "$non2xx" != 0 ]]; then
        cat "$out" >&2; echo "load.sh: $server: $non2xx of $total answers were not 2xx" >&2; exit 1
    fi
    if [[ "$expect" == refused && "$non2xx" != "$total" ]]; then
        cat "$out" >&2; echo "load.sh: $server: only $non2xx of $total answers were refusals" >&2; exit 1
    fi
    rate="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
}

# median V...: the median of the numbers given.
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "load.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS rounds" >&2

# One set of servers per binary: NAME0 for SERVER_BIN, NAME1 for COMPARE_BIN.
for b in "${!bins[@]}"; do
    bin="${bins[$b]}"
    start_server "none$b" none
    start_server "tower$b" tower-http
    start_server "memory$b" memory --tokens 1000
    start_server "file$b" file --tokens 1000 --token-file "$work/tokens$b.json" --poll-ms 100
    start_server "remote$b" remote
done
bin="$SERVER_BIN"

# The rows of the ratio table: label, server, token, expected answer. The refused row sends a
# well-formed token (valid checksum) that no store holds: the bare server's.
labels=("bare axum, GET / -> ok" "tower-http bearer" "in-memory, 1k tokens, require_scope(API)"
    "file verifier, 1k tokens" "RemoteVerifier cache hit" "refused (unknown token, valid checksum)")
servers=(none tower memory file remote memory)
expects=(ok ok ok ok ok refused)
row_token() { # row_token ROW BIN
    if [[ "$1" == 5 ]]; then echo "${token[none$2]}"; else echo "${token[${servers[$1]}$2]}"; fi
}
declare -A rates=() p99s=() cpus=()
for round in $(seq "$ROUNDS"); do
    for i in "${!labels[@]}"; do
        for b in "${!bins[@]}"; do
            drive "${servers[$i]}$b" "$(row_token "$i" "$b")" "${expects[$i]}"
            rates[$b,$i]+=" $rate"; p99s[$b,$i]+=" $p99"; cpus[$b,$i]+=" $cpu"
            printf '  round %d  %-42s %s %10.0f req/s   p99 %8.3f ms   server cpu %6.2f us/req\n' \
                "$round" "${labels[$i]}" "$b" "$rate" "$p99" "$cpu" >&2
        done
    done
done
for b in "${!bins[@]}"; do
    for name in none tower file remote; do stop_server "$name$b"; done
done

# The authority: POST /oauth2/introspect with the caller's token, for the subject's token.
# Then the RemoteVerifier miss path: the cache off, every request one introspection round
# trip to an authority in the same process (same core). One connection gives the round trip
# itself; CONNECTIONS connections give the rate.
declare -A authority_rate=() authority_p99=() authority_cpu=()
declare -A miss1_rate=() miss1_p50=() miss1_p99=() miss1_cpu=() miss_rate=() miss_p50=() miss_p99=() miss_cpu=()
for b in "${!bins[@]}"; do
    bin="${bins[$b]}"
    start_server authority authority
    cat >"$work/introspect.lua" <<LUA
wrk.method = "POST"
wrk.body = "token=${subject[authority]}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
    path=/oauth2/introspect drive authority "${token[authority]}" ok -s "$work/introspect.lua"
    authority_rate[$b]="$rate" authority_p99[$b]="$p99" authority_cpu[$b]="$cpu"
    stop_server authority

    start_server miss remote-miss
    CONNECTIONS=1 drive miss "${token[miss]}" ok
    miss1_rate[$b]="$rate" miss1_p50[$b]="$p50" miss1_p99[$b]="$p99" miss1_cpu[$b]="$cpu"
    drive miss "${token[miss]}" ok
    miss_rate[$b]="$rate" miss_p50[$b]="$p50" miss_p99[$b]="$p99" miss_cpu[$b]="$cpu"
    stop_server miss
done
bin="$SERVER_BIN"
for b in "${!bins[@]}"; do [[ "$b" == 0 ]] || stop_server "memory$b"; done
token[memory]="${token[memory0]}"
if [[ "$EXTRAS" == 1 ]]; then
    # The same token with its last (checksum) character changed: refused before any backend.
    mt="${token[memory0]}"
    if [[ "${mt: -1}" == a ]]; then typo="${mt%?}b"; else typo="${mt%?}a"; fi
    drive memory0 "$typo" refused
    extra_labels=("refused (bad checksum), in-memory"); extra_rates=("$rate"); extra_p99s=("$p99"); extra_cpus=("$cpu")

    # reload_during SERVER FILE EVERY LABEL: drives SERVER while rewriting its token file every
    # EVERY seconds (a new inode, as an atomic writer or a Kubernetes secret update makes).
    reload_during() {
        ( while true; do
            sleep "$3"
            cp "$2" "$2.new"
            mv -f "$2.new" "$2"
          done ) &
        reload_pid=$!
        drive "$1" "${token[$1]}" ok
        kill "$reload_pid"; wait "$reload_pid" 2>/dev/null || true; reload_pid=""
        extra_labels+=("$4"); extra_rates+=("$rate"); extra_p99s+=("$p99"); extra_cpus+=("$cpu")
        if grep -q '^reload failed' "$work/$1.log"; then
            grep '^reload failed' "$work/$1.log" >&2; echo "load.sh: a reload failed" >&2; exit 1
        fi
    }
    start_server file file --tokens 1000 --token-file "$work/tokens.json" --poll-ms 100
    reload_during file "$work/tokens.json" 1 "file (1k), reloading every 1 s"
    stop_server file
    start_server big file --tokens 100000 --token-file "$work/big.json" --poll-ms 100
    load_100k="$(sed -n 's/^loaded 100000 tokens in \(.*\) ms$/\1/p' "$work/big.log")"
    drive big "${token[big]}" ok
    extra_labels+=("file (100k tokens)"); extra_rates+=("$rate"); extra_p99s+=("$p99"); extra_cpus+=("$cpu")
    reload_during big "$work/big.json" 2 "file (100k), reloading every 2 s"
    stop_server big
fi
stop_server memory0

for b in "${!bins[@]}"; do
# shellcheck disable=SC2086
base="$(median ${rates[$b,0]})"
echo
echo "Ratio table for ${bins[$b]}: req/s the median of $ROUNDS interleaved rounds of $DURATION (-c$CONNECTIONS); p99 and server CPU medians too."
echo
printf '| %-42s | %10s | %8s | %9s | %13s |\n' server "req/s" ratio "p99 (ms)" "server µs/req"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..44})" "$(printf -- '-%.0s' {1..11}):" \
    "$(printf -- '-%.0s' {1..9}):" "$(printf -- '-%.0s' {1..10}):" "$(printf -- '-%.0s' {1..14}):"
for i in "${!labels[@]}"; do
    # shellcheck disable=SC2086
    r="$(median ${rates[$b,$i]})"; p="$(median ${p99s[$b,$i]})"; c="$(median ${cpus[$b,$i]})"
    printf '| %-42s | %10.0f | %8.3f | %9.3f | %13.2f |\n' "${labels[$i]}" "$r" \
        "$(echo "$r / $base" | bc -l)" "$p" "$c"
done
echo
echo "The authority and the RemoteVerifier miss path for ${bins[$b]} (one run each of $DURATION):"
echo
printf '| %-58s | %10s | %9s | %9s | %13s |\n' row "req/s" "p50 (ms)" "p99 (ms)" "server µs/req"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..60})" "$(printf -- '-%.0s' {1..11}):" \
    "$(printf -- '-%.0s' {1..10}):" "$(printf -- '-%.0s' {1..10}):" "$(printf -- '-%.0s' {1..14}):"
printf '| %-58s | %10.0f | %9s | %9.3f | %13.2f |\n' "authority: POST /oauth2/introspect, one core, -c$CONNECTIONS" \
    "${authority_rate[$b]}" "" "${authority_p99[$b]}" "${authority_cpu[$b]}"
printf '| %-58s | %10.0f | %9.3f | %9.3f | %13.2f |\n' "RemoteVerifier miss (one round trip), -c1" \
    "${miss1_rate[$b]}" "${miss1_p50[$b]}" "${miss1_p99[$b]}" "${miss1_cpu[$b]}"
printf '| %-58s | %10.0f | %9.3f | %9.3f | %13.2f |\n' "RemoteVerifier miss, -c$CONNECTIONS" \
    "${miss_rate[$b]}" "${miss_p50[$b]}" "${miss_p99[$b]}" "${miss_cpu[$b]}"
done
base="$(median ${rates[0,0]})"
if [[ "$EXTRAS" == 1 ]]; then
    echo
    echo "Extra rows for $SERVER_BIN (one run each, ratio to its bare median):"
    echo
    for i in "${!extra_labels[@]}"; do
        printf '| %-42s | %10.0f | %8.3f | %9.3f | %13.2f |\n' "${extra_labels[$i]}" "${extra_rates[$i]}" \
            "$(echo "${extra_rates[$i]} / $base" | bc -l)" "${extra_p99s[$i]}" "${extra_cpus[$i]}"
    done
    echo
    echo "100k-token file loaded in ${load_100k:-?} ms"
fi
echo "miss path: server µs/req counts the authority too (same process, same core)"
echo "load average now $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%H:%M UTC')"
