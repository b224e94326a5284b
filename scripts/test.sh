#!/usr/bin/env bash
# The one command that runs every test: ./scripts/test.sh [pytest args]
# The suite runs on SQLite, then again on PostgreSQL when one answers (or can be started).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
if ! ensure_redis; then
    echo "Redis is needed by the tests and could not be started (apt-get install redis-server)" >&2
    exit 1
fi
if [ -x scripts/ensure_test_tools.sh ]; then
    scripts/ensure_test_tools.sh
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Types: every application package (lockngen, generations, progress, comfyui, comfyui_sim), pyproject.toml [tool.mypy].
.venv/bin/mypy

echo "== the suite on SQLite"
.venv/bin/python -m pytest "$@"

if ensure_postgres; then
    echo "== the suite on PostgreSQL"
    LOCKNGEN_TEST_DB=postgres .venv/bin/python -m pytest "$@"
else
    echo "PostgreSQL not available: the PostgreSQL run was skipped" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
fi
