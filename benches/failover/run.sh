#!/usr/bin/env bash
# The failover benchmark: pharos, CTDB and keepalived side by side in one network-namespace lab.
#
#   benches/failover/run.sh [--system pharos|ctdb|keepalived|all] [--reps N] [--events LIST]
#                           [--profiles LIST] [--idle SECS] [--smoke] [--out DIR]
#                           [--cleanup-only]
#
# Needs root (namespaces). Installs nothing: it names the Debian packages that are missing and
# skips a system whose packages are missing. Builds the harness (cargo, release), then runs
# target/release/failover-bench, which builds a fresh lab per settings profile. Everything it
# creates (namespaces, processes, scratch files) is removed when it ends, on Ctrl-C or SIGTERM
# too; a lab left by a harness that was killed (identified by its prefix and the PID file in the
# scratch directory) is removed at the next start. Results stay in --out (default
# ./failover-results): results.md, results.json, raw probe/sampler logs, daemon logs.
# See benches/failover/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export LAB_PREFIX=${FAILOVER_PREFIX:-pfo}
export LAB_SUBNET=${FAILOVER_SUBNET:-10.218.0}
STATE=${FAILOVER_STATE:-${TMPDIR:-/tmp}/pharos-failover-$LAB_PREFIX}
# shellcheck source=lab.sh
. "$HERE/lab.sh"

say() { echo "failover: $*"; }
die() { echo "failover: $*" >&2; exit 2; }

SYSTEM=all SMOKE=0 CLEANUP_ONLY=0 OUT=$PWD/failover-results
PASS=()
CMDLINE=("$@")
while [ $# -gt 0 ]; do
	case "$1" in
	--system) SYSTEM=${2:?--system needs a value}; shift 2 ;;
	--out) OUT=${2:?--out needs a value}; shift 2 ;;
	--smoke) SMOKE=1; SYSTEM=pharos; shift ;;
	--cleanup-only) CLEANUP_ONLY=1; shift ;;
	--reps | --events | --profiles | --idle | --nodes | --addresses)
		PASS+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
case "$SYSTEM" in all) SYSTEM=pharos,ctdb,keepalived ;; esac
for s in ${SYSTEM//,/ }; do
	case "$s" in pharos | ctdb | keepalived) ;; *) die "unknown system '$s' (pharos, ctdb, keepalived, all)" ;; esac
done

# The smoke (CI) skips, exit 0, where namespaces cannot be made; a real run refuses.
unable() {
	if [ "$SMOKE" = 1 ]; then
		say "smoke skipped: $*"
		exit 0
	fi
	die "$*"
}
[ "$(id -u)" = 0 ] || unable "needs root (network namespaces); try: sudo $0 ..."
command -v ip >/dev/null || unable "needs ip (Debian package iproute2)"
# Root is not enough in some containers: try one namespace of our prefix.
probe_ns="${LAB_PREFIX}-check$$"
if ip netns add "$probe_ns" 2>/dev/null; then
	ip netns del "$probe_ns" 2>/dev/null || true
else
	unable "cannot create a network namespace here (ip netns add failed)"
fi

# --- stale lab: a previous harness that died without cleaning up ---------------------------
end_recorded_pids() { # the PIDs this harness recorded, if they are still the same programs
	local pid comm
	[ -f "$STATE/pids" ] || return 0
	while read -r pid comm; do
		[ -n "$pid" ] || continue
		if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
			kill -CONT "$pid" 2>/dev/null || true
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done <"$STATE/pids"
}

