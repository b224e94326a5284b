"""The sliding window on its own (fakeredis, time given): no burst across a boundary."""

from __future__ import annotations

import fakeredis
import pytest

from generations.slidingwindow import admit, record


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_at_most_limit_in_any_window_even_across_a_fixed_boundary(client) -> None:
    # 3 per 10 s: 3 at t=9.9 (just before a fixed window's boundary at 10) ...
    for i in range(3):
        assert admit(client, "k", f"a{i}", 3, 10, now=9.9).admitted
    # ... and at t=10.1 a fixed window would let 3 more through; a sliding one none.
    refused = admit(client, "k", "b", 3, 10, now=10.1)
    assert not refused.admitted
    assert refused.retry_after == 10  # until t=19.9, rounded up
    assert admit(client, "k", "c", 3, 10, now=19.95).admitted  # the first three left


def test_refused_attempts_are_not_counted(client) -> None:
    assert admit(client, "k", "a", 1, 10, now=0).admitted
    for i in range(50):
        assert not admit(client, "k", f"x{i}", 1, 10, now=1 + i * 0.1).admitted
    assert admit(client, "k", "b", 1, 10, now=10.5).admitted  # hammering did not extend it


def test_an_entry_refreshed_stays_one_never_refreshed_drops_out(client) -> None:
    # Socket places: the heartbeat re-scores a member; a dead process's members age out.
    assert admit(client, "s", "live", 2, 3, now=0).admitted
    assert admit(client, "s", "dead", 2, 3, now=0).admitted
    assert not admit(client, "s", "new", 2, 3, now=2).admitted
    client.zadd("s", {"live": 2.5}, xx=True)
    assert admit(client, "s", "new", 2, 3, now=3.5).admitted  # "dead" is older than 3 s
    assert not admit(client, "s", "more", 2, 3, now=3.6).admitted


def test_record_counts_events_in_the_window(client) -> None:
    assert [record(client, "f", 900, now=t) for t in (0, 1, 2)] == [1, 2, 3]
    assert record(client, "f", 900, now=901.5) == 2  # t=0 and t=1 have left
