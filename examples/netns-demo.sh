#!/usr/bin/env bash
# The failover demo: 3 pharosd in network namespaces on a bridge, 8 public addresses, a TCP
# responder on every node and a client connecting to every address every 10 ms. It shows who
# holds what, kills -9 a holder that is not the recovery master and prints the outage the client
# saw per address, brings the node back, kills -9 the recovery master, stops the cluster and
# shows that no address is left configured anywhere. Run as root (`sudo examples/netns-demo.sh`).
#
# Lab (benches/failover/lab.sh): PREFIX-br (the bridge), PREFIX-n0..2 (nodes, SUBNET.1-3),
# PREFIX-client (SUBNET.200); public addresses SUBNET.100-107. Settings: LAB_PREFIX (default
# pdm), LAB_SUBNET (default 10.216.3). Nothing is created in the root namespace and all traffic
# stays between the lab's namespaces. Everything it creates is removed on exit, on Ctrl-C and on
# failure. Without root or `ip netns` it says so and runs examples/local-cluster.sh instead.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
    echo "netns-demo: needs root and ip netns (iproute2); running the loopback demo examples/local-cluster.sh instead"
    exec "$ROOT/examples/local-cluster.sh"
fi

export LAB_PREFIX=${LAB_PREFIX:-pdm}
export LAB_SUBNET=${LAB_SUBNET:-10.216.3}
# shellcheck source=SCRIPTDIR/../benches/failover/lab.sh
. "$ROOT/benches/failover/lab.sh"

if lab_exists; then
    echo "netns-demo: namespaces of prefix $LAB_PREFIX exist already (another run?); not touching them." >&2
    echo "  If they are left from a killed run: LAB_PREFIX=$LAB_PREFIX $ROOT/benches/failover/lab.sh destroy" >&2
    exit 1
fi

NODES=3
ADDRS=8
PORT=4379 # the cluster port, inside the namespaces only
TUNABLES=(--tunable KeepaliveInterval=100ms --tunable KeepaliveLimit=3)

echo "netns-demo: building (release)..."
(cd "$ROOT" && cargo build --release -q -p pharos-mio -p pharos-host -p pharos-benches --bins)
BIN=$ROOT/target/release

DIR=$(mktemp -d "${TMPDIR:-/tmp}/pharos-netns-demo.XXXXXX")
LAB_MADE=0
declare -A DAEMON=() # node -> pharosd PID
HELPERS=()           # responders, probe, sampler

stop_daemons() { # SIGTERM (a clean stop releases the addresses), then SIGKILL after 3 s
    local i p
    for i in "${!DAEMON[@]}"; do
        kill -CONT "${DAEMON[$i]}" 2>/dev/null || true
        kill -TERM "${DAEMON[$i]}" 2>/dev/null || true
    done
    for _ in $(seq 300); do
        p=0
        for i in "${!DAEMON[@]}"; do kill -0 "${DAEMON[$i]}" 2>/dev/null && p=1; done
        [ "$p" = 0 ] && break
        sleep 0.01
    done
    for i in "${!DAEMON[@]}"; do
        kill -KILL "${DAEMON[$i]}" 2>/dev/null || true
        wait "${DAEMON[$i]}" 2>/dev/null || true
        unset "DAEMON[$i]"
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_daemons
    local p
    for p in "${HELPERS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${HELPERS[@]}"; do wait "$p" 2>/dev/null || true; done
    # What still runs in the lab (a guardian between fencing and exit) is ours: lab_destroy ends
    # it by PID and deletes the namespaces. A lab this run did not create is left alone.
    if [ "$LAB_MADE" = 1 ]; then lab_destroy || true; fi
    rm -rf "$DIR"
    if [ "$rc" != 0 ]; then echo "netns-demo: failed (exit $rc); everything it created is removed" >&2; fi
    exit "$rc"
}
trap cleanup EXIT
set -E
trap 'echo "!! netns-demo: line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
    echo "!! $*" >&2
    local i
    for i in $(seq 0 $((NODES - 1))); do
        [ -f "$DIR/n$i.log" ] && { echo "--- n$i.log (last lines)" >&2; tail -n 15 "$DIR/n$i.log" >&2; }
    done
    exit 1
}

# CLOCK_MONOTONIC in ns, the clock of the probe's and the sampler's stamps (root can read it).
mono_ns() {
    local line
    while read -r line; do
        case $line in "now at "*) line=${line#now at }; echo "${line%% *}"; return ;; esac
    done </proc/timer_list
}
ms_since() { echo $((($(mono_ns) - $1) / 1000000)); }

pub() { lab_public_ip "$1"; }
all_but() { # all_but I: the other nodes' numbers
    local i
    for i in $(seq 0 $((NODES - 1))); do
        if [ "$i" != "$1" ]; then printf '%s ' "$i"; fi
    done
}
ALL_PUB=$(for k in $(seq 0 $((ADDRS - 1))); do printf '%s,' "$(pub "$k")"; done)
ALL_PUB=${ALL_PUB%,}

