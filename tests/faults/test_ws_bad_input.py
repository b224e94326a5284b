"""Bad input on /api/ws/progress, sent to the real daphne over TCP while another client
watches a live generation: each bad frame gets an error frame, a pong or a clean close code
(never 1011), and the watched generation loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import string
import struct
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from generations.models import ApiToken, Generation
from tests.faults.rawws import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Frame,
    HandshakeRefused,
    RawWebSocket,
)
from tests.faults.support import final_seq, record, tally
from tests.integration.clients import Watcher, create, slow_noise
from tests.support.servers import port_of
from tests.support.stack import Stack, start_daphne

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

APP_CLOSES = {4400, 4401, 4403, 4404}


# -------------------------------------------------------------------------- bookkeeping


@dataclass
class Family:
    """What one family of bad input got back."""

    name: str
    sent: int = 0
    error_frames: int = 0
    pongs: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)
    handshakes_refused: Counter[int] = field(default_factory=Counter)
    worked: int = 0

    def saw(self, frame: Frame) -> None:
        if frame.opcode == CLOSE:
            self.close_codes[frame.close_code or 1005] += 1
        elif frame.opcode == PONG:
            self.pongs += 1
        elif frame.opcode == TEXT:
            kind = frame.json().get("type")
            if kind == "error":
                self.error_frames += 1
            elif kind == "pong":
                self.pongs += 1

    def save(self, watched: dict[str, Any] | None = None, **extra: Any) -> None:
        record(
            f"bad input: {self.name}",
            {
                "kind": "bad-input",
                "sent": self.sent,
                "errorFrames": self.error_frames,
                "pongs": self.pongs,
                "closeCodes": {str(k): v for k, v in sorted(self.close_codes.items())},
                "handshakesRefused": {str(k): v for k, v in self.handshakes_refused.items()},
                "worked": self.worked,
                "count1011": self.close_codes.get(1011, 0),
                "watched": watched,
                **extra,
            },
        )


async def answer(ws: RawWebSocket, timeout: float = 5.0, control: bool = False) -> Frame:
    """The server's answer to the last frame: skips the live generation's own messages."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no answer: the socket stayed silent")
        if control:
            try:
                frame = await ws.recv_frame(left)
            except (asyncio.IncompleteReadError, ConnectionError):
                return Frame(CLOSE, struct.pack(">H", 1006))
        else:
            frame = await ws.recv(left)
        if frame.opcode == TEXT and frame.json().get("type", "").startswith("generation."):
            continue
        if frame.opcode == PING:
            await ws.send_frame(PONG, frame.payload)
            continue
        return frame


@contextlib.asynccontextmanager
async def watched_generation(
    stack: Stack, steps: int = 40, seconds: float = 0.1, seed: int = 0
) -> AsyncIterator[dict[str, Any]]:
    """A live generation and a client watching it; afterwards, what that client got."""
    gid = create(stack.web_url, slow_noise(steps=steps, seconds=seconds, seed=seed))["id"]
    report: dict[str, Any] = {"id": gid}
    async with Watcher(f"{stack.ws_url}/api/ws/progress?generationId={gid}") as watcher:
        await watcher.until(lambda ms: len(ms) >= 2)
        yield report
        msgs = await watcher.until_done(gid, timeout=60)
    figures = tally(msgs, final_seq(stack.web_url, gid)["seq"], gid)
    report.update(figures.as_json())
    assert figures.terminal == "generation.completed", figures
    assert figures.lost == figures.duplicated == figures.out_of_order == 0, figures


async def firehose(stack: Stack) -> RawWebSocket:
    return await RawWebSocket.connect(port_of(stack.web_url), "/api/ws/progress")


async def still_open(ws: RawWebSocket) -> None:
    await ws.send_json({"type": "ping"})
    frame = await answer(ws)
    assert frame.opcode == TEXT and frame.json() == {"type": "pong"}, frame


# -------------------------------------------------------------------------- one by one


