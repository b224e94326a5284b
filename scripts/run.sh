#!/usr/bin/env bash
# The one command that starts the whole stack on a laptop: ./scripts/run.sh
# Redis at REDIS_URL → daphne + monitor + webhook sender as separate processes; no Redis →
# embedded mode (and the sender).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# A laptop demo on loopback: Django's debug mode (and its development key) unless told
# otherwise. run_stack says so when it starts. Never for a server anyone else can reach.
export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
exec .venv/bin/python manage.py run_stack "$@"
