#!/usr/bin/env bash
# Removes what install.sh installed: the service (stopped and disabled when
# systemd runs), the `shoal` and `shoald` commands and PREFIX. The node's
# state (STATE_DIR: its identity, certificates and, on a manager, the swarm's
# raft log) stays unless --purge: leave the swarm first (`shoal swarm leave`).
# Containers shoald started are containerd's and keep running.
#   bash deploy/install/uninstall.sh [--prefix /opt/shoal] [--bin-dir /usr/local/bin]
#        [--unit-dir /etc/systemd/system] [--state-dir /var/lib/shoal] [--purge]
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRIPT=uninstall.sh
. deploy/install/options.sh
PURGE=0
usage() { sed -n '2,8p' deploy/install/uninstall.sh | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  if dir_option "$1" "${2:-}"; then shift 2; continue; fi
  case "$1" in
    --purge) PURGE=1; shift ;;
    -h|--help) usage ;;
    *) echo "uninstall.sh: unknown option $1" >&2; usage ;;
  esac
done
check_dirs_and_root

if [ -d /run/systemd/system ] && [ -e "$UNIT_DIR/shoald.service" ]; then
  systemctl disable --now shoald.service || true
fi
rm -f "$UNIT_DIR/shoald.service" "$BIN_DIR/shoal" "$BIN_DIR/shoald"
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
# Only a directory install.sh made (it holds the program's own package.json).
if [ -e "$PREFIX" ]; then
  grep -q '"name": "shoal"' "$PREFIX/package.json" 2>/dev/null || { echo "uninstall.sh: $PREFIX does not look like a shoal install; left alone" >&2; exit 1; }
  rm -rf "$PREFIX"
fi
if [ "$PURGE" = 1 ]; then
  rm -rf "$STATE_DIR"
  echo "removed shoal and its state ($STATE_DIR)"
else
  echo "removed shoal; its state stays in $STATE_DIR (--purge removes it)"
fi
