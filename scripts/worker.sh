#!/usr/bin/env bash
# The main job: starts `rstuf-worker worker` against the local services, configured only by
# the environment, like the reference worker's container. Every RSTUF_* variable below is a
# default; export your own to override it. Stop with Ctrl-C (SIGINT) or SIGTERM.
#
#   broker      Redis db 0 (RSTUF_BROKER_SERVER=amqp://guest:guest@127.0.0.1:5672// for RabbitMQ)
#   results     Redis db 0, repository settings Redis db 1 (the API's defaults)
#   database    PostgreSQL database rstuf_worker (created if missing)
#   storage     target/rstuf-demo/storage
#   online key  target/rstuf-demo/online-key: a fresh ed25519 key is created there on the first
#               start (its path and key id are printed); set RSTUF_ONLINE_KEY_DIR to use yours
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh >/dev/null

export RSTUF_BROKER_SERVER=${RSTUF_BROKER_SERVER:-redis://127.0.0.1:6379/0}
export RSTUF_REDIS_SERVER=${RSTUF_REDIS_SERVER:-redis://127.0.0.1}
export RSTUF_STORAGE_BACKEND=${RSTUF_STORAGE_BACKEND:-LocalStorage}
export RSTUF_LOCAL_STORAGE_BACKEND_PATH=${RSTUF_LOCAL_STORAGE_BACKEND_PATH:-$PWD/target/rstuf-demo/storage}
new_key_dir=
if [ -z "${RSTUF_ONLINE_KEY_DIR:-}" ]; then
  new_key_dir=$PWD/target/rstuf-demo/online-key
  export RSTUF_ONLINE_KEY_DIR=$new_key_dir
fi
export RSTUF_WORKER_ID=${RSTUF_WORKER_ID:-$(hostname)}
if [ -z "${RSTUF_DB_SERVER:-}" ]; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='rstuf_worker'" postgres \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE rstuf_worker" postgres
  export RSTUF_DB_SERVER=postgresql://postgres@127.0.0.1:5432/rstuf_worker
fi
mkdir -p "$RSTUF_LOCAL_STORAGE_BACKEND_PATH"
cargo build --release -q -p rstuf-worker
if [ -n "$new_key_dir" ]; then
  target/release/rstuf-worker online-key "$new_key_dir"
fi
exec target/release/rstuf-worker worker
