#!/usr/bin/env bash
# The edge lab: three edge sites on this machine, each a network namespace
# with one Discovery agent (profile wan), a few milliseconds between the hosts
# of a site and 25-40 ms between sites, through a userspace delay line
# (delay-line.py: this kernel has no netem). Run as root from anywhere:
#
#   sudo deploy/edge-lab/up.sh
#   sudo ip netns exec dlab-s1h1 env DISCOVERY_API_TOKEN=$(sudo cat /run/discovery-edge-lab/dlab/token) \
#        node_modules/.bin/node bin/discovery.js nodes
#   sudo deploy/edge-lab/down.sh
#
# Settings (environment), with their defaults:
#   LAB_NAME=dlab          prefix of every namespace, device and the state dir (at most 6 characters)
#   LAB_STATE=/run/discovery-edge-lab/$LAB_NAME   pids, logs, data dirs, lab.json
#   LAB_NET=10.78          host h of site s is $LAB_NET.s.h, on its TUN device
#   SITES=3                sites
#   HOSTS_PER_SITE=1       agents per site
#   INTRA_MS=1             one-way delay between two hosts of one site (RTT: twice this)
#   INTER_MS="12.5 20 16"  one-way delays between sites 1-2, 1-3, 2-3 (RTTs 25, 40, 32 ms); with
#                          more sites, the list goes on (1-4, 2-4, 3-4, ...) and repeats its last value
#   PROFILE=wan            the agents' timer profile
#   AGENT_ARGS=            more flags for every agent, split on spaces (e.g. "--admin --cpu-overcommit 2 --demand 0.1",
#                          "--driver qemu", "--locality off")
#   DISCOVERY_NODE         the Node (>= 22) to run the agents with; default: the repository's Node 24
# lab.json in the state dir describes the lab (hosts, namespaces, addresses, pids, configured RTTs).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB_NAME=${LAB_NAME:-dlab}
LAB_STATE=${LAB_STATE:-/run/discovery-edge-lab/$LAB_NAME}
LAB_NET=${LAB_NET:-10.78}
SITES=${SITES:-3}
HOSTS_PER_SITE=${HOSTS_PER_SITE:-1}
INTRA_MS=${INTRA_MS:-1}
INTER_MS=${INTER_MS:-12.5 20 16}
PROFILE=${PROFILE:-wan}
read -r -a EXTRA <<< "${AGENT_ARGS:-}"
NODE=${DISCOVERY_NODE:-$REPO/node_modules/.bin/node}

