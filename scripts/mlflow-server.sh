#!/usr/bin/env bash
# An MLflow tracking server on PostgreSQL, for studies whose jobs run on several processes or SLURM nodes.
#   scripts/mlflow-server.sh up      # installs postgresql once (apt, root), starts postgres and `mlflow server`
#   scripts/mlflow-server.sh down    # stops both (by pid file)
#   scripts/mlflow-server.sh add-user NAME [EXPERIMENT]   # MLFLOW_AUTH=basic: an account (password printed once)
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:${MLFLOW_PORT:-5077}   # then every liver-mm command logs there
# Who can reach what:
# - PostgreSQL listens on no TCP port: only its Unix socket, with peer authentication (the connecting OS user is
#   the database role: no password exists to leak). The tracking server connects as OS user and role
#   $MLFLOW_USER (default `mlflow` when run as root, a system user created once); its role owns the databases
#   `mlflow` and `mlflow_auth` and is no superuser. Run without root, everything runs as the invoking user.
# - `mlflow server` runs as $MLFLOW_USER with umask 077; its artifact folder (the runs' predictions, configs,
#   models) and logs are 0700, readable by that user only.
# - It binds 127.0.0.1 (MLFLOW_HOST). An address beyond loopback (MLFLOW_HOST=0.0.0.0, the cluster's nodes) is
#   refused unless MLFLOW_AUTH=basic: MLflow's basic-auth app (`--app-name basic-auth`; users in the database
#   `mlflow_auth`). Its admin password is generated at the first start, printed once and kept in
#   $MLFLOW_SERVER_DIR/auth/basic_auth.ini (0600, $MLFLOW_USER's). MLFLOW_AUTH=basic works on loopback too.
# State under $MLFLOW_SERVER_DIR (default /var/lib/liver-mm-mlflow; 0711): pg/ (the database, postgres' 0700),
# pgsock/ (the socket), artifacts/, auth/, home/ and log/ (0700, $MLFLOW_USER's). PYTHON: the venv with mlflow +
# psycopg (+ Flask-WTF for basic-auth); $MLFLOW_USER must be able to read it.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${MLFLOW_SERVER_DIR:-/var/lib/liver-mm-mlflow}
PORT=${MLFLOW_PORT:-5077}
HOST=${MLFLOW_HOST:-127.0.0.1}
AUTH=${MLFLOW_AUTH:-}
PGPORT=${MLFLOW_PG_PORT:-5433}
PY=${PYTHON:-$PWD/.venv/bin/python}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
ROOT=$([ "$(id -u)" = 0 ] && echo 1 || true)
if [ -n "$ROOT" ]; then SVC=${MLFLOW_USER:-mlflow}; PGSUPER=postgres; else SVC=$(id -un); PGSUPER=$SVC; fi
SOCK=$D/pgsock

die() { echo "mlflow-server: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(head -1 "$1")" 2>/dev/null; }
# run as USER (root: without a shell, login or inherited environment beyond ENV...): as USER ENV... -- CMD...
as() {
  local user=$1; shift
  local envs=(); while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  if [ -n "$ROOT" ]; then
    setpriv --reuid="$user" --regid="$user" --init-groups env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "${envs[@]}" "$@"
  else env "${envs[@]}" "$@"; fi
}
psql_su() { as "$PGSUPER" PGHOST="$SOCK" PGPORT="$PGPORT" -- "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -U "$PGSUPER" "$@"; }
loopback() { case "$1" in 127.*|::1|localhost) return 0 ;; *) return 1 ;; esac; }

install() {
  if [ -z "$PGBIN" ]; then
    [ -n "$ROOT" ] || die "installing postgresql needs root (apt-get)"
    echo "mlflow-server: installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; } \
      || die "apt-get install postgresql failed"
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
}

# folder FOLDER OWNER MODE: created, owned and moded so (contents too, once, when the owner was another)
folder() {
  mkdir -p "$1"
  if [ -n "$ROOT" ] && [ "$(stat -c %U "$1")" != "$2" ]; then chown -R "$2:" "$1"; chmod -R go-rwx "$1"; fi
  chmod "$3" "$1"
}