async def send_and_expect_close(rig, family: Family, cases: list[dict[str, Any]]) -> list:
    """Each case on a socket of its own; returns the close code each one got (1006: none)."""
    codes = []
    for case in cases:
        ws = await firehose(rig)
        await ws.send_frame(case.pop("opcode"), case.pop("payload"), **case)
        family.sent += 1
        frame = await answer(ws, timeout=10)
        family.saw(frame)
        codes.append(frame.close_code)
        ws.abort()
    return codes


async def test_invalid_utf8_in_a_text_frame_closes_1007(rig) -> None:
    family = Family("invalid UTF-8 text frame")
    payloads = [b'\xff\xfe{"type":"ping"}', b'{"type":"\xe2\x82"}', b"\xc0\xaf", b"ok\xed\xa0\x80"]
    async with watched_generation(rig, seed=701) as watched:
        codes = await send_and_expect_close(
            rig, family, [{"opcode": TEXT, "payload": p} for p in payloads]
        )
    family.save(watched)
    assert 1011 not in codes
    assert codes == [1007] * len(payloads), codes


async def test_frames_over_one_mebibyte_close_1009(rig) -> None:
    family = Family("frames over 1 MiB")
    cases = [
        {"opcode": TEXT, "payload": b"x" * (1024 * 1024 + 1)},
        {"opcode": BINARY, "payload": b"\x00" * (1024 * 1024 + 1)},
        {"opcode": TEXT, "payload": b"{}", "declared_length": 1 << 40},  # a length that lies
    ]
    async with watched_generation(rig, seed=709) as watched:
        codes = await send_and_expect_close(rig, family, cases)
    family.save(watched)
    assert 1011 not in codes
    assert codes == [1009] * len(cases), codes


async def test_protocol_violations_close_1002(rig) -> None:
    family = Family("protocol violations (reserved opcode, RSV bits, unmasked)")
    cases = [
        {"opcode": 3, "payload": b"x"},
        {"opcode": 0xB, "payload": b"x"},
        {"opcode": TEXT, "payload": b'{"type":"ping"}', "rsv": 4},
        {"opcode": TEXT, "payload": b'{"type":"ping"}', "mask": False},
        {"opcode": CONTINUATION, "payload": b"x"},  # a continuation of nothing
    ]
    async with watched_generation(rig, seed=710) as watched:
        codes = await send_and_expect_close(rig, family, cases)
    family.save(watched)
    assert 1011 not in codes
    assert codes == [1002] * len(cases), codes


async def test_binary_frames_get_an_error_frame(rig) -> None:
    family = Family("binary frames")
    ping = json.dumps({"type": "ping"}).encode()
    payloads = [b"", b"\x00", os.urandom(64), ping, os.urandom(5000)]
    async with watched_generation(rig, seed=702) as watched:
        ws = await firehose(rig)
        for payload in payloads:
            await ws.send_frame(BINARY, payload)
            family.sent += 1
            frame = await answer(ws)
            family.saw(frame)
            assert frame.opcode == TEXT and frame.json()["type"] == "error", frame
            assert "binary" in frame.json()["error"]
        await still_open(ws)
        await ws.close()
    family.save(watched)
    assert family.error_frames == len(payloads)


async def test_frame_size_limits(rig) -> None:
    family = Family("frames over 4 KiB, up to 1 MiB")
    async with watched_generation(rig, seed=703) as watched:
        ws = await firehose(rig)
        # Exactly at the limit is still served; one character more is refused, politely.
        at_limit = json.dumps({"type": "ping", "pad": ""})
        at_limit = at_limit[:-2] + "x" * (4096 - len(at_limit)) + '"}'
        assert len(at_limit) == 4096
        await ws.send_text(at_limit)
        family.sent += 1
        frame = await answer(ws)
        family.saw(frame)
        assert frame.json() == {"type": "pong"}
        for size in (4097, 64 * 1024, 1024 * 1024):  # 1 MiB exactly: daphne still takes it
            await ws.send_text("x" * size)
            family.sent += 1
            frame = await answer(ws)
            family.saw(frame)
            assert frame.opcode == TEXT and "too large" in frame.json()["error"], frame
        await still_open(ws)
        await ws.close()
    family.save(watched)
    assert family.error_frames == 3 and family.pongs == 1 and not family.close_codes


