"""The trunk service: keeps a registration alive at every trunk with register=yes.

One runner task per registering trunk drives a `sip.registration.RegistrationClient`
(the sans-I/O core) through the switch's SIP endpoint as a UAC: it resolves the trunk's
host off the loop (`loop.getaddrinfo`, bounded by a timeout), sends each REGISTER with
`endpoint.request`, feeds the final response back and sleeps until the core's next
deadline. The service owns the runners: `reload` stops those whose trunk changed or went
away (un-registering them) and starts the new ones; `close` un-registers all.

Failures never storm: a name that does not resolve, a timeout or a refusal each wait the
core's back-off (`retry_min` doubling to `retry_max`, jittered upward). Every log line
names the trunk; no line carries its password.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pbx.errors import PbxError
from pbx.store.trunks import Trunk
from sip.message import Request, Response
from sip.peer import Peer
from sip.registration import RegistrationClient, RegistrationConfig, RegistrationState
from sip.uri import SipUri

__all__ = ["ResolveError", "TrunkChannels", "TrunkService", "resolve"]

log = logging.getLogger(__name__)

#: How long one un-REGISTER (with its challenge) may take at stop.
UNREGISTER_TIMEOUT = 5.0


class ResolveError(PbxError):
    """A trunk's host name did not resolve (in time); the message is the reason."""


