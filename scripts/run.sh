#!/usr/bin/env bash
# The one command that starts the whole stack on a laptop: ./scripts/run.sh
# Redis at REDIS_URL → daphne + monitor as separate processes; no Redis → embedded mode.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
exec .venv/bin/python manage.py run_stack "$@"
