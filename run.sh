#!/usr/bin/env bash
# Runs the whole system on this machine: PostgreSQL, a Kafka-compatible broker, an SMTP sink, the
# three services and a few sample orders. Ctrl-C stops everything. Options: ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh embedded
exec .venv/bin/oms up "$@"
