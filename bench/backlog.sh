#!/usr/bin/env bash
# Deep backlogs: the share of each bulk endpoint's quota the worker uses with both
# kinds queued, coalescing of queued user updates, and the claim at ROWS open rows in
# each shape (fresh, retries, heads blocked).
#
#   bench/backlog.sh                 # quota use over 3 windows of 20 s, 10,000 leads, claims at 10,000,000 rows
#   WINDOWS=2 LEADS=2000 ROWS=1000000 bench/backlog.sh
#   WINDOW_SECONDS=60 bench/backlog.sh   # WebEngage's real minute (slower)
#
# The quota run shortens the quota window with the test-only BRIDGE_RATE_WINDOW; the
# stand-in counts the same windows and answers 429 past a quota, as WebEngage does.
# Needs the local Postgres (TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres) and about 1 GB of disk per million claim
# rows while a shape runs; every database is dropped after. Record results in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
windows="${WINDOWS:-3}"
leads="${LEADS:-10000}"
rows="${ROWS:-10000000}"
cargo build --release --quiet --bin webengage-bridge --example drain_bench --example claim_explain
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ)"
target/release/examples/drain_bench target/release/webengage-bridge --quota-use "$windows"
target/release/examples/drain_bench target/release/webengage-bridge --coalesce "$leads"
for shape in fresh retries blocked; do
  echo
  echo "== claim, $rows rows, shape $shape"
  target/release/examples/claim_explain "$rows" --shape "$shape" | grep -E '^[0-9]+ |Index|Execution Time|execution times'
done