# NS: the command prefix that lets the service user run $PY. Where the interpreter or the venv lies below a folder
# others cannot pass (a Python installed in root's 0700 home), the server runs in a mount namespace of its own in
# which that folder is an empty one (0711) holding only the way to the interpreter: nothing else of it is visible.
NS=()
python_view() {
  local paths blocked="" p a child children=()
  paths=$("$PY" -c "import os, sys; print(os.path.realpath(sys.executable), sys.base_prefix, sys.prefix)")
  for p in $paths; do
    a=/; for part in $(echo "${p#/}" | tr / ' '); do
      if ! as "$SVC" -- test -x "$a"; then
        [ -z "$blocked" ] || [ "$blocked" = "$a" ] || die "user $SVC cannot reach $p (blocked at $a and $blocked)"
        blocked=$a; child=${p#"${a%/}"/}; child=${child%%/*}
        case " ${children[*]} " in *" $child "*) ;; *) children+=("$child") ;; esac
        break
      fi
      a=${a%/}/$part
    done
  done
  [ -n "$blocked" ] || return 0
  # shellcheck disable=SC2016
  NS=(unshare -m --propagation private sh -c 'b=$1; shift; k=$(mktemp -d); mount --bind "$b" "$k" &&
    mount -t tmpfs -o mode=0711,size=64k liver-mm-view "$b" || exit 1
    while [ "$1" != -- ]; do mkdir "$b/$1" && mount --bind "$k/$1" "$b/$1" || exit 1; shift; done; shift
    umount -l "$k"; rmdir "$k"; exec "$@"' sh "$blocked" "${children[@]}" --)
  echo "mlflow-server: $blocked is closed to $SVC: the server sees only $blocked/{${children[*]}} of it (own mount namespace)"
}

service_user() {
  [ -n "$ROOT" ] || return 0
  id -u "$SVC" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir "$D/home" \
    --shell /usr/sbin/nologin "$SVC" || die "could not create the service user $SVC"
  python_view
  "${NS[@]}" setpriv --reuid="$SVC" --regid="$SVC" --init-groups env -i PATH=/usr/bin:/bin "$PY" -c \
    "import mlflow, psycopg" 2>/dev/null || die "user $SVC cannot run $PY with mlflow and psycopg (the venv and its" \
    "Python must be readable by $SVC; or set PYTHON)"
}

postgres_up() {
  folder "$D/pg" "$PGSUPER" 700
  folder "$SOCK" "$PGSUPER" 755
  folder "$D/pglog" "$PGSUPER" 700
  if [ ! -s "$D/pg/PG_VERSION" ]; then
    as "$PGSUPER" -- "$PGBIN/initdb" -D "$D/pg" -U "$PGSUPER" --auth-local=peer --auth-host=reject >/dev/null
  fi
  # (re)written at every start: a cluster made by an earlier version of this script trusted every local user
  as "$PGSUPER" -- sh -c "umask 077; cat > '$D/pg/pg_hba.conf'" <<HBA
# written by liver-mm scripts/mlflow-server.sh: the Unix socket only (no TCP listener), peer authentication
local all all peer
HBA
  if alive "$D/pg/postmaster.pid" && [ -S "$SOCK/.s.PGSQL.$PGPORT" ]; then
    as "$PGSUPER" -- "$PGBIN/pg_ctl" -D "$D/pg" reload >/dev/null
  elif alive "$D/pg/postmaster.pid"; then  # started by an earlier version of this script (a TCP listener)
    as "$PGSUPER" -- "$PGBIN/pg_ctl" -D "$D/pg" -w -t 60 -o "-c listen_addresses='' -p $PGPORT -k $SOCK" \
      restart -m fast >/dev/null
  else
    as "$PGSUPER" -- "$PGBIN/pg_ctl" -D "$D/pg" -l "$D/pglog/postgres.log" -w -t 60 \
      -o "-c listen_addresses='' -p $PGPORT -k $SOCK" start >/dev/null
  fi
  # the service role (no superuser) owns the two databases and, in a database an earlier version made as the
  # superuser, every table and sequence
  [ "$SVC" = "$PGSUPER" ] || psql_su -d postgres -tAc "select 1 from pg_roles where rolname='$SVC'" | grep -q 1 \
    || psql_su -d postgres -c "create role \"$SVC\" login nosuperuser nocreatedb nocreaterole"
  local db
  for db in mlflow mlflow_auth; do
    psql_su -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1 \
      || psql_su -d postgres -c "create database $db owner \"$SVC\""
    [ "$SVC" = "$PGSUPER" ] || psql_su -d "$db" -c "alter database $db owner to \"$SVC\"" \
      -c "alter schema public owner to \"$SVC\"" -c "do \$\$ declare r record; begin
          for r in select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname = 'public' and c.relkind in ('r', 'S', 'v', 'p') loop
            execute format('alter %s public.%I owner to %I', case r.relkind when 'S' then 'sequence'
              when 'v' then 'view' else 'table' end, r.relname, '$SVC');
          end loop; end \$\$"
  done
}

