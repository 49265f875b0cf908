#!/usr/bin/env bash
# Console search on a large store: fills a database with ROWS LeadSquared leads (one
# inbound record and two outbox rows each, every lead a different person), then times
# `outbox list -q TERM` (the console's search, through the same store function, one
# page) for a long term, an email, a phone number written another way, a CRM id, and an
# email of a lead far from the newest. Each time is the best of three, process start
# included.
#
#   bench/search.sh [ROWS]        (default 400000; needs the debug or release binary)
#
# Env: BIN (default target/release/webengage-bridge), PGURL (default local postgres),
# KEEP=1 keeps the database (wb_bench_search) for another run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-400000}
BIN=${BIN:-target/release/webengage-bridge}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB=wb_bench_search
URL="$PGURL/$DB"

if [ "${KEEP:-0}" != 1 ] || ! psql "$PGURL/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
  DATABASE_URL=$URL "$BIN" migrate
  lead=$(cat mappings/tests/fixtures/lsq_lead_create.json)
  start=$(date +%s.%N)
  psql "$URL" -q -v lead="$lead" -v rows="$ROWS" <<'SQL'
INSERT INTO inbound_records (source, dedupe_key, status, payload, content_type, mapping_hash, request_id)
SELECT 'leadsquared', 'lead:' || n, 'mapped',
       replace(replace(replace(:'lead',
         '5c1f9a2e-7b4d-4e0a-9c3f-2a8d61b7e4f0', 'prospect-' || lpad(n::text, 8, '0')),
         'rohan.deshpande@example.com', 'lead' || n || '@example.com'),
         '+91-9876543210', '+91-9' || lpad(n::text, 9, '0'))::json,
       'application/json', 'bench', 'bench-' || n
FROM generate_series(1, :rows) AS n;
INSERT INTO outbox (request_id, inbound_id, source, rule, kind, user_id, body, mapping_hash)
SELECT gen_random_uuid(), i.id, 'leadsquared', r.rule, r.kind::operation_kind,
       'lead' || i.id || '@example.com',
       json_build_object('userId', 'lead' || i.id || '@example.com',
                         'phone', '+919' || lpad(i.id::text, 9, '0'), 'rule', r.rule),
       'bench'
FROM inbound_records i, (VALUES ('lead-profile', 'user'), ('lead-created', 'event')) AS r(rule, kind);
UPDATE outbox SET status = 'delivered', delivered_at = now();
VACUUM ANALYZE;
SQL
  echo "filled $ROWS records in $(echo "$(date +%s.%N) - $start" | bc) s"
fi

# A lead among the newest (found on the first page) and one in the middle (the first
# page answers without it; its `next` cursor continues the search).
n=$((ROWS - 100))
search() {
  local best=999999
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s%N)
    DATABASE_URL=$URL RUST_LOG=error "$BIN" outbox list -q "$1" --json > /tmp/search.out
    t1=$(date +%s%N)
    best=$(echo "t=($t1 - $t0) / 1000000; if (t < $best) t else $best" | bc)
  done
  printf '%-70s %6s ms  %s row(s)\n' "$1" "$best" "$(grep -c '"id"' /tmp/search.out)"
}
search "Form Submitted on Website but not a real lead from the JEE crash course campaign"
search "lead$n@example.com"
search "+919$(printf '%09d' $n)"
search "prospect-$(printf '%08d' $n)"
n=$((ROWS / 2))
search "lead$n@example.com"
[ "${KEEP:-0}" = 1 ] || psql "$PGURL/postgres" -qc "DROP DATABASE $DB"
