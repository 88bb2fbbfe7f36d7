#!/usr/bin/env bash
# Runs once, when the postgres image initialises an empty data directory
# (mounted into /docker-entrypoint-initdb.d/ by deploy/docker-compose.yml):
# the role and the physical replication slot that the streaming replica
# (replica-entrypoint.sh) uses, and the pg_hba.conf line that lets it in.
# wal_level=replica and max_wal_senders come from the server's command line.
#
# The image executes this file when it is executable and sources it
# otherwise, so it neither exits nor changes shell options.

REPLICATION_USER="${REPLICATION_USER:-replicator}"
REPLICATION_SLOT="${REPLICATION_SLOT:-replica1}"
if [ -z "${REPLICATION_PASSWORD:-}" ]; then
	echo "primary-init: REPLICATION_PASSWORD is not set" >&2
	false # the entrypoint runs with set -e: initialisation stops here
fi

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v repl_user="$REPLICATION_USER" -v repl_password="$REPLICATION_PASSWORD" -v repl_slot="$REPLICATION_SLOT" <<'SQL'
CREATE ROLE :"repl_user" WITH REPLICATION LOGIN PASSWORD :'repl_password';
-- The slot keeps the WAL the replica has not received yet, also while it is down.
SELECT pg_create_physical_replication_slot(:'repl_slot');
SQL

# The image's own line ("host all all all scram-sha-256") does not cover
# replication connections, which match only the pseudo-database "replication".
echo "host replication ${REPLICATION_USER} all scram-sha-256" >>"$PGDATA/pg_hba.conf"
