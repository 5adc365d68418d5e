#!/usr/bin/env bash
# The headless browser of the web demo's end-to-end test (tests/test_webapp_browser.py): Debian's
# Chromium, driven by the Playwright Python package with executable_path. Playwright's own
# browser download (`playwright install`) is never used. Idempotent: when $CHROMIUM (default
# /usr/bin/chromium) runs, it only says so; otherwise it installs Debian's package with apt-get.
#
#   bash tools/setup_browser.sh            # what `make test` runs before pytest
#   CHROMIUM=/opt/chromium/chrome bash tools/setup_browser.sh   # use another Chromium binary
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
say() { echo "[browser] $*"; }
die() { echo "[browser] ERROR: $*" >&2; exit 1; }

if [ -x "$CHROMIUM" ] && version=$("$CHROMIUM" --version 2>/dev/null); then
  say "$version ($CHROMIUM)"
  exit 0
fi
[ "$CHROMIUM" = /usr/bin/chromium ] \
  || die "CHROMIUM=$CHROMIUM does not run. Fix: point CHROMIUM at a Chromium binary, or unset it to install Debian's."
command -v apt-get >/dev/null \
  || die "no Chromium at $CHROMIUM and no apt-get. Fix: install Chromium with your package manager and set CHROMIUM=/path/to/chromium."
SUDO=()
if [ "$(id -u)" != 0 ]; then
  sudo -n true 2>/dev/null \
    || die "no Chromium at $CHROMIUM, and installing it needs root. Fix: run 'sudo apt-get install -y chromium' once."
  SUDO=(sudo -n)
fi
say "installing Debian's chromium package (apt-get)"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq || die "apt-get update failed. Fix: check the network access to the Debian mirror."
"${SUDO[@]}" apt-get install -y -qq chromium >/dev/null \
  || die "apt-get install chromium failed (on Ubuntu, chromium is a snap). Fix: install a Chromium binary and set CHROMIUM=/path/to/chromium."
version=$("$CHROMIUM" --version 2>/dev/null) || die "chromium was installed but $CHROMIUM does not run."
say "installed $version"
