#!/usr/bin/env bash
# Entrypoint of the streaming replica in deploy/docker-compose.yml, run as
# root in the postgres image. On first start (no PG_VERSION in $PGDATA) it
# clones the primary with pg_basebackup -R, which also writes standby.signal
# and primary_conninfo (with the slot from primary-init.sh), so the server
# starts as a hot standby that streams from the primary. Then, and on every
# later start, it hands over to the image's own entrypoint.
set -Eeuo pipefail

: "${PGDATA:?PGDATA must be set}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"
PRIMARY_HOST="${PRIMARY_HOST:-postgres}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
REPLICATION_SLOT="${REPLICATION_SLOT:-replica1}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER"; do
		echo "replica: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
		sleep 2
	done
	# Clone beside $PGDATA and move it into place only when complete, so a
	# clone interrupted half-way is started over, never run.
	partial="${PGDATA%/}.partial"
	rm -rf "$partial"
	mkdir -p "$partial"
	chown postgres:postgres "$partial"
	chmod 0700 "$partial"
	echo "replica: cloning $PRIMARY_HOST:$PRIMARY_PORT (slot $REPLICATION_SLOT)"
	PGPASSWORD="$REPLICATION_PASSWORD" gosu postgres pg_basebackup \
		--host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" \
		--pgdata="$partial" --wal-method=stream --slot="$REPLICATION_SLOT" \
		--write-recovery-conf --checkpoint=fast --no-password
	rm -rf "$PGDATA"
	mv "$partial" "$PGDATA"
	echo "replica: clone complete"
fi

exec docker-entrypoint.sh "$@"
