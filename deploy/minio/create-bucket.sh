#!/bin/sh
# Create the payload store's bucket if it is missing: the `minio-setup` job of docker-compose.yml (idempotent).
#
#   S3_ENDPOINT=http://minio:9000 S3_BUCKET=payloads MINIO_ROOT_USER=… MINIO_ROOT_PASSWORD=… sh create-bucket.sh
#
# POSIX sh, so it runs in the minio/mc image and anywhere `mc` is.
set -eu

mc="${MC_CLI:-mc}"
endpoint="${S3_ENDPOINT:-http://minio:9000}"
bucket="${S3_BUCKET:-payloads}"
attempts="${S3_WAIT_ATTEMPTS:-30}"

attempt=1
until "$mc" alias set store "$endpoint" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null 2>&1; do
  if [ "$attempt" -ge "$attempts" ]; then
    echo "MinIO at $endpoint does not answer after $attempts attempts" >&2
    exit 1
  fi
  echo "waiting for MinIO at $endpoint ($attempt/$attempts)"
  attempt=$((attempt + 1))
  sleep 2
done

"$mc" mb --ignore-existing "store/$bucket"
echo "bucket $bucket ready at $endpoint"
