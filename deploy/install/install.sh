#!/usr/bin/env bash
# Installs shoal on a Debian host from this checkout: the built program with
# its production dependencies in PREFIX, `shoal` and `shoald` commands in
# BIN_DIR, and shoald.service for systemd, enabled and started when systemd
# runs (then: `shoal swarm init` on the first manager, `shoal swarm join` on
# the others). A rerun replaces the program and keeps the node's state.
#   bash deploy/install/install.sh [--prefix /opt/shoal] [--bin-dir /usr/local/bin]
#        [--unit-dir /etc/systemd/system] [--state-dir /var/lib/shoal] [--no-start] [--no-packages] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRIPT=install.sh
. deploy/install/options.sh
START=1
PACKAGES=1
BUILD=1
usage() { sed -n '2,9p' deploy/install/install.sh | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  if dir_option "$1" "${2:-}"; then shift 2; continue; fi
  case "$1" in
    --no-start) START=0; shift ;;
    --no-packages) PACKAGES=0; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done
check_dirs_and_root

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
[ "$node_major" -ge 20 ] || { echo "install.sh: Node.js 20 or later is required (found: $(node --version 2>/dev/null || echo none))" >&2; exit 1; }

if [ "$PACKAGES" = 1 ]; then
  need=""
  for cmd in containerd:containerd containerd-shim-runc-v2:containerd runc:runc; do
    command -v "${cmd%%:*}" >/dev/null || need="$need ${cmd##*:}"
  done
  [ -x /usr/bin/tini-static ] || need="$need tini"
  if [ -n "$need" ]; then
    echo "==> installing$need"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
  fi
fi

[ -d node_modules ] || { echo "==> npm ci"; npm ci --no-audit --no-fund; }
if [ "$BUILD" = 1 ]; then
  echo "==> build"
  npm run -s build
fi
[ -f dist/cli/shoald/main.js ] && [ -f dist/cli/shoal/main.js ] || { echo "install.sh: no build in dist/ (run without --no-build)" >&2; exit 1; }

# Staged beside PREFIX, then swapped in by renames: a failure halfway leaves the old install whole
# (or, killed between the two renames, the new one staged: the next run starts over). What an
# interrupted run left beside PREFIX goes first.
stage="$(dirname "$PREFIX")/.$(basename "$PREFIX").new.$$"
rm -rf "$(dirname "$PREFIX")/.$(basename "$PREFIX").new."*
trap 'rm -rf "$stage"' EXIT
echo "==> $PREFIX"
mkdir -p "$stage/dist"
cp -a package.json package-lock.json README.md "$stage/"
for d in dist/*; do [ "$d" = dist/test ] || cp -a "$d" "$stage/dist/"; done
cp -a node_modules "$stage/"
(cd "$stage" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null && find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete)
if [ -e "$PREFIX" ]; then
  mv "$PREFIX" "$stage.old"
  mv "$stage" "$PREFIX"
  rm -rf "$stage.old"
else
  mv "$stage" "$PREFIX"
fi

echo "==> $BIN_DIR/shoal, $BIN_DIR/shoald"
mkdir -p "$BIN_DIR"
# `node --` ends node's own options: Node 20 would take a `--env-file` meant for shoal as its own.
# A 1 MiB young generation keeps an idle shoald ~8 MiB smaller.
# The CLI finds this node's shoald through the state directory's socket unless told otherwise.
# The node this install was checked with, by its path: a service's PATH may not lead to it.
NODE_BIN="$(command -v node)"
write_launcher() { # name, what goes before node, node options, program
  local tmp="$BIN_DIR/.$1.$$"
  printf '#!/bin/sh\nexec %s%s %s-- %s "$@"\n' "$2" "$NODE_BIN" "$3" "$4" > "$tmp"
  chmod 755 "$tmp"
  mv "$tmp" "$BIN_DIR/$1"
}
write_launcher shoal "env SHOAL_SOCKET=\"\${SHOAL_SOCKET:-$STATE_DIR/shoald.sock}\" " "" "$PREFIX/dist/cli/shoal/main.js"
write_launcher shoald "" "--max-semi-space-size=1 " "$PREFIX/dist/cli/shoald/main.js"

echo "==> $UNIT_DIR/shoald.service"
mkdir -p "$UNIT_DIR" "$STATE_DIR"
chmod 700 "$STATE_DIR"
sed -e "s#@BIN_DIR@#$BIN_DIR#g" -e "s#@STATE_DIR@#$STATE_DIR#g" -e "s#@PREFIX@#$PREFIX#g" deploy/install/shoald.service > "$UNIT_DIR/.shoald.service.$$"
mv "$UNIT_DIR/.shoald.service.$$" "$UNIT_DIR/shoald.service"

if [ "$START" = 1 ] && [ -d /run/systemd/system ]; then
  echo "==> systemctl enable --now containerd shoald"
  systemctl daemon-reload
  systemctl enable --now containerd.service
  systemctl enable shoald.service
  # A rerun puts the new program to work; the containers run on meanwhile.
  systemctl restart shoald.service
  echo "shoald runs. Next: shoal swarm init (first manager) or shoal swarm join --token ... (the others)."
elif [ "$START" = 1 ]; then
  echo "systemd is not running here: start shoald yourself ($BIN_DIR/shoald --state-dir $STATE_DIR)."
fi
