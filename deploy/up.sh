#!/usr/bin/env bash
# The main job: a local multi-host shoal cluster on this machine. Five lab
# hosts (network namespaces on a private bridge), one shoald each: host1-3
# managers, host4-5 workers. Installs what it needs on a fresh Debian machine.
#   sudo bash deploy/up.sh          # bring it up (idempotent)
#   sudo bash deploy/down.sh        # tear it down
set -euo pipefail
cd "$(dirname "$0")/.."
LAB="${SHOAL_LAB:-shoal}"
HOSTS=5
MANAGERS=3

[ "$(id -u)" -eq 0 ] || { echo "deploy/up.sh: needs root (network namespaces): run with sudo" >&2; exit 1; }
need=""
for cmd in ip:iproute2 nft:nftables nsenter:util-linux unshare:util-linux; do
  command -v "${cmd%%:*}" >/dev/null || need="$need ${cmd##*:}"
done
if [ -n "$need" ]; then
  echo "==> installing$need"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
command -v node >/dev/null || { echo "deploy/up.sh: Node.js 20+ is required (apt-get install nodejs npm)" >&2; exit 1; }
[ -d node_modules ] || { echo "==> npm ci"; npm ci --no-audit --no-fund; }
echo "==> build"
npm run -s build

LABCMD=(node dist/deploy/lab/cli.js --lab "$LAB")
SHOAL=(node dist/cli/shoal/main.js)
echo "==> lab: $HOSTS hosts"
"${LABCMD[@]}" up --hosts "$HOSTS"

sock() { node -e "const {Lab}=await import('./dist/deploy/lab/lab.js'); const l=new Lab({name:process.argv[1]}); console.log(l.hostState(process.argv[2]).socket)" "$LAB" "$1" 2>/dev/null \
  || echo "/var/lib/shoal-lab/$LAB/$1/shoald.sock"; }
ip_of() { "${LABCMD[@]}" status --json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);const h=(j.hosts||j).find(x=>x.host===process.argv[1]||x.name===process.argv[1]);console.log(h.ip)})" "$1"; }

for i in $(seq 1 $HOSTS); do
  s="$(sock host$i)"
  for _ in $(seq 1 100); do [ -S "$s" ] && break; sleep 0.1; done
  [ -S "$s" ] || { echo "shoald on host$i did not come up: see /var/lib/shoal-lab/$LAB/host$i/daemon.log" >&2; exit 1; }
done

H1="$(sock host1)"
IP1="$(ip_of host1)"
if ! "${SHOAL[@]}" --socket "$H1" node ls >/dev/null 2>&1; then
  echo "==> swarm init on host1 ($IP1)"
  "${SHOAL[@]}" --socket "$H1" swarm init --advertise-addr "$IP1:4377" >/dev/null
fi
MT="$("${SHOAL[@]}" --socket "$H1" swarm join-token -q manager)"
WT="$("${SHOAL[@]}" --socket "$H1" swarm join-token -q worker)"
for i in $(seq 2 $HOSTS); do
  s="$(sock host$i)"
  if "${SHOAL[@]}" --socket "$s" info --format json | grep -q '"LocalNodeState": "inactive"'; then
    if [ "$i" -le "$MANAGERS" ]; then t="$MT"; role=manager; else t="$WT"; role=worker; fi
    echo "==> host$i joins as a $role"
    "${SHOAL[@]}" --socket "$s" swarm join --token "$t" "$IP1:4377" >/dev/null
  fi
done

for _ in $(seq 1 100); do
  ready=$("${SHOAL[@]}" --socket "$H1" node ls --format json | grep -c '"State": "ready"' || true)
  [ "$ready" -ge "$HOSTS" ] && break
  sleep 0.2
done
echo
"${SHOAL[@]}" --socket "$H1" node ls
cat <<EOT

The cluster is up: $HOSTS hosts in network namespaces $LAB-host1..$HOSTS, lab network $("${LABCMD[@]}" status --json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);console.log(j.subnet||'')})").
Look around:
    export SHOAL_SOCKET=$H1
    node dist/cli/shoal/main.js node ls
    node dist/cli/shoal/main.js node inspect --pretty host4
    deploy/lab/shoal-lab --lab $LAB status
    deploy/lab/shoal-lab --lab $LAB kill host1        # SIGKILL the first manager; ask another:
    node dist/cli/shoal/main.js --socket $(sock host2) node ls
    deploy/lab/shoal-lab --lab $LAB start host1
Logs: /var/lib/shoal-lab/$LAB/<host>/daemon.log.  Tear down: sudo bash deploy/down.sh
Services (\`shoal service create\`) arrive with the services issue: no demo service runs yet.
EOT
