#!/usr/bin/env bash
# Shared by run.sh and test.sh: a venv with the pinned requirements, and Redis when we can.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $PYTHON_BIN"
    "$PYTHON_BIN" -m venv .venv
fi
# Reinstall only when requirements.txt changed since the last install.
stamp=.venv/.requirements.sha
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt
    echo "$want" > "$stamp"
fi

redis_up() {
    .venv/bin/python - <<'PY' 2>/dev/null
import os, sys, redis
try:
    redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), socket_timeout=1).ping()
except Exception:
    sys.exit(1)
PY
}

ensure_redis() {
    if redis_up; then return 0; fi
    if command -v redis-server >/dev/null; then
        echo "starting redis-server on 127.0.0.1:6379"
        mkdir -p /tmp/lockngen-redis
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir /tmp/lockngen-redis --logfile /tmp/lockngen-redis/redis.log
        for _ in $(seq 1 50); do redis_up && return 0; sleep 0.1; done
    fi
    return 1
}

pg_up() {
    .venv/bin/python - <<'PY' 2>/dev/null
import os, sys, psycopg
try:
    psycopg.connect(os.environ.get("LOCKNGEN_TEST_PG", "postgres://postgres@127.0.0.1:5432") + "/postgres", connect_timeout=2).close()
except Exception:
    sys.exit(1)
PY
}

ensure_postgres() {
    if pg_up; then return 0; fi
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        echo "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
        for _ in $(seq 1 50); do pg_up && return 0; sleep 0.2; done
    fi
    return 1
}
