#!/usr/bin/env bash
# Snakemake cluster-generic status command: `status.sh JOBID` prints running, success or failed.
#
# A job that wrote its exit file is done (exit status 0: success). A job without one is running while its
# process lives, and failed once it is gone (killed, or the machine rebooted).
set -euo pipefail

record=$(realpath -m "${BRATSEG_CLUSTER_SPOOL:-.snakemake/cluster-generic}")/$1
[ -d "$record" ] || { echo "status.sh: no job $1 in ${record%/*}" >&2; exit 1; }
verdict() { if [ "$(cat "$record/exit")" = 0 ]; then echo success; else echo failed; fi; }
if [ -f "$record/exit" ]; then
    verdict
elif [ -f "$record/pid" ] && kill -0 "$(cat "$record/pid")" 2>/dev/null; then
    echo running
elif [ -f "$record/exit" ]; then  # it ended between the two checks: the exit file is written before that
    verdict
else
    echo failed
fi
