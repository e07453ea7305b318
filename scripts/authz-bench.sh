#!/usr/bin/env bash
# External authorization benchmark: nginx with `auth_request` to the decision service
# (`Authz::service()`, the library's authz) against nginx alone, the same upstream, the same
# machine, one run, wrk (benches/authz_nginx.rs does the work; this script builds it, installs
# what is missing and pins the processes). Prints a markdown table for BENCHMARKS.md.
#
#   scripts/authz-bench.sh                          (about 2 min once built)
#   DURATION=3s ROUNDS=1 scripts/authz-bench.sh     (a short run)
#
# Run it on a quiet machine (`uptime` load below 1): the figures are throughput on one core.
# With two cores or more and `taskset`, nginx, the upstream and the decision service share
# core 0 and wrk runs on core 1, so what authorization costs shows up as lost throughput on
# the servers' core.
set -euo pipefail
cd "$(dirname "$0")/.."

export DURATION="${DURATION:-10s}"
export ROUNDS="${ROUNDS:-3}"
export CONNECTIONS="${CONNECTIONS:-64}"

for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
        echo "authz-bench.sh: installing $tool" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null
    fi
done

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v load="$load" 'BEGIN { exit !(load >= 1) }'; then
    echo "authz-bench.sh: warning: load average $load (>= 1): the figures will be noisy" >&2
fi

# The bench binary, built with the bench profile; its path from cargo's own report.
bin=$(cargo bench --quiet --bench authz_nginx --features authz,server --no-run --message-format=json \
    | sed -n 's/.*"executable":"\([^"]*authz_nginx[^"]*\)".*/\1/p' | tail -1)
[[ -x $bin ]] || { echo "authz-bench.sh: the bench did not build" >&2; exit 1; }

pin=()
if [[ "$(nproc)" -ge 2 ]] && command -v taskset >/dev/null; then
    pin=(taskset -c 0)
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
echo "authz-bench.sh: $(nproc) cores, load $load, nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///'), $DURATION x $ROUNDS rounds, $CONNECTIONS connections" >&2
"${pin[@]}" "$bin"
