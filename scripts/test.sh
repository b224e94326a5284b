#!/usr/bin/env bash
# The one command that runs every test: ./scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
if ! ensure_redis; then
    echo "Redis is needed by the tests and could not be started (apt-get install redis-server)" >&2
    exit 1
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
