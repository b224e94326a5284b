"""Socket places taken by one Redis script: the same verdicts as the transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import fakeredis
import pytest
import pytest_asyncio
import redis.asyncio as aredis
from django.conf import settings

from generations import slidingwindow
from generations.slidingwindow import Verdict, admit_async

pytestmark = pytest.mark.asyncio

# (member, now): two places; "a" leaves the window (3 s) between t=2.9 and t=3.2.
STEPS = [("a", 0.0), ("b", 0.5), ("c", 1.0), ("d", 2.9), ("e", 3.2), ("f", 3.3)]


@pytest_asyncio.fixture
async def real() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL)
    try:
        await client.ping()
    except (OSError, aredis.RedisError):
        pytest.skip("no Redis")
    yield client
    await client.aclose()


async def verdicts(client, key: str, transaction: bool) -> list[Verdict]:
    admit = slidingwindow._admit_by_transaction if transaction else admit_async
    return [await admit(client, key, member, 2, 3.0, now) for member, now in STEPS]


async def test_script_and_transaction_agree(real) -> None:
    key = f"{settings.REDIS_PREFIX}:test-admit:{uuid.uuid4().hex}"
    by_script = await verdicts(real, key, transaction=False)
    assert await real.zrange(key, 0, -1) == [b"b", b"e"]  # refused ones were never added
    assert 0 < await real.ttl(key) <= 4
    by_transaction = await verdicts(real, key + ":t", transaction=True)
    assert by_script == by_transaction
    assert [v.admitted for v in by_script] == [True, True, False, False, True, False]
    assert by_script[2] == Verdict(False, 2, 2)  # "a" leaves the window at t=3


async def test_the_script_is_loaded_when_redis_does_not_have_it(real) -> None:
    await real.script_flush()
    key = f"{settings.REDIS_PREFIX}:test-admit:{uuid.uuid4().hex}"
    assert (await admit_async(real, key, "m", 1, 3.0)).admitted
    assert (await real.script_exists(slidingwindow._ADMIT_SHA)) == [True]


async def test_without_scripting_the_transaction_is_used() -> None:
    client = fakeredis.FakeAsyncRedis()  # no Lua here
    expected = [True, True, False, False, True, False]
    assert [v.admitted for v in await verdicts(client, "k", transaction=False)] == expected
    assert client in slidingwindow._no_scripts
