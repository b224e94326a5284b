"""Test settings: the app's own, pointed at a Redis database index, key prefix and SQLite
file of the test run's own. Set in the environment, so the daphne and monitor processes
that the integration tests start read exactly the same configuration."""

import os
import tempfile
import uuid

_run = os.environ.setdefault("LOCKNGEN_TEST_RUN", uuid.uuid4().hex[:12])
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ.setdefault("LOCKNGEN_REDIS_PREFIX", f"lockngen-test-{_run}")
# LOCKNGEN_TEST_DB=postgres runs the suite on PostgreSQL (a database of the run's own).
if os.environ.get("LOCKNGEN_TEST_DB") == "postgres":
    _pg = os.environ.get("LOCKNGEN_TEST_PG", "postgres://postgres@127.0.0.1:5432")
    os.environ.setdefault("DATABASE_URL", f"{_pg}/lockngen_test_{_run}")
else:
    os.environ.setdefault(
        "DATABASE_URL", f"sqlite:///{tempfile.gettempdir()}/lockngen-test-{_run}.sqlite3"
    )
os.environ.setdefault("DJANGO_MEDIA_ROOT", f"{tempfile.gettempdir()}/lockngen-test-{_run}-media")
os.environ.setdefault("LOCKNGEN_PROGRESS_WRITE_INTERVAL", "0.2")
# DEBUG stays off (the production default), so the app wants a real key; the child
# processes inherit this one.
os.environ.setdefault("DJANGO_SECRET_KEY", f"lockngen-test-{_run}-{uuid.uuid4().hex}")

from lockngen.settings import *  # noqa: E402, F403
from lockngen.settings import DATABASES  # noqa: E402

# The test database is the very file the child processes open (not an in-memory copy).
DATABASES["default"].setdefault("TEST", {})["NAME"] = DATABASES["default"]["NAME"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
