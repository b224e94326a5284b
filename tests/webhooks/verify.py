"""Standard Webhooks verification written from the specification, independently of the
``standardwebhooks`` package the sender signs with (and of our code)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


class BadSignature(AssertionError):
    pass


def verify(secret: str, headers: dict[str, str], body: str, tolerance: int = 300) -> None:
    """Raises BadSignature unless a ``v1`` signature in the headers matches the body."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp = lower.get("webhook-id"), lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature", "")
    if not msg_id or not stamp or not signatures:
        raise BadSignature(f"missing headers: {sorted(lower)}")
    if abs(time.time() - int(stamp)) > tolerance:
        raise BadSignature(f"timestamp {stamp} outside the tolerance")
    if not secret.startswith("whsec_"):
        raise BadSignature("secret without whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    if len(key) < 24:
        raise BadSignature(f"secret of {len(key)} bytes")
    signed = f"{msg_id}.{stamp}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise BadSignature("no v1 signature matches")
