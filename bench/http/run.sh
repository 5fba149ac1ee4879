#!/usr/bin/env bash
# HTTP charge throughput: `billing serve` on PostgreSQL (sandbox gateway, tok_visa) under wrk with
# 32 connections, next to pgbench's single-row transactions at 32 clients, interleaved.
# Usage: bench/http/run.sh [seconds] [serve options]    (needs wrk: apt-get install wrk; builds the
# release binary). E.g. `bench/http/run.sh 10 --no-workers`: the command path alone, the read
# models built elsewhere (`billing worker`).
# ROUNDS (default 3) rounds of `seconds` each: wrk, then pgbench, each right after a CHECKPOINT
# (one run's checkpoint, spread over minutes, must not slow the next). The server runs through
# all rounds (its log grows as in a sustained load). Prints every round, the medians and their
# ratio. On a shared machine the two drift together; compare the medians, not single runs.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
cd "$(dirname "$0")/../.."
seconds="${1:-10}"
shift || true
rounds="${ROUNDS:-3}"
url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
base="${url%/*}"
db="$base/kb_http_bench"
addr="127.0.0.1:8099"
bin="${BIN:-${CARGO_TARGET_DIR:-target}/release/billing}"

[ -n "${BIN:-}" ] || cargo build --release -q -p api
server=""
trap '[ -z "$server" ] || { kill $server 2>/dev/null; wait $server 2>/dev/null; }; psql -q "$url" -c "DROP DATABASE IF EXISTS kb_http_bench" -c "DROP DATABASE IF EXISTS kb_pgbench"' EXIT
psql -q "$url" -c "DROP DATABASE IF EXISTS kb_http_bench" -c "CREATE DATABASE kb_http_bench"
psql -q "$url" -c "DROP DATABASE IF EXISTS kb_pgbench" -c "CREATE DATABASE kb_pgbench"
psql -q "$base/kb_pgbench" -f bench/pgbench/setup.sql
export DATABASE_URL="$db"
# A throw-away data directory (the master key file lands there) and a fixed master key.
BILLING_DATA_DIR="$(mktemp -d)"
export BILLING_DATA_DIR
export BILLING_MASTER_KEY=0000000000000000000000000000000000000000000000000000000000000001
key=$(RUST_LOG=warn "$bin" keys create --scope write 2>/dev/null)
RUST_LOG=warn BILLING_ADDR="$addr" "$bin" serve "$@" >/dev/null &
server=$!
for _ in $(seq 1 100); do curl -sf "http://$addr/health" >/dev/null && break; sleep 0.1; done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
charges=()
tps=()
echo "billing serve $*: POST /payment/process, 32 connections; pgbench: one ~300-byte row per"
echo "transaction, 32 clients; ${rounds} rounds of ${seconds}s each"
for round in $(seq 1 "$rounds"); do
    psql -q "$url" -c "CHECKPOINT"
    line=$(BILLING_KEY="$key" wrk -t2 -c32 -d"${seconds}s" -s bench/http/charge.lua "http://$addr" | tail -n 1)
    echo "round $round charges: $line"
    charges+=("$(sed -E 's/.*"requests_per_sec":([0-9.]+).*/\1/' <<<"$line")")
    psql -q "$url" -c "CHECKPOINT"
    t=$(pgbench -n -f bench/pgbench/single.sql -c 32 -j 2 -T "$seconds" "$base/kb_pgbench" 2>/dev/null \
        | sed -nE 's/^tps = ([0-9.]+).*/\1/p')
    echo "round $round pgbench tps: $t"
    tps+=("$t")
done
c=$(printf '%s\n' "${charges[@]}" | median)
p=$(printf '%s\n' "${tps[@]}" | median)
echo "median charges/s $c, median pgbench tps $p, ratio $(awk -v c="$c" -v p="$p" 'BEGIN {printf "%.2f", c / p}')"
