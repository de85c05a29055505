#!/usr/bin/env bash
# The main job: a local multi-host shoal cluster on this machine. Five lab
# hosts (network namespaces on a private bridge), each with its own containerd
# and its own shoald: host1-3 managers, host4-5 workers. The busybox test image
# is preloaded into every host's containerd, and once the service commands
# exist a demo service runs 6 replicas across the hosts. Installs what it needs
# on a fresh Debian machine.
#   bash deploy/up.sh          # as root: bring it up (idempotent: a rerun repairs, never duplicates)
#   bash deploy/down.sh        # as root: tear it down
set -euo pipefail
cd "$(dirname "$0")/.."
LAB="${SHOAL_LAB:-shoal}"
HOSTS=5
MANAGERS=3
IMAGE=shoal.local/busybox:1
IMAGE_TAR=/var/lib/shoal-images/busybox.tar

[ "$(id -u)" -eq 0 ] || { echo "deploy/up.sh: needs root (network namespaces): run it as root, or with sudo" >&2; exit 1; }
need=""
for cmd in ip:iproute2 nft:nftables nsenter:util-linux unshare:util-linux containerd:containerd containerd-shim-runc-v2:containerd runc:runc; do
  command -v "${cmd%%:*}" >/dev/null || need="$need ${cmd##*:}"
done
[ -x /usr/bin/tini-static ] || need="$need tini"
dpkg -s busybox-static >/dev/null 2>&1 || need="$need busybox-static"
if [ -n "$need" ]; then
  need="$(echo $need | tr ' ' '\n' | sort -u | tr '\n' ' ')"
  echo "==> installing $need"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
command -v node >/dev/null || { echo "deploy/up.sh: Node.js 20+ is required (apt-get install nodejs npm)" >&2; exit 1; }
[ -d node_modules ] || { echo "==> npm ci"; npm ci --no-audit --no-fund; }
echo "==> build"
npm run -s build

LABCMD=(node dist/deploy/lab/cli.js --lab "$LAB")
SHOAL=(deploy/shoal)
echo "==> lab: $HOSTS hosts, a containerd and a shoald on each"
"${LABCMD[@]}" up --hosts "$HOSTS" --containerd

lab_json() { "${LABCMD[@]}" status --json; }
sock() { node -e "const {Lab}=await import('./dist/deploy/lab/lab.js'); const l=new Lab({name:process.argv[1]}); console.log(l.hostState(process.argv[2]).socket)" "$LAB" "$1" 2>/dev/null \
  || echo "/var/lib/shoal-lab/$LAB/$1/shoald.sock"; }
ip_of() { lab_json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);console.log(j.hosts.find(x=>x.host===process.argv[1]).ip)})" "$1"; }

if [ ! -f "$IMAGE_TAR" ]; then
  echo "==> building $IMAGE from Debian's busybox-static"
  node dist/deploy/images/busybox.js --out "$IMAGE_TAR" --name "$IMAGE"
fi
echo "==> preloading $IMAGE into every host's containerd"
"${LABCMD[@]}" load-image "$IMAGE_TAR"

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

demo=no
if "${SHOAL[@]}" service --help 2>/dev/null | grep -q 'Usage: shoal service'; then
  demo=yes
  if "${SHOAL[@]}" --socket "$H1" service inspect demo >/dev/null 2>&1; then
    echo "==> service demo exists already"
  else
    echo "==> service create demo: 6 replicas of $IMAGE"
    # Waits (with docker's progress display) until the 6 tasks run.
    timeout 180 "${SHOAL[@]}" --socket "$H1" service create --name demo --replicas 6 --init -- "$IMAGE" \
      sh -c 'while true; do echo "hello from $(hostname)"; sleep 5; done' \
      || echo "deploy/up.sh: warning: service demo did not converge; see 'service ps demo' below and the daemons' logs" >&2
  fi
  echo
  "${SHOAL[@]}" --socket "$H1" service ps demo || true
fi

C4="$(dirname "$(sock host4)")/containerd/containerd.sock"
echo
echo "The cluster is up: $HOSTS hosts in network namespaces $LAB-host1..$HOSTS, lab network $(lab_json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).subnet||''))")."
echo "Each host runs its own containerd (containerd namespace $LAB-<host>) with $IMAGE preloaded."
echo "Look around:"
echo "    export SHOAL_SOCKET=$H1"
echo "    deploy/shoal node ls"
echo "    deploy/shoal node inspect --pretty host4"
if [ "$demo" = yes ]; then
  echo "    deploy/shoal service ls"
  echo "    deploy/shoal service ps demo"
  echo "    deploy/shoal service logs demo"
  echo "    deploy/shoal service scale demo=10"
fi
echo "    ctr --address $C4 --namespace $LAB-host4 tasks ls      # what really runs on host4"
echo "    deploy/lab/shoal-lab --lab $LAB exec host4 ip -br addr  # a command inside host4"
echo "    deploy/lab/shoal-lab --lab $LAB status"
echo "    deploy/lab/shoal-lab --lab $LAB kill host1        # SIGKILL the first manager; ask another:"
echo "    deploy/shoal --socket $(sock host2) node ls"
echo "    deploy/lab/shoal-lab --lab $LAB start host1"
echo "Logs: /var/lib/shoal-lab/$LAB/<host>/daemon.log and containerd.log.  Tear down (as root): bash deploy/down.sh"
[ "$demo" = yes ] || echo "The service commands are not built yet (shoal service --help fails): no demo service runs."
