#!/usr/bin/env bash
# The one command that installs everything the tests need on a fresh Debian
# machine and runs them all. CI (.ci/run) calls exactly this.
#   bash test/ci.sh            # everything, CI seed counts
#   SIM_SEEDS=2000 bash test/ci.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIM_SEEDS="${SIM_SEEDS:-500}"

step() { printf '\n==> %s\n' "$*"; }

# System packages the tests need: the lab (network namespaces, nftables) and
# the runtime system tests (containerd, runc, tini, busybox-static for the test
# image, docker-registry for pulls, htpasswd for one that wants a password), and
# systemd-analyze for the install test.
APT_PACKAGES="${APT_PACKAGES:-iproute2 nftables util-linux hostname containerd runc tini busybox-static docker-registry apache2-utils docker.io systemd}"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "ci.sh: installing$missing needs root (run it as root, or with sudo)" >&2; exit 1; fi
  step "apt-get install$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

command -v node >/dev/null || { echo "ci.sh: Node.js 20 or newer is required (apt-get install nodejs npm)" >&2; exit 1; }

step "npm ci"
npm ci --no-audit --no-fund

step "build (protobuf code generation + tsc)"
npm run build

step "lint (type-check + eslint)"
npm run lint

step "unit and integration tests (vitest)"
mkdir -p .tmp
set +e
npx vitest run --reporter=default --reporter=json --outputFile=.tmp/vitest.json
VITEST_RC=$?
set -e

step "raft simulation: $SIM_SEEDS seeds x 3 nodes, $SIM_SEEDS seeds x 5 nodes"
set +e
node dist/test/sim/raft/cli.js --seeds "$SIM_SEEDS" --nodes 3 | tee .tmp/sim3.txt
SIM3_RC=${PIPESTATUS[0]}
node dist/test/sim/raft/cli.js --seeds "$SIM_SEEDS" --nodes 5 | tee .tmp/sim5.txt
SIM5_RC=${PIPESTATUS[0]}
set -e

# One closing line that counts every test and every simulated seed.
node -e '
const fs = require("fs");
const v = JSON.parse(fs.readFileSync(".tmp/vitest.json", "utf8"));
let passed = v.numPassedTests, failed = v.numFailedTests;
for (const f of [".tmp/sim3.txt", ".tmp/sim5.txt"]) {
  const m = /^(\d+) passed, (\d+) failed$/m.exec(fs.readFileSync(f, "utf8"));
  if (m) { passed += Number(m[1]); failed += Number(m[2]); } else { failed += 1; }
}
console.log(`\nall: ${passed} passed, ${failed} failed`);
'
if [ "$VITEST_RC" -ne 0 ] || [ "$SIM3_RC" -ne 0 ] || [ "$SIM5_RC" -ne 0 ]; then exit 1; fi