async def test_deeply_nested_and_huge_json(rig) -> None:
    family = Family("nested and huge JSON")
    frames = [
        "[" * 2000 + "]" * 2000,  # valid, but deeper than the parser's recursion limit
        '{"type":' + "[" * 1500 + "]" * 1500 + "}",
        "[" * 4000,  # unterminated
        '{"a":' * 600 + "1" + "}" * 600,
        json.dumps({"type": "ping", "list": list(range(600))})[:4096],
        json.dumps({"type": "resume", "generationId": "x" * 100_000}),  # huge and over the cap
        json.dumps([{"k": i} for i in range(60_000)]),  # ~600 KB
    ]
    async with watched_generation(rig, seed=704) as watched:
        ws = await firehose(rig)
        for text in frames:
            await ws.send_text(text)
            family.sent += 1
            frame = await answer(ws)
            family.saw(frame)
            assert frame.opcode == TEXT and frame.json()["type"] in ("error", "pong"), frame
        await still_open(ws)
        await ws.close()
    family.save(watched)
    assert family.error_frames >= len(frames) - 1 and not family.close_codes


UNKNOWN_OR_MALFORMED = [
    {"type": "subscribe"},
    {"type": "PING"},
    {"type": 5},
    {"type": None},
    {"kind": "ping"},
    [],
    None,
    "ping",
    12,
    {"type": "resume"},
    {"type": "resume", "generationId": "not-a-uuid", "afterSeq": 0},
    {"type": "resume", "generationId": str(uuid.uuid4()), "afterSeq": -1},
    {"type": "resume", "generationId": str(uuid.uuid4()), "afterSeq": True},
    {"type": "resume", "generationId": str(uuid.uuid4()), "afterSeq": 1.5},
    {"type": "resume", "generationId": str(uuid.uuid4()), "afterSeq": "3"},
    {"type": "resume", "generationId": str(uuid.uuid4()), "afterSeq": 10**30},
    {"type": "resume", "generationId": str(uuid.uuid4()), "afterSeq": 0},  # unknown one
]


async def test_unknown_types_and_malformed_frames(rig) -> None:
    family = Family("unknown types and malformed frames")
    texts = [json.dumps(v) for v in UNKNOWN_OR_MALFORMED]
    texts += ["", " ", "{", '{"type": "ping"', "NaN", '{"type": "ping"} trailing', "\x00"]
    async with watched_generation(rig, seed=705) as watched:
        ws = await firehose(rig)
        for text in texts:
            await ws.send_text(text)
            family.sent += 1
            frame = await answer(ws)
            family.saw(frame)
            assert frame.opcode == TEXT and frame.json()["type"] == "error", (text, frame)
        await still_open(ws)
        # A filtered socket may resume only its own generation.
        own = await RawWebSocket.connect(
            port_of(rig.web_url), f"/api/ws/progress?generationId={watched['id']}"
        )
        other = str(uuid.uuid4())
        await own.send_json({"type": "resume", "generationId": other, "afterSeq": 0})
        family.sent += 1
        frame = await answer(own)
        family.saw(frame)
        assert "another generation" in frame.json()["error"]
        await own.close()
        await ws.close()
    family.save(watched)
    assert family.error_frames == family.sent


