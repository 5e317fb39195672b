#!/usr/bin/env bash
# Takes the edge lab down and leaves nothing: its agents (SIGTERM, then SIGKILL
# after 15 s), the delay line, the namespaces and their devices (the kernel
# removes those about 2 s after `ip netns del`: waited for), and its state dir
# unless KEEP_STATE=1. Same LAB_NAME and LAB_STATE as up.sh. Safe to run twice.
set -uo pipefail
LAB_NAME=${LAB_NAME:-dlab}
LAB_STATE=${LAB_STATE:-/run/discovery-edge-lab/$LAB_NAME}
[ "$(id -u)" = 0 ] || { echo "edge-lab: run as root" >&2; exit 2; }
[[ $LAB_NAME =~ ^[a-z][a-z0-9]{0,5}$ ]] || { echo "edge-lab: Expected LAB_NAME to be 1 to 6 lowercase letters or digits, got \`$LAB_NAME\`" >&2; exit 2; }

# A pid from a pid file, if that process is still ours (its command line names the lab's state dir).
ours () {
  local pid
  pid=$(cat "$1" 2> /dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null | grep -qF "$LAB_STATE" && echo "$pid"
}

AGENTS=()
for f in "$LAB_STATE"/*/agent.pid; do
  pid=$(ours "$f") && AGENTS+=("$pid")
done
for pid in "${AGENTS[@]}"; do kill -TERM "$pid" 2> /dev/null; done
deadline=$(( $(date +%s) + 15 ))
for pid in "${AGENTS[@]}"; do
  while kill -0 "$pid" 2> /dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  if kill -0 "$pid" 2> /dev/null; then echo "edge-lab: agent $pid ignored SIGTERM for 15 s: SIGKILL" >&2; kill -KILL "$pid" 2> /dev/null; fi
done

if pid=$(ours "$LAB_STATE/delay-line.pid"); then
  kill -TERM "$pid" 2> /dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2> /dev/null
fi

for ns in $(ip netns list | awk '{print $1}' | grep "^$LAB_NAME-"); do
  ip netns del "$ns"
done

# The devices go when the namespaces are gone and the delay line has closed them.
left () { ip netns list | grep -q "^$LAB_NAME-" || ip -o link show | grep -q ": $LAB_NAME-"; }
deadline=$(( $(date +%s) + 20 ))
while left; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "edge-lab: still there after 20 s:" >&2
    ip netns list | grep "^$LAB_NAME-" >&2
    ip -o link show | grep ": $LAB_NAME-" >&2
    exit 1
  fi
  sleep 0.2
done

[ "${KEEP_STATE:-0}" = 1 ] || rm -rf "$LAB_STATE"
echo "edge lab $LAB_NAME down"
