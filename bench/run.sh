#!/usr/bin/env bash
# The benchmark suite: ingest against Postgres' own single-row insert rate, latency,
# memory, a 100-notification Salesforce message, and the drain rate. One command, one
# run, ratios against baselines measured in the same run.
#
#   bench/run.sh                 # defaults: 64 connections, 3 rounds of 10 s per load
#   CONNECTIONS=64 DURATION=20 ROUNDS=5 bench/run.sh
#
# Needs: the local Postgres (127.0.0.1:5432, trust), pgbench, wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
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

# (a) and (b) run in alternating rounds (pgbench, bridge, pgbench, bridge, ...): this
# machine's speed swings by a third over minutes (shared cores), and a swing between
# one long pgbench run and one long bridge run would decide the ratio on its own.
fresh_db wb_bench_pg
psql "$PG/wb_bench_pg" -qAt -c "CREATE TABLE leads (id bigserial PRIMARY KEY, payload jsonb NOT NULL)" >/dev/null
LEAD_SQL=$(python3 -c 'import json,sys; print(json.dumps(json.load(open("mappings/tests/fixtures/lsq_lead_create.json"))).replace("'"'"'", "'"''"'"))')
printf "INSERT INTO leads (payload) VALUES ('%s');\n" "$LEAD_SQL" > "$OUT/insert.sql"
fresh_db wb_bench
# The bridge on its defaults (log level included), as a user would run it.
DATABASE_URL="$PG/wb_bench" BRIDGE_LISTEN="127.0.0.1:$PORT" \
  "$BIN" serve --no-worker > "$OUT/bridge.log" 2>&1 &
BRIDGE=$!
trap 'kill $BRIDGE 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

PG_CPU_A=0; PGBENCH_CPU=0; PG_CPU_B=0; BR_CPU=0; WRK_CPU=0; ROUND_LINES=""
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round/$ROUNDS: (a) pgbench, then (b) the bridge, $CONNECTIONS connections, ${DURATION}s each"
  psql "$PG/postgres" -qAt -c CHECKPOINT >/dev/null
  PG0=$(pg_cpu)
  /usr/bin/time -f "%U %S" -o "$OUT/pgbench.time" \
    pgbench -n -c "$CONNECTIONS" -j 2 -T "$DURATION" -f "$OUT/insert.sql" "$PG/wb_bench_pg" > "$OUT/pgbench-$round.txt" 2>&1
  PG1=$(pg_cpu)
  read -r U S < "$OUT/pgbench.time"
  PG_CPU_A=$(( PG_CPU_A + PG1 - PG0 ))
  PGBENCH_CPU=$(python3 -c "print(round($PGBENCH_CPU + ($U + $S) * $TICKS))")
  TPS=$(grep -Eo 'tps = [0-9.]+' "$OUT/pgbench-$round.txt" | head -1 | awk '{print $3}')

  psql "$PG/postgres" -qAt -c CHECKPOINT >/dev/null
  PG0=$(pg_cpu); BR0=$(proc_cpu "$BRIDGE")
  /usr/bin/time -f "%U %S" -o "$OUT/wrk.time" \
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/lsq_unique.lua \
    "http://127.0.0.1:$PORT/webhooks/leadsquared" > "$OUT/wrk-$round.txt" 2>&1
  PG1=$(pg_cpu); BR1=$(proc_cpu "$BRIDGE")
  read -r U S < "$OUT/wrk.time"
  PG_CPU_B=$(( PG_CPU_B + PG1 - PG0 )); BR_CPU=$(( BR_CPU + BR1 - BR0 ))
  WRK_CPU=$(python3 -c "print(round($WRK_CPU + ($U + $S) * $TICKS))")
  RPS=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-$round.txt")
  LINE="round $round: pgbench $TPS /s, bridge $RPS /s, ratio $(python3 -c "print(f'{$RPS / $TPS:.2f}')"), p99 $(awk '$1 == "99%" {print $2}' "$OUT/wrk-$round.txt")"
  echo "$LINE"; ROUND_LINES="$ROUND_LINES    $LINE"$'\n'
done
PG_ROWS=$(psql "$PG/wb_bench_pg" -qAt -c "SELECT count(*) FROM leads")
STORED=$(psql "$PG/wb_bench" -qAt -c "SELECT count(*) FROM inbound_records")
PG_TPS=$(python3 -c "print(f'{$PG_ROWS / ($ROUNDS * $DURATION):.0f}')")
BRIDGE_RPS=$(python3 -c "print(f'{$STORED / ($ROUNDS * $DURATION):.0f}')")
PGBENCH_COST="Postgres $(per_record "$PG_CPU_A" "$PG_ROWS") + pgbench $(per_record "$PGBENCH_CPU" "$PG_ROWS") µs of CPU per row"
BRIDGE_COST="Postgres $(per_record "$PG_CPU_B" "$STORED") + bridge $(per_record "$BR_CPU" "$STORED") + wrk $(per_record "$WRK_CPU" "$STORED") µs of CPU per record"
# Latency over every round: wrk prints percentiles per run, so the report gives the
# median round's p50 and the worst round's p99.
read -r P50 P99 < <(python3 - "$OUT"/wrk-*.txt <<'PY'
import re, sys
def ms(v):
    unit = re.search(r"[a-z]+$", v).group()
    return float(v[: -len(unit)]) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
found = {"50%": [], "99%": []}
for path in sys.argv[1:]:
    for line in open(path):
        parts = line.split()
        if len(parts) == 2 and parts[0] in found:
            found[parts[0]].append(parts[1])
p50 = sorted(found["50%"], key=ms)
print(p50[len(p50) // 2], max(found["99%"], key=ms))
PY
)
NON2XX=$(cat "$OUT"/wrk-*.txt | awk '/Non-2xx/ {n += $5} END {print n + 0}')
ERRORS=$(grep -hE 'Socket errors' "$OUT"/wrk-*.txt || true)

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
(a) pgbench single-row inserts      : $PG_TPS /s   ($CONNECTIONS connections, $ROUNDS rounds of ${DURATION}s)
    CPU per row                     : $PGBENCH_COST
(b) bridge accepted webhooks        : $BRIDGE_RPS /s   ($CONNECTIONS connections, $STORED records stored)
    CPU per record                  : $BRIDGE_COST
(c) ratio bridge / pgbench          : $RATIO
${ROUND_LINES%$'\n'}
(d) latency p50 / p99               : $P50 / $P99
    non-2xx answers                 : $NON2XX  ${ERRORS}
(e) peak RSS                        : $((RSS_KB / 1024)) MiB
(f) drain                           : $DRAIN
    the ingested load, delivered    : $DELIVERED; rows not delivered: $LEFT
(g) 100-notification ack (median)   : ${SF_MEDIAN}s
REPORT
