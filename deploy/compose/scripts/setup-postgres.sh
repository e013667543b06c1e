#!/bin/sh
# Creates Temporal's two databases and brings their schemas up to the version of the
# admin-tools image (run by the temporal-schema job before the server starts; idempotent).
set -eu

: "${POSTGRES_SEEDS:=postgresql}" "${DB_PORT:=5432}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

echo "waiting for PostgreSQL at ${POSTGRES_SEEDS}:${DB_PORT}"
until nc -z -w 5 "$POSTGRES_SEEDS" "$DB_PORT"; do sleep 1; done

for db in temporal:temporal temporal_visibility:visibility; do
  name=${db%%:*}
  schema=${db#*:}
  sql() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" \
      -u "$POSTGRES_USER" --db "$name" "$@"
  }
  # `create` fails when the database exists; that is the second run, and fine.
  sql create || echo "database $name exists"
  sql setup-schema -v 0.0
  sql update-schema -d "$SCHEMA_DIR/$schema/versioned"
done
echo "schemas are up to date"
