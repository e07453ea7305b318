#!/usr/bin/env bash
# Instructions per request for every case of benches/layer.rs, counted by callgrind: a
# cross-check of the timed comparison that does not depend on the machine's load.
#
#   scripts/instructions.sh [ITERATIONS]      (default 2000; needs valgrind)
#   LAYER_BIN=path/to/layer-<hash> scripts/instructions.sh   (an already built bench binary)
#   CASES="accepted/memory refused/memory/throttled" scripts/instructions.sh   (only these cases)
#
# Each case runs ITERATIONS requests inside `measured`; only that function (and what it
# calls) is counted, so the fixtures' setup is left out. Prints instructions per request.
set -euo pipefail
cd "$(dirname "$0")/.."

iterations="${1:-2000}"
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }

# LAYER_BIN lets a second checkout's bench binary run under this script (before/after).
bin="${LAYER_BIN:-}"
[[ -n "$bin" ]] || bin="$(cargo bench --all-features --bench layer --no-run --message-format=json 2>/dev/null \
    | grep '"name":"layer","src_path"' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)"
[[ -x "$bin" ]] || { echo "instructions.sh: could not build the layer bench" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

cases=(
    accepted/no_layer
    accepted/tower_http_bearer
    accepted/memory
    accepted/memory_reporting_usage
    accepted/memory_throttle_on
    accepted/static_file
    accepted/remote_cache_hit
    accepted/remote_miss
    authority/introspect
    authority/introspect_unknown
    refused/tower_http_bearer/no_token
    refused/tower_http_bearer/wrong_token
    refused/memory/no_token
    refused/memory/bad_checksum
    refused/memory/unknown_token
    refused/memory/throttled
    refused/static_file/unknown_token
    refused/remote/bad_checksum
    refused/remote/unknown_token_cached
    served/no_layer
    served/tower_http_bearer
    served/memory
    served/static_file
    served/remote_cache_hit
    served/refused/unknown_token
)

# CASES picks some (an older bench binary lacks the newer cases).
if [[ -n "${CASES:-}" ]]; then read -r -a cases <<<"$CASES"; fi

printf '%-40s %22s\n' case instructions/request
for case in "${cases[@]}"; do
    file="$out/callgrind.out"
    PE_INSTRUCTIONS="$case:$iterations" valgrind --tool=callgrind --callgrind-out-file="$file" \
        --toggle-collect='*measured*' "$bin" >/dev/null 2>"$out/valgrind.log" \
        || { cat "$out/valgrind.log" >&2; exit 1; }
    total="$(grep -E '^(summary|totals):' "$file" | head -n 1 | awk '{print $2}')"
    printf '%-40s %22.0f\n' "$case" "$(echo "$total / $iterations" | bc -l)"
done
