#!/usr/bin/env bash
# Make sure a headless Chromium is available for the browser tests (tests/evaluation/test_browser.py).
#
# Nothing to do when one is found (CHROMIUM, chromium, chromium-browser, google-chrome). Otherwise, when
# running as root on Debian/Ubuntu (as CI does), Debian's `chromium` package is installed with apt-get.
# Elsewhere it only says how to install one: the browser tests are then skipped with that reason.
set -euo pipefail

for name in "${CHROMIUM:-}" chromium chromium-browser google-chrome google-chrome-stable; do
    if [ -n "$name" ] && command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests (apt-get)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; then
        exit 0
    fi
    echo "warning: apt-get could not install chromium; the browser tests will be skipped" >&2
else
    echo "note: no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/it);" \
        "the browser tests will be skipped" >&2
fi
