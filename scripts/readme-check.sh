#!/usr/bin/env bash
# Runs the shell blocks of the README and of every guide the way a new user pastes them, and
# fails on the first one that does not work.
#
#   scripts/readme-check.sh                    # README.md, then every docs/guide/*.md
#   scripts/readme-check.sh --list             # only show which blocks would run
#   scripts/readme-check.sh FILE.md [FILE.md…] # these files' blocks (in a copy of this repository)
#   --allow-empty                              # a file without a ```sh block passes (set for
#                                              # each file when several are checked)
#
# What runs: every block fenced as ```sh, top to bottom, in ONE shell (`bash -euo pipefail`)
# per file, so variables and background servers carry over from block to block as they do in
# a terminal. The shell works in a fresh copy of the repository (its tracked and untracked,
# not ignored files: no target/, no files from an earlier run) in a temporary directory, so
# whatever the blocks write lands there. Each file gets a shell and a copy of its own: a guide
# is read on its own, so its blocks must stand on their own. (cargo names the builds of a
# workspace's own crates by their place in the workspace, not by its path, and tar keeps the
# files' times: the builds of one file's blocks serve the next.) Blocks fenced otherwise
# (```text, ```console, ```toml, ```rust, …) are illustrations and are not run; ```bash,
# ```shell and ```zsh are refused, so a runnable-looking block is never silently skipped.
#
# An HTML comment right above a block (blank lines in between are fine) marks it:
#   <!-- readme-check: skip: why -->          not run (say why: it needs Python, takes hours…)
#   <!-- readme-check: expect some text -->   the block's output (stdout and stderr) must
#                                             contain this text; may be repeated
#   <!-- readme-check: timeout 600 -->        this block's limit in seconds
#
# A block fails when a command in it fails, when it runs longer than its limit (default
# README_CHECK_BLOCK_TIMEOUT, 300 s), or when an expected text is missing; the rest of that
# file is then not run. Whatever the blocks started in the background is stopped at the end
# of the file (its shell runs in a process group of its own); a server still running then
# means the file forgot to stop it, and fails the check. With several files, every file is
# run even after one failed, and the check fails if any did.
#
# Environment: CARGO_TARGET_DIR (default: this repository's target/, so the builds of earlier
# CI steps are reused), README_CHECK_BLOCK_TIMEOUT, README_CHECK_KEEP=1 (keep the temporary
# directory to look at). A `cargo install` a block runs is built in the dev profile (`--debug`
# is added: the check is that the commands work, and a release build of the program and every
# crate under it costs CI minutes, where the dev profile reuses the test build's crates and
# builds only the workspace's own); README_CHECK_RELEASE_INSTALL=1 keeps the release profile,
# then built without optimizations (CARGO_PROFILE_RELEASE_OPT_LEVEL=0 and CODEGEN_UNITS=256
# unless set).
# Cargo runs offline (CARGO_NET_OFFLINE=true unless set): the crates
# must already be in cargo's cache, as they are after `cargo test`. Needs bash, curl, git,
# tar, awk and setsid (util-linux), and curl when the blocks use it; no Python, no network
# beyond 127.0.0.1. The last line is `readme-check: N passed, N failed, N skipped` (over
# every file).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
list_only=
allow_empty=
files=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --list) list_only=1 ;;
    # A file without a ```sh block is an error (a mistyped fence?) unless it is one of many:
    # a guide may have none.
    --allow-empty) allow_empty=1 ;;
    -*) echo "usage: $0 [--list] [--allow-empty] [FILE.md…]" >&2; exit 2 ;;
    *) files+=("$1") ;;
  esac
  shift
