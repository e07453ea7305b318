#!/usr/bin/env bash
# gRPC under load (issue 24, item 5): tonic's Health/Check served alone and behind
# ProtectedEndpointLayer (in-memory token, require_scope(API)), driven by the Rust load client
# of benches/grpc_load.rs (ghz-like: CONCURRENCY workers over CONNECTIONS h2c connections).
# Prints each row's requests/s (median of ROUNDS interleaved rounds), the ratio to tonic
# alone, p50/p99 and the server's CPU time per request.
#
#   scripts/grpc-load.sh                                   (about 1 min once built)
#   DURATION=2 ROUNDS=1 scripts/grpc-load.sh               (short)
#   CONNECTIONS=4 CONCURRENCY=64 scripts/grpc-load.sh      (the defaults)
#   GRPC_LOAD_BIN=path/to/grpc_load-<hash> scripts/grpc-load.sh   (an already built binary)
#
# As scripts/load.sh: each server on core 0 with one tokio worker, the client on core 1, so
# the server's core is the bottleneck and what the layer costs shows up as lost throughput.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-5}"
CONNECTIONS="${CONNECTIONS:-4}"
CONCURRENCY="${CONCURRENCY:-64}"

bin="${GRPC_LOAD_BIN:-}"
[[ -n "$bin" ]] || bin="$(cargo bench --all-features --bench grpc_load --no-run --message-format=json 2>/dev/null \
    | grep '"name":"grpc_load","src_path"' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)"
[[ -x "$bin" ]] || { echo "grpc-load.sh: could not build the grpc_load bench" >&2; exit 1; }

work="$(mktemp -d)"
declare -A pid=() url=() token=()
cleanup() {
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [[ "$(nproc)" -ge 2 ]] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0)
    pin_client=(taskset -c 1)
else
    pin_server=()
    pin_client=()
fi

start_server() { # start_server NAME MODE
    local log="$work/$1.log"
    "${pin_server[@]}" "$bin" serve --mode "$2" >"$log" 2>&1 &
    pid[$1]=$!
    for _ in $(seq 600); do
        if grep -q '^listening on ' "$log"; then
            url[$1]="$(sed -n 's/^listening on //p' "$log")"
            token[$1]="$(sed -n 's/^token: //p' "$log")"
            return 0
        fi
        kill -0 "${pid[$1]}" 2>/dev/null || { cat "$log" >&2; echo "grpc-load.sh: server $1 died" >&2; exit 1; }
        sleep 0.1
    done
    echo "grpc-load.sh: server $1 did not start" >&2
    exit 1
}

clk_tck="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# drive NAME: one run of the client against server NAME; sets rate, p50, p99, cpu.
drive() {
    local out="$work/client.out" before after requests
    before="$(cpu_ticks "${pid[$1]}")"
    "${pin_client[@]}" "$bin" load --url "${url[$1]}" --token "${token[$1]}" \
        --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 1 >"$out"
    after="$(cpu_ticks "${pid[$1]}")"
    requests="$(awk '$1 == "requests" {print $2}' "$out")"
    rate="$(awk '$1 == "rps" {print $2}' "$out")"
    p50="$(awk '$1 == "p50" {print $2}' "$out")"
    p99="$(awk '$1 == "p99" {print $2}' "$out")"
    # The warm-up second's requests are served too: CPU time over the measured window's
    # requests slightly overstates both rows alike.
    cpu="$(echo "($after - $before) * 1000000 / $clk_tck / $requests" | bc -l)"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "grpc-load.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $CONNECTIONS connections, $CONCURRENCY concurrent calls, ${DURATION}s, $ROUNDS rounds" >&2
start_server bare bare
start_server layer layer
labels=("tonic alone (grpc.health.v1 Check)" "behind ProtectedEndpointLayer (in-memory, require_scope(API))")
servers=(bare layer)
declare -A rates=() p50s=() p99s=() cpus=()
for round in $(seq "$ROUNDS"); do
    for i in "${!servers[@]}"; do
        drive "${servers[$i]}"
        rates[$i]+=" $rate"; p50s[$i]+=" $p50"; p99s[$i]+=" $p99"; cpus[$i]+=" $cpu"
        printf '  round %d  %-64s %8.0f req/s  p99 %7.3f ms  server cpu %6.2f us/req\n' \
            "$round" "${labels[$i]}" "$rate" "$p99" "$cpu" >&2
    done
done

# shellcheck disable=SC2086
base="$(median ${rates[0]})"
# shellcheck disable=SC2086
base_cpu="$(median ${cpus[0]})"
echo
echo "req/s: median of $ROUNDS interleaved rounds of ${DURATION}s; p50, p99 and server CPU medians too."
echo
printf '| %-64s | %9s | %6s | %8s | %8s | %13s | %9s |\n' server "req/s" ratio "p50 (ms)" "p99 (ms)" "server µs/req" "cpu ratio"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..66})" "$(printf -- '-%.0s' {1..10}):" \
    "$(printf -- '-%.0s' {1..7}):" "$(printf -- '-%.0s' {1..9}):" "$(printf -- '-%.0s' {1..9}):" \
    "$(printf -- '-%.0s' {1..14}):" "$(printf -- '-%.0s' {1..10}):"
for i in "${!servers[@]}"; do
    # shellcheck disable=SC2086
    r="$(median ${rates[$i]})"; a="$(median ${p50s[$i]})"; p="$(median ${p99s[$i]})"; c="$(median ${cpus[$i]})"
    printf '| %-64s | %9.0f | %6.3f | %8.3f | %8.3f | %13.2f | %9.3f |\n' "${labels[$i]}" "$r" \
        "$(echo "$r / $base" | bc -l)" "$a" "$p" "$c" "$(echo "$base_cpu / $c" | bc -l)"
done
echo
echo "cpu ratio: tonic alone's server CPU per request over the row's (1.000 = the layer costs nothing)"
echo "load average now $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%H:%M UTC')"
