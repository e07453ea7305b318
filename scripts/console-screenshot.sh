#!/usr/bin/env bash
# Redraws docs/console.png, the token console's tokens page with a few realistic tokens
# (one of them expired), from the browser test that checks that page: the picture is of the
# page the tests prove, never a mock-up.
#
#   scripts/console-screenshot.sh
#
# Needs a headless Chromium (Debian's chromium and chromium-driver; .ci/services installs
# them). Without one the test skips, and this script fails rather than keep a stale picture.
set -euo pipefail
cd "$(dirname "$0")/.."

out="$PWD/docs/console.png"
fresh="$(mktemp "${TMPDIR:-/tmp}/console-XXXXXX.png")"
trap 'rm -f "$fresh"' EXIT
rm -f "$fresh"

PE_CONSOLE_SCREENSHOT="$fresh" cargo test --all-features --test console_browser \
  the_list_shows_each_tokens_access_expiry_and_last_use -- --exact --nocapture

if [ ! -s "$fresh" ]; then
  echo "console-screenshot: no screenshot was taken (is headless Chromium installed?)" >&2
  exit 1
fi
mv "$fresh" "$out"
echo "wrote $out"
