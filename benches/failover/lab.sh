#!/usr/bin/env bash
# lab.sh: a network-namespace lab for failover experiments. Source it for its functions, or run
# it as a command (`lab.sh create 3`, `lab.sh cut 1`, `lab.sh destroy`, `lab.sh status`).
#
# Topology: nothing lives in the root namespace and the host's interfaces are never touched.
#
#   PREFIX-br      bridge br0 (STP off, no forwarding delay) with one veth port per host
#   PREFIX-nI      eth0 = SUBNET.(I+1)/24, node I (I = 0..N-1); bridge port vnI
#   PREFIX-client  eth0 = SUBNET.200/24, the probing client; bridge port vcl
#   public (virtual) addresses for the systems under test: SUBNET.100 .. SUBNET.199
#
# Settings (environment, read when sourced or run): LAB_PREFIX (default pfo), LAB_SUBNET
# (default 10.218.0, the first three octets of a /24 that exists only inside the lab).
# A cut sets the node's bridge-side port down: no FIN or RST leaves the node, its eth0 loses
# carrier, as when a node loses power or its cable.
#
# lab_destroy ends the processes still inside the lab's namespaces (they can only be ours: the
# namespaces are created here and nothing else enters them), by PID, then deletes the namespaces
# (their veth pairs go with them).

LAB_PREFIX=${LAB_PREFIX:-pfo}
LAB_SUBNET=${LAB_SUBNET:-10.218.0}

lab_die() { echo "lab: $*" >&2; return 1; }

lab_br_ns() { echo "${LAB_PREFIX}-br"; }
lab_client_ns() { echo "${LAB_PREFIX}-client"; }
lab_node_ns() { echo "${LAB_PREFIX}-n$1"; }
lab_node_ip() { echo "${LAB_SUBNET}.$(($1 + 1))"; }
lab_client_ip() { echo "${LAB_SUBNET}.200"; }
# lab_public_ip K: the K-th (0-based) public address.
lab_public_ip() { echo "${LAB_SUBNET}.$((100 + $1))"; }

# The lab's namespaces that exist now, one per line.
lab_namespaces() {
	ip netns list 2>/dev/null | awk '{print $1}' |
		grep -E "^${LAB_PREFIX}-(n[0-9]+|client|br)\$" || true
}

lab_exists() { [ -n "$(lab_namespaces)" ]; }

# _lab_add_host NS IP PORT: a namespace with eth0 on the bridge.
_lab_add_host() {
	local ns=$1 addr=$2 port=$3 br
	br=$(lab_br_ns)
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up || return 1
	# Made inside the bridge namespace, then one end moved out: never in the root namespace.
	ip -n "$br" link add "$port" type veth peer name eth0 || return 1
	ip -n "$br" link set eth0 netns "$ns" || return 1
	ip -n "$br" link set "$port" master br0 up || return 1
	ip -n "$ns" addr add "${addr}/24" dev eth0 || return 1
	ip -n "$ns" link set eth0 up || return 1
	# Gratuitous ARP moves clients to a new holder: accept it for new entries too.
	ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_accept=1 net.ipv4.conf.eth0.arp_accept=1 ||
		return 1
}

# lab_create N: the bridge, N node namespaces and the client namespace.
lab_create() {
	local n=${1:-3} i br
	case "$n" in '' | *[!0-9]*) lab_die "node count must be a number, got '$n'"; return 1 ;; esac
	[ "$n" -ge 1 ] && [ "$n" -le 50 ] || { lab_die "node count must be 1..50, got $n"; return 1; }
	lab_exists && { lab_die "a lab with prefix ${LAB_PREFIX} exists already"; return 1; }
	br=$(lab_br_ns)
	ip netns add "$br" || return 1
	ip -n "$br" link set lo up &&
		ip -n "$br" link add br0 type bridge &&
		ip -n "$br" link set br0 type bridge stp_state 0 forward_delay 0 &&
		ip -n "$br" link set br0 up || { lab_destroy; return 1; }
	for i in $(seq 0 $((n - 1))); do
		_lab_add_host "$(lab_node_ns "$i")" "$(lab_node_ip "$i")" "vn$i" || { lab_destroy; return 1; }
	done
	_lab_add_host "$(lab_client_ns)" "$(lab_client_ip)" vcl || { lab_destroy; return 1; }
}

# lab_destroy: end what still runs inside the lab, delete its namespaces. Safe to repeat.
lab_destroy() {
	local ns pids p
	for ns in $(lab_namespaces); do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		for p in $pids; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
	done
	for ns in $(lab_namespaces); do
		# A killed process may take a moment to leave; deleting the name is fine meanwhile.
		ip netns del "$ns" 2>/dev/null || lab_die "could not delete namespace $ns"
	done
}

_lab_port() { # NODE (number, or "client")
	case "$1" in
	client) echo vcl ;;
	*[!0-9]* | '') lab_die "unknown node '$1'"; return 1 ;;
	*) echo "vn$1" ;;
	esac
}

# lab_cut NODE / lab_heal NODE: the node's bridge port down / up.
lab_cut() { local p; p=$(_lab_port "$1") && ip -n "$(lab_br_ns)" link set "$p" down; }
lab_heal() { local p; p=$(_lab_port "$1") && ip -n "$(lab_br_ns)" link set "$p" up; }

lab_status() {
	local ns
	for ns in $(lab_namespaces | sort); do
		echo "== $ns"
		ip -n "$ns" -br addr 2>/dev/null | grep -v '^lo' || true
	done
}

# Run as a command.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	cmd=${1:-}
	shift || true
	case "$cmd" in
	create) lab_create "$@" ;;
	destroy) lab_destroy ;;
	cut) lab_cut "${1:?node}" ;;
	heal) lab_heal "${1:?node}" ;;
	status) lab_status ;;
	exists) lab_exists ;;
	*) sed -n '2,20p' "$0"; exit 2 ;;
	esac
fi
