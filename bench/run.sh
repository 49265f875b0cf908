#!/usr/bin/env bash
# The benchmark suite: ingest against Postgres' own single-row insert rate, latency,
# memory, a 100-notification Salesforce message, and the drain rate. One command, one
# run, ratios against baselines measured in the same run.
#
#   bench/run.sh                 # defaults: 64 connections, 20 s per load
#   CONNECTIONS=64 DURATION=30 bench/run.sh
#
# Needs: the local Postgres (127.0.0.1:5432, trust), pgbench, wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-20}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18080}
OUT=${OUT:-target/bench}
mkdir -p "$OUT"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "pgbench is missing (postgresql-client)" >&2; exit 1; }

echo "== building the release binary"
cargo build --release --quiet --bin webengage-bridge
BIN=target/release/webengage-bridge

# CPU seconds used so far by the whole Postgres cluster: live processes plus the
# backends that already exited (the postmaster reaps them, so they count in its
# children's times). Reading /proc needs no privileges for this.
DATA_DIR=$(psql "$PG/postgres" -qAt -c "SHOW data_directory")
pg_cpu() {
  local pm total=0 fields
  pm=$(head -1 "$DATA_DIR/postmaster.pid" 2>/dev/null || echo 0)
  for p in $(pgrep -u "$(stat -c %U "$DATA_DIR")"); do
    fields=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    set -- $fields
    total=$(( total + ${12} + ${13} ))
    [ "$p" = "$pm" ] && total=$(( total + ${14} + ${15} ))
  done
  echo "$total"
}
proc_cpu() { local fields; fields=$(sed 's/.*) //' "/proc/$1/stat"); set -- $fields; echo $(( ${12} + ${13} )); }
TICKS=$(getconf CLK_TCK)
per_record() { python3 -c "print(f'{($1) / $TICKS / max($2, 1) * 1e6:.0f}')"; }

fresh_db() {
  psql "$PG/postgres" -qAt -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
}

# (a) The physical baseline: durable single-row inserts of a lead-sized JSON row.
echo "== (a) pgbench: single-row durable inserts, $CONNECTIONS connections, ${DURATION}s"
fresh_db wb_bench_pg
psql "$PG/wb_bench_pg" -qAt -c "CREATE TABLE leads (id bigserial PRIMARY KEY, payload jsonb NOT NULL)" >/dev/null
LEAD_SQL=$(python3 -c 'import json,sys; print(json.dumps(json.load(open("tests/fixtures/lsq_lead_create.json"))).replace("'"'"'", "'"''"'"))')
printf "INSERT INTO leads (payload) VALUES ('%s');\n" "$LEAD_SQL" > "$OUT/insert.sql"
PG0=$(pg_cpu)
/usr/bin/time -f "%U %S" -o "$OUT/pgbench.time" \
  pgbench -n -c "$CONNECTIONS" -j 2 -T "$DURATION" -f "$OUT/insert.sql" "$PG/wb_bench_pg" > "$OUT/pgbench.txt" 2>&1
PG1=$(pg_cpu)
PG_TPS=$(grep -Eo 'tps = [0-9.]+' "$OUT/pgbench.txt" | head -1 | awk '{print $3}')
PG_ROWS=$(psql "$PG/wb_bench_pg" -qAt -c "SELECT count(*) FROM leads")
read -r U S < "$OUT/pgbench.time"
PGBENCH_COST="Postgres $(per_record "$PG1 - $PG0" "$PG_ROWS") + pgbench $(per_record "($U + $S) * $TICKS" "$PG_ROWS") µs of CPU per row"
echo "pgbench: $PG_TPS inserts/s"

# (b) The bridge: unique LeadSquared webhooks, accepted (committed) per second.
echo "== (b) bridge: LeadSquared webhooks, $CONNECTIONS connections, ${DURATION}s"
fresh_db wb_bench
# The bridge on its defaults (log level included), as a user would run it.
DATABASE_URL="$PG/wb_bench" BRIDGE_LISTEN="127.0.0.1:$PORT" \
  "$BIN" serve --no-worker > "$OUT/bridge.log" 2>&1 &
