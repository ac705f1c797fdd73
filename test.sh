#!/usr/bin/env bash
# Runs the test suite against real servers (embedded PostgreSQL and broker by default), then ruff.
# Extra arguments go to pytest, e.g. ./test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet .
exec .venv/bin/pytest "$@"
