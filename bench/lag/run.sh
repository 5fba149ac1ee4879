#!/usr/bin/env bash
# Projection lag under the HTTP charge load of bench/http: `billing serve` on PostgreSQL with
# NATS JetStream (relay + one durable pull consumer per projection, the production set-up),
# wrk with 32 connections for N seconds. /ready is sampled every 0.25 s: prints the largest lag
# (events the slowest projection had not applied) during the load, and how long the lag took to
# reach 0 after the load stopped.
# Usage: bench/lag/run.sh [seconds]   (needs wrk: apt-get install wrk; NATS at $NATS_URL)
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
base="${url%/*}"
db="$base/kb_lag_bench"
addr="127.0.0.1:8098"
bin="${CARGO_TARGET_DIR:-target}/release/billing"

cargo build --release -q -p api
psql -q "$url" -c "DROP DATABASE IF EXISTS kb_lag_bench" -c "CREATE DATABASE kb_lag_bench"
export DATABASE_URL="$db"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
BILLING_DATA_DIR="$(mktemp -d)"
export BILLING_DATA_DIR
export BILLING_MASTER_KEY=0000000000000000000000000000000000000000000000000000000000000001
# The stream belongs to one event store: start from an empty one. This deletes the stream
# BILLING_EVENTS on that NATS server (a bench machine's), through JetStream's API subject.
python3 - <<'PY'
import socket
s = socket.create_connection(("127.0.0.1", 4222))
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.kbdel 1\r\n'
          b'PUB $JS.API.STREAM.DELETE.BILLING_EVENTS _INBOX.kbdel 0\r\n\r\nPING\r\n')
s.settimeout(2)
try:
    s.recv(4096)
except OSError:
    pass
s.close()
PY
key=$(RUST_LOG=warn "$bin" keys create --scope write 2>/dev/null)
RUST_LOG=warn BILLING_ADDR="$addr" "$bin" serve >/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; psql -q "$url" -c "DROP DATABASE IF EXISTS kb_lag_bench"' EXIT
for _ in $(seq 1 100); do curl -sf "http://$addr/health" >/dev/null && break; sleep 0.1; done

sample() { curl -sf "http://$addr/ready" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["projection_lag"] if r["projection_lag"] is not None else -1, r["head_position"])'; }

echo "billing: POST /payment/process, 32 connections, ${seconds}s, lag sampled every 0.25 s"
BILLING_KEY="$key" wrk -t2 -c32 -d"${seconds}s" -s bench/http/charge.lua "http://$addr" > /tmp/kb-lag-wrk.txt &
load=$!
max=0
series=""
while kill -0 $load 2>/dev/null; do
  read -r lag head < <(sample)
  (( lag > max )) && max=$lag
  series+=" $lag"
  sleep 0.25
done
echo "lag samples (events, every 0.25 s):$series"
tail -n 1 /tmp/kb-lag-wrk.txt
stopped=$(date +%s.%N)
read -r lag head < <(sample)
while (( lag != 0 )); do
  sleep 0.1
  read -r lag head < <(sample)
done
drained=$(date +%s.%N)
echo "max lag during load: $max events; head at the end: $head; drained to 0 in $(python3 -c "print(round($drained - $stopped, 2))") s after the load stopped"
