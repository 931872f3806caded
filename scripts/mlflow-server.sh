#!/usr/bin/env bash
# An MLflow tracking server on PostgreSQL, for studies whose jobs run on several processes or SLURM nodes.
#   scripts/mlflow-server.sh up      # installs postgresql once (apt, root), starts postgres and `mlflow server`
#   scripts/mlflow-server.sh down    # stops both (by pid file)
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:${MLFLOW_PORT:-5077}   # then every liver-mm command logs there
# State under $MLFLOW_SERVER_DIR (default /var/lib/liver-mm-mlflow): pg/ (the database), artifacts/ (the shared
# artifact folder the server serves: clients up- and download over HTTP), log/. Both servers bind to 127.0.0.1
# (MLFLOW_HOST=0.0.0.0 opens the tracking server to the cluster's nodes). PYTHON: the venv with mlflow + psycopg.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${MLFLOW_SERVER_DIR:-/var/lib/liver-mm-mlflow}
PORT=${MLFLOW_PORT:-5077}
HOST=${MLFLOW_HOST:-127.0.0.1}
PGPORT=${MLFLOW_PG_PORT:-5433}
PY=${PYTHON:-$PWD/.venv/bin/python}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

die() { echo "mlflow-server: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(head -1 "$1")" 2>/dev/null; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

install() {
  if [ -z "$PGBIN" ]; then
    [ "$(id -u)" = 0 ] || die "installing postgresql needs root (apt-get)"
    echo "mlflow-server: installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; } \
      || die "apt-get install postgresql failed"
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
}

up() {
  install
  "$PY" -c "import mlflow, psycopg" 2>/dev/null \
    || die "$PY lacks mlflow or psycopg: pip install -e '.[server]'"
  mkdir -p "$D"/{pg,artifacts,log}
  [ "$(id -u)" = 0 ] && chown postgres "$D/pg" "$D/log"
  if [ ! -s "$D/pg/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$D/pg" -U postgres --auth=trust >/dev/null
  fi
  if ! alive "$D/pg/postmaster.pid"; then
    as_pg "$PGBIN/pg_ctl" -D "$D/pg" -l "$D/log/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $D/pg" start >/dev/null
  fi
  as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -tAc "select 1 from pg_database where datname='mlflow'" \
    | grep -q 1 || as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres mlflow
  if ! alive "$D/mlflow.pid"; then
    # own process group (setsid): `down` stops the server and its workers together
    setsid "$PY" -m mlflow server --backend-store-uri "postgresql+psycopg://postgres@127.0.0.1:$PGPORT/mlflow" \
      --artifacts-destination "$D/artifacts" --host "$HOST" --port "$PORT" --workers "${MLFLOW_WORKERS:-2}" \
      > "$D/log/mlflow.log" 2>&1 < /dev/null &
    echo $! > "$D/mlflow.pid"
  fi
  for _ in $(seq 300); do
    "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null && {
      echo "mlflow-server: up: export MLFLOW_TRACKING_URI=http://127.0.0.1:$PORT"; return 0; }
    alive "$D/mlflow.pid" || die "mlflow server exited (log: $D/log/mlflow.log): $(tail -5 "$D/log/mlflow.log")"
    sleep 0.2
  done
  die "mlflow server did not answer on port $PORT within 60 s (log: $D/log/mlflow.log)"
}

down() {
  if alive "$D/mlflow.pid"; then
    local pid; pid=$(cat "$D/mlflow.pid")
    kill -- -"$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- -"$pid" 2>/dev/null || true
  fi
  rm -f "$D/mlflow.pid"
  if [ -n "$PGBIN" ] && alive "$D/pg/postmaster.pid"; then as_pg "$PGBIN/pg_ctl" -D "$D/pg" -m fast -w stop >/dev/null; fi
  echo "mlflow-server: stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  install) install ;;
  *) die "usage: $0 up|down|install" ;;
esac
