"""The pure delivery rules, as tables."""

from __future__ import annotations

import pytest

from generations import webhook_rules as rules

DELAYS = (5.0, 30.0, 120.0, 600.0, 3600.0)
DAY = 24 * 3600.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, rules.Outcome.DELIVERED),
        (204, rules.Outcome.DELIVERED),
        (299, rules.Outcome.DELIVERED),
        (None, rules.Outcome.RETRY),  # timeout or connection error
        (408, rules.Outcome.RETRY),
        (429, rules.Outcome.RETRY),
        (500, rules.Outcome.RETRY),
        (503, rules.Outcome.RETRY),
        (400, rules.Outcome.STOP),
        (401, rules.Outcome.STOP),
        (404, rules.Outcome.STOP),
        (410, rules.Outcome.STOP),
        (301, rules.Outcome.STOP),  # redirects are not followed
    ],
)
def test_what_an_answer_means(status, expected) -> None:
    assert rules.outcome(status) is expected


@pytest.mark.parametrize(
    ("attempt", "base"),
    [(1, 5), (2, 30), (3, 120), (4, 600), (5, 3600), (6, 3600), (40, 3600)],
)
def test_the_schedule_and_its_jitter(attempt, base) -> None:
    assert rules.retry_delay(attempt, DELAYS, rand=lambda: 0.5) == pytest.approx(base)
    assert rules.retry_delay(attempt, DELAYS, rand=lambda: 0.0) == pytest.approx(base * 0.8)
    assert rules.retry_delay(attempt, DELAYS, rand=lambda: 1.0) == pytest.approx(base * 1.2)


@pytest.mark.parametrize(
    ("status", "attempt", "failing_for", "state", "dead"),
    [
        (200, 1, 0, "delivered", False),
        (200, 9, DAY - 1, "delivered", False),
        (500, 1, 0, "pending", False),
        (None, 3, 200, "pending", False),
        (410, 1, 0, "failed", False),
        (404, 4, 1000, "failed", False),
        (500, 20, DAY - 10, "failed", True),  # the next try would be past 24 h
        (429, 20, DAY - 4000, "pending", False),
    ],
)
def test_after_an_attempt(status, attempt, failing_for, state, dead) -> None:
    decision = rules.decide(status, attempt, failing_for, DELAYS, DAY, rand=lambda: 0.5)
    assert (decision.state, decision.endpoint_dead) == (state, dead)
    assert (decision.delay is not None) == (state == "pending")


def test_a_whole_day_of_failures_is_about_29_attempts() -> None:
    waited, attempt = 0.0, 1
    while (d := rules.decide(500, attempt, waited, DELAYS, DAY, rand=lambda: 0.5)).delay:
        waited += d.delay
        attempt += 1
    assert d.endpoint_dead and 25 <= attempt <= 30
    assert waited <= DAY


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ["generation.completed", "generation.failed", "generation.cancelled"]),
        (["generation.started"], ["generation.started"]),
        (["generation.failed", "generation.queued", "generation.failed"],
         ["generation.queued", "generation.failed"]),
        (["generation.progress"], ["generation.progress"]),
    ],
)  # fmt: skip
def test_events_asked_for(raw, expected) -> None:
    assert rules.parse_events(raw) == expected


@pytest.mark.parametrize(
    "raw", [[], "generation.completed", ["generation.snapshot"], ["nope"], [1], {"a": 1}]
)
def test_events_refused(raw) -> None:
    with pytest.raises(rules.EventsError):
        rules.parse_events(raw)


def test_which_webhooks_an_event_goes_to() -> None:
    hooks = [("a", ["generation.completed"]), ("b", ["generation.started", "generation.completed"])]
    assert rules.targets("generation.completed", hooks) == ["a", "b"]
    assert rules.targets("generation.started", hooks) == ["b"]
    assert rules.targets("generation.progress", hooks) == []


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("0.0.0.0", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("fc00::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped loopback
        ("224.0.0.1", True),
        ("93.184.216.34", False),
        ("2606:2800:220:1:248:1893:25c8:1946", False),
    ],
)
def test_addresses(address, refused) -> None:
    assert rules.refused_address(address) is refused


@pytest.mark.parametrize(
    ("url", "host_port"),
    [
        ("https://example.com/hook", ("example.com", 443)),
        ("http://example.com:8080/x?y=1", ("example.com", 8080)),
        ("http://[::1]:9/", ("::1", 9)),
    ],
)
def test_urls_split(url, host_port) -> None:
    assert rules.split_url(url) == host_port


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "https://", "example.com", "http://u:p@h.com/",
     "http://h.com:99999/", 5, ""],
)  # fmt: skip
def test_urls_refused(url) -> None:
    with pytest.raises(rules.UrlRefused):
        rules.split_url(url)


def test_one_private_address_refuses_the_host() -> None:
    rules.check_addresses("ok.example", ["93.184.216.34"])
    with pytest.raises(rules.UrlRefused, match=r"10\.0\.0\.1"):
        rules.check_addresses("mixed.example", ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(rules.UrlRefused, match="does not resolve"):
        rules.check_addresses("none.example", [])
