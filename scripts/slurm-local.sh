#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, with accounting (sacct): munged, mariadb, slurmdbd, slurmctld, slurmd.
#   scripts/slurm-local.sh up     # installs slurm-wlm, slurmdbd, munge, mariadb-server once (apt, root), starts it
#   scripts/slurm-local.sh down   # stops the daemons that `up` started (recorded in $SLURM_LOCAL_DIR/run/started):
#                                 # one that was running before `up` (a machine's own munged) is left running
#   scripts/slurm-local.sh status # sinfo
# Partition `local` holds this machine's cores (no GPU). Needs root (apt, daemons); no systemd needed.
# Config and state live under $SLURM_LOCAL_DIR (default /var/lib/liver-mm-slurm); logs in its log/ folder.
# Every daemon listens on loopback only: mariadb on 127.0.0.1 (--bind-address); slurmctld, slurmd and slurmdbd on
# the address the node name resolves to (CommunicationParameters=NoCtldInAddrAny,NoInAddrAny). The node name is
# this machine's short hostname, or SLURM_LOCAL_HOST (e.g. localhost). Where it resolves beyond loopback the script
# refuses (the daemons would listen on every interface) unless SLURM_LOCAL_ALLOW_WIDE=1.
# The daemons run as the Debian packages run them: munged as munge, mariadbd as mysql, slurmctld and slurmdbd as
# slurm (SlurmUser; slurmdbd reaches mariadb as the database user slurm by unix-socket authentication); slurmd as
# root (it starts each job as the user who submitted it).
set -euo pipefail
D=${SLURM_LOCAL_DIR:-/var/lib/liver-mm-slurm}
CLUSTER=liver-mm-local
HOST=${SLURM_LOCAL_HOST:-$(hostname -s)}
STATE=$D/run/started
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

# the address the node name resolves to (ADDR), where it is a loopback address (what NoInAddrAny binds; Debian maps
# the hostname to 127.0.1.1); beyond loopback: refused unless SLURM_LOCAL_ALLOW_WIDE=1 (then every interface)
ADDR=127.0.0.1
loopback_host() {
  local addr
  addr=$(getent ahostsv4 "$HOST" | awk 'NR == 1 {print $1}')
  case "$addr" in
    127.*) ADDR=$addr; return 0 ;;
  esac
  local why="the node name $HOST resolves to ${addr:-nothing}, not a loopback address: slurmctld, slurmd and
slurmdbd would listen on every interface (ports 6817-6819), reachable from the network. Map it to loopback:
  echo '127.0.1.1 $HOST' >> /etc/hosts    # as root, above any other line naming $HOST
(or set SLURM_LOCAL_HOST=localhost); SLURM_LOCAL_ALLOW_WIDE=1 accepts every interface"
  [ "${SLURM_LOCAL_ALLOW_WIDE:-}" = 1 ] || die "$why"
  echo "slurm-local: warning (SLURM_LOCAL_ALLOW_WIDE=1): $why" >&2
  return 1
}

write_conf() {
  local cpus mem ctld_params="" dbd_params=""
  if loopback_host; then
    ctld_params="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
    dbd_params="CommunicationParameters=NoInAddrAny"
  fi
  ours_or_absent /etc/slurm/slurm.conf
  ours_or_absent /etc/slurm/slurmdbd.conf
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # GNU nproc reports OMP_NUM_THREADS when it is set
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p /etc/slurm "$D"/{ctld,d,log,run,mysql,mysqlrun}
  chmod 755 "$D" "$D/run" "$D/log"
  chown slurm: "$D/ctld"; chmod 700 "$D/ctld" "$D/d"
  chown mysql: "$D/mysql" "$D/mysqlrun"; chmod 700 "$D/mysql"; chmod 755 "$D/mysqlrun"
  local log owner
  for log in slurmctld:slurm slurmdbd:slurm slurmd:root mysqld:mysql; do
    owner=${log#*:}; log=$D/log/${log%:*}.log
    touch "$log"; chown "$owner:" "$log"; chmod 640 "$log"
  done
  cat > /etc/slurm/slurm.conf <<CONF
# written by liver-mm scripts/slurm-local.sh: a one-node cluster on $HOST
ClusterName=$CLUSTER
SlurmctldHost=$HOST($ADDR)
SlurmUser=slurm
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
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=0
StorageUser=slurm
StorageLoc=slurm_acct_db
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
CONF
  chown slurm: /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf  # slurmdbd wants its SlurmUser's
}

# started NAME PIDFILE: `up` started this daemon; `down` stops it (and only what is recorded)
started() { echo "$1 $2" >> "$STATE"; }

up() {
  install
  write_conf
  # munge: a key once, the daemon as user munge (one already running, the machine's own, is used and left alone)
  [ -s /etc/munge/munge.key ] || mungekey --create --force >/dev/null 2>&1 || mungekey -c
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged; started munged /run/munge/munged.pid
  fi
  wait_for 10 munged sh -c 'munge -n | unmunge'
  # mariadb for slurmdbd (accounting: sacct), as user mysql, on a unix socket and 127.0.0.1 only
  local my=(--socket=/run/mysqld/mysqld.sock)
  if ! alive "$D/mysqlrun/mysqld.pid"; then
    [ -d "$D/mysql/mysql" ] || mariadb-install-db --user=mysql --datadir="$D/mysql" \
      --auth-root-authentication-method=socket >/dev/null
    chown -R mysql: "$D/mysql"  # a folder an earlier version made as root
    mkdir -p /run/mysqld && chown mysql: /run/mysqld
    (mariadbd --user=mysql --datadir="$D/mysql" --bind-address=127.0.0.1 "${my[@]}" \
      --pid-file="$D/mysqlrun/mysqld.pid" --log-error="$D/log/mysqld.log" >/dev/null 2>&1 &)
    started mariadbd "$D/mysqlrun/mysqld.pid"
  fi
  wait_for 30 mariadb mariadb-admin "${my[@]}" ping
  # slurmdbd's database user: the OS user slurm, by unix-socket authentication (no password anywhere)
  mariadb "${my[@]}" -e "create user if not exists 'slurm'@'localhost' identified via unix_socket;
    grant all on slurm_acct_db.* to 'slurm'@'localhost'" || die "could not create mariadb user slurm"
  if ! alive "$D/run/slurmdbd.pid"; then slurmdbd; started slurmdbd "$D/run/slurmdbd.pid"; fi
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
  if ! alive "$D/run/slurmctld.pid"; then slurmctld; started slurmctld "$D/run/slurmctld.pid"; fi
  wait_for 30 slurmctld scontrol ping
  if ! alive "$D/run/slurmd.pid"; then slurmd -N "$HOST"; started slurmd "$D/run/slurmd.pid"; fi
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
  # newest first: slurmd, slurmctld, slurmdbd, mariadbd, munged (as far as this script started them)
  if [ -s "$STATE" ]; then
    local name pidfile
    while read -r name pidfile; do
      stop_pid "$pidfile" "$name"
    done < <(tac "$STATE")
  fi
  rm -f "$STATE"
  echo "slurm-local: stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  install) install ;;
  status) sinfo ;;
  *) die "usage: $0 up|down|install|status" ;;
esac
