#!/usr/bin/env bash
# Installs code-server 4.100.3 (the newest release whose engine is Node 20) into
# test/editors/code-server/node_modules for the real-editor tests. Idempotent: a
# second run with a working install does nothing.
#
# Why each step (measured on Debian 12 with only npm and apt reachable):
# - local install, not `npm install -g`: under npm 11 the postinstall's nested npm
#   inherits global mode and fails with "Cannot cd into .../ieee754";
# - @vscode/ripgrep downloads rg from GitHub in its postinstall: pre-seed its cache
#   with Debian's /usr/bin/rg (apt `ripgrep`);
# - node-pty's postinstall runs `npx node-gyp`, which asks for confirmation:
#   npm_config_yes=true;
# - kerberos builds from source and needs libkrb5-dev + pkg-config (apt).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VERSION=4.100.3
BIN="$HERE/node_modules/code-server/out/node/entry.js"

if [ -f "$BIN" ] && node -e "process.exit(require('$HERE/node_modules/code-server/package.json').version==='$VERSION'?0:1)" 2>/dev/null; then
  echo "code-server $VERSION already installed in $HERE/node_modules"
  exit 0
fi

missing=()
command -v rg >/dev/null || missing+=(ripgrep)
[ -f /usr/include/gssapi/gssapi.h ] || missing+=(libkrb5-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v g++ >/dev/null || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: missing system packages: ${missing[*]}" >&2
  echo "install them with: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 2
fi

TMP="$HERE/.cache/tmp"
RG_CACHE="$TMP/vscode-ripgrep-cache-1.15.11"
mkdir -p "$RG_CACHE" "$TMP/rgpkg"
cp "$(command -v rg)" "$TMP/rgpkg/rg"
# The asset name @vscode/ripgrep 1.15.11 looks for on x86_64 Linux.
tar czf "$RG_CACHE/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$TMP/rgpkg" rg

cd "$HERE"
TMPDIR="$TMP" npm_config_yes=true npm install --no-save --no-audit --no-fund --unsafe-perm --foreground-scripts \
  "code-server@$VERSION"
test -f "$BIN" || { echo "install.sh: code-server installed but $BIN is missing" >&2; exit 1; }
echo "code-server $VERSION installed in $HERE/node_modules"