async def resolve(trunk: Trunk, timeout: float = 5.0) -> Peer:
    """Where to send to reach `trunk`: its address, or its host name resolved off the loop
    (`loop.getaddrinfo`, in the resolver's thread), IPv4 first.

    Raises: ResolveError with the reason (no such name, no answer within `timeout` s).
    """
    transport = trunk.transport.upper()
    try:
        ipaddress.ip_address(trunk.host)
        return Peer(transport, trunk.host, trunk.port)
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    kind = socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(trunk.host, trunk.port, type=kind)
    except TimeoutError:
        raise ResolveError(f"no answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise ResolveError(exc.strerror or str(exc)) from None
    # Prefer IPv4 (the usual listening address), else whatever came first.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    for info in infos:
        return Peer(transport, str(info[4][0]), trunk.port)
    raise ResolveError("no address")


class TrunkChannels:
    """Live calls per trunk, inbound and outbound: a trunk with `max_channels` > 0
    takes no call beyond that many (the provider's limit, or what the line carries).

    Whoever takes a channel gives it back once, when its call ends: `acquire` before
    the INVITE goes out (or is accepted), `release` at the call's end.
    """

    def __init__(self) -> None:
        self._in_use: dict[str, int] = {}

    def acquire(self, trunk: str, max_channels: int) -> bool:
        """Take a channel of `trunk` for a call; False (nothing taken) when all
        `max_channels` are in use (0: no limit)."""
        used = self._in_use.get(trunk, 0)
        if max_channels > 0 and used >= max_channels:
            return False
        self._in_use[trunk] = used + 1
        return True

    def release(self, trunk: str) -> None:
        """Give back a channel `acquire` took."""
        left = self._in_use.get(trunk, 0) - 1
        if left > 0:
            self._in_use[trunk] = left
        else:
            self._in_use.pop(trunk, None)

    def in_use(self, trunk: str) -> int:
        """How many calls `trunk` carries now."""
        return self._in_use.get(trunk, 0)


class Sender(Protocol):
    """What the service needs of `sip.endpoint.Endpoint`."""

    async def request(self, request: Request, peer: Peer) -> Response: ...


class Addresses(Protocol):
    """Our own address as a peer sees it (`pbx.calls.CallManager`)."""

    sip_port: int

    def local_host(self, peer: Peer) -> str: ...


@dataclass(eq=False)
class _Runner:
    trunk: Trunk
    task: asyncio.Task[None] | None = None
    client: RegistrationClient | None = None
    peer: Peer | None = None
    #: A failure before any REGISTER could go (the name did not resolve).
    resolve_failure: str | None = None
    resolve_failures: int = 0
    retry_at: float | None = None
    logged_state: RegistrationState | None = None


def _same(a: Trunk, b: Trunk) -> bool:
    return replace(a, created=0.0) == replace(b, created=0.0)


class TrunkService:
    """Registrations of the switch at its trunks."""

    def __init__(
        self,
        endpoint: Sender,
        addresses: Addresses,
        *,
        retry_min: float = 30.0,
        retry_max: float = 1800.0,
        resolve_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        channels: TrunkChannels | None = None,
    ) -> None:
        self.endpoint = endpoint
        #: Live calls per trunk (shared with the outbound dialler and inbound calls).
        self.channels = channels if channels is not None else TrunkChannels()
        self.addresses = addresses
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.resolve_timeout = resolve_timeout
        self._clock = clock
        self._rng = rng or random.Random()
        self._trunks: dict[str, Trunk] = {}
        self._runners: dict[str, _Runner] = {}
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def reload(self, trunks: list[Trunk]) -> None:
        """Take the stored trunks: start registering new ones, re-start changed ones,
        un-register removed ones (and ones whose register is now off)."""
        if self._closed:
            return
        wanted = {t.name: t for t in trunks}
        self._trunks = wanted
        stale = [
            name
            for name, runner in self._runners.items()
            if name not in wanted
            or not wanted[name].register
            or not _same(runner.trunk, wanted[name])
        ]
        await asyncio.gather(*(self._stop_runner(self._runners.pop(name)) for name in stale))
        for name, trunk in wanted.items():
            if trunk.register and name not in self._runners:
                self._start_runner(trunk)

    async def close(self) -> None:
        """Un-register everywhere (each bounded by UNREGISTER_TIMEOUT) and stop."""
        self._closed = True
        runners = list(self._runners.values())
        self._runners.clear()
        await asyncio.gather(*(self._stop_runner(r) for r in runners))

    def _start_runner(self, trunk: Trunk) -> None:
        runner = _Runner(trunk)
        runner.task = asyncio.get_running_loop().create_task(
            self._run(runner), name=f"trunk {trunk.name}"
        )
        self._runners[trunk.name] = runner

    async def _stop_runner(self, runner: _Runner) -> None:
        if runner.task is not None:
            runner.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner.task
        client, peer = runner.client, runner.peer
        if client is None or peer is None:
            return
        loop = asyncio.get_running_loop()
        request = client.stop(loop.time())
        if request is None:
            return
        try:
            async with asyncio.timeout(UNREGISTER_TIMEOUT):
                while request is not None:
                    response = await self.endpoint.request(request, peer)
                    request = client.on_response(response, loop.time())
                    if request is None and client.state is RegistrationState.STOPPED:
                        log.info(
                            "trunk %s: un-registered (%d %s)",
                            runner.trunk.name,
                            response.status,
                            response.reason,
                        )
        except TimeoutError:
            log.info("trunk %s: no answer to the un-REGISTER", runner.trunk.name)

    # -- one trunk ---------------------------------------------------------------------------

    async def _run(self, runner: _Runner) -> None:
        """Keep the trunk registered; a bug met on the way is logged (with the trunk's
        name) and the registration starts over after the back-off, never in a loop."""
        errors = 0
        while True:
            try:
                await self._register(runner)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors += 1
                delay = self._backoff(errors)
                log.exception(
                    "trunk %s: registration failed; again in %.0f s", runner.trunk.name, delay
                )
                runner.resolve_failure = f"internal error: {type(exc).__name__}"
                runner.retry_at = asyncio.get_running_loop().time() + delay
                runner.peer = runner.client = None
                await asyncio.sleep(delay)

    async def _register(self, runner: _Runner) -> None:
        trunk = runner.trunk
        loop = asyncio.get_running_loop()
        while runner.peer is None:
            try:
                runner.peer = await resolve(trunk, self.resolve_timeout)
            except ResolveError as exc:
                runner.resolve_failures += 1
                delay = self._backoff(runner.resolve_failures)
                runner.resolve_failure = str(exc)
                runner.retry_at = loop.time() + delay
                log.warning(
                    "trunk %s: cannot resolve %r: %s; retry in %.0f s",
                    trunk.name,
                    trunk.host,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        runner.resolve_failure = None
        runner.retry_at = None
        peer = runner.peer
        client = runner.client = RegistrationClient(self._config(trunk, peer), rng=self._rng)
        request: Request | None = client.start(loop.time())
        while True:
            while request is not None:
                response = await self.endpoint.request(request, peer)
                request = client.on_response(response, loop.time())
            self._log_outcome(trunk, client, loop.time(), runner)
            deadline = client.next_deadline()
            if deadline is None:
                return
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            request = client.on_timer(loop.time())

    def _log_outcome(
        self, trunk: Trunk, client: RegistrationClient, now: float, runner: _Runner
    ) -> None:
        """A line when the state changes (each refresh only at DEBUG level)."""
        changed = client.state is not runner.logged_state
        runner.logged_state = client.state
        if client.state is RegistrationState.REGISTERED and client.registered_until is not None:
            (log.info if changed else log.debug)(
                "trunk %s: registered at %s for %.0f s",
                trunk.name,
                trunk.hostport,
                client.registered_until - now,
            )
        elif client.state is RegistrationState.FAILED and client.last_failure is not None:
            status, reason = client.last_failure
            retry = (client.next_retry or now) - now
            log.warning(
                "trunk %s: registration at %s failed: %d %s; retry in %.0f s",
                trunk.name,
                trunk.hostport,
                status,
                reason,
                retry,
            )

    def _backoff(self, failures: int) -> float:
        delay = min(self.retry_max, self.retry_min * 2.0 ** (failures - 1))
        return delay + self._rng.uniform(0.0, 0.2 * delay)

    def _config(self, trunk: Trunk, peer: Peer) -> RegistrationConfig:
        local = self.addresses.local_host(peer)
        port = self.addresses.sip_port
        host_l = f"[{local}]" if ":" in local else local
        params = ";transport=tcp" if peer.transport == "TCP" else ""
        trunk_host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
        domain = trunk.from_domain or trunk_host
        return RegistrationConfig(
            registrar=SipUri.parse(f"sip:{trunk_host}:{trunk.port}{params}"),
            aor=SipUri.parse(f"sip:{trunk.username}@{domain}"),
            contact=SipUri.parse(f"sip:{trunk.username}@{host_l}:{port}{params}"),
            via=f"SIP/2.0/{peer.transport} {host_l}:{port}",
            credentials={"": (trunk.login, trunk.password)},
            expires=trunk.expires,
            retry_min=self.retry_min,
            retry_max=self.retry_max,
        )

    def service_route(self, name: str) -> tuple[str, ...]:
        """RFC 3608 §6: the Service-Route trunk `name`'s registrar returned with its last
        2xx, while the registration holds; () otherwise. Requests the switch starts at
        the trunk (INVITEs) carry it as their preloaded Route set."""
        runner = self._runners.get(name)
        client = runner.client if runner is not None else None
        if client is None or client.registered_until is None:
            return ()
        if client.registered_until <= asyncio.get_running_loop().time():
            return ()  # lapsed (a refresh keeps the route while the binding holds)
        return client.service_route

    def registrar_address(self, name: str) -> tuple[str, int] | None:
        """Where trunk `name`'s registrations go (its host resolved), None until known."""
        runner = self._runners.get(name)
        peer = runner.peer if runner is not None else None
        return (peer.host, peer.port) if peer is not None else None

    # -- status ------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One row per trunk for `pbx trunk status` (times in wall-clock seconds)."""
        loop = asyncio.get_running_loop()
        now, wall = loop.time(), self._clock()
        rows = []
        for name, trunk in sorted(self._trunks.items()):
            row: dict[str, Any] = {
                "name": name,
                "host": trunk.hostport,
                "register": trunk.register,
                "state": "off" if not trunk.register else "starting",
                "registered_until": None,
                "failure": None,
                "next_retry": None,
                "channels": self.channels.in_use(name),
                "max_channels": trunk.max_channels,
            }
            runner = self._runners.get(name)
            client = runner.client if runner is not None else None
            if runner is not None and runner.resolve_failure is not None:
                row["state"] = "failed"
                row["failure"] = {"status": None, "reason": runner.resolve_failure}
                if runner.retry_at is not None:
                    row["next_retry"] = wall + runner.retry_at - now
            elif client is not None:
                row["state"] = client.state.value
                if client.registered_until is not None and client.registered_until > now:
                    row["registered_until"] = wall + client.registered_until - now
                if client.last_failure is not None:
                    status, reason = client.last_failure
                    row["failure"] = {"status": status, "reason": reason}
                if client.next_retry is not None:
                    row["next_retry"] = wall + client.next_retry - now
                row["service_route"] = list(client.service_route)
            rows.append(row)
        return rows