async def test_flood_of_client_frames_is_rate_limited(rig) -> None:
    family = Family("flood of resume and ping frames")
    async with watched_generation(rig, steps=60, seed=706) as watched:
        gid = watched["id"]
        ws = await RawWebSocket.connect(
            port_of(rig.web_url), f"/api/ws/progress?generationId={gid}"
        )
        # 200 resumes as fast as they go: at most the burst (40) plus what refills meanwhile
        # (20/s) is served; every other one gets an error frame.
        resume = json.dumps({"type": "resume", "generationId": gid, "afterSeq": 10**9})
        started = time.monotonic()
        for _ in range(200):
            await ws.send_text(resume)
        family.sent += 200
        # Each one served answers with a snapshot ("recovered": false: nothing is that
        # new); each one refused with an error frame. Live messages pass in between.
        refused = served = 0
        while refused + served < 200:
            frame = await ws.recv(timeout=10)
            assert frame.opcode == TEXT, frame
            body = frame.json()
            if body["type"] == "error":
                assert "too many frames" in body["error"], body
                refused += 1
            elif body["type"] == "generation.snapshot" and body.get("recovered") is False:
                served += 1
        # The bucket is read as each frame is handled (each resume re-checks access in the
        # database): the window that bounds what was served ends at the last answer.
        handled = time.monotonic() - started
        family.error_frames += refused
        await asyncio.sleep(2.1)  # the bucket refills
        await still_open(ws)
        await ws.close()
        # Pings on the firehose: every one is answered, pong or error, none goes unanswered.
        hose = await firehose(rig)
        started = time.monotonic()
        for _ in range(100):
            await hose.send_json({"type": "ping"})
        elapsed = time.monotonic() - started
        pongs = errors = 0
        while pongs + errors < 100:
            frame = await answer(hose)
            body = frame.json()
            pongs += body["type"] == "pong"
            errors += body["type"] == "error"
        family.sent += 100
        family.pongs += pongs
        family.error_frames += errors
        await hose.close()
    family.save(
        watched,
        resumesServed=served,
        resumesRefused=refused,
        pingsAnswered=pongs,
        pingsRefused=errors,
    )
    assert 40 <= pongs <= 40 + 20 * (elapsed + 0.5) + 1, (pongs, elapsed)
    assert 40 <= served <= 40 + 20 * (handled + 1) + 1, (served, refused, handled)
    assert refused >= 200 - (40 + 20 * (handled + 1) + 1), (served, refused, handled)
    assert not family.close_codes


# -------------------------------------------------------------------------- hypothesis

# Strategies for frames: what each one is, and what it must get back.
KEYS = st.sampled_from(["type", "generationId", "afterSeq", "x"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
client_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(["ping", "resume", "pong", "subscribe", "", "error"])},
    optional={
        "generationId": st.one_of(st.uuids().map(str), st.text(max_size=40)),
        "afterSeq": st.one_of(st.integers(min_value=-5, max_value=10**15), st.text(max_size=5)),
    },
)
frames = st.one_of(
    st.tuples(st.just("text"), client_objects.map(json.dumps)),
    st.tuples(st.just("text"), json_values.map(json.dumps)),
    st.tuples(st.just("text"), st.text(max_size=200)),
    st.tuples(st.just("text"), st.integers(4097, 9000).map(lambda n: "y" * n)),
    st.tuples(st.just("binary"), st.binary(max_size=300)),
    st.tuples(st.just("ping"), st.binary(max_size=125)),
    st.tuples(st.just("fragmented"), client_objects.map(json.dumps)),
)


async def send_one(ws: RawWebSocket, kind: str, value: Any) -> tuple[str, Frame]:
    """Send one generated frame; returns what it must get ("answer" or "pong") and what did."""
    if kind == "ping":
        await ws.send_frame(PING, value)
        return "pong", await answer(ws, control=True)
    if kind == "binary":
        await ws.send_frame(BINARY, value)
    elif kind == "fragmented":  # one message in two frames: answered like any other
        data = value.encode()
        cut = len(data) // 2
        await ws.send_frame(TEXT, data[:cut], fin=False)
        await ws.send_frame(CONTINUATION, data[cut:])
    else:
        await ws.send_text(value)
    return "answer", await answer(ws)


