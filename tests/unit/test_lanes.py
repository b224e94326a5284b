"""progress/lanes.py: sockets in step with a generation's run, written to in one loop, and
the FanOut's use of them (``_Subscription.lane_for``, ``FanOut._relay``) with real consumers
over real socket pairs."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generations.access import Viewer
from progress import wire
from progress.consumers import ProgressConsumer
from progress.events import LayerEvent
from progress.fanout import FanOut, Relayed, _Subscription
from progress.lanes import MAX_LANES, Lane
from tests.support.wire_fakes import FakeProtocol, FakeTransport, read_all
from tests.unit.test_wire import parse_server_frame

GENERATION = "6f1f2d8e-5d7a-4c1e-9d38-0a4f5b1c2d3e"


class Recorder:
    """A lane member that only records when it was let go, and at which position."""

    def __init__(self) -> None:
        self.left: list[int] = []

    def left_lane(self, lane: Lane) -> None:
        self.left.append(lane.pos)


def slot_for(sock: socket.socket) -> tuple[FakeProtocol, FakeTransport, object]:
    transport = FakeTransport(sock)
    return FakeProtocol(transport), transport, sock.send


def event(seq: int, generation_id: str = GENERATION, kind: str = "generation.progress"):
    text = json.dumps({"type": kind, "generationId": generation_id, "seq": seq})
    return LayerEvent(
        type=kind,  # type: ignore[typeddict-item]
        generation_id=generation_id,
        seq=seq,
        owner_id=None,
        text=text,
        received_at=0.0,
    )


def frames(data: bytes) -> list[dict]:
    out = []
    while data:
        first, payload, data = parse_server_frame(data)
        assert first == 0x81
        out.append(json.loads(payload))
    return out


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(4)]
    for a, b in made:
        a.setblocking(False)
        b.setblocking(False)
    yield made
    for a, b in made:
        a.close()
        b.close()


def test_a_lane_writes_the_same_frame_to_every_member_and_moves_on(pairs) -> None:
    lane = Lane(GENERATION, 4)
    members = [Recorder() for _ in pairs]
    for member, (server, _) in zip(members, pairs, strict=True):
        lane.add(member, slot_for(server))
    frame = wire.text_frame(event(5)["text"])
    assert lane.send(frame) == len(pairs)
    assert lane.pos == 5
    for _, client in pairs:
        assert read_all(client) == frame
    assert all(member.left == [] for member in members)


def test_a_member_with_bytes_queued_or_closing_decides_this_message_itself(pairs) -> None:
    lane = Lane(GENERATION, 4)
    busy, closing, fine = Recorder(), Recorder(), Recorder()
    busy_slot, closing_slot = slot_for(pairs[0][0]), slot_for(pairs[1][0])
    busy_slot[1].write(b"a pong Twisted has not written yet")
    closing_slot[0].state = wire._OPEN + 1
    lane.add(busy, busy_slot)
    lane.add(closing, closing_slot)
    lane.add(fine, slot_for(pairs[2][0]))
    assert lane.send(wire.text_frame(event(5)["text"])) == 1
    assert busy.left == [4] and closing.left == [4]  # not sent: still at 4
    assert read_all(pairs[0][1]) == b"" and read_all(pairs[1][1]) == b""
    assert list(lane.slots) == [fine]


def test_what_the_kernel_does_not_take_is_queued_and_the_member_leaves_after_it(pair) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    lane, member = Lane(GENERATION, 0), Recorder()
    protocol, transport, send = slot_for(server)
    lane.add(member, (protocol, transport, send))
    frame = wire.text_frame("x" * 300_000)
    assert lane.send(frame) == 1
    assert member.left == [1]  # sent (partly queued): it is at 1 now, deciding for itself
    flusher = threading.Thread(target=transport.flush)  # it blocks until the rest is read
    flusher.start()
    received = b""
    while len(received) < len(frame):
        received += read_all(client)
    flusher.join()
    assert received == frame


def test_a_broken_socket_hands_the_whole_frame_to_the_transport(pair) -> None:
    server, _ = pair
    member = Recorder()
    protocol, transport, _send = slot_for(server)

    def broken(data: bytes) -> int:
        raise BrokenPipeError

    lane = Lane(GENERATION, 0)
    lane.add(member, (protocol, transport, broken))
    frame = wire.text_frame("y")
    lane.send(frame)
    assert transport.written == [frame] and member.left == [1]


def test_a_subscription_sends_in_order_disbands_at_a_gap_and_ignores_a_duplicate(pair) -> None:
    server, client = pair
    sub, member = _Subscription("g"), Recorder()
    lane = sub.lane_for(Relayed(event(1)))  # first sight: a lane at 1, nobody in it yet
    lane.add(member, slot_for(server))
    assert sub.lane_for(Relayed(event(2))) is lane and lane.pos == 2
    assert sub.lane_for(Relayed(event(2))) is lane and lane.pos == 2  # a duplicate
    assert [f["seq"] for f in frames(read_all(client))] == [2]
    after_gap = sub.lane_for(Relayed(event(5)))
    assert after_gap is not lane and after_gap.pos == 5 and not after_gap.slots
    assert member.left == [2] and read_all(client) == b""


def test_a_subscription_keeps_a_bounded_number_of_lanes() -> None:
    sub = _Subscription("firehose")
    first = sub.lane_for(Relayed(event(1, generation_id="g-first")))
    first.add(Recorder(), (None, None, None))
    for n in range(MAX_LANES):
        sub.lane_for(Relayed(event(1, generation_id=f"g-{n}")))
    assert len(sub.lanes) == MAX_LANES and "g-first" not in sub.lanes
    assert not first.slots  # disbanded: its member was let go


def watcher(sock: socket.socket) -> ProgressConsumer:
    """A consumer past its snapshot, on the fast path, as ``connect`` leaves one."""
    consumer = ProgressConsumer()
    consumer.scope = {"type": "websocket"}
    consumer.last_seq, consumer.sent_run, consumer.gap_filled = {}, {}, {}
    consumer.held, consumer.revoked, consumer.hold_depth = None, False, 0
    consumer.lanes, consumer.tasks = [], set()
    consumer.wire = FakeProtocol(FakeTransport(sock))
    consumer.access = Viewer(None, sees_all=True)
    return consumer


def test_a_consumer_leaving_a_lane_takes_over_its_record() -> None:
    consumer = watcher(socket.socket())
    consumer.last_seq[GENERATION], consumer.sent_run[GENERATION] = 7, (3, 7)
    lane = Lane(GENERATION, 7)
    consumer.lanes.append(lane)
    lane.slots[consumer] = (None, None, None)
    lane.pos = 12  # the lane sent 8..12 for it
    consumer._leave_lanes()
    assert consumer.last_seq[GENERATION] == 12 and consumer.sent_run[GENERATION] == (3, 12)
    assert consumer.lanes == [] and not lane.slots


# Steps of the property test: the next message, a duplicate of an earlier one, or a
# socket whose transport starts holding bytes (a pong) or writes them out.
steps = st.lists(
    st.one_of(
        st.just(("next", 0)),
        st.tuples(st.just("again"), st.integers(0, 50)),
        st.tuples(st.just("busy"), st.integers(0, 3)),
        st.tuples(st.just("flush"), st.integers(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=60)
@given(steps)
def test_every_socket_gets_every_message_once_in_order_whatever_the_lanes_do(script) -> None:
    made = [socket.socketpair() for _ in range(4)]
    try:
        asyncio.run(run_script(made, script))
    finally:
        for a, b in made:
            a.close()
            b.close()


async def run_script(made: list[tuple[socket.socket, socket.socket]], script: list) -> None:
    for a, b in made:
        a.setblocking(False)
        b.setblocking(False)
    consumers = [watcher(a) for a, _ in made]
    hub, sub = FanOut(), _Subscription("g")
    sub.members.update(consumers)
    seq, pong = 0, wire.text_frame('{"type":"pong"}')
    for action, n in script:
        transport = consumers[n % len(consumers)].wire.transport
        if action == "next":
            seq += 1
            await hub._relay(sub, event(seq))
        elif action == "again" and seq:
            await hub._relay(sub, event(1 + n % seq))
        elif action == "busy":
            transport.write(pong)
        elif action == "flush":
            transport.flush()
    for consumer, (_, client) in zip(consumers, made, strict=True):
        consumer.wire.transport.flush()
        got = [f["seq"] for f in frames(read_all(client)) if f["type"] != "pong"]
        assert got == list(range(1, seq + 1))
        consumer._leave_lanes()
        if seq:
            assert consumer.last_seq[GENERATION] == seq
            assert consumer.sent_run[GENERATION] == (1, seq)


def test_sockets_join_the_lane_once_in_step_and_leave_it_when_held(pairs) -> None:
    async def scenario() -> None:
        consumers = [watcher(a) for a, _ in pairs]
        hub, sub = FanOut(), _Subscription("g")
        sub.members.update(consumers)
        await hub._relay(sub, event(1))  # sent one by one: each is now in step
        lane = sub.lanes[GENERATION]
        assert set(lane.slots) == set(consumers)
        await hub._relay(sub, event(2))  # by the lane alone
        assert all(c.last_seq[GENERATION] == 1 for c in consumers)  # not touched
        consumers[0]._hold()  # e.g. a resume: it leaves, with its record brought up to 2
        assert consumers[0] not in lane.slots and consumers[0].last_seq[GENERATION] == 2
        await hub._relay(sub, event(3, kind="generation.completed"))
        assert GENERATION not in sub.lanes  # over: the lane is dropped, its members let go
        assert [c.last_seq[GENERATION] for c in consumers[1:]] == [3, 3, 3]

    asyncio.run(scenario())
    for _, client in pairs:
        assert [f["seq"] for f in frames(read_all(client))][:2] == [1, 2]