done
if [[ ${#files[@]} -eq 0 ]]; then
  files=("$repo/README.md")
  for guide in "$repo"/docs/guide/*.md; do
    [[ -e $guide ]] && files+=("$guide")
  done
fi

# Several files: each one is checked by this script on its own (a shell, a copy and a
# process group each), and the counts are added up.
if [[ ${#files[@]} -gt 1 ]]; then
  total_passed=0 total_failed=0 total_skipped=0 started=$(date +%s)
  failed_files=()
  for file in "${files[@]}"; do
    out=$(mktemp "${TMPDIR:-/tmp}/readme-check-out.XXXXXX")
    rc=0
    bash "$0" --allow-empty ${list_only:+--list} "$file" 2>&1 | tee "$out" || rc=$?
    counts=$(tail -n 1 "$out" | sed -n 's/^readme-check: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p')
    rm -f "$out"
    if [[ -n $counts ]]; then
      read -r passed failed skipped <<<"$counts"
      total_passed=$((total_passed + passed))
      total_failed=$((total_failed + failed))
      total_skipped=$((total_skipped + skipped))
    elif [[ $rc -ne 0 ]]; then
      total_failed=$((total_failed + 1))
    fi
    [[ $rc -eq 0 ]] || failed_files+=("$file")
    echo
  done
  [[ -z $list_only ]] || exit 0
  for file in "${failed_files[@]}"; do echo "readme-check: failed: $file"; done
  echo "readme-check: ${#files[@]} files, took $(( $(date +%s) - started )) s"
  echo "readme-check: $total_passed passed, $total_failed failed, $total_skipped skipped"
  [[ ${#failed_files[@]} -eq 0 ]]
  exit
fi

readme=${files[0]}
[[ -f $readme ]] || { echo "readme-check: no file $readme" >&2; exit 2; }
readme=$(cd "$(dirname "$readme")" && pwd)/$(basename "$readme")
# Within this repository, the file's path from its root (docs/guide/limits.md); else its name.
case $readme in
  "$repo"/*) name=${readme#"$repo"/} ;;
  *) name=$(basename "$readme") ;;
esac
default_timeout=${README_CHECK_BLOCK_TIMEOUT:-300}

for tool in awk git setsid tar; do
  command -v "$tool" >/dev/null || { echo "readme-check: needs $tool" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/readme-check.XXXXXX")
blocks=$tmp/blocks
state=$tmp/state
work=$tmp/repo
mkdir -p "$blocks" "$state" "$work"
pgid=

stop_group() {
  # Everything the blocks started is in the driver's process group.
  [[ -n $pgid ]] || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

cleanup() {
  stop_group
  if [[ -n ${README_CHECK_KEEP:-} ]]; then
    echo "readme-check: kept $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

# 1. The blocks, with their markers: blocks/NNN.sh, NNN.line, NNN.timeout, NNN.expect,
#    NNN.skip.
awk -v dir="$blocks" -v default_timeout="$default_timeout" -v name="$name" '
  function clear() { skip = ""; timeout = default_timeout; nexpect = 0 }
  function fail(message) { printf "%s:%d: %s\n", name, NR, message > "/dev/stderr"; bad = 1 }
  BEGIN { clear(); n = 0; inblock = 0; bad = 0 }
  inblock {
    if ($0 ~ /^```[[:space:]]*$/) { inblock = 0; if (run) close(file); next }
    if (run) print > file
    next
  }
  /^```/ {
    lang = substr($0, 4)
    sub(/[[:space:]]+$/, "", lang)
    inblock = 1
    run = 0
    opened = NR
    if (lang ~ /^(bash|shell|zsh)$/)
      fail("a ```" lang " block: fence commands to run as ```sh, illustrations as ```text")
    if (lang == "sh") {
      n++
      id = sprintf("%03d", n)
      print NR > (dir "/" id ".line"); close(dir "/" id ".line")
      print timeout > (dir "/" id ".timeout"); close(dir "/" id ".timeout")
      if (skip != "") { print skip > (dir "/" id ".skip"); close(dir "/" id ".skip") }
      for (i = 1; i <= nexpect; i++) print expect[i] > (dir "/" id ".expect")
      if (nexpect) close(dir "/" id ".expect")
      file = dir "/" id ".sh"
      printf "" > file
      run = 1
    } else if (skip != "" || nexpect) {
      fail("a readme-check marker above a ```" lang " block, which is never run")
    }
    clear()
    next
  }
  /^<!-- readme-check:/ {
    marker = $0
    sub(/^<!-- readme-check:[[:space:]]*/, "", marker)
    if (marker !~ /-->[[:space:]]*$/) { fail("a readme-check marker must end on its line"); next }
    sub(/[[:space:]]*-->[[:space:]]*$/, "", marker)
    if (marker ~ /^skip/) {
      skip = marker
      sub(/^skip:?[[:space:]]*/, "", skip)
      if (skip == "") skip = "(no reason given)"
    } else if (marker ~ /^expect /) {
      expect[++nexpect] = substr(marker, 8)
    } else if (marker ~ /^timeout [0-9]+$/) {
      timeout = substr(marker, 9)
    } else {
      fail("unknown readme-check marker: " marker)
    }
    next
  }
  /^[[:space:]]*$/ { next }
  { if (skip != "" || nexpect) fail("a readme-check marker not followed by a block"); clear() }
  END {
    if (inblock) { NR = opened; fail("this block is never closed") }
    exit bad
  }
' "$readme"

ids=()
skipped=0
for file in "$blocks"/*.sh; do
  [[ -e $file ]] || continue
  id=$(basename "$file" .sh)
  ids+=("$id")
  [[ ! -f $blocks/$id.skip ]] || skipped=$((skipped + 1))
done
if [[ ${#ids[@]} -eq 0 ]]; then
  if [[ -n $allow_empty ]]; then
    echo "readme-check: no \`\`\`sh block in $name"
    echo "readme-check: 0 passed, 0 failed, 0 skipped"
    exit 0
  fi
  echo "readme-check: no \`\`\`sh block in $readme" >&2
  exit 1
fi
if cat "$blocks"/*.sh | grep -qw curl && ! command -v curl >/dev/null; then
  echo "readme-check: the blocks use curl: install it" >&2
  exit 1
fi

describe() {
  local id=$1 line
  line=$(cat "$blocks/$id.line")
  if [[ -f $blocks/$id.skip ]]; then
    echo "  block $id ($name:$line): skipped: $(cat "$blocks/$id.skip")"
  else
    echo "  block $id ($name:$line): runs, limit $(cat "$blocks/$id.timeout") s$(
      [[ -f $blocks/$id.expect ]] && echo ", expects $(wc -l <"$blocks/$id.expect") text(s)")"
  fi
}
echo "readme-check: ${#ids[@]} \`\`\`sh blocks in $name"
for id in "${ids[@]}"; do describe "$id"; done
[[ -z $list_only ]] || exit 0

# 2. The ports the blocks use must be free, or a server of theirs would not start (and the
#    calls would reach whatever listens there).
ports=$(cat "$blocks"/*.sh | grep -oE '127\.0\.0\.1:[0-9]+' | cut -d: -f2 | sort -u || true)
for port in $ports; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "readme-check: port $port is in use; the README's commands need it free" >&2
    exit 1
  fi
done

# 3. A fresh copy of the repository: what a clone has, and nothing an earlier run left.
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | tar -C "$repo" --null --files-from=- --ignore-failed-read -cf - 2>/dev/null \
    | tar -C "$work" -xf -
else
  tar -C "$repo" --exclude=./target -cf - . | tar -C "$work" -xf -
fi

# curl as in a terminal: no progress meter when its output goes to a file.
mkdir -p "$tmp/curl"
echo "no-progress-meter" > "$tmp/curl/.curlrc"

# `cargo` for the blocks: a block's `cargo install` in the dev profile (see the header), every
# other command as it is. A script first on the PATH that `exec`s the real cargo, not a shell
# function: `cargo run … &` then stays one process, whose pid (`$!`) the block's `kill` reaches
# (a function would run in a background subshell, and the kill would stop only the subshell).
real_cargo=$(command -v cargo) || { echo "readme-check: needs cargo" >&2; exit 1; }
mkdir -p "$tmp/bin"
{
  echo '#!/usr/bin/env bash'
  echo 'if [[ ${1:-} == install && -z ${README_CHECK_RELEASE_INSTALL:-} ]]; then'
  echo '  shift'
  echo "  exec '$real_cargo' install --debug \"\$@\""
  echo 'fi'
  echo "exec '$real_cargo' \"\$@\""
} > "$tmp/bin/cargo"
chmod +x "$tmp/bin/cargo"

# 4. The driver: one shell running the blocks in order, each in a `{ }` group (so its
#    variables stay for the next block) with its output in state/NNN.out.
driver=$tmp/driver.sh
{
  cat <<'EOF'
echo $$ > "$README_CHECK_STATE/pgid"
cd "$README_CHECK_WORK"
readme_check_begin() {
  echo "$1 $2 $3 $(date +%s)" > "$README_CHECK_STATE/current"
  echo "--- block $1 ($README_CHECK_NAME:$2)"
}
readme_check_end() {
  local id=$1 start
  touch "$README_CHECK_STATE/$id.ended"
  sed 's/^/  | /' "$README_CHECK_STATE/$id.out"
  if [[ -f $README_CHECK_BLOCKS/$id.expect ]]; then
    while IFS= read -r text; do
      if ! grep -qF -- "$text" "$README_CHECK_STATE/$id.out"; then
        echo "readme-check: block $id: expected output not found: $text"
        exit 1
      fi
    done < "$README_CHECK_BLOCKS/$id.expect"
  fi
  read -r _ _ _ start < "$README_CHECK_STATE/current"
  echo "--- block $id: ok in $(( $(date +%s) - start )) s"
  echo "$id" >> "$README_CHECK_STATE/passed"
}
EOF
  for id in "${ids[@]}"; do
    [[ -f $blocks/$id.skip ]] && continue
    echo "readme_check_begin $id $(cat "$blocks/$id.line") $(cat "$blocks/$id.timeout")"
    echo "{"
    cat "$blocks/$id.sh"
    echo "} > \"\$README_CHECK_STATE/$id.out\" 2>&1 < /dev/null"
    echo "readme_check_end $id"
  done
} > "$driver"

started=$(date +%s)
touch "$state/passed"
env -u PROTECTED_ENDPOINT_API_TOKEN -u INTROSPECT_TOKEN -u API_KEYS -u RUST_LOG \
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}" \
  CARGO_NET_OFFLINE="${CARGO_NET_OFFLINE:-true}" \
  CARGO_PROFILE_RELEASE_OPT_LEVEL="${CARGO_PROFILE_RELEASE_OPT_LEVEL:-0}" \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-256}" \
  PATH="$tmp/bin:$PATH" CURL_HOME="$tmp/curl" NO_COLOR=1 README_CHECK_NAME="$name" \
  README_CHECK_STATE="$state" README_CHECK_WORK="$work" README_CHECK_BLOCKS="$blocks" \
  setsid --wait bash -euo pipefail "$driver" &
driver_pid=$!

# 5. Watch the time of the block that runs.
timed_out=
while kill -0 "$driver_pid" 2>/dev/null; do
  if [[ -z $pgid && -s $state/pgid ]]; then pgid=$(cat "$state/pgid"); fi
  if [[ -f $state/current ]]; then
    read -r id line limit start < "$state/current" || true
    if [[ -n ${start:-} ]] && (( $(date +%s) - start > limit )); then
      timed_out=$id
      stop_group
      break
    fi
  fi
  sleep 1
done
rc=0
wait "$driver_pid" || rc=$?
if [[ -z $pgid && -s $state/pgid ]]; then pgid=$(cat "$state/pgid"); fi

passed=$(wc -l < "$state/passed")
not_run=$(( ${#ids[@]} - skipped - passed - 1 ))

failure=
if [[ -n $timed_out || $rc -ne 0 ]]; then
  read -r id line limit _ < "$state/current"
  if [[ -n $timed_out ]]; then
    failure="block $id ($name:$line) still ran after its limit of $limit s"
  else
    failure="block $id ($name:$line) failed (exit code $rc)"
  fi
  if [[ ! -f $state/$id.ended ]]; then
    echo "--- block $id, as run:"
    sed 's/^/  > /' "$blocks/$id.sh"
    echo "--- its output (last 60 lines):"
    tail -n 60 "$state/$id.out" 2>/dev/null | sed 's/^/  | /'
  fi
elif [[ -n $pgid ]] && kill -0 -- "-$pgid" 2>/dev/null; then
  # A block may have just stopped a server: give it a moment to exit.
  for _ in $(seq 50); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 -- "-$pgid" 2>/dev/null; then
    failure="the README left these running (stop them in the block that starts them):
$(ps -e -o pid=,pgid=,args= | awk -v g="$pgid" '$2 == g { $2 = ""; print "  " $0 }')"
    not_run=0
  fi
fi
stop_group

took=$(( $(date +%s) - started ))
if [[ -n $failure ]]; then
  echo "readme-check: $failure"
  (( not_run <= 0 )) || echo "readme-check: $not_run block(s) after it not run"
  echo "readme-check: took $took s"
  echo "readme-check: $passed passed, 1 failed, $skipped skipped"
  exit 1
fi
echo "readme-check: took $took s"
echo "readme-check: $passed passed, 0 failed, $skipped skipped"
