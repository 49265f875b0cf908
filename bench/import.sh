#!/usr/bin/env bash
# Historical import: records a second and peak RSS of `webengage-bridge import` for
# ROWS (default 1,000,000) LeadSquared-shaped and Salesforce-style CSV rows, then the
# same LeadSquared file again (every row a duplicate), then ROWS×DRY_FACTOR rows
# streamed through stdin with --dry-run (mapping only: memory stays flat whatever the
# input's size, without a database that large on this disk).
#
#   bench/import.sh [ROWS] [DRY_FACTOR] [SHAPES]
#
# SHAPES (default `lsq,sf`) picks the files: `bench/import.sh 10000000 0 sf` imports
# only a 10,000,000-row Salesforce file (2.3 GB) and skips the dry run.
#
# Needs the local Postgres (TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres). The files and the database are deleted
# afterwards. Record results in BENCHMARKS.md ("Import").
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
DRY_FACTOR=${2:-10}
SHAPES=${3:-lsq,sf}
cargo build --release --quiet --bin webengage-bridge
ADMIN=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=wb_bench_import_$$
export DATABASE_URL=${ADMIN%/*}/$DB
export BRIDGE_MAPPINGS_DIR=mappings RUST_LOG=warn
WORK=$(mktemp -d)
cleanup() {
    rm -rf "$WORK"
    psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
}
trap cleanup EXIT
BIN=target/release/webengage-bridge
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ); $ROWS rows"
# Each shape starts from an empty database, as a bridge adopting a CRM's history does.
fresh_database() {
    psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
    $BIN migrate >/dev/null
}

measure() { # label, rows, command...
    local label=$1 rows=$2
    shift 2
    /usr/bin/time -v "$@" >"$WORK/out.txt" 2>"$WORK/time.txt" || { cat "$WORK/time.txt"; exit 1; }
    local secs rss
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$WORK/time.txt")
    rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2/1024}' "$WORK/time.txt")
    printf '%-34s %9d rows %7.1f s %9.0f rows/s  peak RSS %4d MiB\n' "$label" "$rows" "$secs" "$(echo "$rows / $secs" | bc -l)" "$rss"
    sed 's/^/    /' "$WORK/out.txt" | head -3
}

if [[ ,$SHAPES, == *,lsq,* ]]; then
    fresh_database
    python3 bench/import_rows.py lsq "$ROWS" >"$WORK/leads.csv"
    ls -l "$WORK/leads.csv" | awk '{printf "    %s %d MB\n", $NF, $5/1e6}'
    measure "leadsquared CSV" "$ROWS" $BIN import --quiet --source leadsquared "$WORK/leads.csv"
    measure "leadsquared CSV again (duplicates)" "$ROWS" $BIN import --quiet --source leadsquared "$WORK/leads.csv"
    rm -f "$WORK/leads.csv"
    psql "$DATABASE_URL" -Atc "SELECT 'database size: ' || pg_size_pretty(pg_database_size(current_database()))"
fi
if [[ ,$SHAPES, == *,sf,* ]]; then
    fresh_database
    python3 bench/import_rows.py sf "$ROWS" >"$WORK/sf.csv"
    ls -l "$WORK/sf.csv" | awk '{printf "    %s %d MB\n", $NF, $5/1e6}'
    measure "salesforce CSV (version fence)" "$ROWS" $BIN import --quiet --source salesforce "$WORK/sf.csv"
    rm -f "$WORK/sf.csv"
fi
DRY=$((ROWS * DRY_FACTOR))
if ((DRY > 0)); then
    measure "leadsquared stdin --dry-run" "$DRY" \
        bash -c "python3 bench/import_rows.py lsq $DRY | $BIN import --quiet --dry-run --format csv --source leadsquared -"
fi
psql "$DATABASE_URL" -Atc "SELECT 'database size: ' || pg_size_pretty(pg_database_size(current_database()))"
