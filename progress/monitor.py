"""The monitor: ComfyUI's WebSocket → tracker → publisher, in one long-lived event loop.

A thin shell around the pure parts: ``comfyui.protocol`` decodes, ``tracker`` and
``reconcile`` decide, ``publisher`` and ``rows`` carry out. The socket is
``comfyui.transport``'s; everything else runs in the loop, one frame at a time, so a
generation's messages keep ComfyUI's order.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections import OrderedDict
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.db.utils import InterfaceError, OperationalError

from comfyui import protocol as p
from comfyui.answers import Outcome, QueueSnapshot, UnexpectedShape
from comfyui.client import ComfyClient, ComfyUnavailable, ServerInfo
from comfyui.transport import ComfySocket, SocketClosed
from generations import messages as m
from generations.install import comfyui_client_id
from generations.state import absorb
from generations.status import Status
from generations.store import async_redis
from progress import eta_store, metrics, rows
from progress.eta_board import EtaBoard
from progress.publisher import FRAME_RECEIVED_AT, MAX_RETRY_DELAY, Publisher
from progress.reconcile import (
    UNREADABLE,
    Doubt,
    Sighting,
    Verdict,
    decide,
    from_answers,
    from_job,
    over_limit,
    settlement,
)
from progress.tracker import (
    Effect,
    FetchOutputs,
    GenerationState,
    ImageRef,
    Publish,
    Reconcile,
    StorePreview,
    Tracker,
)

log = logging.getLogger("lockngen.monitor")

HEARTBEAT_SECONDS = 5.0

# The database away for a while (restarting, a dropped connection): worth waiting for.
# Any other error (a bad query, a constraint) would fail the same way again.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def layer_on_our_redis() -> bool:
    """The channel layer's one Redis is the one the publisher writes state to."""
    config = settings.CHANNEL_LAYERS["default"].get("CONFIG") or {}
    return list(config.get("hosts") or []) == [settings.REDIS_URL]


def build_monitor(url: str, client_id: str | None = None) -> Monitor:
    """A monitor configured from settings (call it inside the loop it will run in)."""
    conf = settings.LOCKNGEN
    rate = conf["PREVIEW_MAX_PER_SECOND"]
    return Monitor(
        comfy_url=url.rstrip("/"),
        client_id=client_id or comfyui_client_id(),
        publisher=Publisher(
            get_channel_layer(),
            async_redis(),
            state_ttl=conf["STATE_TTL_SECONDS"],
            preview_ttl=conf["PREVIEW_TTL_SECONDS"],
            log_length=conf["LOG_LENGTH"],
            same_redis=layer_on_our_redis(),
        ),
        tracker=Tracker(preview_interval=1.0 / rate if rate > 0 else 0.0),
        client=ComfyClient(url, timeout=settings.COMFYUI_HTTP_TIMEOUT),
        progress_write_interval=conf["PROGRESS_WRITE_INTERVAL"],
        max_backoff=conf["RECONNECT_MAX_DELAY"],
        stale_seconds=conf["STALE_SECONDS"],
        resync_seconds=conf["RESYNC_SECONDS"],
        max_run_seconds=conf["MAX_RUN_SECONDS"],
    )


def ws_url(comfy_url: str, client_id: str) -> str:
    base = comfy_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}/ws?clientId={client_id}"


def backoff_delay(attempt: int, max_delay: float) -> float:
    """Exponential backoff with jitter, so monitors do not reconnect in lockstep."""
    return min(max_delay, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)


