#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 20) on the stable toolchain,
# without a sanitizer (stable rustc has no -Zsanitizer). Exits non-zero if any target crashes,
# hangs or fails to build; prints each target's executions per second.
#
#   fuzz/run-all.sh [SECONDS]
#
# Installs cargo-fuzz 0.13.2 first if it is missing (CI machines start without it).
set -euo pipefail

secs="${1:-20}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-all: installing cargo-fuzz 0.13.2"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# Fuzz builds use their own flags: keep them out of the workspace's target dir.
unset CARGO_TARGET_DIR

targets=$(cargo fuzz list)
cargo fuzz build --sanitizer none

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
for t in $targets; do
    log="$logs/$t.log"
    # -timeout: one input running longer than 10 s is a hang, reported as a failure.
    if cargo fuzz run --sanitizer none "$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "run-all: $t ok: $runs runs in ${secs}s, $rate exec/s"
    else
        failed+=("$t")
        echo "run-all: $t FAILED; last lines of its log:"
        tail -n 40 "$log"
        echo "run-all: replay with: (cd fuzz && cargo run --example replay -- $t artifacts/$t/<file>)"
    fi
done

if ((${#failed[@]})); then
    echo "run-all: ${#failed[@]} target(s) failed: ${failed[*]}"
    exit 1
fi
echo "run-all: all targets ran ${secs}s without a crash"
