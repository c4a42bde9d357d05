#!/usr/bin/env bash
# Bring up a one-node SLURM test cluster on this machine (Debian, root, no systemd needed):
# munge, MariaDB, slurmdbd (accounting: the executor plugin reads job states with sacct and checks
# the account with sacctmgr), slurmctld and slurmd, all bound to 127.0.0.1. The node is named after
# this host, with the cores and memory `slurmd -C` reports. Idempotent: daemons already running are
# left alone, configs are rewritten, cluster/account/user are added only if missing.
#
#   sudo tests/cluster/slurm-up.sh         # ~15 s cold (apt included), ~1 s when already up
#   tests/cluster/slurm-down.sh            # stops everything again
#
# Exit status: 0 the node is idle and sacct answers; 2 the daemons cannot be installed here (not
# root, no apt-get, package install failed: tests skip); 1 a daemon failed to start (its log's
# tail is printed).
set -euo pipefail

CLUSTER=${SLURM_TEST_CLUSTER:-testcluster}
ACCOUNT=${SLURM_TEST_ACCOUNT:-testacct}
PARTITION=${SLURM_TEST_PARTITION:-main}
USERS=${SLURM_TEST_USERS:-$(id -un)}
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
LOGDIR=/var/log/slurm
ETC=/etc/slurm
T0=${EPOCHREALTIME/./}

say() { local us=$(( ${EPOCHREALTIME/./} - T0 )); printf '[slurm-up %d.%01ds] %s\n' $((us / 1000000)) $((us / 100000 % 10)) "$*"; }
cannot_install() { echo "slurm-up: cannot install the SLURM test cluster here: $*" >&2; exit 2; }
fail() {
    local what=$1 log=$2
    echo "slurm-up: $what failed to start" >&2
    if [[ -n $log && -f $log ]]; then
        echo "---- last lines of $log ----" >&2
        tail -n 30 "$log" >&2
        echo "----" >&2
    fi
    exit 1
}
alive() { [[ -f $1 ]] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }
# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds
wait_for() {
    local limit=$1; shift
    local end=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        (( $(date +%s) < end )) || return 1
        sleep 0.2
    done
}

# ---- 1. packages ------------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || cannot_install "needs root (apt-get install and daemons), running as $(id -un)"
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || cannot_install "no apt-get (Debian/Ubuntu only); missing: ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; } \
        >/tmp/slurm-up-apt.log 2>&1; then
        tail -n 20 /tmp/slurm-up-apt.log >&2
        cannot_install "apt-get install ${PACKAGES[*]} failed (log: /tmp/slurm-up-apt.log)"
    fi
fi

HOST=$(hostname -s)
mkdir -p /run/munge /run/mysqld /run/slurm "$LOGDIR" /var/spool/slurmctld /var/spool/slurmd "$ETC"
chown munge:munge /run/munge && chmod 755 /run/munge
chown mysql:mysql /run/mysqld
chown slurm:slurm /run/slurm "$LOGDIR" /var/spool/slurmctld
chown root:root /var/spool/slurmd

# ---- 2. munge -----------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    (umask 077 && dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none)
    chown munge:munge /etc/munge/munge.key
fi
if ! alive /run/munge/munged.pid; then
    runuser -u munge -- /usr/sbin/munged --force || fail munged /var/log/munge/munged.log
fi
wait_for 10 bash -c 'munge -n | unmunge' || fail "munge (munge -n | unmunge)" /var/log/munge/munged.log
say "munged up"

# ---- 3. MariaDB and the accounting database --------------------------------------------------
if ! mariadb-admin ping >/dev/null 2>&1; then
    mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
        >"$LOGDIR/mariadbd.log" 2>&1 &
    disown
    wait_for 30 mariadb-admin ping || fail mariadbd "$LOGDIR/mariadbd.log"
fi
# a fresh password on every setup; the database only listens on 127.0.0.1
DBPASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
mariadb <<SQL || fail "creating the accounting database (mariadb)" "$LOGDIR/mariadbd.log"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
say "mariadb up"

# ---- 4. configs ---------------------------------------------------------------------------------
NODE_LINE=$(slurmd -C | head -n 1)   # NodeName=<host> CPUs=... RealMemory=... (the real hardware)
[[ $NODE_LINE == NodeName=* ]] || fail "slurmd -C (got: $NODE_LINE)" ""

umask 022
cat >"$ETC/slurmdbd.conf.new" <<EOF
# written by tests/cluster/slurm-up.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DBPASS
PidFile=/run/slurm/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
CommunicationParameters=NoInAddrAny
EOF
install -o slurm -g slurm -m 600 "$ETC/slurmdbd.conf.new" "$ETC/slurmdbd.conf"
rm -f "$ETC/slurmdbd.conf.new"