class Monitor:
    def __init__(
        self,
        *,
        comfy_url: str,
        client_id: str,
        publisher: Publisher,
        tracker: Tracker,
        client: ComfyClient,
        progress_write_interval: float = 1.0,
        max_backoff: float = 30.0,
        stale_seconds: float = 900.0,
        resync_seconds: float = 60.0,
        max_run_seconds: float = 0.0,
        eta: EtaBoard | None = None,
    ) -> None:
        self.comfy_url = comfy_url
        self.client_id = client_id
        self.publisher = publisher
        self.tracker = tracker
        self.client = client
        self.progress_write_interval = progress_write_interval
        self.max_backoff = max_backoff
        self.stale_seconds = stale_seconds
        self.resync_seconds = resync_seconds
        self.max_run_seconds = max_run_seconds  # 0: no limit
        # Learned per backend (this monitor's); the tracker asks it as it builds messages.
        self.eta = eta or EtaBoard()
        self.tracker.estimate = self.eta.for_state
        self._eta_loaded = False
        self.server: ServerInfo | None = None  # learned on each connect
        self._recheck: dict[str, float] = {}  # prompt id -> when to ask about it again
        self._absent_since: dict[str, float] = {}  # prompt id -> first clean "unknown"
        self._shapes_seen: set[str] = set()
        self._preview_format: str | None = None
        self._last_resync = time.monotonic()
        self._last_event: dict[str, float] = {}  # prompt id -> monotonic time of its last frame
        self.stopping = asyncio.Event()
        self._ws: ComfySocket | None = None
        # Coalesced progress: the state to write, and the message it was last published in.
        self._dirty: dict[str, tuple[GenerationState, m.Message]] = {}
        self._foreign: OrderedDict[str, None] = OrderedDict()  # prompt ids that are not ours
        metrics.watch_tracker(tracker)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        metrics.comfyui_disconnected(self.comfy_url)  # the series exist before connecting
        if not self._eta_loaded:  # what earlier runs of this backend taught us
            self.eta.model = await eta_store.load(self.publisher.redis, self.comfy_url)
            self._eta_loaded = True
        flusher = asyncio.create_task(self._flush_loop())
        attempt = 0
        try:
            while not self.stopping.is_set():
                connected = await self._session()
                attempt = 0 if connected else attempt + 1
                if not self.stopping.is_set():
                    delay = backoff_delay(attempt, self.max_backoff)
                    log.info("reconnecting to ComfyUI in %.1fs", delay)
                    await self._sleep(delay)
        finally:
            flusher.cancel()
            await self._flush_dirty()

    def stop(self) -> None:
        self.stopping.set()
        self.publisher.stopping.set()
        if self._ws is not None:
            self._ws.abort()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _session(self) -> bool:
        """One connection to ComfyUI, from connect to loss; False if it never connected."""
        url = ws_url(self.comfy_url, self.client_id)
        try:
            ws = await ComfySocket.connect(url)
        except Exception as exc:  # noqa: BLE001 - any failure to connect means "try later"
            log.warning("cannot reach ComfyUI at %s: %s", url, exc)
            return False
        self._ws = ws
        metrics.comfyui_connected(self.comfy_url)
        log.info("connected to ComfyUI at %s", url)
        try:
            # Flags are per socket: re-sent on every connection, or previews lose prompt ids.
            await ws.send_text(m.dumps(p.FEATURE_FLAGS_HELLO))
            await self._guard(self._learn_server())
            await self._guard(self.reconcile())
            await self._consume(ws)
        except SocketClosed:
            log.warning("ComfyUI connection lost")
        finally:
            self._ws = None
            metrics.comfyui_disconnected(self.comfy_url)
            ws.abort()
        return True

    async def _learn_server(self) -> None:
        try:
            self.server = await asyncio.to_thread(self.client.server_info)
        except ComfyUnavailable as exc:  # the next connection asks again
            log.warning("cannot ask ComfyUI at %s what it is: %s", self.comfy_url, exc)
            self.server = ServerInfo(version=None, has_jobs=False)
        log.info(
            "ComfyUI at %s: version %s, jobs API %s",
            self.comfy_url,
            self.server.version or "unknown",
            "yes" if self.server.has_jobs else "no",
        )
        await self.publisher.describe_server(self.comfy_url, self._server_facts())

    def _server_facts(self) -> dict[str, Any]:
        """What ``monitor_health`` prints about the server."""
        server = self.server
        return {
            "version": server.version if server else None,
            "jobsApi": server.has_jobs if server else None,
            "previews": self._preview_format,
        }

    async def _on_server_flags(self, flags: dict[str, Any]) -> None:
        """ComfyUI's reply to our hello says which preview frames it will send us."""
        metadata = bool(flags.get("supports_preview_metadata"))
        self._preview_format = "type 4 (with prompt id)" if metadata else "type 1 (legacy)"
        log.info("ComfyUI at %s sends previews as %s", self.comfy_url, self._preview_format)
        await self.publisher.describe_server(self.comfy_url, self._server_facts())

    async def _consume(self, ws: ComfySocket) -> None:
        """Frames in ComfyUI's order until the socket ends (``SocketClosed``) or we stop."""
        while not self.stopping.is_set():
            frame = await ws.receive(timeout=0.05)
            if frame is None:
                await self._guard(self._apply(self.tracker.tick(time.time())))
                continue
            stamp = FRAME_RECEIVED_AT.set(frame.received_at)  # for the messages it causes
            await self._guard(
                self.on_frame(frame.data, binary=frame.binary, received_at=frame.received_at)
            )
            FRAME_RECEIVED_AT.reset(stamp)

    async def _guard(self, work: Any) -> None:
        """Nothing ComfyUI sends, and no failed write, may kill the monitor."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("monitor step failed; going on")

    # ------------------------------------------------------------------ frames

    async def on_frame(
        self, data: str | bytes, *, binary: bool, received_at: float | None = None
    ) -> None:
        try:
            event = p.decode(data, binary=binary)
        except p.ProtocolError as exc:
            log.warning("skipping malformed ComfyUI frame: %s", exc)
            return
        prompt_id = getattr(event, "prompt_id", None)
        await self._ensure_tracked(prompt_id)
        # ComfyUI's replay of the running node on reconnect is not news from the prompt.
        replay = isinstance(event, p.Executing) and event.prompt_id is None
        if not replay and not isinstance(event, p.Status | p.Unknown | p.FeatureFlags):
            owner = prompt_id or self.tracker.running_prompt
            if owner and self.tracker.get(owner):  # prompts of others are not ours to time
                self._last_event[owner] = time.monotonic()
        if isinstance(event, p.FeatureFlags):
            await self._on_server_flags(event.flags)
        now = time.time()
        if not replay:  # the board first: the messages built below carry its estimates
            # Timed by arrival: a frame that waited behind a slow step is not a slow GPU.
            at = min(received_at or now, now)
            self.eta.observe(prompt_id or self.tracker.running_prompt, event, at)
        await self._apply(self.tracker.handle(event, now))
        if isinstance(event, p.Status) and event.sid is None:
            await self.refresh_queue()  # the queue changed: new generations, new positions

    async def _ensure_tracked(self, prompt_id: str | None) -> None:
        """Events can beat POST /prompt's answer: look the prompt up in our database."""
        if not prompt_id or self.tracker.get(prompt_id) or prompt_id in self._foreign:
            return
        state = await rows.load_active(prompt_id=prompt_id)
        if state is None:
            self._foreign[prompt_id] = None
            while len(self._foreign) > 10_000:
                self._foreign.popitem(last=False)
            return
        await self._track(state)

    async def _track(self, state: GenerationState) -> None:
        self._last_event[state.prompt_id] = time.monotonic()
        # Progress rows are coalesced: Redis may know a later message than the row does.
        absorb(state, await self.publisher.last_message(state.generation_id))
        running_since = state.started_at if state.status == Status.RUNNING else None
        self.eta.follow(state.prompt_id, state.workflow, running_since)
        await self._apply(self.tracker.track(state, time.time()))

    # ------------------------------------------------------------------ effects

    async def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Publish):
                await self._publish(effect)
            elif isinstance(effect, StorePreview):
                await self.publisher.store_preview(
                    effect.generation_id, effect.content_type, effect.image
                )
            elif isinstance(effect, FetchOutputs):
                await self._complete(effect.prompt_id, list(effect.images))
            elif isinstance(effect, Reconcile):
                await self.reconcile_prompt(effect.prompt_id)

    async def _publish(self, effect: Publish) -> None:
        state = effect.state
        if effect.save_now:
            # The webhook outbox is written in the row's transaction.
            self._dirty.pop(state.generation_id, None)
            await self._save_retrying(state, effect.message)
        else:
            # Coalesced (see _flush_loop): webhooks get the progress messages that are saved.
            # A copy: the flush writes from a thread while the tracker moves the live state on
            # (it could otherwise write a half-made "completed" before the terminal save).
            self._dirty[state.generation_id] = (copy.copy(state), effect.message)
        if state.terminal:
            for table in (self._recheck, self._absent_since, self._last_event):
                table.pop(state.prompt_id, None)
        await self.publisher.publish(effect.message, owner_id=state.owner_id)
        if state.terminal:
            await self._learn(state.prompt_id, completed=state.status == Status.COMPLETED)

    async def _save_retrying(self, state: GenerationState, message: m.Message) -> None:
        """The row (and its webhooks) before the message goes out: waits out a database
        that is away, until the monitor stops."""
        delay = 0.1
        while True:
            try:
                await rows.save(state, message["seq"], message)
                return
            except TRANSIENT_DB_ERRORS as exc:
                if self.stopping.is_set():
                    raise
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                # Else the broken connection is reused: Django drops it only between requests.
                await sync_to_async(close_old_connections)()
                await self._sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _learn(self, prompt_id: str, completed: bool) -> None:
        """A completed run teaches the ETA model (kept in Redis); others are only forgotten."""
        if not completed:
            self.eta.forget(prompt_id)
            return
        keys = self.eta.finish(prompt_id, time.time())
        if keys:
            await eta_store.save(self.publisher.redis, self.comfy_url, self.eta.model, keys)

    async def _complete(self, prompt_id: str, images: list[ImageRef]) -> None:
        state = self.tracker.get(prompt_id)
        if state is None:
            return
        urls = await sync_to_async(rows.download_outputs, thread_sensitive=False)(
            self.client, state.generation_id, images
        )
        await self._apply(self.tracker.complete(prompt_id, urls, time.time()))

    async def _flush_loop(self) -> None:
        beat = 0.0
        while True:
            await asyncio.sleep(self.progress_write_interval)
            await self._guard(self._flush_dirty())
            await self._guard(self.settle_stale())
            await self._guard(self.recheck_due())
            if time.monotonic() - beat >= HEARTBEAT_SECONDS:
                beat = time.monotonic()
                connected = self._ws is not None
                ttl = int(HEARTBEAT_SECONDS * 3)
                await self._guard(self.publisher.heartbeat(self.comfy_url, connected, ttl))

    async def _flush_dirty(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for state, message in dirty.values():
            await rows.save(state, state.seq, message)

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self) -> None:
        """After (re)connecting: bring every unfinished generation in line with ComfyUI."""
        await self._adopt_rows()
        queue = await self._read_queue()
        for prompt_id in queue.running if queue else []:
            await self._apply(self.tracker.mark_running(prompt_id, time.time()))
        for prompt_id in list(self.tracker.generations):
            if queue is None or not queue.knows(prompt_id):
                await self.reconcile_prompt(prompt_id, queue)
        if queue is not None:
            await self._apply_positions(queue.pending)

    async def refresh_queue(self) -> None:
        """ComfyUI's queue changed: adopt new generations, settle vanished ones, renumber."""
        await self._adopt_rows()
        queue = await self._read_queue()
        if queue is None:
            return
        for prompt_id, state in list(self.tracker.generations.items()):
            # A queued prompt deleted from ComfyUI's queue vanishes without any event.
            if state.status == Status.QUEUED and not queue.knows(prompt_id):
                await self.reconcile_prompt(prompt_id, queue)
        await self._apply_positions(queue.pending)

    async def _adopt_rows(self) -> None:
        for state in await rows.load_all_active(self.comfy_url):
            if self.tracker.get(state.prompt_id) is None:
                await self._track(state)

    async def _read_queue(self) -> QueueSnapshot | None:
        try:
            queue = await asyncio.to_thread(self.client.queue)
        except (ComfyUnavailable, UnexpectedShape) as exc:
            self._unreadable(exc, "the queue")
            return None
        # Everything ahead of our prompts, other clients' included, for the queue wait.
        self.eta.set_queue(queue.running, queue.pending, queue.graphs, time.time())
        return queue

    async def _apply_positions(self, pending: list[str]) -> None:
        now = time.time()
        for position, prompt_id in enumerate(pending, start=1):
            await self._apply(self.tracker.set_queue_position(prompt_id, position, now))

    def _resync_if_deaf(self, now: float) -> None:
        """A running prompt and a silent socket: reconnect, in case ComfyUI stopped routing
        to us (when an older socket with our clientId closes, ComfyUI drops our sid from its
        table although the new socket is open: server.py's ``finally``)."""
        quiet = [
            now - self._last_event.get(pid, now)
            for pid, state in self.tracker.generations.items()
            if state.status == Status.RUNNING
        ]
        if not quiet or min(quiet) < self.resync_seconds:
            return
        if now - self._last_resync < self.resync_seconds or self._ws is None:
            return
        log.warning("a running prompt has been silent for %.0fs: reconnecting", min(quiet))
        self._last_resync = now
        self._ws.abort()  # the session ends; run() reconnects and reconciles

    async def settle_stale(self) -> None:
        """Running prompts silent for too long, or past the run limit, are looked at again."""
        now = time.monotonic()
        self._resync_if_deaf(now)
        for prompt_id, state in list(self.tracker.generations.items()):
            if state.status != Status.RUNNING or state.finishing:
                continue
            quiet = now - self._last_event.get(prompt_id, now)
            stale = quiet >= self.stale_seconds
            if not stale and self._over_limit(state, time.time()) is None:
                continue
            log.warning("checking on %s: silent for %.0fs, or past the run limit", prompt_id, quiet)
            error = f"timed out: no progress from ComfyUI for {quiet:.0f} s" if stale else None
            await self.reconcile_prompt(prompt_id, give_up_with=error)
            self._last_event[prompt_id] = time.monotonic()  # if ComfyUI was unreadable

    async def recheck_due(self) -> None:
        """Prompts whose fate was in doubt are asked about again when their time comes."""
        now = time.time()
        for prompt_id, at in list(self._recheck.items()):
            if at <= now:
                await self.reconcile_prompt(prompt_id)

    def _over_limit(self, state: GenerationState, now: float) -> str | None:
        return over_limit(state.started_at, self.max_run_seconds, now)

    async def reconcile_prompt(
        self,
        prompt_id: str,
        queue: QueueSnapshot | None = None,
        give_up_with: str | None = None,
    ) -> None:
        """Ask ComfyUI what became of a prompt, and act on ``reconcile.decide``'s verdict.

        ``give_up_with``: an error to end it with (and cancel it) when it has not ended.
        """
        state = self.tracker.get(prompt_id)
        if state is None:
            return
        sighting = await self._sight(prompt_id, queue)
        now = time.time()
        doubt = Doubt(
            status=state.status,
            created_at=state.created_at,
            absent_since=self._absent_since.get(prompt_id),
            cancel_requested=await rows.cancel_requested(state.generation_id),
            give_up_with=give_up_with,
            over_limit=self._over_limit(state, now),
        )
        await self._carry_out(state, decide(sighting, doubt, now), now)

    async def _sight(self, prompt_id: str, queue: QueueSnapshot | None) -> Sighting:
        """What the server says of a prompt: by the jobs API where it has one."""
        try:
            if self.server is not None and self.server.has_jobs:
                return from_job(await asyncio.to_thread(self.client.job, prompt_id))
            outcome = await asyncio.to_thread(self.client.history, prompt_id)
            if outcome is None and queue is None:
                queue = await asyncio.to_thread(self.client.queue)
            return from_answers(outcome, queue, prompt_id)
        except (ComfyUnavailable, UnexpectedShape) as exc:
            self._unreadable(exc, prompt_id)
            return UNREADABLE

    def _unreadable(self, exc: Exception, about: str) -> None:
        """A shape we do not know is logged once (it will not change by itself)."""
        if not isinstance(exc, UnexpectedShape):
            log.warning("cannot ask ComfyUI about %s: %s", about, exc)
        elif str(exc) not in self._shapes_seen:
            self._shapes_seen.add(str(exc))
            log.warning(
                "ComfyUI answered in a shape LockN Gen does not know (%s): asking about %s "
                "left it as it is; it will be asked again",
                exc,
                about,
            )

    async def _carry_out(self, state: GenerationState, verdict: Verdict, now: float) -> None:
        prompt_id = state.prompt_id
        self._recheck.pop(prompt_id, None)
        self._absent_since.pop(prompt_id, None)
        if verdict.action == "recheck" and verdict.at is not None:
            self._recheck[prompt_id] = verdict.at
            if verdict.absent_since is not None:
                self._absent_since[prompt_id] = verdict.absent_since
        elif verdict.action == "settle" and verdict.outcome is not None:
            await self._settle(state, verdict.outcome, now)
        elif verdict.action == "start":
            await self._apply(self.tracker.mark_running(prompt_id, now))
        elif verdict.action == "cancel":
            await self._apply(self.tracker.cancel(prompt_id, now))
        elif verdict.action == "fail":
            if verdict.cancel_on_server:
                await asyncio.to_thread(_cancel_quietly, self.client, prompt_id)
            log.warning("%s ends failed: %s", prompt_id, verdict.error)
            await self._apply(self.tracker.fail(prompt_id, verdict.error or "failed", now))

    async def _settle(self, state: GenerationState, outcome: Outcome, now: float) -> None:
        prompt_id, plan = state.prompt_id, settlement(outcome)
        if plan.action == "complete":
            state.finishing = True
            await self._complete(prompt_id, list(plan.images))
        elif plan.action == "cancel":
            await self._apply(self.tracker.cancel(prompt_id, now))
        else:
            await self._apply(self.tracker.fail(prompt_id, plan.error or "failed", now))


def _cancel_quietly(client: ComfyClient, prompt_id: str) -> None:
    try:
        client.cancel(prompt_id)  # free ComfyUI of a prompt we have given up on
    except ComfyUnavailable as exc:
        log.warning("could not cancel %s: %s", prompt_id, exc)
