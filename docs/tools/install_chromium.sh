#!/usr/bin/env bash
# Install Debian's chromium for the documentation's browser test (tests/test_docs_site.py),
# if it is missing. Prints the browser's path on success; exits non-zero (with the reason
# on stderr) where it cannot be installed: not Debian/apt, not root, no package index.
set -euo pipefail
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no apt-get here (not Debian/Ubuntu); install Chromium yourself" >&2
    exit 2
fi
if [[ "$(id -u)" != 0 ]]; then
    echo "install_chromium: needs root for apt-get (run: sudo apt-get install -y chromium)" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null >&2
apt-get install -y -qq chromium </dev/null >&2
command -v chromium
