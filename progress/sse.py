"""Server-Sent Events: ``GET /api/generations/<uuid>/events`` and ``GET /api/events``.

The WebSocket's contract over plain HTTP: a snapshot first (or, with ``Last-Event-ID`` /
``?afterSeq=``, the replay of ``progress.resume.catch_up``), then every live message. A stream
joins the same groups through the process's ``FanOut``, counts under the same per-user cap
(``progress.sockets``), and re-checks access with ``generations.access.check_access`` on every
"access changed" event and periodically; when access ends the stream ends. An async view:
daphne serves each stream on its event loop, with no thread per stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from generations import messages as m
from generations.access import ACCESS_CHANGED, Identity, Viewer, check_access
from generations.api_types import EventsQuery, GenerationEventsQuery
from generations.auth import identify
from generations.operations import operation
from generations.status import TERMINAL_STATUSES
from progress import metrics
from progress.fanout import fanout
from progress.groups import access_group, firehose_group, generation_group
from progress.resume import catch_up
from progress.snapshots import active_snapshots, generation_owner, snapshot_for
from progress.sockets import cap_for, local_sockets

log = logging.getLogger("lockngen.sse")
# A client this far behind is ended (it reconnects with Last-Event-ID and loses nothing).
MAX_QUEUED = 2000
# A response Django never started iterating (the client left at once) is cleaned up after.
UNSTARTED_SECONDS = 10.0
VIEWER = "sse.viewer"  # a periodic re-check's verdict, queued in order with the messages


def frame(event_id: str, kind: str, text: str) -> bytes:
    # Our JSON has no newline in it (json.dumps escapes them), so one data: line carries it.
    return f"id: {event_id}\nevent: {kind}\ndata: {text}\n\n".encode()


def error_frame(why: str) -> bytes:
    # No id: the client's Last-Event-ID stays at the last message it received.
    return f"event: error\ndata: {json.dumps({'type': 'error', 'error': why})}\n\n".encode()


def _is_terminal(message: m.Message | dict[str, Any]) -> bool:
    return message.get("type") in m.TERMINAL_TYPES or (
        message.get("type") == m.SNAPSHOT and message["data"].get("status") in TERMINAL_STATUSES
    )


class Stream:
    """One SSE response: a FanOut member, a place under the socket cap, its access."""

    def __init__(self, identity: Identity | None, access: Viewer, only: str | None) -> None:
        self.identity, self.access, self.only = identity, access, only
        self.only_owner: int | None = None
        self.queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(MAX_QUEUED)
        self.last_seq: dict[str, int] = {}
        self.groups: list[str] = []
        self.end_reason: str | None = None
        self.finished = False  # a generation's stream ends after its terminal message
        self.started = self.closed = False
        self.cleanup: asyncio.Future[None] | None = None

    def event_id(self, generation_id: str, seq: int) -> str:
        return str(seq) if self.only else f"{generation_id}:{seq}"

    # ----------------------------------------------------------- FanOut and LocalSockets

    async def deliver(self, event: Mapping[str, Any]) -> None:
        # Group events, and this stream's own (a re-check's verdict, a wake-up) in order.
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.end("this stream fell too far behind; reconnect with Last-Event-ID")

    async def layer_lost(self) -> None:
        self.end("the channel layer failed; reconnect with Last-Event-ID")

    async def apply_access(self, viewer: Viewer | None) -> bool:
        """The periodic re-check's verdict, taken in order with the queued messages."""
        await self.deliver({"type": VIEWER, "viewer": viewer})
        return True

    def end(self, why: str) -> None:
        if self.end_reason is None:
            self.end_reason = why
            if not self.queue.full():  # wake the stream (a full one wakes anyway)
                self.queue.put_nowait({"type": "sse.wake"})

    # ----------------------------------------------------------- setup and teardown

    async def take_place(self, user_id: int | None, address: str | None) -> bool:
        cap = cap_for(user_id, address)
        if cap is None:
            local_sockets().track(self)
            return True
        key, limit, _ = cap
        return (await local_sockets().admit(self, key, limit)).admitted

    async def join(self, group: str) -> None:
        await fanout().join(group, self)
        self.groups.append(group)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        metrics.stream_closed(self, "sse")
        for group in self.groups:
            await fanout().leave(group, self)
        await local_sockets().release(self)

    def close_if_unstarted(self) -> None:
        if not self.started and not self.closed:
            self.cleanup = asyncio.ensure_future(self.close())

    # ----------------------------------------------------------- messages

    async def handle(self, item: Mapping[str, Any]) -> bytes | None:
        kind = item.get("type")
        if kind == ACCESS_CHANGED:
            tag = self.identity.session_tag if self.identity else None
            if tag is not None and item.get("ended_session") == tag:
                self.end("you logged out")
                return None
            self.apply(await database_sync_to_async(check_access)(self.identity))
        elif kind == VIEWER:
            self.apply(item["viewer"])
        elif "generation_id" in item:
            return self.forward(item)
        return None

    def apply(self, viewer: Viewer | None) -> None:
        """The same rule as the WebSocket's: ended, narrowed (a demoted firehose), or kept."""
        if viewer is None:
            self.end("access ended (token revoked, logged out, or account disabled)")
        elif self.only is not None and not viewer.may_see(self.only_owner):
            self.end("you may no longer see this generation")
        else:
            self.access = viewer

    def forward(self, event: Mapping[str, Any]) -> bytes | None:
        if self.end_reason or not self.access.may_see(event.get("owner_id")):
            return None
        generation_id, seq = event["generation_id"], event["seq"]
        if seq <= self.last_seq.get(generation_id, 0):
            return None  # covered by the snapshot or the replay
        self.last_seq[generation_id] = seq
        if self.only is not None and event["type"] in m.TERMINAL_TYPES:
            self.finished = True
        return frame(self.event_id(generation_id, seq), event["type"], event["text"])

    def replayed(self, seq: int, text: str) -> bytes:
        message = json.loads(text)
        generation_id = message["generationId"]
        self.last_seq[generation_id] = max(seq, self.last_seq.get(generation_id, 0))
        if self.only is not None and _is_terminal(message):
            self.finished = True
        return frame(self.event_id(generation_id, seq), message["type"], text)