# the basic-auth config (0600, the service user's): written once, with a generated admin password printed once
auth_config() {
  local ini=$D/auth/basic_auth.ini pw
  [ -s "$D/auth/flask_secret" ] || "$PY" -c "import secrets; print(secrets.token_hex(32))" \
    | as "$SVC" -- sh -c "umask 077; cat > '$D/auth/flask_secret'"  # the CSRF key of the app's forms
  [ -s "$ini" ] && return 0
  pw=$("$PY" -c "import secrets; print(secrets.token_urlsafe(24))")
  as "$SVC" -- sh -c "umask 077; cat > '$ini.tmp' && mv '$ini.tmp' '$ini'" <<INI
# written by liver-mm scripts/mlflow-server.sh: MLflow's basic-auth app (users in the database mlflow_auth)
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = postgresql+psycopg://$SVC@/mlflow_auth
admin_username = admin
admin_password = $pw
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
  echo "mlflow-server: basic-auth admin account: user admin, password $pw (shown this once; kept in $ini, readable" \
    "by $SVC only)"
}

up() {
  install
  local app=()
  case "$AUTH" in
    basic) app=(--app-name basic-auth) ;;
    "") loopback "$HOST" || die "MLFLOW_HOST=$HOST is beyond loopback: every machine that reaches it could read" \
          "and delete every run. Set MLFLOW_AUTH=basic (MLflow's basic-auth app, accounts with passwords) or bind" \
          "127.0.0.1" ;;
    *) die "MLFLOW_AUTH=$AUTH: the only value is basic" ;;
  esac
  # Host headers the server answers (MLflow refuses others: DNS rebinding): its own defaults (localhost, private
  # addresses) unless it binds one address beyond loopback, then that address, localhost and this machine's
  # names; MLFLOW_ALLOWED_HOSTS adds more
  local hosts=${MLFLOW_ALLOWED_HOSTS:-} h
  if [ "$HOST" != 0.0.0.0 ] && [ "$HOST" != :: ] && ! loopback "$HOST"; then
    for h in $(printf '%s\n' "$HOST" localhost 127.0.0.1 "$(hostname -s)" "$(hostname -f 2>/dev/null || true)" \
               | sort -u); do
      hosts=${hosts:+$hosts,}$h,$h:$PORT
    done
  fi
  [ -z "$hosts" ] || app+=(--allowed-hosts "$hosts")
  "$PY" -c "import mlflow, psycopg" 2>/dev/null || die "$PY lacks mlflow or psycopg: pip install -e '.[server]'"
  [ -z "$AUTH" ] || "$PY" -c "import flask_wtf" 2>/dev/null || die "$PY lacks Flask-WTF: pip install -e '.[server]'"
  mkdir -p "$D"; chmod 711 "$D"  # the service users pass through; nobody lists it
  service_user
  postgres_up
  folder "$D/artifacts" "$SVC" 700
  folder "$D/log" "$SVC" 700
  folder "$D/home" "$SVC" 700
  folder "$D/auth" "$SVC" 700
  [ -z "$AUTH" ] || auth_config
  if ! alive "$D/mlflow.pid"; then
    local run=(env) envs=(HOME="$D/home" PGHOST="$SOCK" PGPORT="$PGPORT")
    [ -n "$ROOT" ] && run=(setpriv --reuid="$SVC" --regid="$SVC" --init-groups env -i PATH=/usr/bin:/bin LANG=C.UTF-8)
    [ -z "$AUTH" ] || envs+=(MLFLOW_AUTH_CONFIG_PATH="$D/auth/basic_auth.ini")
    as "$SVC" -- sh -c "umask 077; : >> '$D/log/mlflow.log'"
    # own process group (setsid): `down` stops the server and its workers together; umask 077: what it writes is
    # its own. The backend URI names no secret (peer authentication: the role is the OS user).
    # The secrets (the CSRF key; the admin password in the ini file) are read by the server's own user from its
    # 0600 files: never on a command line (ps) or in a log.
    # shellcheck disable=SC2016
    ( umask 077; cd "$D/home"; exec setsid "${NS[@]}" "${run[@]}" "${envs[@]}" sh -c '[ ! -s "$0" ] ||
        { MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$0") && export MLFLOW_FLASK_SERVER_SECRET_KEY; }; exec "$@"' \
        "$D/auth/flask_secret" "$PY" -m mlflow server "${app[@]}" \
        --backend-store-uri "postgresql+psycopg://$SVC@/mlflow" --artifacts-destination "$D/artifacts" \
        --host "$HOST" --port "$PORT" --workers "${MLFLOW_WORKERS:-2}" >> "$D/log/mlflow.log" 2>&1 < /dev/null ) &
    echo $! > "$D/mlflow.pid"
  fi
  local probe=$HOST
  case "$HOST" in 0.0.0.0|::|"") probe=127.0.0.1 ;; esac
  case "$probe" in *:*) probe="[$probe]" ;; esac
  local deadline=$((SECONDS + ${MLFLOW_START_TIMEOUT:-300}))  # database migrations on a busy machine: minutes
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$PY" -c "import urllib.request as u; u.urlopen('http://$probe:$PORT/health', timeout=1)" 2>/dev/null && {
      echo "mlflow-server: up as user $SVC: export MLFLOW_TRACKING_URI=http://$probe:$PORT"; return 0; }
    alive "$D/mlflow.pid" || die "mlflow server exited (log: $D/log/mlflow.log): $(tail -5 "$D/log/mlflow.log")"
    sleep 0.2
  done
  die "mlflow server did not answer on port $PORT within ${MLFLOW_START_TIMEOUT:-300} s (log: $D/log/mlflow.log)"
}

