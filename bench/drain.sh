#!/usr/bin/env bash
# Drain benchmark: N pre-inserted outbox rows (default 20000) through the release
# `worker` into a local stand-in WebEngage, once without limits and once at WebEngage's
# default limits. Needs the local Postgres (TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres). Record results in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-20000}"
cargo build --release --quiet --bin webengage-bridge --example drain_bench
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ)"
exec target/release/examples/drain_bench target/release/webengage-bridge "$rows"
