#!/usr/bin/env bash
# The claim's plan with a large backlog: EXPLAIN (ANALYZE, BUFFERS) of the worker's
# claim statement, generic plan, on ROWS open outbox rows (default 1,000,000).
#
#   bench/claim.sh                          # one user per row, never tried
#   bench/claim.sh 10000000 --shape retries # every row tried once and due again
#   bench/claim.sh 10000000 --shape blocked # every user's head in flight or waiting
#
# Needs the local Postgres (TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres) and about 1 GB of disk per million rows
# while it runs. Record results in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example claim_explain
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
exec target/release/examples/claim_explain "$@"
