#!/usr/bin/env bash
# Tear down the cluster deploy/up.sh made: daemons, namespaces, links, state.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "deploy/down.sh: needs root: run with sudo" >&2; exit 1; }
node dist/deploy/lab/cli.js --lab "${SHOAL_LAB:-shoal}" down --purge
