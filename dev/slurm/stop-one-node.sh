#!/usr/bin/env bash
# Stops the slurmctld and slurmd that dev/slurm/start-one-node.sh started (by the pids in their pid files); munged stays.
state=${1:-/tmp/headwise-slurm}
for f in "$state/slurmd.pid" "$state/slurmctld.pid"; do
  [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
done
exit 0
