"""Callbacks: the execute request's `subscriber` is told of progress, success and failure.

`inProgressUri` gets the statusInfo when the job starts and when its progress
changes; `successUri` the results document; `failedUri` the statusInfo of the
failed job. Each job's notifications go out in order from one background task
per job, retried with backoff, each attempt with a timeout; a newer progress
notification replaces one not sent yet. Nothing here ever blocks or fails a job.

The server refuses callback addresses it must not call: only http and https,
and, unless allowed, no loopback, private, link-local or otherwise non-public
address, so that a client cannot make the server reach internal services.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from process_api.api.documents import status_info
from process_api.api.results import output_forms, results_document
from process_api.errors import InvalidInput
from process_api.jobs.files import read_results
from process_api.jobs.model import Job, JobStatus
from process_api.processes.registry import Process
from process_api.server_log import job_context

log = logging.getLogger(__name__)

SUBSCRIBER_FIELDS = ("successUri", "inProgressUri", "failedUri")


class ForbiddenAddress(Exception):
    pass


@dataclass(frozen=True)
class CallbackPolicy:
    allow_private: bool = False
    timeout: float = 10.0
    attempts: int = 4
    backoff: float = 0.5


async def check_address(uri: str, allow_private: bool) -> str | None:
    """The public address to call the URI at; ForbiddenAddress if there is none.

    With private addresses allowed, nothing is resolved here (None): the client resolves.
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForbiddenAddress("only http and https URLs with a host are called back")
    if allow_private:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except (OSError, ValueError) as exc:
        raise ForbiddenAddress(f"its host cannot be resolved ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not is_public(address):
            raise ForbiddenAddress(f"{parts.hostname} is a non-public address ({address})")
    return str(addresses[0])


#: IPv6 ranges that carry an IPv4 address, and no public service needs for a callback:
#: IPv4-compatible (deprecated, RFC 4291), 6to4 (deprecated, RFC 7526), Teredo, and
#: local-use NAT64 (RFC 8215). Refused outright.
_TUNNELS = [
    ipaddress.IPv6Network(net) for net in ("::/96", "2002::/16", "2001::/32", "64:ff9b:1::/48")
]
#: the well-known NAT64 prefix (RFC 6052): DNS64 gives these for public IPv4-only hosts,
#: so they are called when the IPv4 address they carry is public.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a callback may go to the address: public, not multicast, and for IPv6 not
    a way to reach an IPv4 address past this check."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    if address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    if address in _NAT64:
        return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return not any(address in net for net in _TUNNELS)


def _pinned(uri: str, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URI aimed at the address that was checked, so that a second lookup (DNS
    rebinding) cannot send the request elsewhere; Host and TLS name stay the URI's."""
    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{address}]" if ":" in address else address
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    headers = {"Host": parts.netloc.rpartition("@")[2]}
    return urlunsplit(parts._replace(netloc=netloc)), headers, {"sni_hostname": parts.hostname}


def _shown(uri: str) -> str:
    """The URI without credentials or query, for the log."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.hostname}{parts.path}"


async def check_subscriber(subscriber: dict[str, Any] | None, policy: CallbackPolicy) -> None:
    """Raises InvalidInput naming each callback URL the server would refuse to call."""
    problems = []
    for name in SUBSCRIBER_FIELDS:
        uri = (subscriber or {}).get(name)
        if uri is None:
            continue
        try:
            await check_address(str(uri), policy.allow_private)
        except ForbiddenAddress as exc:
            problems.append(f"subscriber.{name} {uri!r} is refused: {exc}")
    if problems:
        raise InvalidInput("; ".join(problems))


@dataclass
class _Queue:
    items: deque[tuple[str, str, Any]] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None


class Notifier:
    """Turns job changes into callbacks for the jobs that have a subscriber."""

    def __init__(self, process_of: Callable[[Job], Process | None], policy: CallbackPolicy) -> None:
        """`process_of`: the process of a job (for the forms of its results)."""
        self._process_of = process_of
        self._policy = policy
        self._client = httpx.AsyncClient(timeout=policy.timeout, follow_redirects=False)
        self._queues: dict[str, _Queue] = {}

    def __call__(self, job: Job) -> None:
        with job_context(job.id, job.process_id):  # for the lines of its delivery task
            self._notify(job)

    def _notify(self, job: Job) -> None:
        subscriber: dict[str, Any] = job.request.get("subscriber") or {}
        base = job.request.get("baseUrl")
        if not subscriber or not isinstance(base, str):
            return
        if job.status is JobStatus.SUCCESSFUL and subscriber.get("successUri"):
            process = self._process_of(job)
            results = read_results(job.results)
            forms = output_forms(process, job.request) if process else {}
            document = results_document(base, job, results, forms)
            self._enqueue(job.id, "success", subscriber["successUri"], document)
        elif job.status is JobStatus.FAILED and subscriber.get("failedUri"):
            self._enqueue(job.id, "failed", subscriber["failedUri"], status_info(base, job))
        elif not job.status.terminal and subscriber.get("inProgressUri"):
            self._enqueue(job.id, "progress", subscriber["inProgressUri"], status_info(base, job))

    def _enqueue(self, job_id: str, kind: str, uri: str, payload: Any) -> None:
        queue = self._queues.setdefault(job_id, _Queue())
        if kind == "progress" and queue.items and queue.items[-1][0] == "progress":
            queue.items.pop()  # only the newest progress is worth sending
        queue.items.append((kind, uri, payload))
        if queue.worker is None or queue.worker.done():
            queue.worker = asyncio.get_running_loop().create_task(self._drain(job_id, queue))

    async def _drain(self, job_id: str, queue: _Queue) -> None:
        while queue.items:
            kind, uri, payload = queue.items.popleft()
            await self._deliver(job_id, kind, uri, payload)
        if self._queues.get(job_id) is queue and not queue.items:
            del self._queues[job_id]

    async def _deliver(self, job_id: str, kind: str, uri: str, payload: Any) -> None:
        policy = self._policy
        for attempt in range(policy.attempts):
            try:
                address = await check_address(uri, policy.allow_private)
                target: str = uri
                headers: dict[str, str] = {}
                extensions: dict[str, Any] = {}
                if address is not None:
                    target, headers, extensions = _pinned(uri, address)
                response = await self._client.post(
                    target, json=payload, headers=headers, extensions=extensions
                )
                if response.is_success:
                    return
                reason = f"HTTP {response.status_code}"
            except ForbiddenAddress as exc:
                log.warning("job %s: %s callback not sent: %s", job_id, kind, exc)
                return
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            if attempt + 1 < policy.attempts:
                await asyncio.sleep(policy.backoff * 2**attempt)
        log.warning("job %s: %s callback to %s failed: %s", job_id, kind, _shown(uri), reason)

    async def aclose(self, grace: float = 5.0) -> None:
        """Gives pending callbacks a moment to go out, then stops."""
        workers = [q.worker for q in self._queues.values() if q.worker is not None]
        if workers:
            _, pending = await asyncio.wait(workers, timeout=grace)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()
