#!/bin/sh
# Create or upgrade the Temporal schemas on PostgreSQL, then exit: the `temporal-schema` job of docker-compose.yml.
#
# Runs in the temporalio/admin-tools image (Alpine, busybox sh, temporal-sql-tool and the schema files under
# /etc/temporal/schema), pinned to the server's version so the schema is the one that server expects. Safe to run
# on every `docker compose up`: `setup-schema -v 0.0` leaves a schema that is already past 0.0 alone, and
# `update-schema` applies only the versions above the stored one (that is the upgrade path to a newer server).
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required (the PostgreSQL password, read by temporal-sql-tool)}"
port="${DB_PORT:-5432}"
schemas=/etc/temporal/schema/postgresql/v12

sql() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" "$@"
}

for db in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  name="${db%%:*}"
  kind="${db#*:}"
  # PostgreSQL's CREATE DATABASE has no IF NOT EXISTS: on a second run `create` fails and the script goes on.
  # A database that cannot be reached fails the setup-schema step right after, with its own message.
  sql --db "$name" create || echo "database $name not created (it exists already, or see the next error)"
  sql --db "$name" setup-schema -v 0.0
  sql --db "$name" update-schema -d "$schemas/$kind/versioned"
  echo "schema of $name is current"
done
