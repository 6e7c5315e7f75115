#!/usr/bin/env bash
# Start Milvus 2.3.5 standalone (pip package `milvus`) in its own network namespace with only
# loopback up, reachable only through a Unix socket: it binds every interface whatever its
# configuration says, so it must never run in the machine's namespace.
#
#   .ci/milvus-netns.sh DATA_DIR SOCKET_PATH
#
# Runs in the foreground until killed; writes DATA_DIR/server.pid (the Milvus process) and
# DATA_DIR/relay.pid (this script's process, which becomes the relay). Milvus ignores SIGTERM for
# up to 30 minutes: stop it with SIGKILL by those PIDs (its write-ahead log keeps committed data).
# Clients connect with pymilvus to uri "unix:SOCKET_PATH". Needs root (unshare) and iproute2.
set -euo pipefail
data_dir=$(realpath -m "$1")
socket_path=$(realpath -m "$2")
mkdir -p "$data_dir"
here=$(cd "$(dirname "$0")" && pwd)
exec unshare --net -- bash -c '
  set -euo pipefail
  ip link set lo up
  milvus-server --data "$1" >"$1/server.log" 2>&1 &
  echo $! >"$1/server.pid"
  echo $$ >"$1/relay.pid"
  exec python3 "$3/unix_relay.py" "$2" 19530
' milvus-netns "$data_dir" "$socket_path" "$here"