cat >"$ETC/slurm.conf.new" <<EOF
# written by tests/cluster/slurm-up.sh: one node, localhost only, no cgroups
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
# cgroup plugins fail in containers/VMs without a writable cgroup tree: limits are scheduling numbers only
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# reject unknown accounts at sbatch, as production clusters do; keep --comment (the plugin puts
# the rule name there) in sacct
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# a changed slurm.conf needs the running daemons restarted
CONF_CHANGED=0
if ! cmp -s "$ETC/slurm.conf.new" "$ETC/slurm.conf"; then
    mv "$ETC/slurm.conf.new" "$ETC/slurm.conf"
    CONF_CHANGED=1
else
    rm -f "$ETC/slurm.conf.new"
fi
say "configs written ($NODE_LINE)"

# ---- 5. slurmdbd and the accounting entities ------------------------------------------------------
# slurmdbd re-reads its password only at start: restart it if it runs (it is cheap)
if alive /run/slurm/slurmdbd.pid; then
    pid=$(cat /run/slurm/slurmdbd.pid); kill "$pid"
    wait_for 30 bash -c "! kill -0 $pid" || fail "stopping the old slurmdbd" "$LOGDIR/slurmdbd.log"
fi
/usr/sbin/slurmdbd || fail slurmdbd "$LOGDIR/slurmdbd.log"
wait_for 30 sacctmgr -n show cluster || fail "slurmdbd (sacctmgr show cluster)" "$LOGDIR/slurmdbd.log"
say "slurmdbd up"

# sacctmgr -i add exits non-zero when nothing is new: check first
if [[ -z $(sacctmgr -n -P show cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr add cluster $CLUSTER" "$LOGDIR/slurmdbd.log"
fi
if [[ -z $(sacctmgr -n -P show account "$ACCOUNT" format=account) ]]; then
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=test Organization=test >/dev/null ||
        fail "sacctmgr add account $ACCOUNT" "$LOGDIR/slurmdbd.log"
fi
for u in $USERS; do
    if [[ -z $(sacctmgr -n -P show assoc where user="$u" account="$ACCOUNT" format=user) ]]; then
        sacctmgr -i add user "$u" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null ||
            fail "sacctmgr add user $u" "$LOGDIR/slurmdbd.log"
    fi
done
say "cluster $CLUSTER, account $ACCOUNT, users $USERS registered"

# ---- 6. slurmctld, slurmd -----------------------------------------------------------------------
stop_daemon() {
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null || return 0
    wait_for 30 bash -c "! kill -0 $pid" || fail "stopping $2 (pid $pid)" "$LOGDIR/$2.log"
}
if ((CONF_CHANGED)); then
    alive /run/slurm/slurmd.pid && stop_daemon /run/slurm/slurmd.pid slurmd
    alive /run/slurm/slurmctld.pid && stop_daemon /run/slurm/slurmctld.pid slurmctld
fi
if ! alive /run/slurm/slurmctld.pid; then
    /usr/sbin/slurmctld || fail slurmctld "$LOGDIR/slurmctld.log"
    wait_for 10 alive /run/slurm/slurmctld.pid || fail "slurmctld (no pid file)" "$LOGDIR/slurmctld.log"
fi
# poll until ready, or stop early when the daemon has died (its log then says why)
ctld_ready() { scontrol ping 2>/dev/null | grep -q UP || ! alive /run/slurm/slurmctld.pid; }
wait_for 30 ctld_ready && alive /run/slurm/slurmctld.pid || fail "slurmctld (scontrol ping)" "$LOGDIR/slurmctld.log"
if ! alive /run/slurm/slurmd.pid; then
    /usr/sbin/slurmd || fail slurmd "$LOGDIR/slurmd.log"
    wait_for 10 alive /run/slurm/slurmd.pid || fail "slurmd (no pid file)" "$LOGDIR/slurmd.log"
fi
node_ready() { [[ $(sinfo -h -n "$HOST" -o %T) =~ ^(idle|mixed|allocated)$ ]] || ! alive /run/slurm/slurmd.pid; }
if ! wait_for 60 node_ready || ! alive /run/slurm/slurmd.pid; then
    echo "sinfo: $(sinfo -h -n "$HOST" -o '%T %E' 2>&1)" >&2
    fail "slurmd (node $HOST never became idle)" "$LOGDIR/slurmd.log"
fi
sacct -n -X >/dev/null || fail "accounting (sacct)" "$LOGDIR/slurmdbd.log"
say "node $HOST $(sinfo -h -n "$HOST" -o %T), partition $PARTITION, SLURM $(sinfo -V | awk '{print $2}')"