async def _events(stream: Stream, opening: list[bytes]) -> AsyncIterator[bytes]:
    stream.started = True
    metrics.stream_opened(stream, "sse")
    keepalive = settings.LOCKNGEN["SSE_KEEPALIVE_SECONDS"]
    try:
        for chunk in opening:
            metrics.DELIVERED_SSE.value += 1
            yield chunk
        while not stream.finished:
            if stream.end_reason is not None:
                yield error_frame(stream.end_reason)
                return
            try:
                item = await asyncio.wait_for(stream.queue.get(), keepalive)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            sent = await stream.handle(item)
            if sent is not None:
                metrics.DELIVERED_SSE.value += 1
                yield sent
    finally:
        await stream.close()


# --------------------------------------------------------------------------- opening


async def _open_one(stream: Stream, after: int | None) -> list[bytes] | None:
    """A generation's opening frames; None when a finished one has nothing more (204)."""
    assert stream.only is not None
    if after is None:
        snapshot = await snapshot_for(stream.only)
        if snapshot is None:
            return []
        return [stream.replayed(snapshot["seq"], m.dumps(snapshot))]
    caught = await catch_up(stream.only, after)
    if not caught.frames:
        snapshot = await snapshot_for(stream.only)
        if snapshot is not None and _is_terminal(snapshot):
            return None
        stream.last_seq[stream.only] = after
    return [stream.replayed(seq, text) for seq, text in caught.frames]


