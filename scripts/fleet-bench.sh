#!/usr/bin/env bash
# The fleet-limit load test (issue 25): the layer with a token's rate limit counted in Redis
# (`SharedLimits`, a redis-server on this machine) vs counted in the process, in one run:
#
#   - accepted calls (a limit no run spends): requests/s, p99, and the p99 Redis adds (goal:
#     at most 150 µs);
#   - refused calls (a limit spent before the run): the shared limit answers from its memo, so
#     a refusal should cost no more than the per-process one.
#
#   scripts/fleet-bench.sh                        (about 2 min once built)
#   DURATION=2s ROUNDS=1 scripts/fleet-bench.sh   (a short run)
#
# The server (one tokio worker) runs on core 0; redis-server and wrk share core 1. Throughput:
# wrk -t1 -c$CONNECTIONS. Latency: wrk -t1 -c1 (one request at a time: a request's own way
# through, not a queue). Rounds are interleaved; each figure is the median of its rounds.
# Every refused-row answer must be a non-2xx. An accepted-row answer that is not a 200 is a
# call Redis did not answer within the wait (50 ms; the server fails closed, so it shows as a
# 503): they are counted in the table's last column, not hidden. Needs wrk and redis-server
# (Debian packages; installed when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-64}"

for tool in wrk redis-server; do
    if ! command -v "$tool" >/dev/null; then
        echo "fleet-bench.sh: installing $tool" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
    fi
done

BIN="$(cargo bench --no-run --bench fleet_limits_server --features redis,server \
    --message-format=json 2>/dev/null | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)"
[[ -x "$BIN" ]] || { echo "fleet-bench.sh: the fleet_limits_server bench did not build" >&2; exit 1; }

work="$(mktemp -d)"
declare -A pid=() url=() token=()
cleanup() {
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    # Whatever did not stop on TERM is killed: nothing this script started outlives it.
    for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [[ "$(nproc)" -ge 2 ]] && command -v taskset >/dev/null; then
    server_core=(taskset -c 0)
    other_core=(taskset -c 1)
else
    server_core=()
    other_core=()
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || awk 'BEGIN{srand(); print 20000 + int(rand() * 20000)}'; }

redis_port="$(free_port)"
"${other_core[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" --logfile "$work/redis.log" >/dev/null 2>&1 &
pid[redis]=$!
for _ in $(seq 100); do
    [[ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" == PONG ]] && break
    sleep 0.1
done
REDIS_URL="redis://127.0.0.1:$redis_port"

# start NAME MODE [ARGS...]: starts a fleet_limits_server on the server core.
start() {
    local name="$1" log="$work/$1.log"
    : >"$log"
    TOKIO_WORKER_THREADS=1 "${server_core[@]}" "$BIN" --mode "$2" "${@:3}" >"$log" 2>&1 &
    pid[$name]=$!
    for _ in $(seq 600); do
        if grep -q '^listening on ' "$log"; then
            url[$name]="$(sed -n 's/^listening on //p' "$log")"
            token[$name]="$(sed -n 's/^token: //p' "$log")"
            return 0
        fi
        kill -0 "${pid[$name]}" 2>/dev/null || { cat "$log" >&2; echo "fleet-bench.sh: $name died" >&2; exit 1; }
        sleep 0.1
    done
    echo "fleet-bench.sh: $name did not start" >&2
    exit 1
}

start local local
start redis redis --redis-url "$REDIS_URL"
start local_refused local --limit 1/30d
start redis_refused redis --redis-url "$REDIS_URL" --limit 1/30d

to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# drive NAME CONNECTIONS EXPECT: wrk against NAME; sets $rate, $p99 (ms) and $missed (answers
# that were not 200 where EXPECT is `pass`). EXPECT `refuse`: every answer must be non-2xx.
drive() {
    local name="$1" out="$work/wrk.out" total non2xx
    "${other_core[@]}" wrk -t1 -c"$2" -d"$DURATION" --latency \
        -H "Authorization: Bearer ${token[$name]}" "${url[$name]}/" >"$out"
    total="$(awk '/requests in/ {print $1}' "$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses/ {print $5}' "$out")"
    non2xx="${non2xx:-0}"
    missed=0
    [[ "$3" == pass ]] && missed="$non2xx"
    if [[ "$3" == refuse && "$non2xx" != "$total" ]]; then
        cat "$out" >&2; echo "fleet-bench.sh: $name: $non2xx of $total answers were not 2xx (expected: $3)" >&2; exit 1
    fi
    rate="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "fleet-bench.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $DURATION per run, $ROUNDS rounds" >&2

names=(local redis local_refused redis_refused)
expect=(pass pass refuse refuse)
labels=("accepted, per-process limit" "accepted, limit in Redis" "refused, per-process limit" "refused, limit in Redis (memo)")
declare -A rates=() p99s=() p50s=() misses=()
for round in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        drive "${names[$i]}" "$CONNECTIONS" "${expect[$i]}"
        rates[$i]+=" $rate"; r="$rate"; m="$missed"
        drive "${names[$i]}" 1 "${expect[$i]}"
        p99s[$i]+=" $p99"; p50s[$i]+=" $p50"; misses[$i]=$(( ${misses[$i]:-0} + m + missed ))
        printf '  round %d  %-34s %9.0f req/s   p50 / p99 (c=1) %7.3f / %7.3f ms   not 200: %d\n' \
            "$round" "${labels[$i]}" "$r" "$p50" "$p99" "$(( m + missed ))" >&2
    done
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo
echo "| layer | req/s (c=$CONNECTIONS) | vs per-process | p50 at c=1 | p99 at c=1 | p99 added vs per-process | accepted-row answers not 200 (all rounds) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for i in "${!names[@]}"; do
    base=$(( i < 2 ? 0 : 2 ))
    r="$(median ${rates[$i]})"; p="$(median ${p99s[$i]})"; h="$(median ${p50s[$i]})"
    br="$(median ${rates[$base]})"; bp="$(median ${p99s[$base]})"
    printf '| %s | %.0f | %.2f | %.0f µs | %.0f µs | %+.0f µs | %s |\n' "${labels[$i]}" "$r" \
        "$(echo "$r / $br" | bc -l)" "$(echo "$h * 1000" | bc -l)" "$(echo "$p * 1000" | bc -l)" "$(echo "($p - $bp) * 1000" | bc -l)" \
        "$( [[ "${expect[$i]}" == pass ]] && echo "${misses[$i]:-0}" || echo "—" )"
done
echo
added="$(echo "($(median ${p99s[1]}) - $(median ${p99s[0]})) * 1000" | bc -l)"
refused="$(echo "$(median ${rates[3]}) / $(median ${rates[2]})" | bc -l)"
met() { if [[ "$(echo "$1" | bc -l)" == 1 ]]; then echo met; else echo missed; fi; }
printf 'Redis-backed limit: p99 %+.0f us over the per-process one (goal <= 150 us: %s)\n' "$added" "$(met "$added <= 150")"
printf 'refused calls: %.2f of the per-process refusals/s (goal >= 1, within noise: %s)\n' "$refused" "$(met "$refused >= 0.95")"
