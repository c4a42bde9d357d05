#!/usr/bin/env bash
# Stop the SLURM test cluster started by tests/cluster/slurm-up.sh, in reverse order: slurmd,
# slurmctld, slurmdbd, mariadbd, munged. Each daemon is stopped by the pid in its pid file and
# waited for before the next one; daemons that are not running are skipped. Jobs still queued or
# running are cancelled first. Packages, configs and the accounting database stay (the next
# slurm-up.sh reuses them). Always exits 0 unless a daemon refuses to die.
set -uo pipefail

stop() {
    local name=$1 pidfile=$2 pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile" 2>/dev/null)
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 1 150); do   # up to 30 s, then SIGKILL
        kill -0 "$pid" 2>/dev/null || { echo "slurm-down: $name stopped"; rm -f "$pidfile"; return 0; }
        sleep 0.2
    done
    echo "slurm-down: $name (pid $pid) ignored SIGTERM for 30 s, killing it" >&2
    kill -9 "$pid" 2>/dev/null
    sleep 0.5
    rm -f "$pidfile"
}

if command -v scancel >/dev/null && scontrol ping 2>/dev/null | grep -q UP; then
    scancel --full --state=PENDING --quiet 2>/dev/null || true
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
fi
stop slurmd /run/slurm/slurmd.pid
stop slurmctld /run/slurm/slurmctld.pid
stop slurmdbd /run/slurm/slurmdbd.pid
stop mariadbd /run/mysqld/mysqld.pid
stop munged /run/munge/munged.pid
exit 0
