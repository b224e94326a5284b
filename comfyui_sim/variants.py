"""Wire traits of each simulated ComfyUI server: the ONE place where the variants differ.

* ``0.3.64``: the server recorded in shared/comfyui/traces (the default).
* ``fork-0.12``: the pip-installable fork at upstream v0.12.1 recorded in traces-fork-0.12.1;
  every trait below that is not 0.3.64's comes from that README's difference table.
* ``modern``: upstream with the full jobs API (v0.26+ up to v0.46), built from
  CHANGES-since-0.3.64.md only (no recording exists). Where the fork and CHANGES disagree,
  CHANGES wins: the fork's object-shaped /queue items, string history messages, ``progress``
  to every socket, missing legacy previews, ``abs_path`` and the repeated node_errors in the
  400 ``extra_info`` are fork-only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

QueueForm = Literal["list", "object"]
MessageForm = Literal["pairs", "strings"]
JobsApi = Literal["none", "read", "full"]

_BASE_FEATURES: dict[str, Any] = {"supports_preview_metadata": True, "max_upload_size": 104857600}
_MANAGER = {"extension": {"manager": {"supports_v4": True}}}
# CHANGES §4: the newer core keys; "assets" mirrors the (simulated, always on) asset manager.
_MODERN_FEATURES = {
    "supports_model_type_tags": True,
    **_MANAGER,
    "node_replacements": True,
    "assets": True,
}
# Recorded from the fork's GET /object_info/SaveImage (newer node schema); the other classes
# were not recorded there, so they keep the 0.3.64 answer.
_NEWER_OBJECT_INFO = {
    "SaveImage": {
        "is_input_list": False,
        "search_aliases": [
            "save",
            "save image",
            "export image",
            "output image",
            "write image",
            "download",
        ],
    }
}


@dataclass(frozen=True)
class Variant:
    """How one server version behaves where versions differ (read-only; shared by all apps).

    The defaults are 0.3.64's (the recorded server): a variant states how it differs."""

    name: str
    # /system_stats "system" values that carry the version
    version: str
    frontend_version: str = "1.27.10"
    templates_version: str = "0.1.95"
    installed_templates_version: str = "0.1.95"
    features: tuple[tuple[str, Any], ...] = tuple(_BASE_FEATURES.items())
    queue_form: QueueForm = "list"
    history_messages: MessageForm = "pairs"
    # extra_data.create_time (ms) on queued prompts (upstream since v0.3.76)
    create_time: bool = False
    # sensitive extra_data keys are hidden from /queue too (0.3.64 hid them from history only)
    queue_hides_sensitive: bool = False
    # `progress` frames go to every socket, whoever submitted the prompt (the fork)
    progress_to_all: bool = False
    # type-1 previews for clients without supports_preview_metadata
    legacy_previews: bool = True
    # absolute file path on every output file entry (the fork leaks it)
    abs_path: bool = False
    # asset `id` / `preview_id` on output file entries, `assets.seed.*` broadcasts
    assets: bool = False
    # 400 for unknown/missing class_type is `missing_node_type` (else `invalid_prompt`)
    missing_node_type: bool = False
    # prompt_outputs_failed_validation repeats node_errors in extra_info (the fork)
    validation_extra_info: bool = False
    # The jobs API dates from upstream v0.6.0: 0.3.64 answers /api/jobs with a plain 404.
    jobs_api: JobsApi = "none"
    # client-chosen prompt_id must be a canonical lowercase hyphenated UUID (0.3.64 took any
    # prompt_id and str()-ed it)
    uuid_prompt_ids: bool = False
    # Simulated seconds between two `progress` frames of a node; 0 sends every update
    progress_throttle: float = 0.0
    # Classes that report `activity: "loading"` in progress_state before their first step
    loading_classes: tuple[str, ...] = ()
    newer_system_stats: bool = False
    newer_object_info: bool = False

    def server_features(self) -> dict[str, Any]:
        """feature_flags reply and GET /features (a fresh copy: callers may not share it)."""
        return copy.deepcopy(dict(self.features))

    def object_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """The 0.3.64 object_info with this version's recorded additions."""
        if not self.newer_object_info:
            return info
        for name, extra in _NEWER_OBJECT_INFO.items():
            if name in info:
                info[name] = {**info[name], **copy.deepcopy(extra)}
        return info


V0_3_64 = Variant(name="0.3.64", version="0.3.64")

FORK_0_12 = Variant(
    name="fork-0.12",
    version="0.12.1",
    frontend_version="1.33.10",
    templates_version="0.7.51",
    installed_templates_version="",
    features=tuple({**_BASE_FEATURES, **_MANAGER}.items()),
    queue_form="object",
    history_messages="strings",
    create_time=True,
    queue_hides_sensitive=True,
    progress_to_all=True,
    legacy_previews=False,
    abs_path=True,
    missing_node_type=True,
    validation_extra_info=True,
    # v0.12.1 has the read side of the jobs API (v0.6.0) but not the cancel endpoints, which
    # came with v0.26.0 (CHANGES §0/§5). Its status mapping already knows `cancelled` (PR
    # #11680, merged 2026-01-07, before v0.12.1). The traces never call /api/jobs.
    jobs_api="read",
    # Kept as 0.3.64: uuid_prompt_ids, as the canonical-UUID check (PR #13998, ~2026-06) is
    # newer than v0.12.1 and the fork's README lists it among the *newer upstream*
    # differences, not its own; progress_throttle, as upstream throttles since v0.9.2 but the
    # fork's traces show every step (0.2-0.5 s apart) and its README names throttling as a
    # newer-upstream difference.
    newer_object_info=True,
)

MODERN = Variant(
    name="modern",
    version="0.46.0",
    # CHANGES gives no frontend/templates versions for v0.46; the fork's are the newest known.
    frontend_version="1.33.10",
    templates_version="0.7.51",
    installed_templates_version="0.7.51",
    features=tuple({**_BASE_FEATURES, **_MODERN_FEATURES}.items()),
    # Kept as 0.3.64: queue_form (CHANGES §6: upstream items stay 5-element lists);
    # history_messages (CHANGES §6 "same envelope", and the jobs API reads
    # execution_start/end times from the messages' timestamps (§5): upstream history keeps
    # the [name, data] pairs); progress_to_all (CHANGES §1: per-prompt routing unchanged);
    # legacy_previews (CHANGES §2: the hook still sends type 1 if not negotiated); abs_path
    # (not in CHANGES: a fork addition); validation_extra_info (CHANGES §6: "existing types
    # are unchanged").
    create_time=True,
    queue_hides_sensitive=True,
    assets=True,
    missing_node_type=True,
    jobs_api="full",
    uuid_prompt_ids=True,
    # At most one `progress` per node every 0.5 simulated seconds; the final step always goes.
    progress_throttle=0.5,
    loading_classes=("KSampler", "SlowNoise"),
    newer_system_stats=True,
    newer_object_info=True,
)

VARIANTS: dict[str, Variant] = {v.name: v for v in (V0_3_64, FORK_0_12, MODERN)}
DEFAULT_VARIANT = V0_3_64.name


def variant(name: str) -> Variant:
    """The traits of ``name``; ValueError for an unknown one."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}") from None
