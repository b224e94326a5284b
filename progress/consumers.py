"""``/api/ws/progress[?generationId=<uuid>]``: live generation messages for browsers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from generations import messages as m
from generations.access import ACCESS_CHANGED, Identity, Viewer, check_access
from progress import metrics, wire
from progress.fanout import Relayed, fanout
from progress.groups import access_group, firehose_group, generation_group
from progress.lanes import Lane, Slot
from progress.resume import catch_up
from progress.snapshots import generation_owner, shared_active_snapshots, snapshot_for
from progress.sockets import cap_for, local_sockets

log = logging.getLogger("lockngen.consumer")

# Close codes (4000-4999 are the application's own).
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429  # over the open-socket cap of the user (or address)
CLOSE_LAYER_DOWN = 4503  # the channel layer failed: reconnect and try again
# Messages that arrive while the snapshot is being read wait; a few seconds' worth at most.
MAX_HELD = 1000
# Generations whose position a socket remembers (a long-lived firehose forgets the oldest).
MAX_TRACKED = 2000
# Client frames (pings, resumes) per socket: a flood is refused, not served.
FRAMES_PER_SECOND, FRAME_BURST = 20, 40


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _uuid(raw: Any) -> str | None:
    try:
        return str(uuid.UUID(raw)) if isinstance(raw, str) else None
    except ValueError:
        return None


def _seq(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit() or len(raw) > 12:
        return None
    return int(raw)


class ProgressConsumer(AsyncWebsocketConsumer):
    """Joins one generation's group (or the firehose), snapshots, then forwards live.

    Group messages arrive through the process's ``FanOut``. Those that come before the
    snapshot is sent wait in ``held``; ``last_seq`` drops those the snapshot already covers.
    Access is not decided once: ``access`` is re-checked on every resume frame, on every
    "access changed" event of the user (any web process may send it), and periodically.
    """

    # No per-socket channel: messages come through the process's FanOut, and a channel per
    # socket would be one more idle Redis subscription per connection.
    channel_layer_alias = None  # get_channel_layer(None) is None: Channels makes no channel

    groups_joined: list[str]
    last_seq: dict[str, int]
    held: list[dict[str, Any]] | None
    only: str | None  # the generation of a filtered socket
    access: Viewer  # what this socket may carry, as last checked

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' consumer loop for its one source, daphne's ``receive``, awaited in place:
        Channels' ``await_many_dispatch`` keeps a task and an ``asyncio.wait`` per socket
        for sources this consumer does not have (no channel layer, see above)."""
        self.scope, self.channel_layer, self.base_send = scope, None, send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass  # the socket is closed: the consumer ends, as in Channels

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Channels' without its ``aclose_old_connections`` (see ``dispatch``); no groups
        of Channels' own to leave."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its ``aclose_old_connections`` (a worker-thread hop
        for every connect, client frame and disconnect): this consumer touches the database
        only through ``database_sync_to_async``, which closes stale connections itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.groups_joined, self.last_seq, self.held, self.only = [], {}, [], None
        self.hold_depth, self.revoked, self.only_owner = 1, False, None
        self.sent_run: dict[str, tuple[int, int]] = {}
        # The lanes that send for this socket (progress.lanes): a list, as an idle socket's
        # memory counts and a socket is in one lane, or a few on a firehose.
        self.lanes: list[Lane] = []
        self.gap_filled: dict[str, int] = {}  # generation -> seq whose gap was filled
        self.tasks: set[asyncio.Task[None]] = set()
        self.frames = TokenBucket(FRAMES_PER_SECOND, FRAME_BURST)
        # daphne's protocol, for the fast path of relayed messages (None: the ordinary path).
        self.wire = self.scope.get(wire.SCOPE_KEY)
        if not self.scope.get("origin_ok", True):
            await self.close()  # a foreign page: refuse the handshake itself (HTTP 403)
            return
        user = self.scope.get("user")
        self.viewer = user if user is not None and user.is_authenticated else None
        self.identity: Identity | None = self.scope.get("identity") or (
            Identity(self.viewer.pk) if self.viewer is not None else None
        )
        self.access = Viewer(
            self.viewer.pk if self.viewer else None,
            sees_all=not settings.REQUIRE_AUTH or bool(self.viewer and self.viewer.is_staff),
        )
        if settings.REQUIRE_AUTH and self.viewer is None:
            await self.accept()
            rejected = self.scope.get("token_rejected")
            await self.send_error("invalid or revoked API token" if rejected else "log in first")
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        placed: bool | None = None
        try:
            # The place is taken before accepting: of sockets opened one after the other,
            # the one over the cap is the newest.
            placed = await self._take_place()
            await self.accept()
            metrics.stream_opened(self)
            if placed:
                await self._subscribe()
            else:
                await self._refuse_over_cap()
        except Exception:
            log.exception("cannot subscribe a progress socket")
            if placed is None:
                await self.accept()  # not accepted yet: accept, to close with a code
            await self.close(code=CLOSE_LAYER_DOWN)

    async def _subscribe(self) -> None:
        if settings.REQUIRE_AUTH and self.viewer is not None:
            await self._join(access_group(self.viewer.pk))
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if "generationId" in query:
            await self._watch_one(query["generationId"][-1], query.get("afterSeq", [None])[-1])
        else:
            await self._watch_all()
        await self._unhold()

    def _cap(self) -> tuple[str, int, str] | None:
        client = self.scope.get("client") or [None]
        return cap_for(self.viewer.pk if self.viewer else None, client[0])

    async def _take_place(self) -> bool:
        """A place under the user's (or the address's) socket cap, counted in Redis."""
        cap = self._cap()
        if cap is None:
            local_sockets().track(self)
            return True
        key, limit, _ = cap
        return (await local_sockets().admit(self, key, limit)).admitted

    async def _refuse_over_cap(self) -> None:
        _, limit, per = self._cap() or ("", 0, "")
        await self.send_error(
            f"too many open progress sockets: at most {limit} {per}; close one and retry"
        )
        await self.close(code=CLOSE_TOO_MANY)

    async def _watch_one(self, raw_id: str, raw_after: str | None) -> None:
        generation_id, after = _uuid(raw_id), _seq(raw_after)
        if generation_id is None or (raw_after is not None and after is None):
            await self.send_error(
                f"generationId {raw_id[:64]!r} is not a UUID"
                if generation_id is None
                else f"afterSeq {str(raw_after)[:20]!r} is not an integer >= 0"
            )
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        found, owner_id = await database_sync_to_async(generation_owner)(generation_id)
        if not found:
            await self.send_error(f"no generation {generation_id}")
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not self._may_see(owner_id):
            await self.close(code=CLOSE_FORBIDDEN)  # nothing else: not even its state
            return
        self.only, self.only_owner = generation_id, owner_id
        await self._join(generation_group(generation_id))
        if after is not None:
            await self._catch_up(generation_id, after)
            return
        snapshot = await snapshot_for(generation_id)
        if snapshot is not None:
            await self._send_snapshot(snapshot)

    async def _catch_up(self, generation_id: str, after: int) -> None:
        """Send every message after ``after`` that this socket has not sent one by one.

        A snapshot is a summary, not the messages: those it covers are replayed when asked
        for; the live run already sent is never sent again (no duplicate).
        """
        sent = self.sent_run.get(generation_id)
        caught = await catch_up(generation_id, after)
        for seq, text in caught.frames:
            # (A "recovered": false snapshot always goes: the client must learn of the loss.)
            if caught.recovered and sent is not None and sent[0] <= seq <= sent[1]:
                continue
            metrics.DELIVERED_REPLAY.value += 1
            await self.send(text_data=text)
        # Nothing to send still tells where the client is: a later gap is then noticed.
        self.last_seq[generation_id] = max(caught.last_seq, self.last_seq.get(generation_id, 0))

    async def _watch_all(self) -> None:
        group, hub = firehose_group(), fanout()
        await self._join(group)
        # A reconnect storm with nothing generating: one database read per second, not
        # one per socket (the firehose hears every generation's messages, so a silent
        # firehose since a read that found nothing means there is still nothing).
        if hub.still_quiet(group):
            return
        mark = hub.mark(group)
        snapshots = await shared_active_snapshots(None if self.access.sees_all else self.viewer)
        if not snapshots and self.access.sees_all:
            hub.remember_quiet(group, mark)
        for snapshot in snapshots:
            await self._send_snapshot(snapshot)

    async def _join(self, group: str) -> None:
        await fanout().join(group, self)
        self.groups_joined.append(group)

    def _hold(self) -> None:
        """Live messages wait (a snapshot, a replay or an access check is under way)."""
        self._leave_lanes()
        self.hold_depth += 1
        if self.held is None:
            self.held = []

    async def _unhold(self) -> None:
        self.hold_depth -= 1
        if self.hold_depth > 0:
            return
        held, self.held = self.held or [], None
        for event in held:
            await self.forward(event)

    async def _send_snapshot(self, snapshot: m.Message) -> None:
        self.last_seq[snapshot["generationId"]] = snapshot["seq"]
        metrics.DELIVERED_SNAPSHOT.value += 1
        await self.send(text_data=m.dumps(snapshot))

    async def disconnect(self, code: int) -> None:
        metrics.stream_closed(self)
        for task in getattr(self, "tasks", ()):
            task.cancel()
        await self._leave_all()
        await local_sockets().release(self)

    async def _leave_all(self) -> None:
        groups, self.groups_joined = getattr(self, "groups_joined", []), []
        for group in groups:
            await fanout().leave(group, self)

    # ------------------------------------------------------------------ client frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.frames.take():
            await self.send_error(f"too many frames: at most {FRAMES_PER_SECOND} per second")
            return
        if text_data is None:
            await self.send_error("binary frames are not accepted; send JSON text")
            return
        limit = settings.LOCKNGEN["MAX_CLIENT_FRAME"]
        if len(text_data) > limit:
            await self.send_error(f"frame too large ({len(text_data)} > {limit} characters)")
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error("frame is not valid JSON")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            await self.send(text_data='{"type":"pong"}')
        elif kind == "resume":
            await self._resume(frame)
        elif not isinstance(kind, str):
            await self.send_error('frame must be a JSON object with a string "type"')
        else:
            await self.send_error(f"unknown message type {kind[:64]!r}")

    async def _resume(self, frame: dict[str, Any]) -> None:
        """``{"type": "resume", "generationId": ..., "afterSeq": n}`` on an open socket."""
        generation_id = _uuid(frame.get("generationId"))
        after = frame.get("afterSeq")
        if generation_id is None:
            await self.send_error("resume needs a generationId that is a UUID")
        elif isinstance(after, bool) or not isinstance(after, int) or after < 0:
            await self.send_error("resume needs an afterSeq that is an integer >= 0")
        elif self.only is not None and generation_id != self.only:
            await self.send_error("this socket follows another generation")
        elif not await self.apply_access(await database_sync_to_async(check_access)(self.identity)):
            return  # access ended: closed with 4401
        elif not await self._visible(generation_id):
            await self.send_error(f"no generation {generation_id}")
        else:
            self._hold()  # live messages wait until the replay is out
            try:
                await self._catch_up(generation_id, after)
            finally:
                await self._unhold()

    async def _visible(self, generation_id: str) -> bool:
        found, owner_id = await database_sync_to_async(generation_owner)(generation_id)
        return found and self._may_see(owner_id)

    async def send_error(self, error: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "error": error}))

    # ------------------------------------------------------------------ group messages

    async def deliver(self, event: dict[str, Any]) -> None:
        """Called by the FanOut for every message of a group this socket joined."""
        if event.get("type") == ACCESS_CHANGED:
            # In a task: the check reads the database, and the FanOut must not wait for it.
            task = asyncio.create_task(self._access_changed(event))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        if self.held is not None:
            if len(self.held) < MAX_HELD:
                self.held.append(event)
            return
        await self.forward(event)

    def relay(self, shared: Relayed) -> bool:
        """The fast path of ``deliver`` for a relayed message: True when it is done with it
        (sent, or not for this socket), False when ``deliver`` must take it.

        The same checks as ``forward``, in the same order; the frame is the group's, built
        once, and goes to the socket without Channels' send machinery. Anything unusual
        (messages held, a gap to fill, a socket the fast path cannot write) declines.
        """
        protocol = self.wire
        if protocol is None or self.held is not None or self.revoked:
            return False
        access = self.access
        if not access.sees_all and not shared.visible(access):
            return True  # the firehose carries only the viewer's own generations
        event = shared.event
        generation_id, seq = event["generation_id"], event["seq"]
        last = self.last_seq.get(generation_id, 0)
        if seq <= last:
            return True  # covered by the snapshot (or a duplicate)
        if last and seq > last + 1 and self.gap_filled.get(generation_id) != seq:
            return False  # a gap: ``forward`` fills it from the log
        outcome = wire.write(protocol, shared.frame)
        if outcome == wire.FALLBACK:
            return False
        if outcome == wire.SLOW:
            self._too_slow()
            return True
        run = self.sent_run.get(generation_id) if last else None
        if run is not None and seq == last + 1:
            self.last_seq[generation_id] = seq  # the usual case: one more in the live run
            self.sent_run[generation_id] = (run[0], seq)
        else:
            self._mark_sent(generation_id, seq, seq)
        metrics.DELIVERED_LIVE.value += 1
        return True

    def lane_slot(self, lane: Lane) -> Slot | None:
        """This socket's place in ``lane`` when it is in step with it: sent every message of
        the generation up to ``lane.pos`` live, nothing held back, and writable straight to
        the kernel. From then on the lane sends for it, and ``left_lane`` catches up."""
        generation_id, pos = lane.generation_id, lane.pos
        if self.wire is None or self.held is not None or self.revoked:
            return None
        run = self.sent_run.get(generation_id)
        if run is None or run[1] != pos or self.last_seq.get(generation_id) != pos:
            return None
        slot = wire.lane_slot(self.wire)
        if slot is not None and lane not in self.lanes:
            self.lanes.append(lane)
        return slot

    def left_lane(self, lane: Lane) -> None:
        """Out of ``lane``: what it sent for this socket becomes this socket's own record."""
        if lane in self.lanes:
            self.lanes.remove(lane)
        generation_id, pos = lane.generation_id, lane.pos
        last = self.last_seq.get(generation_id)
        if last is None:  # forgotten meanwhile (a long firehose): the last one, at least
            self._mark_sent(generation_id, pos, pos)
        elif last < pos:
            self._mark_sent(generation_id, last + 1, pos)

    def _leave_lanes(self) -> None:
        """Decide for itself again, from the next message on (see ``progress.lanes``)."""
        for lane in list(self.lanes):
            lane.evict(self)

    def _too_slow(self) -> None:
        """A socket that stopped reading: closed (4503: reconnect and resume) rather than
        buffered without bound. What was already queued for it still goes out first."""
        if self.revoked:
            return
        self.revoked = True  # nothing more is delivered to this socket
        self._leave_lanes()
        log.warning("closing a progress socket that does not read (%s)", self.scope.get("client"))
        task = asyncio.create_task(self._close_slow())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _close_slow(self) -> None:
        await self._leave_all()
        await self.close(code=CLOSE_LAYER_DOWN)

    async def layer_lost(self) -> None:
        await self.close(code=CLOSE_LAYER_DOWN)

    # ------------------------------------------------------------------ access

    async def _access_changed(self, event: dict[str, Any]) -> None:
        """Live messages wait while the user's access is checked again, so none slips out
        that the new access would not allow, and none is lost if it still does."""
        tag = self.identity.session_tag if self.identity else None
        if tag is not None and event.get("ended_session") == tag:
            await self._revoke("you logged out")
            return
        self._hold()
        try:
            await self.apply_access(await database_sync_to_async(check_access)(self.identity))
        finally:
            await self._unhold()

    async def apply_access(self, viewer: Viewer | None) -> bool:
        """Take the access as checked now; close with 4401 when it no longer covers this
        socket. A firehose of a demoted viewer is narrowed to their own generations."""
        if self.revoked:
            return False
        if viewer is None:
            await self._revoke("access ended (token revoked, logged out, or account disabled)")
            return False
        self._leave_lanes()  # what it may see is decided again, per message
        self.access = viewer
        if self.only is not None and not viewer.may_see(self.only_owner):
            await self._revoke("you may no longer see this generation")
            return False
        return True

    async def _revoke(self, why: str) -> None:
        if self.revoked:
            return
        self.revoked = True
        self._leave_lanes()
        await self._leave_all()  # nothing more is delivered to this socket
        await self.send_error(why)
        await self.close(code=CLOSE_UNAUTHORIZED)

    def _may_see(self, owner_id: int | None) -> bool:
        return self.access.may_see(owner_id)

    async def forward(self, event: dict[str, Any]) -> None:
        if self.revoked or not self._may_see(event.get("owner_id")):
            return  # the firehose carries only the viewer's own generations
        generation_id, seq = event["generation_id"], event["seq"]
        last = self.last_seq.get(generation_id, 0)
        if seq <= last:
            return  # covered by the snapshot (or a duplicate)
        if last and seq > last + 1 and self.gap_filled.get(generation_id) != seq:
            await self._fill_gap(generation_id, last, event)
            return
        self._mark_sent(generation_id, seq, seq)
        metrics.DELIVERED_LIVE.value += 1
        await self.send(text_data=event["text"])

    async def _fill_gap(self, generation_id: str, last: int, event: dict[str, Any]) -> None:
        """A message of this generation never reached this process (pub/sub does not keep
        what it could not deliver, e.g. while Redis restarted): the log fills the gap, or a
        ``"recovered": false`` snapshot says so. Never a silent skip of a seq."""
        self.gap_filled[generation_id] = event["seq"]  # tried once: no loop if it cannot
        self._hold()
        assert self.held is not None
        self.held.insert(0, event)  # after the catch-up, or dropped if it covered this one
        try:
            await self._catch_up(generation_id, last)
        finally:
            await self._unhold()

    def _mark_sent(self, generation_id: str, first: int, last: int) -> None:
        """Remember what went out: live messages form one gapless run per generation."""
        self.last_seq[generation_id] = max(last, self.last_seq.get(generation_id, 0))
        start, _ = self.sent_run.get(generation_id, (first, last))
        self.sent_run[generation_id] = (min(start, first), max(last, self.last_seq[generation_id]))
        if len(self.last_seq) > MAX_TRACKED:  # a firehose open for days: forget the oldest
            oldest = next(iter(self.last_seq))
            self.last_seq.pop(oldest)
            self.sent_run.pop(oldest, None)
            self.gap_filled.pop(oldest, None)
