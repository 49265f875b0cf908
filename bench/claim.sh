#!/usr/bin/env bash
# The claim's plan with a large backlog: EXPLAIN (ANALYZE, BUFFERS) of the worker's
# claim statement, generic plan, on ROWS pending outbox rows (default 1,000,000).
#
#   bench/claim.sh                      # one user per row
#   bench/claim.sh 1000000 --blocked-heads  # every user's first row in flight
#
# Needs the local Postgres (TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres). Record results in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example claim_explain
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
exec target/release/examples/claim_explain "$@"
