#!/usr/bin/env bash
# Tear down the cluster deploy/up.sh made: every host's shoald, then its
# containerd, then what containerd leaves running (the containers, killed and
# deleted with runc; their shims; the rootfs mounts), then namespaces, links
# and all state. Anything else still inside a host's namespace is killed too.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "deploy/down.sh: needs root: run it as root, or with sudo" >&2; exit 1; }
node dist/deploy/lab/cli.js --lab "${SHOAL_LAB:-shoal}" down --purge --kill-stragglers