# add-user NAME [EXPERIMENT]: a basic-auth account for NAME with a generated password (printed once), allowed to
# log to EXPERIMENT (default liver-mm, where it exists; EDIT). Root (the admin password is $MLFLOW_USER's file).
add_user() {
  local name=${1:-} experiment=${2:-liver-mm} probe=$HOST
  [ -n "$name" ] || die "usage: $0 add-user NAME [EXPERIMENT]"
  [ -s "$D/auth/basic_auth.ini" ] || die "no basic-auth app here: start the server with MLFLOW_AUTH=basic"
  case "$HOST" in 0.0.0.0|::|"") probe=127.0.0.1 ;; esac
  case "$probe" in *:*) probe="[$probe]" ;; esac
  # the admin password travels on stdin, never on a command line
  grep -m1 '^admin_password' "$D/auth/basic_auth.ini" | cut -d= -f2- | tr -d ' ' | PYTHONWARNINGS=ignore "$PY" -c '
import os, secrets, sys
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient
os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "admin", sys.stdin.read().strip()
uri, name, experiment = sys.argv[1:]
password = secrets.token_urlsafe(18)
AuthServiceClient(uri).create_user(name, password)
exp = MlflowClient(uri).get_experiment_by_name(experiment)
if exp is not None:
    AuthServiceClient(uri).grant_user_permission(name, "experiment", exp.experiment_id, "EDIT")
print(f"mlflow-server: account {name}: password {password} (shown this once); "
      + (f"may log to experiment {experiment}. " if exp is not None else f"experiment {experiment} does not exist yet: "
         "the first to create it manages it. ")
      + "Export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (e.g. from a 0600 file) before liver-mm runs.")
' "http://$probe:$PORT" "$name" "$experiment"
}

down() {
  if alive "$D/mlflow.pid"; then
    local pid; pid=$(cat "$D/mlflow.pid")
    kill -- -"$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- -"$pid" 2>/dev/null || true
  fi
  rm -f "$D/mlflow.pid"
  if [ -n "$PGBIN" ] && alive "$D/pg/postmaster.pid"; then
    as "$PGSUPER" -- "$PGBIN/pg_ctl" -D "$D/pg" -m fast -w stop >/dev/null
  fi
  echo "mlflow-server: stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  install) install ;;
  add-user) shift; add_user "$@" ;;
  *) die "usage: $0 up|down|install|add-user NAME [EXPERIMENT]" ;;
esac
