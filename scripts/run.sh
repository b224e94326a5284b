#!/usr/bin/env bash
# The one command that starts the whole stack on a laptop: ./scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
if ! ensure_redis; then
    echo "Redis is not reachable at ${REDIS_URL:-redis://127.0.0.1:6379/0} and could not be started" >&2
    exit 1
fi
exec .venv/bin/python manage.py run_stack "$@"