die () { echo "edge-lab: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root: network namespaces and TUN devices need it"
[[ $LAB_NAME =~ ^[a-z][a-z0-9]{0,5}$ ]] || die "Expected LAB_NAME to be 1 to 6 lowercase letters or digits, got \`$LAB_NAME\`"
[[ $SITES =~ ^[1-9]$ ]] || die "Expected SITES to be from 1 to 9, got \`$SITES\`"
[[ $HOSTS_PER_SITE =~ ^[1-9]$ ]] || die "Expected HOSTS_PER_SITE to be from 1 to 9, got \`$HOSTS_PER_SITE\`"
[ -c /dev/net/tun ] || die "/dev/net/tun is missing (modprobe tun)"
command -v python3 > /dev/null || die "python3 is needed for the delay line"
[ -x "$NODE" ] || NODE=$(command -v node) || die "no Node: run npm install in $REPO, or set DISCOVERY_NODE"
"$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' || die "$NODE is older than Node 22: set DISCOVERY_NODE"
if ip netns list | grep -q "^$LAB_NAME-"; then die "a lab named $LAB_NAME is up: run down.sh first (or set LAB_NAME)"; fi

mkdir -p "$LAB_STATE"
chmod 0700 "$LAB_STATE"
umask 077

# The lab's secrets: a swarm key (the format deploy/README.md describes) and an API token.
printf '/key/swarm/psk/1.0.0/\n/base16/\n%s\n' "$(openssl rand -hex 32 2> /dev/null || od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" > "$LAB_STATE/swarm.key"
TOKEN=$(openssl rand -hex 16 2> /dev/null || od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
echo "$TOKEN" > "$LAB_STATE/token"

# The hosts, and the delay line's configuration.
HOSTS=()
for s in $(seq 1 "$SITES"); do for h in $(seq 1 "$HOSTS_PER_SITE"); do HOSTS+=("$s:$h"); done; done
"$NODE" -e '
  const [sites, intra, inter, net, name] = process.argv.slice(1)
  const delays = inter.trim().split(/\s+/).map(Number)
  const pairs = []
  for (let b = 2; b <= Number(sites); b++) for (let a = 1; a < b; a++) pairs.push(`${a}-${b}`)
  const interMs = Object.fromEntries(pairs.map((p, i) => [p, delays[Math.min(i, delays.length - 1)]]))
  const hosts = process.argv.slice(6).map(sh => { const [s, h] = sh.split(":"); return { dev: `${name}-s${s}h${h}`, addr: `${net}.${s}.${h}`, site: Number(s) } })
  console.log(JSON.stringify({ hosts, intraMs: Number(intra), interMs }, null, 2))
' "$SITES" "$INTRA_MS" "$INTER_MS" "$LAB_NET" "$LAB_NAME" "${HOSTS[@]}" > "$LAB_STATE/delay-line.json"

# From here on, a failure takes down what was set up.
trap 'echo "edge-lab: setting up failed; taking the lab down" >&2; LAB_NAME=$LAB_NAME LAB_STATE=$LAB_STATE KEEP_STATE=1 "$HERE/down.sh" >&2 || true' ERR

wait_for () { # wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.2 s
  local what=$1 seconds=$2 deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" > /dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "edge-lab: $what did not happen within ${seconds} s" >&2; return 1; fi
    sleep 0.2
  done
}

setsid python3 "$HERE/delay-line.py" "$LAB_STATE/delay-line.json" > "$LAB_STATE/delay-line.log" 2>&1 < /dev/null &
echo $! > "$LAB_STATE/delay-line.pid"
wait_for "the delay line's ready line" 10 grep -q '"ready"' "$LAB_STATE/delay-line.log"

for sh in "${HOSTS[@]}"; do
  s=${sh%%:*} h=${sh##*:} ns=$LAB_NAME-s${s}h${h}
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link set "$ns" netns "$ns"
  ip -n "$ns" addr add "$LAB_NET.$s.$h/16" dev "$ns"
  ip -n "$ns" link set "$ns" up
done

# One agent per host. Each bootstraps to the first host of every site (itself left out).
BOOTSTRAP=()
for s in $(seq 1 "$SITES"); do BOOTSTRAP+=("/ip4/$LAB_NET.$s.1/tcp/4001"); done
for sh in "${HOSTS[@]}"; do
  s=${sh%%:*} h=${sh##*:} ns=$LAB_NAME-s${s}h${h}
  mine=/ip4/$LAB_NET.$s.$h/tcp/4001
  peers=$(printf '%s\n' "${BOOTSTRAP[@]}" | { grep -vxF "$mine" || true; } | paste -sd, -)
  mkdir -p "$LAB_STATE/$ns"
  setsid ip netns exec "$ns" env -i PATH=/usr/local/bin:/usr/bin:/bin NODE_COMPILE_CACHE="$LAB_STATE/compile-cache" \
    "$NODE" "$REPO/bin/discovery.js" agent --profile "$PROFILE" --listen /ip4/0.0.0.0/tcp/4001 --bootstrap "$peers" \
    --api 127.0.0.1:7100 --api-token-file "$LAB_STATE/token" --swarm-key "$LAB_STATE/swarm.key" --data-dir "$LAB_STATE/$ns/data" \
    --cpu 4 --mem 8GiB --labels "zone=edge-lab-s$s,host=h$h" --json ${EXTRA[@]+"${EXTRA[@]}"} \
    > "$LAB_STATE/$ns/agent.out" 2> "$LAB_STATE/$ns/agent.log" < /dev/null &
  echo $! > "$LAB_STATE/$ns/agent.pid"
done
for sh in "${HOSTS[@]}"; do
  ns=$LAB_NAME-s${sh%%:*}h${sh##*:}
  wait_for "$ns's agent ready line" 60 grep -q '"ready"' "$LAB_STATE/$ns/agent.out"
done

# Every agent must see every agent alive.
alive () { # alive NS: succeeds when NS's agent sees every agent of the lab alive
  ip netns exec "$1" env DISCOVERY_API_TOKEN="$TOKEN" "$NODE" "$REPO/bin/discovery.js" nodes --json 2> /dev/null |
    "$NODE" -e 'let s = ""; process.stdin.on("data", d => { s += d }).on("end", () => process.exit(JSON.parse(s).filter(n => n.state === "alive").length >= Number(process.argv[1]) ? 0 : 1))' "${#HOSTS[@]}"
}
for sh in "${HOSTS[@]}"; do
  ns=$LAB_NAME-s${sh%%:*}h${sh##*:}
  wait_for "$ns's agent seeing all ${#HOSTS[@]} agents" 90 alive "$ns"
done

# lab.json: what the lab is, for down.sh, the tests and you.
"$NODE" -e '
  const fs = require("node:fs")
  const [state, name, token] = process.argv.slice(1)
  const config = JSON.parse(fs.readFileSync(`${state}/delay-line.json`, "utf8"))
  const hosts = config.hosts.map(h => ({ ...h, ns: h.dev, api: "http://127.0.0.1:7100", p2p: `/ip4/${h.addr}/tcp/4001`,
    pid: Number(fs.readFileSync(`${state}/${h.dev}/agent.pid`, "utf8")), peerId: JSON.parse(fs.readFileSync(`${state}/${h.dev}/agent.out`, "utf8").split("\n")[0]).peerId }))
  const rttMs = { intra: 2 * config.intraMs, inter: Object.fromEntries(Object.entries(config.interMs).map(([p, ms]) => [p, 2 * ms])) }
  const lab = { name, state, tokenFile: `${state}/token`, swarmKeyFile: `${state}/swarm.key`, delayLinePid: Number(fs.readFileSync(`${state}/delay-line.pid`, "utf8")), rttMs, hosts }
  fs.writeFileSync(`${state}/lab.json`, JSON.stringify(lab, null, 2) + "\n")
  console.log(`edge lab ${name} up: ${hosts.length} agents, each sees all of them`)
  for (const h of hosts) console.log(`  site ${h.site}  ${h.ns}  ${h.addr}  ${h.peerId}`)
  console.log(`  RTT configured: ${rttMs.intra} ms within a site, ${Object.entries(rttMs.inter).map(([p, ms]) => `${p}: ${ms} ms`).join(", ")}`)
  console.log(`Ask an agent:  sudo ip netns exec ${hosts[0].ns} env DISCOVERY_API_TOKEN=$(sudo cat ${state}/token) ${process.execPath} ${process.argv[4]}/bin/discovery.js nodes`)
  console.log(`Take it down:  sudo LAB_NAME=${name} LAB_STATE=${state} ${process.argv[5]}/down.sh`)
' "$LAB_STATE" "$LAB_NAME" "$TOKEN" "$REPO" "$HERE"
trap - ERR
