#!/usr/bin/env bash
# A 3-node pharos cluster on 127.0.0.1-3: start it, show membership, kill -9 one node and freeze
# another (SIGSTOP), show how fast the survivors notice, bring both back, clean up.
# Traffic stays on loopback; every process started here is ended here, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p pharos-mio
BIN=$PWD/target/debug
DIR=$(mktemp -d "${TMPDIR:-/tmp}/pharos-demo.XXXXXX")
declare -A PID=()

cleanup() {
    for i in "${!PID[@]}"; do
        kill -CONT "${PID[$i]}" 2>/dev/null || true
        kill "${PID[$i]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

# A port that nothing listens on, on any 127.0.0.x.
PORT=${PHAROS_PORT:-0}
if [ "$PORT" = 0 ]; then
    for _ in $(seq 50); do
        PORT=$((20000 + RANDOM % 30000))
        if ! (ss -Htln 2>/dev/null || true) | awk '{print $4}' | grep -q ":$PORT\$"; then break; fi
    done
fi

printf '127.0.0.1\n127.0.0.2\n127.0.0.3\n' > "$DIR/nodes"
start() { # start N (1-based)
    "$BIN/pharosd" --nodes "$DIR/nodes" --node-address "127.0.0.$1" --port "$PORT" \
        --socket "$DIR/node$1.sock" --tunable KeepaliveInterval=100ms --tunable KeepaliveLimit=3 \
        2>>"$DIR/node$1.log" &
    PID[$1]=$!
}
pharos() { "$BIN/pharos" --socket "$DIR/node1.sock" "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# wait_until DESCRIPTION TIMEOUT_MS COMMAND...: poll every 10 ms, print how long it took.
wait_until() {
    local what=$1 limit=$2 t0; shift 2; t0=$(ms)
    until "$@" >/dev/null 2>&1; do
        if (( $(ms) - t0 > limit )); then echo "!! timed out waiting for: $what" >&2; exit 1; fi
        sleep 0.01
    done
    echo "== $what: $(( $(ms) - t0 )) ms"
}
flags_of() { pharos --json status | grep -o "\"pnn\":$1,\"address\":\"[^\"]*\",\"flags\":\[[^]]*\]"; }
is_ok() { flags_of "$1" | grep -q 'flags":\[\]'; }
is_down() { flags_of "$1" | grep -q DISCONNECTED; }
all_ok() { for n in 1 2 3; do "$BIN/pharos" --socket "$DIR/node$n.sock" nodestatus all || return 1; done; }

echo "pharos demo: 3 nodes on 127.0.0.1-3, port $PORT, KeepaliveInterval=100ms KeepaliveLimit=3"
for n in 1 2 3; do start $n; done
wait_until "all three nodes OK on every node" 5000 all_ok
pharos status

echo; echo "-- kill -9 node 2 (pnn 2, 127.0.0.3): its sockets close, the others see EOF"
kill -9 "${PID[3]}"; wait "${PID[3]}" 2>/dev/null || true; unset 'PID[3]'
wait_until "pnn 2 DISCONNECTED on pnn 0" 3000 is_down 2
pharos nodestatus all || true

echo; echo "-- SIGSTOP pnn 1 (127.0.0.2): connections stay open, only keepalives tell"
kill -STOP "${PID[2]}"
wait_until "pnn 1 DISCONNECTED on pnn 0 (keepalive timeout)" 3000 is_down 1
echo "   quorate now: $(pharos --json status | grep -o '"quorate":[a-z]*')"
kill -CONT "${PID[2]}"

echo; echo "-- SIGCONT pnn 1, restart pnn 2"
start 3
wait_until "all three nodes OK again" 5000 all_ok
pharos status

echo; echo "-- what pnn 0 logged"
cat "$DIR/node1.log"
