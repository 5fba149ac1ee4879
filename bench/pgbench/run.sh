#!/usr/bin/env bash
# PostgreSQL's own insert limits on this machine, for comparison with `billing bench append`.
# Usage: bench/pgbench/run.sh [seconds]   (DATABASE_URL's server; creates database kb_pgbench)
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
cd "$(dirname "$0")"
seconds="${1:-10}"
url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
admin="$url"
base="${url%/*}"
psql -q "$admin" -c "DROP DATABASE IF EXISTS kb_pgbench" -c "CREATE DATABASE kb_pgbench"
db="$base/kb_pgbench"
run() { # script clients rows_per_tx
  psql -q "$db" -f setup.sql
  local tps
  tps=$(pgbench -n -f "$1" -c "$2" -j 2 -T "$seconds" "$db" 2>/dev/null | awk '/^tps = / {print $3}')
  awk -v t="$tps" -v r="$3" -v s="$1" -v c="$2" \
    'BEGIN { printf "{\"script\":\"%s\",\"clients\":%d,\"tps\":%.1f,\"rows_per_sec\":%.0f}\n", s, c, t, t * r }'
}
run batch500.sql 1 500
run batch500.sql 2 500
run batch500.sql 4 500
run single.sql 32 1
psql -q "$admin" -c "DROP DATABASE IF EXISTS kb_pgbench"