BRIDGE=$!
trap 'kill $BRIDGE 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
PG0=$(pg_cpu); BR0=$(proc_cpu "$BRIDGE")
/usr/bin/time -f "%U %S" -o "$OUT/wrk.time" \
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/lsq_unique.lua \
  "http://127.0.0.1:$PORT/webhooks/leadsquared" > "$OUT/wrk.txt" 2>&1
PG1=$(pg_cpu); BR1=$(proc_cpu "$BRIDGE")
BRIDGE_RPS=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.txt")
P50=$(awk '$1 == "50%" {print $2}' "$OUT/wrk.txt")
P99=$(awk '$1 == "99%" {print $2}' "$OUT/wrk.txt")
NON2XX=$(awk '/Non-2xx/ {print $5}' "$OUT/wrk.txt"); NON2XX=${NON2XX:-0}
ERRORS=$(grep -E 'Socket errors' "$OUT/wrk.txt" || true)
STORED=$(psql "$PG/wb_bench" -qAt -c "SELECT count(*) FROM inbound_records")
read -r U S < "$OUT/wrk.time"
BRIDGE_COST="Postgres $(per_record "$PG1 - $PG0" "$STORED") + bridge $(per_record "$BR1 - $BR0" "$STORED") + wrk $(per_record "($U + $S) * $TICKS" "$STORED") µs of CPU per record"

# (g) A 100-notification Salesforce message: time to the Ack (median of 5).
echo "== (g) Salesforce: 100 notifications in one message"
python3 bench/sf_message.py 100 > "$OUT/sf100.xml"
SF_TIMES=()
for i in 1 2 3 4 5; do
  sed "s/BENCHRUN/run$i/g" "$OUT/sf100.xml" > "$OUT/sf100-$i.xml"
  SF_TIMES+=("$(curl -sS -o /dev/null -w '%{time_total}' -H 'Content-Type: text/xml' \
    --data-binary @"$OUT/sf100-$i.xml" "http://127.0.0.1:$PORT/webhooks/salesforce")")
done
SF_MEDIAN=$(printf '%s\n' "${SF_TIMES[@]}" | sort -n | sed -n 3p)

# (e) Peak resident memory of the bridge over the whole run.
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$BRIDGE/status")
kill "$BRIDGE"; wait "$BRIDGE" 2>/dev/null || true
trap - EXIT

# The whole ingested load, delivered afterwards to the stand-in WebEngage (no limits).
cargo build --release --quiet --example drain_bench
target/release/examples/drain_bench "$BIN" --database "$PG/wb_bench" > "$OUT/delivered.txt" 2>&1 || true
DELIVERED=$(grep -E 'ingested load:' "$OUT/delivered.txt" || echo "failed, see $OUT/delivered.txt")
LEFT=$(psql "$PG/wb_bench" -qAt -c "SELECT count(*) FROM outbox WHERE status <> 'delivered'")

# (f) Drain: pre-inserted rows delivered to a local stand-in for WebEngage, without
# limits and at WebEngage's default limits (bench/drain.sh prints both).
DRAIN_ROWS=${DRAIN_ROWS:-20000}
bench/drain.sh "$DRAIN_ROWS" > "$OUT/drain.txt" 2>&1 || true
DRAIN=$(grep -E '(no limits|default limits):' "$OUT/drain.txt" | paste -sd ';' - || echo "failed, see $OUT/drain.txt")

RATIO=$(python3 -c "print(f'{float(\"$BRIDGE_RPS\") / float(\"$PG_TPS\"):.2f}')")
cat <<REPORT | tee "$OUT/report.txt"

== results ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo))
(a) pgbench single-row inserts      : $PG_TPS /s   ($CONNECTIONS connections)
    CPU per row                     : $PGBENCH_COST
(b) bridge accepted webhooks        : $BRIDGE_RPS /s   ($CONNECTIONS connections, $STORED records stored)
    CPU per record                  : $BRIDGE_COST
(c) ratio bridge / pgbench          : $RATIO
(d) latency p50 / p99               : $P50 / $P99
    non-2xx answers                 : $NON2XX  ${ERRORS}
(e) peak RSS                        : $((RSS_KB / 1024)) MiB
(f) drain                           : $DRAIN
    the ingested load, delivered    : $DELIVERED; rows not delivered: $LEFT
(g) 100-notification ack (median)   : ${SF_MEDIAN}s
REPORT
