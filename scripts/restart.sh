#!/usr/bin/env bash
# Restart and memory of the token authority at scale, black box (issue 24): for each size in
# SIZES, a token file of that many tokens is generated, then the release `protected-endpoint
# serve` is started
#   1. first start: `--import` of the file into an empty store (plus --mint-admin, whose token
#      is the one looked up), stopped with SIGTERM once it answers;
#   2. restart: the same store, nothing imported;
# and each start is timed from the process's start until the first introspection answered
# `"active": true` for the admin token (with the admin token as the caller), polled every
# 10 ms. Resident memory is read from /proc when it answers: VmRSS (now) and VmHWM (the peak,
# loading included); and the CPU time the server used until then (user + system), which a
# loaded machine inflates far less than the wall-clock time.
#
#   scripts/restart.sh                                   (SQLite, 100k and 1M)
#   BACKEND=postgres scripts/restart.sh                  (a database of its own on TEST_DATABASE_URL's server)
#   SIZES="100000" RESTARTS=3 scripts/restart.sh
#   SERVE_BIN=/path/to/protected-endpoint scripts/restart.sh   (another build: "before" figures)
#
# The load average (`uptime`) is printed before and after each size: wall-clock figures on a
# shared machine mean little without it.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${SIZES:-100000 1000000}"
BACKEND="${BACKEND:-sqlite}"
RESTARTS="${RESTARTS:-2}"

if [[ -z "${SERVE_BIN:-}" ]]; then
    cargo build --quiet --release -p protected-endpoint-cli
    SERVE_BIN="${CARGO_TARGET_DIR:-target}/release/protected-endpoint"
fi

work="$(mktemp -d)"
server_pid=""
database=""
cleanup() {
    [[ -n "$server_pid" ]] && kill -9 "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ -n "$database" ]]; then
        psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A JSON token file of $1 tokens (random hashes: no secret is known for any of them).
generate() {
    python3 - "$1" "$2" <<'EOF'
import os, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as out:
    out.write('{"tokens": [\n')
    for i in range(n):
        if i:
            out.write(",\n")
        out.write('{"uid": "%016x", "name": "token %d", "scopes": ["api"], "deployments": "*", '
                  '"created_at": "2026-01-01T00:00:00Z", "hash": "sha256:%s"}'
                  % (i, i, os.urandom(32).hex()))
    out.write("\n]}\n")
EOF
}

now() { date +%s.%N; }

# Starts serve with "$@", waits until the admin token introspects as active; prints
# "seconds rss_kib hwm_kib cpu_seconds".
start_and_time() {
    local log="$work/serve.log" t0 t1 admin status
    # Emptied here, not by the background job's redirection, which may happen after the loop
    # below read the previous start's address.
    : >"$work/out"
    t0="$(now)"
    "$SERVE_BIN" serve --addr 127.0.0.1:0 --no-throttle "$@" >>"$work/out" 2>"$log" &
    server_pid=$!
    local addr=""
    while :; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "serve exited:" >&2
            cat "$log" >&2
            exit 1
        fi
        [[ -z "$addr" ]] && addr="$(sed -n 's#^listening on http://##p' "$work/out" | head -1)"
        if [[ -n "$addr" && -s "$work/admin" ]]; then
            admin="$(cat "$work/admin")"
            status="$(curl -s -m 5 -H "x-yatai-api-token: $admin" --data-urlencode "token=$admin" \
                "http://$addr/oauth2/introspect" || true)"
            if [[ "$status" == *'"active":true'* ]]; then
                break
            fi
        fi
        sleep 0.01
    done
    t1="$(now)"
    local rss hwm
    rss="$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status")"
    hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status")"
    local ticks cpu
    # utime and stime, fields 14 and 15 (the command name, field 2, holds no space here).
    ticks="$(awk '{print $14 + $15}' "/proc/$server_pid/stat")"
    cpu="$(echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc)"
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
    echo "$(echo "$t1 - $t0" | bc) $rss $hwm $cpu"
}

printf '%-9s %-8s %-12s %9s %9s %10s %10s  %s\n' size backend start seconds "cpu s" "rss MiB" \
    "peak MiB" load
for size in $SIZES; do
    generate "$size" "$work/tokens.json"
    case "$BACKEND" in
        sqlite)
            store=(--data "$work/tokens.db")
            ;;
        postgres)
            : "${TEST_DATABASE_URL:?BACKEND=postgres needs TEST_DATABASE_URL}"
            database="pe_restart_$$_$size"
            psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $database" >/dev/null
            store=(--database-url "${TEST_DATABASE_URL%/*}/$database")
            ;;
        *) echo "BACKEND is sqlite or postgres" >&2; exit 2 ;;
    esac
    rm -f "$work/admin"
    report() {
        read -r seconds rss hwm cpu <<<"$2"
        printf '%-9s %-8s %-12s %9.2f %9.2f %10d %10d  %s\n' "$size" "$BACKEND" "$1" "$seconds" \
            "$cpu" $((rss / 1024)) $((hwm / 1024)) "$(uptime | sed 's/.*load average: //')"
    }
    report first+import "$(start_and_time "${store[@]}" --import "$work/tokens.json" \
        --mint-admin --admin-token-file "$work/admin")"
    rm -f "$work/tokens.json"
    for _ in $(seq "$RESTARTS"); do
        report restart "$(start_and_time "${store[@]}")"
    done
    rm -f "$work/tokens.db" "$work/tokens.db.lock" "$work/tokens.db-wal" "$work/tokens.db-shm"
    if [[ -n "$database" ]]; then
        psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $database" >/dev/null
        database=""
    fi
done