# Set first, so that a Ctrl-C during the creation removes what was made (no lab of this prefix
# existed a moment ago).
LAB_MADE=1
lab_create "$NODES" || die "could not create the lab"

for i in $(seq 0 $((NODES - 1))); do lab_node_ip "$i"; done >"$DIR/nodes"
for k in $(seq 0 $((ADDRS - 1))); do echo "$(pub "$k")/24 eth0"; done >"$DIR/public_addresses"

start_node() { # start_node I
    local i=$1
    ip netns exec "$(lab_node_ns "$i")" "$BIN/pharosd" --nodes "$DIR/nodes" \
        --public-addresses "$DIR/public_addresses" --socket "$DIR/n$i.sock" --port "$PORT" \
        --cluster-lock "fcntl:$DIR/cluster.lock" "${TUNABLES[@]}" \
        </dev/null >/dev/null 2>>"$DIR/n$i.log" &
    DAEMON[$i]=$!
}
on() { local i=$1; shift; "$BIN/pharos" --socket "$DIR/n$i.sock" "$@"; }

# The last sampler round: one word per address, the nodes holding it ("1", "-", "0,2").
holders() { tail -n 1 "$DIR/sampler.out" | awk '!/^#/ { for (i = 3; i <= NF; i++) printf "%s ", $i }'; }
# spread_over "0 2": every address on exactly one node of the list, 2 or 3 per node.
spread_over() {
    local h w n c
    h=$(holders)
    [ "$(wc -w <<<"$h")" = "$ADDRS" ] || return 1
    for w in $h; do [[ " $1 " == *" $w "* ]] || return 1; done
    n=$(wc -w <<<"$1")
    for w in $1; do
        c=$(tr ' ' '\n' <<<"$h" | grep -cx "$w" || true)
        [ "$c" -ge $((ADDRS / n)) ] && [ "$c" -le $(((ADDRS + n - 1) / n)) ] || return 1
    done
}
held_by() { # held_by I: the public addresses node I holds (sampler's last round)
    local k=0 w
    for w in $(holders); do
        [ "$w" = "$1" ] && printf '%s ' "$(pub "$k")"
        k=$((k + 1))
    done
}
# wait_for LIMIT_MS WHAT COMMAND...: poll every 20 ms.
wait_for() {
    local limit=$1 what=$2 t0
    shift 2
    t0=$(mono_ns)
    until "$@" >/dev/null 2>&1; do
        [ "$(ms_since "$t0")" -gt "$limit" ] && die "not within $limit ms: $what (holders now: $(holders))"
        sleep 0.02
    done
}

# outage T0 VICTIM ADDRESSES...: per address, the time from T0 to the start of the first probe
# attempt answered by another node than VICTIM; exits 1 while some address has none yet.
outage() {
    local t0=$1 victim=n$2
    shift 2
    awk -v t0="$t0" -v victim="$victim" -v want="$*" '
        BEGIN { n = split(want, order, " "); for (k = 1; k <= n; k++) w[order[k]] = 1 }
        $3 == "ok" && $1 >= t0 && ($2 in w) && $4 != victim && !($2 in t1) { t1[$2] = $1; by[$2] = $4 }
        END {
            for (k = 1; k <= n; k++) {
                a = order[k]
                if (!(a in t1)) exit 1
                printf "   %-14s answered by %s %6.1f ms after the kill\n", a, by[a], (t1[a] - t0) / 1e6
            }
        }' "$DIR/probe.out"
}
# answered_by_since T0 NODE ADDRESSES...: every address answered by NODE at or after T0.
answered_by_since() {
    local t0=$1 node=n$2
    shift 2
    awk -v t0="$t0" -v node="$node" -v want="$*" '
        BEGIN { n = split(want, order, " ") }
        $3 == "ok" && $1 >= t0 && $4 == node { seen[$2] = 1 }
        END { for (k = 1; k <= n; k++) if (!(order[k] in seen)) exit 1 }' "$DIR/probe.out"
}
# has_recmaster I OLD: node I follows a recovery master other than OLD.
has_recmaster() {
    local r
    r=$(on "$1" recmaster 2>/dev/null) && [ "$r" -ge 0 ] && [ "$r" != "$2" ]
}
no_pharos_left() { # no pharosd (or guardian, its fork) runs in a node namespace
    local i p
    for i in $(seq 0 $((NODES - 1))); do
        for p in $(ip netns pids "$(lab_node_ns "$i")" 2>/dev/null); do
            [ "$(cat "/proc/$p/comm" 2>/dev/null)" = pharosd ] && return 1
        done
    done
    return 0
}
kernel_addresses() { # kernel_addresses I: public addresses configured in node I's namespace
    ip -n "$(lab_node_ns "$1")" -4 -o addr show dev eth0 |
        awk -v p="${LAB_SUBNET}." '{ split($4, a, "/"); if (index(a[1], p) == 1) { o = substr(a[1], length(p) + 1); if (o >= 100 && o <= 199) printf "%s ", a[1] } }'
}