async def test_generated_frames_against_the_real_daphne(rig) -> None:
    family = Family("generated frames (hypothesis, real daphne)")
    port = port_of(rig.web_url)
    problems: list[str] = []

    @settings(
        max_examples=70,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(frames, min_size=1, max_size=5))
    def check(sequence: list[tuple[str, Any]]) -> None:
        async def scenario() -> None:
            ws = await RawWebSocket.connect(port, "/api/ws/progress")
            try:
                for kind, value in sequence:
                    family.sent += 1
                    wanted, frame = await send_one(ws, kind, value)
                    family.saw(frame)
                    if wanted == "pong":
                        assert frame.opcode == PONG and frame.payload == value, (kind, frame)
                        continue
                    assert frame.opcode == TEXT, (kind, value, frame)
                    assert frame.json()["type"] in ("error", "pong"), (kind, value, frame)
                await ws.close()
            finally:
                ws.abort()

        try:
            asyncio.run(scenario())
        except AssertionError as exc:
            problems.append(repr(exc)[:300])
            raise

    async with watched_generation(rig, steps=100, seed=707) as watched:
        await asyncio.to_thread(check)
    family.save(watched)
    assert not problems
    assert family.close_codes.get(1011, 0) == 0


# -------------------------------------------------------------------------- query strings


@pytest.fixture(scope="module")
def secured_web(fault_stack: Stack) -> Iterator[int]:
    """A second daphne on the same stack that requires a login (for 4401 and 4403)."""
    env = dict(fault_stack.env, LOCKNGEN_REQUIRE_AUTH="true")
    proc, port = start_daphne(fault_stack.log_dir, env, name="daphne-secured")
    try:
        yield port
    finally:
        proc.stop()


PLACEHOLDERS = ["OWN", "OTHER", "MISSING", "OWN_HEX", "OWN_UPPER", "OWN_URN"]


def query_strings() -> st.SearchStrategy[str]:
    """generationId and afterSeq (none, one or two of each) among other pairs, in any order."""
    safe = string.ascii_letters + string.digits + "-_.~{}:%+,"
    raw = st.text(alphabet=safe, max_size=40)
    ids = st.one_of(
        st.sampled_from(PLACEHOLDERS),
        st.sampled_from(["", "0", "not-a-uuid", "%ff", "{OWN}", "OWN%00", "OWN,OWN"]),
        raw,
    )
    seqs = st.one_of(
        st.sampled_from(["", "0", "7", "-1", "1e3", "99999999999999999", "%ff", "%00", "+1"]),
        st.integers(0, 10**12).map(str),
        raw,
    )
    other_keys = st.sampled_from(["generationid", "generationId[]", "", "x", "afterseq"])
    extra = st.tuples(st.one_of(other_keys, raw), raw)
    pairs = st.tuples(
        st.lists(ids, max_size=2).map(lambda vs: [("generationId", v) for v in vs]),
        st.lists(seqs, max_size=2).map(lambda vs: [("afterSeq", v) for v in vs]),
        st.lists(extra, max_size=2),
    ).flatmap(lambda parts: st.permutations(parts[0] + parts[1] + parts[2]))
    return st.tuples(pairs, st.sampled_from(["&", "&", ";"])).map(
        lambda t: t[1].join(f"{k}={v}" for k, v in t[0])
    )


def expected_outcome(query: str, who: str, tokens: dict[str, str], own: uuid.UUID) -> Any:
    """The README's answer where it is unambiguous: a close code, "works", or None."""
    if who not in tokens:
        return 4401
    if ";" in query:
        return None  # whether ";" separates pairs is up to the parser
    found = parse_qs(query)
    ids, seqs = found.get("generationId"), found.get("afterSeq")
    if ids is None:
        return "works"  # the firehose
    if len(ids) > 1 or (seqs is not None and len(seqs) > 1):
        return None  # which of two values wins is not specified
    try:
        wanted = uuid.UUID(ids[0])
    except ValueError:
        return 4400
    if seqs is not None:
        if not seqs[0].isascii() or not seqs[0].isdigit():
            return 4400
        if len(seqs[0]) > 12:
            return None
    if wanted != own:
        return 4404
    return 4403 if who == "bob" else "works"


