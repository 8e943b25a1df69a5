#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine for the influence test (tests/Headwise.Tests.Acceptance/SlurmInfluenceTests.cs):
# munged with a generated key, then slurmctld + slurmd from a minimal slurm.conf whose state, spool, pid and log files live
# under STATE_DIR (default /tmp/headwise-slurm). Needs root and Debian's slurm-wlm + munge (installed here when apt-get can).
# Prints the line `SLURM_CONF=STATE_DIR/slurm.conf`: export it for sbatch/squeue/scontrol. Stop with dev/slurm/stop-one-node.sh.
set -euo pipefail
state=${1:-/tmp/headwise-slurm}
[ "$(id -u)" = 0 ] || { echo "start-one-node: needs root (slurmd runs jobs as root here)" >&2; exit 3; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "start-one-node: slurm-wlm/munge are missing and there is no apt-get" >&2; exit 3; }
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; } \
    || { echo "start-one-node: apt-get install slurm-wlm munge failed" >&2; exit 3; }
fi

# munge: one key, one daemon (kept if already running: it serves every Slurm on the machine)
if [ ! -f /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge && chown munge:munge /run/munge
if ! munge -n >/dev/null 2>&1; then
  su -s /bin/sh munge -c /usr/sbin/munged
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
fi

host=$(hostname)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
rm -rf "$state" && mkdir -p "$state/state" "$state/spool"
cat > "$state/slurm.conf" <<CONF
ClusterName=headwise
SlurmctldHost=$host
AuthType=auth/munge
# a requeued job waits cred_expire seconds before it starts again (default 120): the test requeues one
AuthInfo=cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$state/state
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/ctld.log
SlurmdLogFile=$state/d.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$state/slurm.conf
/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 100); do
  sinfo -h -o %t 2>/dev/null | grep -qE '^idle' && { echo "SLURM_CONF=$SLURM_CONF"; exit 0; }
  sleep 0.2
done
echo "start-one-node: the node did not come up idle (see $state/ctld.log, $state/d.log)" >&2
exit 4