# kill_holder I WHY: kill -9 node I's daemon, print what the client saw.
kill_holder() {
    local v=$1 t0 mine left
    mine=$(held_by "$v")
    mine=${mine% }
    [ -n "$mine" ] || die "pnn $v holds no address"
    echo
    echo "== kill -9 pnn $v ($2), which holds: $mine"
    t0=$(mono_ns)
    kill -KILL "${DAEMON[$v]}"
    wait "${DAEMON[$v]}" 2>/dev/null || true
    unset "DAEMON[$v]"
    # shellcheck disable=SC2086 # one word per address
    wait_for 10000 "the addresses of pnn $v answered by another node" outage "$t0" "$v" $mine
    echo "   the client's outage, per address (probe every 10 ms, from the kill to the first answer by the new holder):"
    # shellcheck disable=SC2086
    outage "$t0" "$v" $mine
    left=$(kernel_addresses "$v")
    echo "   left on pnn $v's namespace: ${left:-nothing (its guardian removed them when the daemon died)}"
}

echo "netns-demo: 3 nodes $(lab_node_ns 0)..$(lab_node_ns $((NODES - 1))) ($(lab_node_ip 0)-$((NODES)))" \
    "on a bridge, $ADDRS public addresses $(pub 0)-$((100 + ADDRS - 1)),"
echo "            a client ($(lab_client_ns)) connecting to each every 10 ms; KeepaliveInterval=100ms KeepaliveLimit=3"
for i in $(seq 0 $((NODES - 1))); do
    "$BIN/failover-banner" --netns "$(lab_node_ns "$i")" --name "n$i" 2>>"$DIR/banner.log" &
    HELPERS+=($!)
done
NSLIST=$(for i in $(seq 0 $((NODES - 1))); do printf '%s,' "$(lab_node_ns "$i")"; done)
"$BIN/failover-sampler" --netns "${NSLIST%,}" --addresses "$ALL_PUB" >"$DIR/sampler.out" 2>>"$DIR/sampler.log" &
HELPERS+=($!)
"$BIN/failover-probe" --netns "$(lab_client_ns)" --addresses "$ALL_PUB" >"$DIR/probe.out" 2>>"$DIR/probe.log" &
HELPERS+=($!)

T=$(mono_ns)
for i in $(seq 0 $((NODES - 1))); do start_node "$i"; done
wait_for 10000 "every address on exactly one node, 2-3 each" spread_over "0 1 2"
echo
echo "== cluster up: every address on exactly one node $(ms_since "$T") ms after the start"
wait_for 5000 "a recovery master" has_recmaster 0 -1
on 0 status
on 0 ip

RM=$(on 0 recmaster)
V=-1
for i in $(seq 0 $((NODES - 1))); do
    if [ "$i" != "$RM" ] && [ -n "$(held_by "$i")" ]; then V=$i; break; fi
done
[ "$V" -ge 0 ] || die "no holder besides the recovery master"
OTHERS=$(all_but "$V")
kill_holder "$V" "not the recovery master, pnn $RM"
wait_for 5000 "the addresses spread over the others" spread_over "$OTHERS"
on "$RM" ip

echo
echo "== pnn $V back (restarted)"
T=$(mono_ns)
start_node "$V"
wait_for 10000 "pnn $V's share back" spread_over "0 1 2"
# shellcheck disable=SC2046
wait_for 5000 "pnn $V answering" answered_by_since "$T" "$V" $(held_by "$V")
echo "   its share answers from it again $(ms_since "$T") ms after the restart (includes the daemon's start)"
on "$RM" ip

REST=$(all_but "$RM")
ASK=${REST%% *}
kill_holder "$RM" "the recovery master"
wait_for 5000 "the addresses spread over the others" spread_over "$REST"
wait_for 5000 "a new recovery master" has_recmaster "$ASK" "$RM"
on "$ASK" status
on "$ASK" ip

echo
echo "== stop the cluster (SIGTERM: each daemon releases its addresses, then says goodbye)"
stop_daemons
LEFT=""
for i in $(seq 0 $((NODES - 1))); do LEFT+=$(kernel_addresses "$i"); done
[ -z "$LEFT" ] || die "addresses left after the stop: $LEFT"
echo "   public addresses configured in the node namespaces: none"
# Guardians exit right after fencing; give them a moment, then nothing but the responders remains.
wait_for 3000 "every pharos process gone from the lab" no_pharos_left
echo "   pharos processes left in the node namespaces: none"

# Rounds, their time span, and the rounds in which some address was on two nodes.
read -r SAMPLES SPAN DOUBLED < <(awk '!/^#/ { if (!first) first = $1; last = $1; n++
        for (i = 3; i <= NF; i++) if ($i ~ /,/) { d++; break } }
    END { printf "%d %.1f %d\n", n, (last - first) / 1e9, d }' "$DIR/sampler.out")
echo
echo "== the sampler (netlink address dumps of the $NODES node namespaces, every 10 ms or as fast as it" \
    "can): $SAMPLES rounds over $SPAN s, $DOUBLED with an address on two nodes"
[ "$DOUBLED" = 0 ] || die "an address was seen on two nodes"
echo "netns-demo: done; removing the lab"
