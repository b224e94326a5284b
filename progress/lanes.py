"""Lanes: the sockets that are in step with one generation's live run, served as one.

A socket that has just been sent a generation's message ``seq`` live (through its own
checks, ``ProgressConsumer.relay``) and holds nothing back is in step with that generation:
the next message, ``seq + 1``, needs no decision of its own — it goes out as is. So the
FanOut keeps, per generation, a lane of such sockets and writes each next message to all of
them in one loop: the group's frame, one ``send()`` per socket, and no per-socket
bookkeeping. A lane's position (``pos``) is the seq its members have all been sent; a
member's own ``last_seq`` is brought up to date only when it leaves (``evict``), which is
when it is about to decide for itself again: a hold (snapshot, replay, access check), a
revocation, a close, a socket that cannot take the bytes now, a gap in the group.

Profiling the relay benchmark, that per-socket decision and bookkeeping (the seq checks,
two dict updates and a tuple per message, the write checks) was about a third of daphne's
CPU per delivered message; the rest is the kernel's ``send()``.
"""

from __future__ import annotations

from typing import Any, Protocol

_OPEN = 3  # autobahn's WebSocketProtocol.STATE_OPEN
# Lanes kept per group subscription: a firehose sees every generation, and a finished one's
# lane is dropped at its terminal message, so only generations running now have one (one
# per ComfyUI server); the cap bounds what a flood of short generations could leave.
MAX_LANES = 64


class LaneMember(Protocol):
    def left_lane(self, lane: Lane) -> None:
        """No longer in ``lane``: everything up to ``lane.pos`` was sent to it live."""


# daphne's autobahn protocol, its Twisted transport, and the socket's own ``send``.
Slot = tuple[Any, Any, Any]


class Lane:
    """The sockets that have been sent a generation's messages up to ``pos``, live."""

    __slots__ = ("generation_id", "pos", "slots")

    def __init__(self, generation_id: str, pos: int) -> None:
        self.generation_id = generation_id
        self.pos = pos
        self.slots: dict[LaneMember, Slot] = {}

    def add(self, member: LaneMember, slot: Slot) -> None:
        self.slots[member] = slot

    def evict(self, member: LaneMember) -> None:
        if self.slots.pop(member, None) is not None:
            member.left_lane(self)

    def disband(self) -> None:
        members, self.slots = list(self.slots), {}
        for member in members:
            member.left_lane(self)

    def send(self, frame: bytes) -> int:
        """Write the message after ``pos`` to every member; ``pos`` moves on. Members that
        cannot take it now leave, to decide for themselves. Returns how many took it."""
        size, sent, declined, partial = len(frame), 0, [], []
        for member, (protocol, transport, send) in self.slots.items():
            # Twisted holding bytes for it (a pong, a ping, a close) goes first, in order;
            # a socket that is closing takes no more data frames.
            if protocol.state != _OPEN or transport._tempDataLen or transport.dataBuffer:
                declined.append(member)
                continue
            try:
                written = send(frame)
            except OSError:  # would block, or broken: the transport takes it from here
                written = 0
            if written != size:
                transport.write(frame[written:])  # behind nothing: in order
                partial.append(member)
            sent += 1
        for member in declined:
            self.evict(member)  # left at pos: this message is still theirs to decide
        self.pos += 1
        for member in partial:
            self.evict(member)  # sent, but its socket is backed up: it decides from now
        return sent
