#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, with accounting (sacct): munged, mariadb, slurmdbd, slurmctld, slurmd.
#   scripts/slurm-local.sh up     # installs slurm-wlm, slurmdbd, munge, mariadb-server once (apt, root), starts it
#   scripts/slurm-local.sh down   # stops every daemon it started (by pid file)
#   scripts/slurm-local.sh status # sinfo
# Partition `local` holds this machine's cores (no GPU). Needs root (apt, daemons); no systemd needed.
# Config and state live under $SLURM_LOCAL_DIR (default /var/lib/liver-mm-slurm); logs in its log/ folder.
# Every daemon listens on loopback only: mariadb on 127.0.0.1 (--bind-address); slurmctld, slurmd and slurmdbd on
# the address this machine's hostname resolves to (CommunicationParameters=NoCtldInAddrAny,NoInAddrAny), where that
# is a loopback address; where it is not, the script says so and the SLURM daemons listen on every interface.
set -euo pipefail
D=${SLURM_LOCAL_DIR:-/var/lib/liver-mm-slurm}
CLUSTER=liver-mm-local
HOST=$(hostname -s)
export SLURM_CONF=/etc/slurm/slurm.conf

die() { echo "slurm-local: $*" >&2; exit 1; }

install() {
  local need=()
  command -v slurmctld >/dev/null || need+=(slurm-wlm)
  command -v slurmdbd >/dev/null || need+=(slurmdbd)
  command -v munged >/dev/null || need+=(munge)
  command -v mariadbd >/dev/null || need+=(mariadb-server)
  [ ${#need[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "installing ${need[*]} needs root (apt-get)"
  echo "slurm-local: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } \
    || die "apt-get install ${need[*]} failed"
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS WHAT CMD...
  local n=$1 what=$2; shift 2
  for _ in $(seq $((n * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up (logs: $D/log)"
}

# only a config this script wrote (its first line) is replaced: a machine's own SLURM config is never touched
ours_or_absent() {
  [ ! -e "$1" ] || head -n 1 "$1" | grep -q "^# written by liver-mm scripts/slurm-local.sh" ||
    die "$1 exists and was not written by this script: a SLURM installation of this machine's own; not replacing it"
}

# true where this machine's hostname resolves to a loopback address (what NoInAddrAny binds), then ADDR is that
# address (Debian maps it to 127.0.1.1); else a warning, and the daemons are reached at 127.0.0.1
ADDR=127.0.0.1
loopback_host() {
  local addr
  addr=$(getent ahostsv4 "$HOST" | awk 'NR == 1 {print $1}')
  case "$addr" in
    127.*) ADDR=$addr; return 0 ;;
    *) echo "slurm-local: warning: hostname $HOST resolves to ${addr:-nothing}, not 127.x: slurmctld, slurmd and" \
         "slurmdbd listen on every interface (ports 6817-6819; munge authenticates each message). Map $HOST to" \
         "127.0.1.1 in /etc/hosts to keep them on loopback." >&2; return 1 ;;
  esac
}

write_conf() {
  local cpus mem ctld_params="" dbd_params=""
  if loopback_host; then
    ctld_params="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
    dbd_params="CommunicationParameters=NoInAddrAny"
  fi
  ours_or_absent /etc/slurm/slurm.conf
  ours_or_absent /etc/slurm/slurmdbd.conf
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p /etc/slurm "$D"/{ctld,d,log,run,mysql}
  cat > /etc/slurm/slurm.conf <<CONF
# written by liver-mm scripts/slurm-local.sh: a one-node cluster on $HOST
ClusterName=$CLUSTER
SlurmctldHost=$HOST($ADDR)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$D/ctld
SlurmdSpoolDir=$D/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# scancel: SIGTERM (submitit's jobs ignore it, waiting for a requeue), SIGKILL 2 s later
KillWait=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$ADDR
$ctld_params
JobAcctGatherType=jobacct_gather/none
NodeName=$HOST NodeAddr=$ADDR CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  cat > /etc/slurm/slurmdbd.conf <<CONF
# written by liver-mm scripts/slurm-local.sh: the accounting daemon of the one-node cluster
AuthType=auth/munge
DbdAddr=$ADDR
DbdHost=$HOST
$dbd_params
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=0
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
}

up() {
  install
  write_conf
  # munge: a key once, the daemon as user munge
  [ -s /etc/munge/munge.key ] || mungekey --create --force >/dev/null 2>&1 || mungekey -c
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged sh -c 'munge -n | unmunge'
  # mariadb for slurmdbd (accounting: sacct), on a unix socket and 127.0.0.1 only
  if ! alive "$D/run/mysqld.pid"; then
    [ -d "$D/mysql/mysql" ] || mariadb-install-db --user=root --datadir="$D/mysql" --auth-root-authentication-method=socket >/dev/null
    mkdir -p /run/mysqld
    (mariadbd --user=root --datadir="$D/mysql" --bind-address=127.0.0.1 --socket=/run/mysqld/mysqld.sock \
      --pid-file="$D/run/mysqld.pid" --log-error="$D/log/mysqld.log" >/dev/null 2>&1 &)
  fi
  wait_for 30 mariadb mariadb-admin --socket=/run/mysqld/mysqld.sock ping
  alive "$D/run/slurmdbd.pid" || slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
  alive "$D/run/slurmctld.pid" || slurmctld
  wait_for 30 slurmctld scontrol ping
  alive "$D/run/slurmd.pid" || slurmd
  wait_for 30 "slurmd (node $HOST idle)" sh -c "sinfo -h -N -o %T | grep -q idle"
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  sinfo
}

stop_pid() {  # stop_pid PIDFILE NAME
  alive "$1" || return 0
  local pid; pid=$(cat "$1")
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

down() {
  stop_pid "$D/run/slurmd.pid" slurmd
  stop_pid "$D/run/slurmctld.pid" slurmctld
  stop_pid "$D/run/slurmdbd.pid" slurmdbd
  stop_pid "$D/run/mysqld.pid" mariadbd
  if [ -s /run/munge/munged.pid ]; then stop_pid /run/munge/munged.pid munged; fi
  echo "slurm-local: stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  install) install ;;
  status) sinfo ;;
  *) die "usage: $0 up|down|install|status" ;;
esac
