"""A tracker driven through a recorded trace, the monitor's chores done in memory."""

from __future__ import annotations

import uuid
from pathlib import Path

from comfyui import protocol as p
from generations import messages as m
from progress.tracker import (
    FetchOutputs,
    GenerationState,
    Publish,
    Reconcile,
    StorePreview,
    Tracker,
)
from tests.support import traces


class Run:
    """A tracker driven through a trace, with the monitor's chores done in memory."""

    def __init__(
        self,
        name: str,
        conns: list[str] | None = None,
        folder: Path = traces.TRACES,
        only: set[str] | None = None,
    ) -> None:
        """Replay trace ``name`` of ``folder`` as seen on ``conns`` (all by default),
        following the submitted prompts (those in ``only`` when given)."""
        self.tracker = Tracker(preview_interval=0.0)
        self.published: list[m.Message] = []
        self.publishes: list[Publish] = []  # the effects themselves (with save_now)
        self.previews: list[StorePreview] = []
        self.reconciled: list[str] = []
        self.ids: dict[str, str] = {}
        for sub in traces.submissions(name, folder):
            if only is None or sub.prompt_id in only:
                state = GenerationState(str(uuid.uuid4()), sub.prompt_id, sub.workflow)
                self.ids[sub.prompt_id] = state.generation_id
                self.apply(self.tracker.track(state, 0.0))
        for frame in traces.frames(name, folder):
            if conns is None or frame.conn in conns:
                event = p.decode(frame.data, binary=frame.binary)
                self.apply(self.tracker.handle(event, frame.t))
                self.apply(self.tracker.tick(frame.t))

    def apply(self, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Publish):
                self.published.append(effect.message)
                self.publishes.append(effect)
            elif isinstance(effect, StorePreview):
                self.previews.append(effect)
            elif isinstance(effect, FetchOutputs):
                urls = [f"/img/{ref.filename}" for ref in effect.images]
                self.apply(self.tracker.complete(effect.prompt_id, urls, 99.0))
            elif isinstance(effect, Reconcile):
                self.reconciled.append(effect.prompt_id)

    def of(self, prompt_id: str) -> list[m.Message]:
        gid = self.ids[prompt_id]
        return [msg for msg in self.published if msg["generationId"] == gid]

    def only(self) -> list[m.Message]:
        (prompt_id,) = self.ids
        return self.of(prompt_id)
