"""The webhook sender: claims due deliveries from the outbox, POSTs them signed, records the
outcome. Runs as ``python manage.py send_webhooks`` (any number of them: see outbox.py).

The outbox, not this process, holds every pending delivery, so killing it loses nothing: a
delivery it had claimed is sent again (same ``webhook-id``) once its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from standardwebhooks import Webhook as Signer

from generations import outbox
from generations import webhook_rules as rules

log = logging.getLogger("lockngen.webhooks")
IDLE_SECONDS = 0.5  # how often an idle sender looks at the outbox
WORKERS = 8  # deliveries in flight at once (each to its own stream)


class RefusedAddress(OSError):
    """A resolver error (aiohttp reports OSErrors from resolvers as connection errors)."""


class GuardedResolver(ThreadedResolver):
    """Resolves, then refuses private addresses; the connection goes to the very addresses
    checked, so a name that re-resolves elsewhere (DNS rebinding) cannot slip past."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        if not self.allow_private:
            try:
                rules.check_addresses(host, [entry["host"] for entry in found])
            except rules.UrlRefused as exc:
                raise RefusedAddress(str(exc)) from exc
        return found


def signed_headers(claim: outbox.Claim, now: float) -> dict[str, str]:
    """Standard Webhooks headers; the timestamp is each attempt's own (receivers refuse old)."""
    moment = datetime.fromtimestamp(int(now), tz=UTC)
    signature = Signer(claim.secret).sign(claim.message_id, moment, claim.body)
    return {
        "webhook-id": claim.message_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": signature,
        "Content-Type": "application/json",
        "User-Agent": "LockN-Gen-Webhooks/1",
    }


class Sender:
    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        conf = conf or settings.LOCKNGEN
        self.timeout = conf["WEBHOOK_TIMEOUT_SECONDS"]
        # A lease must outlast an attempt by far, or a slow one would be sent twice at once.
        self.lease = max(conf["WEBHOOK_LEASE_SECONDS"], self.timeout + 5)
        self.delays = conf["WEBHOOK_RETRY_DELAYS"]
        self.retry_for = conf["WEBHOOK_RETRY_FOR_SECONDS"]
        self.allow_private = conf["WEBHOOK_ALLOW_PRIVATE"]
        self.stopping = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None

    def new_session(self) -> aiohttp.ClientSession:
        """Total timeout per attempt; no proxies from the environment (trust_env off)."""
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.allow_private))
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def run(self) -> None:
        async with self.new_session() as session:
            self.session = session
            workers = [asyncio.create_task(self._work()) for _ in range(WORKERS)]
            await self.stopping.wait()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def stop(self) -> None:
        self.stopping.set()

    async def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                claim = await sync_to_async(_claim)(self.lease)
                if claim is None:
                    await asyncio.sleep(IDLE_SECONDS)
                    continue
                await self.deliver(claim)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment must not end the sender
                log.exception("webhook sender step failed")
                await asyncio.sleep(IDLE_SECONDS * 4)

    async def deliver(self, claim: outbox.Claim) -> bool:
        """One attempt, its outcome recorded; True when it was delivered."""
        status, error = await self.attempt(claim)
        log.info(
            "delivery %s (%s) attempt %d to %s: %s",
            claim.delivery_id,
            claim.message_id,
            claim.attempt,
            claim.url,
            status or error,
        )
        now = time.time()
        first = claim.first_attempt_at.timestamp() if claim.first_attempt_at else now
        decision = rules.decide(status, claim.attempt, now - first, self.delays, self.retry_for)
        kept = await sync_to_async(outbox.finish)(claim, outbox.Result(status, error, decision))
        if not kept:
            log.warning("delivery %s: lease lost, its result is dropped", claim.delivery_id)
        elif decision.endpoint_dead:
            log.warning("endpoint %s failed for %.0f s: now inactive", claim.url, self.retry_for)
        return decision.state == "delivered"

    async def attempt(self, claim: outbox.Claim) -> tuple[int | None, str]:
        """(HTTP status or None, error text)."""
        assert self.session is not None
        try:
            host, _ = rules.split_url(claim.url)
            literal = rules.literal_ip(host)
            if literal is not None and not self.allow_private:
                rules.check_addresses(host, [literal])  # a literal IP is never resolved
            async with self.session.post(
                claim.url,
                data=claim.body.encode(),
                headers=signed_headers(claim, time.time()),
                allow_redirects=False,
            ) as answer:
                return answer.status, "" if answer.status < 300 else f"HTTP {answer.status}"
        except rules.UrlRefused as exc:
            return None, f"refused: {exc}"
        except TimeoutError:
            return None, f"timed out after {self.timeout:g} s"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                return None, f"refused: {exc.os_error}"
            return None, f"connection error: {exc}"
        except (aiohttp.ClientError, OSError) as exc:
            return None, f"connection error: {exc}"


def _claim(lease: float) -> outbox.Claim | None:
    close_old_connections()  # a long-lived process: drop a connection the server closed
    return outbox.claim(lease)
