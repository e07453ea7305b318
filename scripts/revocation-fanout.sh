#!/usr/bin/env bash
# Revocation at scale (issue 24, item 6): one authority replica (in memory, one tokio worker,
# core 0) and FOLLOWERS real RemoteVerifiers following its revocation stream (one process,
# core 1). Each of ROUNDS deletes is timed until every verifier's cache stopped answering
# for the deleted token; prints the delays' p50/p90/p99/max and the authority's resident
# memory per follower. See benches/revocation_fanout.rs for what exactly is measured.
#
#   scripts/revocation-fanout.sh                     (2000 followers, 5 rounds; about 30 s once built)
#   FOLLOWERS=500 ROUNDS=3 scripts/revocation-fanout.sh
#   FANOUT_BIN=path/to/revocation_fanout-<hash> scripts/revocation-fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."

FOLLOWERS="${FOLLOWERS:-2000}"
ROUNDS="${ROUNDS:-5}"

bin="${FANOUT_BIN:-}"
[[ -n "$bin" ]] || bin="$(cargo bench --all-features --bench revocation_fanout --no-run --message-format=json 2>/dev/null \
    | grep '"name":"revocation_fanout","src_path"' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)"
[[ -x "$bin" ]] || { echo "revocation-fanout.sh: could not build the revocation_fanout bench" >&2; exit 1; }

# Two connections per follower on each side (the stream, and its introspection calls).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt $((FOLLOWERS * 2 + 256)) ]]; then
    echo "revocation-fanout.sh: $FOLLOWERS followers need $((FOLLOWERS * 2 + 256)) open files; ulimit -n is $(ulimit -n)" >&2
    exit 1
fi

if [[ "$(nproc)" -ge 2 ]] && command -v taskset >/dev/null; then
    pin_authority=(taskset -c 0)
    pin_followers=(taskset -c 1)
else
    pin_authority=()
    pin_followers=()
fi

work="$(mktemp -d)"
authority_pid=""
cleanup() {
    [[ -n "$authority_pid" ]] && kill "$authority_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

log="$work/authority.log"
"${pin_authority[@]}" "$bin" authority --victims "$ROUNDS" >"$log" 2>&1 &
authority_pid=$!
for _ in $(seq 600); do
    grep -q '^listening on ' "$log" && break
    kill -0 "$authority_pid" 2>/dev/null || { cat "$log" >&2; echo "revocation-fanout.sh: the authority died" >&2; exit 1; }
    sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$log")"
[[ -n "$url" ]] || { echo "revocation-fanout.sh: the authority did not start" >&2; exit 1; }
caller="$(sed -n 's/^caller: //p' "$log")"
admin="$(sed -n 's/^admin: //p' "$log")"
victims="$(sed -n 's/^victim: //p' "$log" | paste -sd, -)"

echo "revocation-fanout.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $FOLLOWERS followers, $ROUNDS deletes" >&2
"${pin_followers[@]}" "$bin" follow --url "$url" --caller "$caller" --admin "$admin" \
    --victims "$victims" --authority-pid "$authority_pid" --followers "$FOLLOWERS" | tee "$work/out"
echo "load average now $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%H:%M UTC')"