reap_stale() {
	local old
	if [ -f "$STATE/harness.pid" ]; then
		old=$(cat "$STATE/harness.pid")
		if [ -n "$old" ] && [ "$old" != $$ ] && kill -0 "$old" 2>/dev/null &&
			grep -q "run.sh" "/proc/$old/cmdline" 2>/dev/null; then
			die "another run (PID $old) uses prefix $LAB_PREFIX; set FAILOVER_PREFIX to run a second one"
		fi
		say "removing the lab left by a harness that died (PID $old)"
		end_recorded_pids
		lab_destroy
		rm -rf "$STATE"
	elif lab_exists; then
		die "namespaces with prefix $LAB_PREFIX exist but no harness PID file ($STATE/harness.pid): not ours? remove them or set FAILOVER_PREFIX"
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "${DRIVER:-}" ] && kill -0 "$DRIVER" 2>/dev/null; then
		kill -TERM "$DRIVER" 2>/dev/null || true
		wait "$DRIVER" 2>/dev/null || true
	fi
	end_recorded_pids
	lab_destroy
	rm -rf "$STATE"
	exit "$rc"
}

reap_stale
if [ "$CLEANUP_ONLY" = 1 ]; then
	say "nothing left of prefix $LAB_PREFIX"
	exit 0
fi

# --- packages --------------------------------------------------------------------------------
missing_for() { # system -> the Debian packages it lacks
	local m=()
	case "$1" in
	ctdb)
		[ -x /usr/sbin/ctdbd ] && [ -x /usr/bin/ctdb ] && [ -x /usr/libexec/ctdb/ctdb_mutex_fcntl_helper ] || m+=(ctdb)
		# CTDB's 10.interface event script needs both; neither is a dependency of ctdb.
		command -v ethtool >/dev/null || [ -x /usr/sbin/ethtool ] || m+=(ethtool)
		command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || m+=(iptables)
		;;
	keepalived) [ -x /usr/sbin/keepalived ] || m+=(keepalived) ;;
	esac
	echo "${m[*]:-}"
}
base_missing=()
command -v ip >/dev/null || base_missing+=(iproute2)
command -v unshare >/dev/null || base_missing+=(util-linux)
command -v cargo >/dev/null || die "cargo is needed to build the harness (https://rustup.rs)"
if [ ${#base_missing[@]} -gt 0 ]; then
	die "missing Debian packages: ${base_missing[*]} (apt-get install ${base_missing[*]})"
fi
RUN=()
for s in ${SYSTEM//,/ }; do
	lack=$(missing_for "$s")
	if [ -n "$lack" ]; then
		say "skipping $s: missing Debian packages: $lack (apt-get install $lack)"
	else
		RUN+=("$s")
	fi
done
[ ${#RUN[@]} -gt 0 ] || die "no system left to run"
SYSTEMS=$(IFS=,; echo "${RUN[*]}")

# --- build -----------------------------------------------------------------------------------
# The smoke checks behaviour, not speed: it takes the debug build, which CI's `cargo test
# --workspace` has made already, instead of a release build of its own (minutes on 2 cores).
if [ "$SMOKE" = 1 ]; then
	say "building the harness (cargo build, debug)"
	(cd "$ROOT" && cargo build -q -p pharos-benches --bins -p pharos-mio -p pharos-host) || die "the build failed"
	BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
else
	say "building the harness (cargo build --release)"
	(cd "$ROOT" && cargo build --release -q -p pharos-benches --bins -p pharos-mio -p pharos-host) ||
		die "the build failed"
	BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
fi

# --- run -------------------------------------------------------------------------------------
mkdir -p "$STATE" "$OUT"
echo $$ >"$STATE/harness.pid"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ARGS=(--system "$SYSTEMS" --out "$OUT" --state "$STATE" --dir "$HERE" --bin-dir "$BIN"
	--prefix "$LAB_PREFIX" --subnet "$LAB_SUBNET")
[ "$SMOKE" = 1 ] && ARGS+=(--smoke)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
HEADER="## Failover benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $LOAD at the start
Command: \`benches/failover/run.sh ${CMDLINE[*]}\`, commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)."
# In the background and waited for, so that a SIGTERM to this script is handled at once (bash
# runs traps only between foreground commands); the driver stops on SIGTERM or SIGINT itself.
"$BIN/failover-bench" "${ARGS[@]}" ${PASS[@]+"${PASS[@]}"} --header "$HEADER" &
DRIVER=$!
set +e
wait "$DRIVER"
rc=$?
set -e
DRIVER=
exit "$rc"