async def _open_all(stream: Stream, user: Any, resume: tuple[str, int] | None) -> list[bytes]:
    """Snapshots of the active generations; the resumed one replayed instead."""
    owner = None if stream.access.sees_all else user
    frames = [
        stream.replayed(s["seq"], m.dumps(s))
        for s in await active_snapshots(owner)
        if resume is None or s["generationId"] != resume[0]
    ]
    if resume is not None:
        found, owner_id = await database_sync_to_async(generation_owner)(resume[0])
        if found and stream.access.may_see(owner_id):
            caught = await catch_up(*resume)
            frames += [stream.replayed(seq, text) for seq, text in caught.frames]
            stream.last_seq.setdefault(resume[0], resume[1])
    return frames


# --------------------------------------------------------------------------- views


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _resume_point(request: HttpRequest, firehose: bool) -> tuple[str | None, int] | None:
    """``Last-Event-ID`` (or ``?afterSeq=``): ``<seq>``, or ``<generationId>:<seq>`` on the
    firehose. ValueError when it is neither."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("afterSeq")
    if raw is None or raw == "":
        return None
    generation, _, seq = raw.rpartition(":") if firehose else ("", "", raw)
    if not seq.isdigit() or len(seq) > 12:
        raise ValueError(raw)
    if firehose:
        return str(uuid.UUID(generation)), int(seq)
    return None, int(seq)


_STREAM = {
    "media": "text/event-stream",
    "headers": (("Last-Event-ID", "Resume after this event id (EventSource sends it)"),),
    "errors": (400, 404, 429, 503),
    "tag": "events",
}
_FINISHED = {204: "The generation has finished and nothing after the given id was missed"}


@operation(
    "GET",
    "One generation's messages as Server-Sent Events (each data: a Message)",
    query=GenerationEventsQuery,
    extra=_FINISHED,
    **_STREAM,
)
async def generation_events(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    return await _serve(request, str(generation_id))


@operation(
    "GET",
    "Every message of the caller's generations as Server-Sent Events",
    query=EventsQuery,
    **_STREAM,
)
async def all_events(request: HttpRequest) -> HttpResponse:
    return await _serve(request, None)


async def _serve(request: HttpRequest, only: str | None) -> HttpResponse:
    if request.method != "GET":
        response = _error(405, f"{request.method} not allowed")
        response["Allow"] = "GET"
        return response
    user, identity, failure = await identify(request)
    if failure is not None:
        return failure
    viewer = await database_sync_to_async(check_access)(identity)
    if viewer is None:
        return _error(401, "authentication required")
    try:
        resume = _resume_point(request, firehose=only is None)
    except ValueError:
        return _error(400, "Last-Event-ID (afterSeq) is not one this stream gave out")
    stream = Stream(identity, viewer, only)
    if only is not None:
        found, stream.only_owner = await database_sync_to_async(generation_owner)(only)
        if not found or not viewer.may_see(stream.only_owner):
            return _error(404, "no such generation")
    return await _start(request, stream, user, resume)


async def _start(
    request: HttpRequest, stream: Stream, user: Any, resume: tuple[str | None, int] | None
) -> HttpResponse:
    user_id = user.pk if user is not None else None
    if not await stream.take_place(user_id, request.META.get("REMOTE_ADDR")):
        _, limit, per = cap_for(user_id, request.META.get("REMOTE_ADDR")) or ("", 0, "")
        return _error(
            429, f"too many open progress sockets: at most {limit} {per}; close one and retry"
        )
    try:
        if settings.REQUIRE_AUTH and user_id is not None:
            await stream.join(access_group(user_id))
        if stream.only is not None:
            await stream.join(generation_group(stream.only))
            opening = await _open_one(stream, resume[1] if resume else None)
        else:
            await stream.join(firehose_group())
            opening = await _open_all(stream, user, resume)  # type: ignore[arg-type]
    except Exception:
        log.exception("cannot open an event stream")
        await stream.close()
        return _error(503, "the live channel is unavailable; try again shortly")
    if opening is None:
        await stream.close()
        return HttpResponse(status=204)  # finished, nothing missed: EventSource stops here
    asyncio.get_running_loop().call_later(UNSTARTED_SECONDS, stream.close_if_unstarted)
    response = StreamingHttpResponse(_events(stream, opening), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
