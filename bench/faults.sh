#!/usr/bin/env bash
# Fault suite (see docs/operations.md): builds the release binary and runs the
# scenarios in bench/faults.py against the local Postgres on 127.0.0.1:5432.
# WARNING: the postgres-restart scenario restarts the local cluster
# (pg_ctlcluster 15 main restart). Never run this while others use that cluster for
# tests; run a subset with `bench/faults.sh kill9 webengage-500`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin webengage-bridge
exec python3 bench/faults.py "$@"
