#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis run on this machine and that the role and
# database named in DATABASE_URL exist. Installs them with apt when missing
# (as root, or through sudo), starts them when stopped, and leaves services
# that already answer alone.
#
#   scripts/services.sh                      # PostgreSQL and Redis (make run)
#   scripts/services.sh postgres redis nats  # also NATS JetStream (make test)
#   scripts/services.sh node chromium        # Node.js and npm (make web), Chromium (make test)
set -euo pipefail

want=${*:-postgres redis}
DATABASE_URL=${DATABASE_URL:-postgres://booking:booking@127.0.0.1:5432/booking?sslmode=disable}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}

say() { printf 'services: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  elif command -v sudo >/dev/null && [ -t 0 ]; then sudo "$@"   # asks for the password
  else say "need root to run: $*  (run it yourself, or run this as root)"; return 1
  fi
}

apt_install() {
  say "installing $* with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# port_open HOST PORT: something listens there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# --- the parts of DATABASE_URL: postgres://user[:password]@host[:port]/db?…
rest=${DATABASE_URL#*://}
creds=${rest%%@*}
user=${creds%%:*}
pass=""
[ "$creds" != "$user" ] && pass=${creds#*:}
hostpart=${rest#*@}
hostport=${hostpart%%/*}
pg_host=${hostport%%:*}
pg_port=5432
[ "$hostport" != "$pg_host" ] && pg_port=${hostport#*:}
db=${hostpart#*/}
db=${db%%\?*}

ensure_postgres() {
  if ! command -v psql >/dev/null; then
    if port_open "$pg_host" "$pg_port"; then apt_install postgresql-client
    else apt_install postgresql postgresql-client
    fi
  fi
  if ! port_open "$pg_host" "$pg_port"; then
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then apt_install postgresql; fi
    say "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null; then
      for c in /etc/postgresql/*/main; do
        [ -d "$c" ] || continue
        as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$c")")" main start || true
      done
    fi
    port_open "$pg_host" "$pg_port" || as_root service postgresql start || true
    for _ in $(seq 1 30); do port_open "$pg_host" "$pg_port" && break; sleep 1; done
    port_open "$pg_host" "$pg_port" || { say "PostgreSQL did not start on $pg_host:$pg_port"; exit 1; }
  fi

  # The URL's role must exist and may create databases (the tests create
  # their own). A fresh Debian install has only 'postgres', reachable as the
  # postgres OS user over the socket; its TCP logins need a password, which
  # is why the default URL carries one. -w: never prompt for a password.
  admin_url="postgres://$creds@$hostport/postgres?sslmode=disable"
  if ! psql -w "$admin_url" -Atqc 'select 1' >/dev/null 2>&1; then
    say "creating PostgreSQL role $user"
    [ -n "$pass" ] || { say "DATABASE_URL has no password; PostgreSQL's TCP logins need one"; exit 1; }
    # psql variables quote the name and the password safely (:"u", :'p').
    role_sql=$(cat <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'p')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
ALTER ROLE :"u" LOGIN CREATEDB PASSWORD :'p';
SQL
)
    if ! psql -w "postgres://root@$hostport/postgres?sslmode=disable" -v ON_ERROR_STOP=1 -v u="$user" -v p="$pass" \
         -q <<<"$role_sql" >/dev/null 2>&1; then
      (cd / && as_root runuser -u postgres -- psql -v ON_ERROR_STOP=1 -v u="$user" -v p="$pass" -q) <<<"$role_sql" >/dev/null
    fi
    psql -w "$admin_url" -Atqc 'select 1' >/dev/null || { say "cannot log in as $user at $hostport"; exit 1; }
  fi
  if [ -n "$db" ] && [ -z "$(psql -w "$admin_url" -Atqc "select 1 from pg_database where datname = '${db//\'/\'\'}'")" ]; then
    say "creating database $db"
    psql -w "$admin_url" -v ON_ERROR_STOP=1 -v d="$db" -q <<<'CREATE DATABASE :"d";'
  fi
}

ensure_redis() {
  local rest=${REDIS_URL#*://}
  rest=${rest#*@}
  local hostport=${rest%%/*}
  local host=${hostport%%:*} port=6379
  [ "$hostport" != "$host" ] && port=${hostport#*:}
  port_open "$host" "$port" && return
  command -v redis-server >/dev/null || apt_install redis-server
  port_open "$host" "$port" && return # the package started its service
  say "starting Redis"
  mkdir -p /tmp/bookingledger-redis
  redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
    --dir /tmp/bookingledger-redis --logfile /tmp/bookingledger-redis/redis.log
  for _ in $(seq 1 20); do port_open "$host" "$port" && return; sleep 0.5; done
  say "Redis did not start on $host:$port"; exit 1
}

ensure_nats() {
  local rest=${NATS_URL:-nats://127.0.0.1:4222}
  rest=${rest#*://}
  local host=${rest%%:*} port=${rest##*:}
  port=${port%%/*}
  port_open "$host" "$port" && return
  command -v nats-server >/dev/null || apt_install nats-server
  port_open "$host" "$port" && return
  say "starting NATS with JetStream"
  mkdir -p /tmp/bookingledger-nats
  setsid nats-server -a "$host" -p "$port" -js -sd /tmp/bookingledger-nats \
    -l /tmp/bookingledger-nats/nats.log </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 20); do port_open "$host" "$port" && return; sleep 0.5; done
  say "NATS did not start on $host:$port"; exit 1
}

# Node.js 18 or newer with npm builds the web app (Debian 12's apt has 18).
ensure_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 18 ] || { say "Node.js $(node --version) is too old for the web app: install Node.js 18 or newer"; exit 1; }
}

# The end-to-end test drives Debian's Chromium (no browser download).
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}

for service in $want; do
  case $service in
    postgres) ensure_postgres ;;
    redis) ensure_redis ;;
    nats) ensure_nats ;;
    node) ensure_node ;;
    chromium) ensure_chromium ;;
    *) say "unknown service $service (postgres, redis, nats, node, chromium)"; exit 2 ;;
  esac
done
say "ready"
