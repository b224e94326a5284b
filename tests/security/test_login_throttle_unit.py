"""The login lockout's bookkeeping on its own (fakeredis): per username and per address."""

from __future__ import annotations

import fakeredis

from generations import login_throttle as lt


def test_ten_failures_lock_the_username_from_any_address() -> None:
    client = fakeredis.FakeRedis()
    for i in range(9):
        lt.record_failure(client, "Alice", f"10.0.0.{i}")  # spread over addresses
    assert lt.locked_for(client, "alice", "10.0.1.1") == 0
    lt.record_failure(client, "alice ", "10.0.0.99")
    assert 890 < lt.locked_for(client, "ALICE", "10.0.1.1") <= 900
    assert lt.locked_for(client, "bob", "10.0.1.1") == 0  # others are not held back
    lt.unlock(client, username="alice")
    assert lt.locked_for(client, "alice", "10.0.1.1") == 0


def test_ten_failures_from_one_address_lock_the_address_for_every_username() -> None:
    client = fakeredis.FakeRedis()
    for i in range(10):
        lt.record_failure(client, f"guess{i}", "10.0.0.7")
    assert lt.locked_for(client, "bob", "10.0.0.7") > 0
    assert lt.locked_for(client, "bob", "10.0.0.8") == 0
    lt.unlock(client, address="10.0.0.7")
    assert lt.locked_for(client, "bob", "10.0.0.7") == 0
