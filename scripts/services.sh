#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis run on this machine and that the database
# named in DATABASE_URL exists. Installs them with apt when missing (and
# permitted: root or passwordless sudo), starts them when stopped, and does
# nothing to services that already run.
#
#   scripts/services.sh            # PostgreSQL and Redis
#   scripts/services.sh postgres   # PostgreSQL only (what the tests need)
set -euo pipefail

want=${1:-all}
DATABASE_URL=${DATABASE_URL:-postgres://booking:booking@127.0.0.1:5432/booking?sslmode=disable}

say() { printf 'services: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else say "need root to run: $*  (run it yourself, or run this as root)"; return 1
  fi
}

apt_install() {
  say "installing $* with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  if ! command -v pg_isready >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    pg_up 2>/dev/null || apt_install postgresql postgresql-client
  fi
  if ! pg_up; then
    say "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null; then
      for c in /etc/postgresql/*/main; do
        v=$(basename "$(dirname "$c")")
        as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
      done
    fi
    pg_up || as_root service postgresql start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    pg_up || { say "PostgreSQL did not start on 127.0.0.1:5432"; exit 1; }
  fi
  # The URL's role must exist and may create databases (the tests create
  # their own). A fresh Debian install only has 'postgres', reachable as the
  # postgres OS user over the socket; its TCP logins take passwords, which
  # is why the default URL carries one.
  rest=${DATABASE_URL#*://}
  creds=${rest%%@*}
  user=${creds%%:*}
  pass=""
  [ "$creds" != "$user" ] && pass=${creds#*:}
  hostpart=${rest#*@}
  hostport=${hostpart%%/*}
  db=${hostpart#*/}
  db=${db%%\?*}
  admin_url="postgres://$creds@$hostport/postgres?sslmode=disable"
  if ! psql "$admin_url" -Atqc 'select 1' >/dev/null 2>&1; then
    say "creating PostgreSQL role $user"
    sql="CREATE ROLE \"$user\" LOGIN CREATEDB PASSWORD '$pass'"
    psql "postgres://root@127.0.0.1:5432/postgres?sslmode=disable" -qc "$sql" 2>/dev/null \
      || as_root su postgres -c "psql -qc \"$sql\"" >/dev/null
  fi
  if [ -n "$db" ] && ! psql "$admin_url" -Atqc "select 1 from pg_database where datname='$db'" | grep -q 1; then
    say "creating database $db"
    psql "$admin_url" -qc "CREATE DATABASE \"$db\""
  fi
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis"
  mkdir -p /tmp/bookingledger-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/bookingledger-redis --logfile /tmp/bookingledger-redis/redis.log
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.5; done
  say "Redis did not start on 127.0.0.1:6379"; exit 1
}

ensure_postgres
[ "$want" = postgres ] || ensure_redis
say "ready"
