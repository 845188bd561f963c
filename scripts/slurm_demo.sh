#!/usr/bin/env bash
# Demonstration (not CI): the tiny workflow on a real single-node SLURM cluster on this machine, submitted by
# snakemake-executor-plugin-slurm through profiles/slurm, checked against a local run of the same workflow.
#
#   scripts/slurm_demo.sh                # as root on Debian/Ubuntu, from the repository, with its venv active
#
# 1. installs Debian's slurm-wlm (slurmctld, slurmd, the client commands) and munge with apt-get;
# 2. writes a slurm.conf for one node (this machine's CPUs and memory; controller and node on 127.0.0.1) and
#    starts munged, slurmctld and slurmd by hand (no systemd needed), then waits for the node to be idle;
# 3. copies the repository (its git files) to a scratch folder, applies the tiny profile, and runs
#    `snakemake --profile profiles/slurm` there: every per-case job an sbatch job, its step an srun;
# 4. prints sinfo, the SLURM jobs Snakemake submitted, their accounting from the job logs, and compares the
#    cached arrays with those of a local `snakemake --cores 2` run of the same copy;
# 5. stops the daemons it started (by pid) and leaves the packages installed.
#
# There is no slurmdbd here (no accounting database), so job states come from squeue
# (--slurm-status-command squeue) and there is no account to charge (--slurm-no-account).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SLURM_DEMO_DIR:-$(mktemp -d /tmp/bratseg-slurm-demo.XXXXXX)}
NODE=demo-node
say() { printf '\n== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "error: run as root (apt-get, the SLURM daemons)" >&2; exit 1; }
command -v snakemake >/dev/null || { echo "error: no snakemake on PATH: activate the venv (make setup)" >&2; exit 1; }
python -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || { echo "error: snakemake-executor-plugin-slurm is not installed (make setup)" >&2; exit 1; }

say "1. installing slurm-wlm and munge (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; }
fi
slurmctld -V

say "2. configuring a single-node cluster"
CPUS=$(nproc)
MEM_MB=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))  # leave 1 GiB to the system
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm /run/munge
chown slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
cat >/etc/slurm/slurm.conf <<EOF
# written by scripts/slurm_demo.sh: one node, controller and node on the loopback address
ClusterName=bratseg-demo
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=demo Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
cat /etc/slurm/slurm.conf

PIDS=()
stop() {
    say "5. stopping the daemons this script started"
    scancel --user="$(id -un)" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && echo "stopped pid $pid" || true; done
}
trap stop EXIT
runuser -u munge -- /usr/sbin/munged --force
PIDS+=("$(cat /run/munge/munged.pid)")
munge -n | unmunge | grep STATUS
slurmctld -c -i
slurmd -N "$NODE"
sleep 2
PIDS+=("$(cat /run/slurm/slurmctld.pid)" "$(cat /run/slurm/slurmd.pid)")
for _ in $(seq 60); do
    sinfo -h -N -o '%t' | grep -q -E '^idle' && break
    sleep 1
done
sinfo -N -l

say "3. the tiny workflow through profiles/slurm (in $WORK)"
make_copy() {  # the repository's git files, tiny profile applied, committed
    mkdir -p "$1"
    (cd "$REPO" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$1" 2>/dev/null || true)
    (cd "$1" && python workflow/scripts/apply_profile.py tests/profiles/tiny.yaml >/dev/null \
        && git init -q -b main && git add -A && git -c user.name=demo -c user.email=demo@example.org commit -qm tiny)
}
export PYTHONPATH=src  # each copy runs its own package sources
make_copy "$WORK/slurm"
make_copy "$WORK/local"
start=$(date +%s)
(cd "$WORK/slurm" && snakemake --profile profiles/slurm --slurm-no-account --slurm-status-command squeue \
    --slurm-keep-successful-logs --jobs "$CPUS" --seconds-between-status-checks 5 >"$WORK/slurm.log" 2>&1) \
    || { tail -50 "$WORK/slurm.log"; exit 1; }
echo "snakemake --profile profiles/slurm: done in $(($(date +%s) - start)) s (log: $WORK/slurm.log)"

say "4. what happened"
grep -E "has been submitted with SLURM jobid|Job .* has been submitted" "$WORK/slurm.log" | head -40
echo "SLURM jobs submitted: $(grep -c -E 'SLURM jobid' "$WORK/slurm.log")"
echo "per-job SLURM logs (logs/slurm):"
find "$WORK/slurm/logs/slurm" -name '*.log' | sed "s|$WORK/slurm/||" | sort | head -40
squeue -t all -o '%.8i %.24j %.10T %.6C %.8m %.10M %N' 2>/dev/null | head -40 || true
(cd "$WORK/local" && snakemake --cores 2 --quiet rules >"$WORK/local.log" 2>&1)
different=0
while IFS= read -r f; do
    cmp -s "$WORK/local/$f" "$WORK/slurm/$f" || { echo "DIFFERENT: $f"; different=1; }
done < <(cd "$WORK/local" && find data/raw/synthetic data/preprocessed -type f ! -name .gitignore | sort)
n=$(cd "$WORK/local" && find data/raw/synthetic data/preprocessed -type f ! -name .gitignore | wc -l)
if [ "$different" = 0 ]; then
    echo "all $n raw, cached and manifest files byte-identical to the local run"
else
    exit 1
fi
