#!/usr/bin/env bash
# Snakemake cluster-generic submit command: start one job script as its own detached process.
#
#   snakemake --profile profiles/cluster-generic        (uses submit.sh, status.sh and cancel.sh)
#   submit.sh [--fresh-workdir] JOBSCRIPT               (prints the job id)
#
# Each job gets a record folder $BRATSEG_CLUSTER_SPOOL/<id>/ (default .snakemake/cluster-generic/ under the
# directory Snakemake runs in): job.sh (a copy of the job script, as a batch system keeps one), pid, proc
# (pid ppid pgid sid of the job's shell, written from inside it), out.log (its stdout and stderr) and, once it
# ends, exit (its exit status). The job runs in a new session (setsid) with no terminal and no link to
# Snakemake's process: it survives Snakemake and is ended only through cancel.sh, like a batch job.
#
# --fresh-workdir runs the job in a new empty folder instead of the submitting directory (removed when the job
# ends): with `--shared-fs-usage none` and a default storage provider the job then sees nothing but the
# workflow sources Snakemake deploys and the files its rule declares.
set -euo pipefail

fresh=0
if [ "${1:-}" = "--fresh-workdir" ]; then
    fresh=1
    shift
fi
[ $# -eq 1 ] || { echo "usage: submit.sh [--fresh-workdir] JOBSCRIPT" >&2; exit 2; }
jobscript=$(realpath "$1")
spool=$(realpath -m "${BRATSEG_CLUSTER_SPOOL:-.snakemake/cluster-generic}")
mkdir -p "$spool"
record=$(mktemp -d "$spool/job.XXXXXXXX")
id=${record##*/}
cp "$jobscript" "$record/job.sh"
if [ "$fresh" = 1 ]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/bratseg-job.XXXXXXXX")
else
    workdir=$PWD
fi
echo "$workdir" >"$record/workdir"

# The detached job: record who it is, run the job script, keep its exit status (written atomically).
setsid nohup bash -c '
    record=$1 workdir=$2 fresh=$3
    read -r pid _ _ ppid pgid sid _ </proc/$$/stat
    echo "$pid $ppid $pgid $sid" >"$record/proc"
    cd "$workdir"
    rc=0
    bash "$record/job.sh" || rc=$?
    [ "$fresh" = 1 ] && rm -rf "$workdir"
    echo "$rc" >"$record/exit.tmp" && mv "$record/exit.tmp" "$record/exit"
' bratseg-job "$record" "$workdir" "$fresh" </dev/null >"$record/out.log" 2>&1 &
echo "$!" >"$record/pid"
echo "$id"
