"""One channel-layer subscription per group per process, fanned out to its local sockets.

Channels' usual path gives every socket its own channel: each message is queued, woken and
dispatched once per socket, and that per-socket machinery was most of daphne's CPU in the
relay benchmark. Here each process joins a group once, with one channel of its own, and
hands every message straight to the sockets that joined locally.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any, Protocol, cast

from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from generations.messages import TERMINAL_TYPES
from generations.store import async_redis
from progress import metrics
from progress.events import GroupEvent, LayerEvent
from progress.lanes import MAX_LANES, Lane, LaneMember, Slot
from progress.wire import text_frame

log = logging.getLogger("lockngen.fanout")
WATCHDOG_SECONDS = 1.0
# How long "nothing active" is believed while the group stays silent: a generation's row
# exists a moment before its first message (the monitor's "queued").
QUIET_SECONDS = 1.0


class Member(Protocol):
    async def deliver(self, event: GroupEvent) -> None: ...

    async def layer_lost(self) -> None: ...


class RelayMember(Member, LaneMember, Protocol):
    """A socket with a fast path (``ProgressConsumer``); SSE streams take ``deliver``."""

    def relay(self, shared: Relayed) -> bool: ...

    def lane_slot(self, lane: Lane) -> Slot | None: ...


class Relayed:
    """One group message on its way to the local sockets: framed once (on first use), and
    whether a viewer may see it decided once per distinct viewer."""

    __slots__ = ("_frame", "event", "owner_id", "seen")

    def __init__(self, event: LayerEvent) -> None:
        self.event = event
        self.owner_id = event.get("owner_id")
        self._frame: bytes | None = None
        self.seen: dict[Any, bool] = {}

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(self.event["text"])
        return self._frame

    def visible(self, viewer: Any) -> bool:
        seen = self.seen.get(viewer)
        if seen is None:
            seen = self.seen[viewer] = viewer.may_see(self.owner_id)
        return seen


class _Subscription:
    def __init__(self, group: str) -> None:
        self.group = group
        self.members: set[Member] = set()
        self.channel: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.seen = 0  # messages received so far
        self.lanes: dict[str, Lane] = {}  # generation -> its lane, least recently used first

    def lane_for(self, shared: Relayed) -> Lane:
        """The generation's lane, after it was handed ``event``: sent to its members when
        it is their next message; disbanded at a gap (each member fills it from the log);
        nothing for a message they were all sent already."""
        generation_id, seq = shared.event["generation_id"], shared.event["seq"]
        lane = self.lanes.pop(generation_id, None)
        if lane is not None and seq == lane.pos + 1:
            metrics.DELIVERED_LIVE.value += lane.send(shared.frame)
        elif lane is not None and seq > lane.pos + 1:
            lane.disband()
            lane = None
        if lane is None:
            lane = Lane(generation_id, seq)
            while len(self.lanes) >= MAX_LANES:
                self.lanes.pop(next(iter(self.lanes))).disband()
        self.lanes[generation_id] = lane
        return lane

    def drop_lane(self, lane: Lane) -> None:
        if self.lanes.get(lane.generation_id) is lane:
            del self.lanes[lane.generation_id]
        lane.disband()

    def drop_lanes(self) -> None:
        lanes, self.lanes = list(self.lanes.values()), {}
        for lane in lanes:
            lane.disband()

    def forget(self, member: Member) -> None:
        """A member that leaves the group leaves its lanes (nothing to bring up to date:
        it takes no more messages from this group)."""
        for lane in self.lanes.values():
            lane.slots.pop(member, None)  # type: ignore[call-overload]


class FanOut:
    """The process's group subscriptions (one instance per event loop)."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.subscriptions: dict[str, _Subscription] = {}
        self.lock = asyncio.Lock()
        self.watchdog: asyncio.Task[None] | None = None
        # group -> (its subscription, its message count, when): a read found nothing active.
        self.quiet: dict[str, tuple[_Subscription, int, float]] = {}

    async def join(self, group: str, member: Member) -> None:
        async with self.lock:  # one subscription per group, even when many join at once
            sub = self.subscriptions.get(group)
            if sub is None:
                sub = _Subscription(group)
                sub.channel = await self.layer.new_channel()
                await self.layer.group_add(group, sub.channel)
                sub.task = asyncio.create_task(self._pump(sub))
                self.subscriptions[group] = sub
            sub.members.add(member)
            if self.watchdog is None or self.watchdog.done():
                self.watchdog = asyncio.create_task(self._watch_redis())

    def mark(self, group: str) -> tuple[_Subscription, int] | None:
        """Where the group's subscription is now, to tell later whether a message came."""
        sub = self.subscriptions.get(group)
        return None if sub is None else (sub, sub.seen)

    def remember_quiet(self, group: str, mark: tuple[_Subscription, int] | None) -> None:
        """A read that started at ``mark`` found nothing active in this group."""
        if mark is not None:
            self.quiet[group] = (*mark, time.monotonic())

    def still_quiet(self, group: str) -> bool:
        """No message in the group (on the same subscription) since a read found nothing
        active, less than ``QUIET_SECONDS`` ago: nothing has become active since."""
        quiet, sub = self.quiet.get(group), self.subscriptions.get(group)
        if quiet is None or sub is None:
            return False
        return (
            quiet[0] is sub and quiet[1] == sub.seen and time.monotonic() - quiet[2] < QUIET_SECONDS
        )

    async def leave(self, group: str, member: Member) -> None:
        async with self.lock:
            sub = self.subscriptions.get(group)
            if sub is None:
                return
            sub.members.discard(member)
            sub.forget(member)
            if not sub.members:
                await self._close(sub)

    async def _close(self, sub: _Subscription) -> None:
        self.subscriptions.pop(sub.group, None)
        sub.drop_lanes()
        if sub.task is not None:
            sub.task.cancel()
        try:
            await self.layer.group_discard(sub.group, sub.channel)
        except Exception:  # noqa: BLE001 - the layer is gone: nothing left to leave
            log.warning("group_discard failed for %s", sub.group)

    async def _pump(self, sub: _Subscription) -> None:
        try:
            while True:
                event = await self.layer.receive(sub.channel)
                sub.seen += 1
                if "text" in event:
                    await self._relay(sub, event)
                else:
                    for member in list(sub.members):
                        await self._deliver(member, event)
                metrics.observe_lag(event)  # once per message: per socket is too hot
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis went away: tell every socket to reconnect
            log.exception("lost the channel layer for %s", sub.group)
            async with self.lock:
                members = list(sub.members)
                if self.subscriptions.get(sub.group) is sub:
                    self.subscriptions.pop(sub.group, None)
            sub.drop_lanes()
            for member in members:
                await member.layer_lost()

    async def _relay(self, sub: _Subscription, event: LayerEvent) -> None:
        """A generation's message: to its lane in one loop, then to every other socket
        through its own checks (``relay``: the fast path, which declines to ``deliver``);
        a socket those checks leave in step joins the lane."""
        shared = Relayed(event)
        lane = sub.lane_for(shared)
        rest = sub.members.difference(lane.slots) if lane.slots else list(sub.members)
        for member in rest:
            try:
                relay = getattr(member, "relay", None)
                if relay is None or not relay(shared):
                    await member.deliver(event)
                elif lane.pos == event["seq"]:
                    joining = cast(RelayMember, member)
                    if (slot := joining.lane_slot(lane)) is not None:
                        lane.add(joining, slot)
            except Exception:  # one broken socket must not stop the rest
                log.exception("delivery to one socket failed")
        if event["type"] in TERMINAL_TYPES:
            sub.drop_lane(lane)  # the generation is over: nothing more will follow

    async def _deliver(self, member: Member, event: GroupEvent) -> None:
        try:
            await member.deliver(event)
        except Exception:  # one broken socket must not stop the rest
            log.exception("delivery to one socket failed")

    async def _watch_redis(self) -> None:
        """A pub/sub subscription does not notice Redis going away, and after a restart the
        group would be silent: so Redis is pinged, and on failure every socket is closed
        (4503: reconnect and resume) rather than left open and silent."""
        client = async_redis()
        while self.subscriptions:
            await asyncio.sleep(WATCHDOG_SECONDS)
            try:
                await asyncio.wait_for(client.ping(), timeout=WATCHDOG_SECONDS * 2)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("Redis is unreachable (%s): closing every progress socket", exc)
                await self._drop_everything()

    async def _drop_everything(self) -> None:
        async with self.lock:
            subs, self.subscriptions = list(self.subscriptions.values()), {}
        for sub in subs:
            if sub.task is not None:
                sub.task.cancel()
            sub.drop_lanes()
            for member in list(sub.members):
                await member.layer_lost()


_instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FanOut] = (
    weakref.WeakKeyDictionary()
)


def fanout() -> FanOut:
    loop = asyncio.get_running_loop()
    instance = _instances.get(loop)
    if instance is None:
        instance = _instances[loop] = FanOut()
    return instance
