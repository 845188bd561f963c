#!/usr/bin/env bash
# Make sure rsync is available: the fs storage plugin (snakemake-storage-plugin-fs) copies files with it, and
# the no-shared-filesystem test (tests/e2e/test_cluster.py) runs it.
#
# Nothing to do when rsync is found. Otherwise, as root on Debian/Ubuntu (as CI runs), Debian's rsync package is
# installed with apt-get; elsewhere it says how to install it (the test then fails, naming this script).
set -euo pipefail

command -v rsync >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's rsync for the fs storage plugin (apt-get)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -qq --no-install-recommends rsync >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends rsync >/dev/null 2>&1; }; then
        exit 0
    fi
    echo "error: apt-get could not install rsync" >&2
else
    echo "error: no rsync found (apt-get install rsync, or your system's package)" >&2
fi
exit 1
