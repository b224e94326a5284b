"""The HTTP API's bodies, as the types the views build and read.

``GET /api/openapi.json`` is generated from these (``lockngen.openapi``), so the document and
the code cannot drift: a view annotated to return ``TokenJson`` builds exactly that, and the
schemathesis run in ``.ci/run`` checks every answer against it. Bounds are the validators' own
constants, not copies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field, WithJsonSchema
from typing_extensions import TypedDict

from generations import limits as lim
from generations.messages import EventType, GenerationData

IsoTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def iso(moment: datetime) -> str:
    """A time as the API writes it: ISO 8601, UTC as ``Z``."""
    return moment.isoformat().replace("+00:00", "Z")


def iso_or_none(moment: datetime | None) -> str | None:
    return iso(moment) if moment else None


Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]


class ErrorBody(TypedDict):
    """Every error: a message for people; ``field`` names the request field at fault."""

    error: str
    field: NotRequired[str | None]
    node: NotRequired[str | None]  # a refused workflow node, and its input
    input: NotRequired[str | None]
    type: NotRequired[str | None]  # ComfyUI's own error type, when it refused the prompt
    nodeErrors: NotRequired[dict[str, Any]]


# --------------------------------------------------------------------------- generations


class WorkflowNode(TypedDict):
    class_type: str
    inputs: NotRequired[dict[str, Any]]


class WorkflowRequest(TypedDict):
    """A raw ComfyUI graph in API format: ``{node_id: {"class_type", "inputs"}}``."""

    workflow: Annotated[dict[str, WorkflowNode], Field(min_length=1, max_length=lim.MAX_NODES)]


PromptText = Annotated[str, Field(max_length=lim.MAX_PROMPT_CHARS)]
Size = Annotated[int, Field(ge=lim.SIZE_MIN, le=lim.SIZE_MAX, multiple_of=lim.SIZE_STEP)]


class Txt2ImgRequest(TypedDict):
    """Our text-to-image graph, filled in; every field but ``prompt`` has a default."""

    prompt: Annotated[str, Field(min_length=1, max_length=lim.MAX_PROMPT_CHARS)]
    negativePrompt: NotRequired[PromptText]
    width: NotRequired[Size]
    height: NotRequired[Size]
    steps: NotRequired[Annotated[int, Field(ge=lim.STEPS_MIN, le=lim.STEPS_MAX)]]
    cfg: NotRequired[Annotated[float, Field(ge=lim.CFG_MIN, le=lim.CFG_MAX)]]
    seed: NotRequired[Annotated[int, Field(ge=0, le=lim.SEED_MAX)]]
    checkpoint: NotRequired[Annotated[str, Field(min_length=1)]]


CreateGeneration = WorkflowRequest | Txt2ImgRequest


class Txt2ImgParams(TypedDict):
    prompt: str
    negativePrompt: str
    width: int
    height: int
    steps: int
    cfg: float
    seed: int
    checkpoint: str


class GenerationJson(GenerationData):
    """A generation: its latest message's ``data``, and what was asked for."""

    id: Uuid
    seq: int
    params: Txt2ImgParams | None  # null for a raw workflow
    workflow: dict[str, Any]
    cancelRequested: bool
    createdAt: IsoTime
    updatedAt: IsoTime
    finishedAt: IsoTime | None


class GenerationPage(TypedDict):
    results: list[GenerationJson]
    nextCursor: str | None  # pass as ?cursor= for the next (older) page


class GenerationListQuery(TypedDict):
    status: NotRequired[Literal["queued", "running", "completed", "failed", "cancelled", "active"]]
    owner: NotRequired[Literal["me"]]
    limit: NotRequired[Annotated[int, Field(ge=1, le=lim.GENERATIONS_MAX_PAGE)]]
    cursor: NotRequired[str]


class PreviewQuery(TypedDict):
    seq: NotRequired[int]  # only makes each preview's URL new, for caches


# --------------------------------------------------------------------------- tokens


class TokenRequest(TypedDict):
    name: NotRequired[Annotated[str, Field(max_length=lim.TOKEN_NAME_MAX)]]


class TokenJson(TypedDict):
    id: int
    name: str
    prefix: str
    createdAt: IsoTime
    lastUsedAt: IsoTime | None
    revokedAt: IsoTime | None


class TokenIssued(TokenJson):
    token: str  # the secret, shown this once


class TokenList(TypedDict):
    results: list[TokenJson]


# --------------------------------------------------------------------------- webhooks


class WebhookRequest(TypedDict):
    url: Annotated[str, Field(max_length=2000, json_schema_extra={"format": "uri"})]
    events: NotRequired[Annotated[list[EventType], Field(min_length=1)]]


class WebhookJson(TypedDict):
    id: Uuid
    url: str
    events: list[EventType]
    active: bool
    failingSince: IsoTime | None
    createdAt: IsoTime


class WebhookCreated(WebhookJson):
    secret: str  # whsec_…, for checking signatures; shown this once


class WebhookList(TypedDict):
    results: list[WebhookJson]


class AttemptJson(TypedDict):
    webhookId: Uuid
    event: str
    generationId: Uuid | None
    seq: int
    messageId: str
    attempt: int
    status: int | None  # the endpoint's HTTP status; null when it gave none
    error: str | None
    createdAt: IsoTime
    nextAttemptAt: IsoTime | None


class AttemptList(TypedDict):
    results: list[AttemptJson]


class DeliveriesQuery(TypedDict):
    limit: NotRequired[Annotated[int, Field(ge=1, le=lim.ATTEMPTS_MAX_PAGE)]]


class PingQueued(TypedDict):
    queued: bool
    messageId: str


# --------------------------------------------------------------------------- streams


class GenerationEventsQuery(TypedDict):
    """Resume after this seq (as ``Last-Event-ID`` does)."""

    afterSeq: NotRequired[Annotated[str, Field(pattern=r"^[0-9]{1,12}$")]]


class EventsQuery(TypedDict):
    """Resume after ``<generationId>:<seq>``, an event id this stream gave out."""

    afterSeq: NotRequired[Annotated[str, Field(pattern=r"^[0-9a-fA-F-]{36}:[0-9]{1,12}$")]]


class Health(TypedDict):
    status: Literal["ok", "unhealthy"]
    problems: NotRequired[list[Literal["database", "redis"]]]
