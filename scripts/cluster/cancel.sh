#!/usr/bin/env bash
# Snakemake cluster-generic cancel command: `cancel.sh JOBID...` ends each job's whole process group
# (the job is its session's leader, so its pid is the group id), as scancel does.
set -uo pipefail

spool=$(realpath -m "${BRATSEG_CLUSTER_SPOOL:-.snakemake/cluster-generic}")
for id in "$@"; do
    pid=$(cat "$spool/$id/pid" 2>/dev/null) || continue
    kill -TERM -- "-$pid" 2>/dev/null || true
done