async def test_every_query_string_gets_a_clean_answer(rig, secured_web, django_user_model) -> None:
    family = Family("query strings and credentials (hypothesis)")

    def people() -> dict[str, Any]:
        alice = django_user_model.objects.create_user("q-alice", password="pw")
        bob = django_user_model.objects.create_user("q-bob", password="pw")
        root = django_user_model.objects.create_user("q-root", password="pw", is_staff=True)
        own = Generation.objects.create(
            prompt_id=str(uuid.uuid4()), workflow={}, owner=alice, status="completed", seq=3
        )
        return {
            "tokens": {
                "alice": ApiToken.issue(alice)[1],
                "bob": ApiToken.issue(bob)[1],
                "root": ApiToken.issue(root)[1],
            },
            "own": own.id,
        }

    known = await asyncio.to_thread(people)
    own: uuid.UUID = known["own"]
    substitutes = {
        "OWN": str(own),
        "OTHER": str(uuid.uuid4()),
        "MISSING": str(uuid.uuid4()),
        "OWN_HEX": own.hex,
        "OWN_UPPER": str(own).upper(),
        "OWN_URN": own.urn,
    }
    credentials = st.sampled_from(
        ["alice", "alice", "bob", "root", "none", "bogus", "empty", "basic"]
    )
    own_origin = f"http://127.0.0.1:{secured_web}"  # the whole origin: scheme, host, port
    origins = st.sampled_from([None, None, own_origin, "http://evil.example"])
    problems: list[str] = []

    def headers_for(who: str, origin: str | None) -> dict[str, str]:
        headers = {}
        if who in known["tokens"]:
            headers["Authorization"] = f"Bearer {known['tokens'][who]}"
        elif who == "bogus":
            headers["Authorization"] = "Bearer lng_not-a-real-token"
        elif who == "empty":
            headers["Authorization"] = "Bearer "
        elif who == "basic":
            headers["Authorization"] = "Basic YWxpY2U6cHc="
        if origin is not None:
            headers["Origin"] = origin
        return headers

    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(query_strings(), credentials, origins)
    @example("generationId=OWN&afterSeq=1", "alice", None)  # every answer at least once
    @example("generationId=OWN", "bob", None)
    @example("generationId=MISSING&afterSeq=0", "root", own_origin)
    @example("generationId=OWN&afterSeq=-1", "alice", None)
    @example("", "none", None)
    @example("", "alice", "http://evil.example")
    def check(query: str, who: str, origin: str | None) -> None:
        for name, value in sorted(substitutes.items(), key=lambda kv: -len(kv[0])):
            query = query.replace(name, value)
        path = f"/api/ws/progress?{query}" if query else "/api/ws/progress"
        wanted = expected_outcome(query, who, known["tokens"], own)

        async def scenario() -> None:
            try:
                ws = await RawWebSocket.connect(secured_web, path, headers_for(who, origin))
            except HandshakeRefused as exc:
                family.handshakes_refused[exc.status] += 1
                # Only a foreign page is refused before the socket opens.
                assert exc.status == 403 and origin == "http://evil.example", (path, exc.head)
                return
            try:
                await ws.send_json({"type": "ping"})
                while True:
                    frame = await ws.recv(timeout=5)
                    family.saw(frame)
                    if frame.opcode == CLOSE:
                        code = frame.close_code
                        assert code in APP_CLOSES, (path, who, code)
                        assert wanted in (None, code), (path, who, code, wanted)
                        return
                    body = frame.json()
                    if body.get("type") == "pong":
                        family.worked += 1
                        assert wanted in (None, "works"), (path, who, wanted)
                        return
            finally:
                ws.abort()

        try:
            asyncio.run(scenario())
        except AssertionError as exc:
            problems.append(repr(exc)[:300])
            raise

    async with watched_generation(rig, steps=60, seed=708) as watched:
        await asyncio.to_thread(check)
    family.sent = family.worked + sum(family.close_codes.values())
    family.sent += sum(family.handshakes_refused.values())
    family.save(watched)
    assert not problems
    assert family.close_codes.get(1011, 0) == 0
    assert set(family.close_codes) == APP_CLOSES and family.worked, family
