#!/usr/bin/env bash
# A 3-node pharos cluster on 127.0.0.1-3 with an fcntl cluster lock: start it, show membership
# and the recovery master, kill -9 the recovery master and show how fast the others notice and
# elect a new one (which takes the lock), freeze another node (SIGSTOP) and show the keepalive
# timeout, bring both back, clean up.
# Traffic stays on loopback; every process started here is ended here, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p pharos-mio -p pharos-host
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
        --socket "$DIR/node$1.sock" --cluster-lock "fcntl:$DIR/cluster.lock" \
        --tunable KeepaliveInterval=100ms --tunable KeepaliveLimit=3 \
        2>>"$DIR/node$1.log" &
    PID[$1]=$!
}
pharos() { "$BIN/pharos" --socket "$DIR/node1.sock" "$@"; }
on() { local n=$1; shift; "$BIN/pharos" --socket "$DIR/node$n.sock" "$@"; }
recmaster_on() { on "$1" recmaster 2>/dev/null | tr -d '\n'; }
# has_recmaster N EXCLUDED: node N (1-based) follows a recmaster other than EXCLUDED, holding the lock.
has_recmaster() {
    local r; r=$(recmaster_on "$1"); [ -n "$r" ] && [ "$r" != -1 ] && [ "$r" != "$2" ] || return 1
    on $((r + 1)) --json status | grep -q '"holds_lock":true'
}
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
all_ok() { for n in 1 2 3; do "$BIN/pharos" --socket "$DIR/node$n.sock" nodestatus all || return 1; done; }

echo "pharos demo: 3 nodes on 127.0.0.1-3, port $PORT, KeepaliveInterval=100ms KeepaliveLimit=3,"
echo "             ElectionTimeout=1s, cluster lock fcntl:$DIR/cluster.lock"
for n in 1 2 3; do start $n; done
wait_until "all three nodes OK on every node" 5000 all_ok
wait_until "a recovery master holding the cluster lock" 5000 has_recmaster 1 -1
pharos status

R=$(recmaster_on 1); V=$((R + 1)); S=$(( R == 0 ? 2 : 1 ))   # victim; survivor to ask
echo; echo "-- kill -9 the recovery master, pnn $R (127.0.0.$V): its sockets close, the others see EOF"
kill -9 "${PID[$V]}"; wait "${PID[$V]}" 2>/dev/null || true; unset "PID[$V]"
t0=$(ms)
wait_until "pnn $R DISCONNECTED on pnn $((S - 1))" 3000 eval "on $S --json status | grep -q '\"pnn\":$R,[^}]*DISCONNECTED'"
wait_until "a new recovery master holding the lock (from the kill)" 5000 has_recmaster "$S" "$R"
on "$S" status

F=$(( S == 1 ? 2 : 1 )); [ "$F" = "$V" ] && F=3; [ "$F" = "$S" ] && F=3
# Freeze a node that is not the one we ask.
for c in 1 2 3; do if [ "$c" != "$V" ] && [ "$c" != "$S" ]; then F=$c; fi; done
echo; echo "-- SIGSTOP pnn $((F - 1)) (127.0.0.$F): its connections stay open, only keepalives tell"
kill -STOP "${PID[$F]}"
wait_until "pnn $((F - 1)) DISCONNECTED on pnn $((S - 1)) (keepalive timeout)" 3000 \
    eval "on $S --json status | grep -q '\"pnn\":$((F - 1)),[^}]*DISCONNECTED'"
echo "   quorate now: $(on "$S" --json status | grep -o '"quorate":[a-z]*') (1 of 3 votes)"
kill -CONT "${PID[$F]}"

echo; echo "-- SIGCONT pnn $((F - 1)), restart pnn $R"
start "$V"
wait_until "all three nodes OK again" 5000 all_ok
wait_until "one recovery master for all three" 5000 eval '[ "$(recmaster_on 1)" = "$(recmaster_on 2)" ] && [ "$(recmaster_on 2)" = "$(recmaster_on 3)" ]'
on "$S" status

echo; echo "-- what pnn $((S - 1)) logged"
cat "$DIR/node$S.log"
