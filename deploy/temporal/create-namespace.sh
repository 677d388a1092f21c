#!/bin/sh
# Wait until the Temporal server serves, then create its namespace if it is missing: the `temporal-namespace` job
# of docker-compose.yml (temporalio/server, unlike the dev server, starts with no namespace at all).
#
#   TEMPORAL_ADDRESS=temporal:7233 TEMPORAL_NAMESPACE=default TEMPORAL_RETENTION=7d sh create-namespace.sh
#
# POSIX sh, so it runs in the temporalio/admin-tools image (busybox) and anywhere the `temporal` CLI is.
set -eu

temporal="${TEMPORAL_CLI:-temporal}"
address="${TEMPORAL_ADDRESS:-localhost:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${TEMPORAL_RETENTION:-7d}"
attempts="${TEMPORAL_WAIT_ATTEMPTS:-60}"

attempt=1
until "$temporal" operator cluster health --address "$address" >/dev/null 2>&1; do
  if [ "$attempt" -ge "$attempts" ]; then
    echo "Temporal at $address is not serving after $attempts attempts" >&2
    exit 1
  fi
  echo "waiting for Temporal at $address ($attempt/$attempts)"
  attempt=$((attempt + 1))
  sleep 2
done

if "$temporal" operator namespace describe --address "$address" --namespace "$namespace" >/dev/null 2>&1; then
  echo "namespace $namespace already exists"
else
  "$temporal" operator namespace create --address "$address" --namespace "$namespace" --retention "$retention"
  echo "namespace $namespace created (retention $retention)"
fi
