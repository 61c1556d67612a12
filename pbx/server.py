"""Server lifecycle: open the store, wire the services, listen, run, stop cleanly.

`run(settings)` is what `pbx serve` calls: it installs uvloop when importable,
runs `PbxServer` until SIGINT/SIGTERM and flushes everything on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from media.moh import MOH_DIR, MohSource
from media.ports import PortAllocator
from pbx.auth import Authenticator, AuthResult, BanList, NonceManager
from pbx.b2bua import Application, B2bua, VoicemailService
from pbx.calls import CallManager
from pbx.config import Settings
from pbx.control import ControlServer
from pbx.errors import ControlError
from pbx.mwi import EVENT as MWI_EVENT
from pbx.mwi import MwiPolicy, MwiService
from pbx.registrar import Registrar, RegistrarPolicy
from pbx.store import Store
from sip.endpoint import Endpoint
from sip.message import Request, Response, make_response
from sip.peer import Peer
from sip.transaction import Timers

log = logging.getLogger(__name__)

SERVER_NAME = "aiopbx/0.1"

#: Cyclic-GC thresholds while serving; CPython's default is (700, 10, 10). See `tune_gc`.
GC_THRESHOLDS = (10_000, 10, 100)


def tune_gc() -> None:
    """Keep the cyclic garbage collector from stalling a loaded server.

    Every live transaction holds its request and response (a dozen GC-tracked objects)
    for Timer J, 32 s: ~200,000 transactions, millions of objects at 3,000
    registrations/s. With the default thresholds a full collection runs each time that
    heap grows by a quarter, and one over it stops the loop for a second. Nothing on the
    SIP path makes reference cycles (messages and transactions are freed by reference
    counting), so collections can be rare: young ones every 10,000 net allocations, full
    ones after 100 middle ones (10 million net allocations). Start-up objects (modules,
    classes, the users table) never become garbage: `gc.freeze()` takes them out of
    every later collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


HEARTBEAT_KEY = "heartbeat"
HEARTBEAT_SECONDS = 5.0


class PbxServer:
    """One running switch: store, SIP endpoint, registrar, control API."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        applications: Sequence[Application] = (),
        voicemail: VoicemailService | None = None,
    ) -> None:
        """`clock` is wall time (bindings expire by it, nonces age by it); tests pass a fake.

        `applications` answer some numbers themselves (IVR menus ...) and `voicemail`
        takes the calls forwarded to a mailbox: the layer above (the CLI) passes them
        in, since pbx/ may not import them.
        """
        self._applications = list(applications)
        self._voicemail = voicemail
        settings.validate()
        self.settings = settings
        self._clock = clock
        self.sip_port = 0
        self.control_port = 0
        self.realm = settings.realm
        self._users: dict[str, tuple[str, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()
        self._store: Store | None = None
        self._endpoint: Endpoint | None = None
        self._control: ControlServer | None = None
        self.registrar: Registrar | None = None
        self.calls: CallManager | None = None
        self.b2bua: B2bua | None = None
        self.mwi: MwiService | None = None

    async def start(self) -> None:
        """Open everything and start listening.

        Raises: StoreError (database), OSError (a port is taken).
        """
        s = self.settings
        store = self._store = await Store.open(s.db_path)
        self.realm = await store.settings.set_default("realm", s.realm)
        secret = await store.settings.set_default("nonce_secret", secrets.token_hex(32))
        await self._reload_users()
        auth = Authenticator(
            self.realm,
            self._users.get,
            NonceManager(bytes.fromhex(secret), s.nonce_lifetime),
            BanList(s.max_auth_failures, s.auth_failure_window, s.ban_seconds),
            algorithms=s.digest_algorithms,
        )
        self.registrar = Registrar(auth, store, RegistrarPolicy.from_settings(s), clock=self._clock)
        loaded = await self.registrar.load()
        endpoint = self._endpoint = Endpoint(
            timers=Timers(t1=s.t1, t2=s.t2, t4=s.t4), server_header=SERVER_NAME
        )
        endpoint.route("REGISTER", self.registrar.handle)
        interrupted = await store.cdrs.close_interrupted(await self._last_alive())
        if interrupted:
            log.warning("closed %d CDRs of calls that were up when the server stopped", interrupted)
        self.sip_port = await endpoint.listen(s.sip_host, s.sip_port, udp=s.udp, tcp=s.tcp)
        self.calls = CallManager(
            endpoint,
            authenticate=self._authenticate_call,
            sip_host=s.sip_host,
            sip_port=self.sip_port,
            clock=self._clock,
        )
        self.b2bua = B2bua(
            self.calls,
            store,
            self.registrar.location,
            lambda: set(self._users),
            ports=PortAllocator(s.sip_host, s.rtp_port_min, s.rtp_port_max),
            recordings=s.data_dir / "recordings",
            moh=MohSource(s.data_dir / MOH_DIR),
            ring_timeout=s.ring_timeout,
            media_timeout=s.media_timeout or None,
            hold_timeout=s.hold_timeout or None,
            max_calls_per_user=s.max_calls_per_user or None,
            clock=self._clock,
        )
        self.b2bua.applications = self._applications
        self.b2bua.voicemail = self._voicemail
        self.calls.on_incoming = self.b2bua.route
        self.mwi = MwiService(
            endpoint,
            authenticate=self._authenticate_call,
            counts=store.voicemail.counts,
            known=self._users.__contains__,
            location=self.registrar.location,
            addresses=self.calls,
            policy=MwiPolicy.from_settings(s),
            clock=self._clock,
        )
        endpoint.route("SUBSCRIBE", self.mwi.handle)
        endpoint.allow_events = frozenset({MWI_EVENT})
        self.b2bua.on_mailbox_change = self.mwi.changed
        self._control = ControlServer(
            s,
            {
                "GET /status": lambda _: self.status(),
                "GET /calls": lambda _: self.live_calls(),
                "POST /hangup": self._hangup,
                "POST /mwi": self._mwi,
            },
        )
        await self._control.start()
        self.control_port = self._control.port
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.registrar.run(), name="registrar"),
            loop.create_task(self._watch_users(), name="users"),
            loop.create_task(self._heartbeat(), name="heartbeat"),
        ]
        transports = "/".join(t for t, on in (("UDP", s.udp), ("TCP", s.tcp)) if on)
        log.info(
            "aiopbx listening on %s:%d (%s), realm %r, %d users, %d bindings restored",
            s.sip_host,
            self.sip_port,
            transports,
            self.realm,
            len(self._users),
            loaded,
        )

    async def stop(self) -> None:
        """Stop listening, flush the registrar, close the store."""
        if self._control is not None:
            await self._control.close()
        if self.calls is not None:
            await self.calls.close()
        if self.mwi is not None:
            await self.mwi.close()
        if self._endpoint is not None:
            await self._endpoint.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._store is not None:
            await self._store.close()
        log.info("aiopbx stopped")

    def status(self) -> dict[str, Any]:
        """The control API's /status."""
        regs = self.registrar.snapshot() if self.registrar is not None else []
        return {
            "registrations": regs,
            "uptime": round(time.monotonic() - self._started, 3),
            "sip_port": self.sip_port,
            "realm": self.realm,
        }

    def live_calls(self) -> dict[str, Any]:
        """The control API's /calls: every leg, as `pbx calls` shows it."""
        now = self._clock()
        rows = []
        for call in self.calls.calls.values() if self.calls is not None else ():
            rows.append(
                {
                    "id": call.id,
                    "direction": "out" if call.outbound else "in",
                    "caller": call.caller,
                    "callee": call.callee,
                    "state": call.state.value,
                    "seconds": round(now - call.started, 1),
                    "peer": str(call.peer),
                }
            )
        return {"calls": sorted(rows, key=lambda r: str(r["id"]))}

    def _hangup(self, params: dict[str, str]) -> dict[str, Any]:
        """The control API's POST /hangup?id=…: end that call (and its bridged partner)."""
        manager = self.calls
        call = manager.calls.get(params.get("id", "")) if manager is not None else None
        if manager is None or call is None:
            raise ControlError(f"no live call {params.get('id', '')!r}")
        # Answer at once; the BYE (or CANCEL) and its response run in the background.
        manager.spawn(call.hangup(0, "hung up by admin"), f"admin hangup {call.id}")
        return {"hung_up": call.id}

    def _mwi(self, params: dict[str, str]) -> dict[str, Any]:
        """The control API's POST /mwi?box=…: a box's counts changed in another process
        (`pbx vm …`); NOTIFY its phones. Answers how many phones get a NOTIFY."""
        box = params.get("box", "")
        if self.mwi is None or box not in self._users:
            raise ControlError(f"no mailbox {box!r}")
        return {"box": box, "notified": self.mwi.announce(box)}

    def _authenticate_call(self, request: Request, peer: Peer) -> str | Response | None:
        """Digest-check an INVITE (RFC 3261 §22: 401 as for REGISTER, From must be the user).

        Returns the caller's user name, a response to send, or None to drop it (banned).
        """
        assert self.registrar is not None
        outcome = self.registrar.auth.authenticate(request, peer.host, self._clock())
        if outcome.result is AuthResult.OK:
            return outcome.username
        if outcome.result is AuthResult.BANNED:
            return None
        return make_response(
            request, outcome.status or 403, outcome.reason, headers=outcome.headers
        )

    async def _last_alive(self) -> float:
        """When the previous process was last known alive (its heartbeat), else now."""
        assert self._store is not None
        value = await self._store.settings.get(HEARTBEAT_KEY)
        try:
            return float(value) if value is not None else self._clock()
        except ValueError:
            return self._clock()

    async def _heartbeat(self) -> None:
        """Record every few seconds that we are alive: a crash closes CDRs at that time."""
        assert self._store is not None
        try:
            while True:
                await self._store.settings.set(HEARTBEAT_KEY, repr(self._clock()))
                await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await self._store.settings.set(HEARTBEAT_KEY, repr(self._clock()))

    async def _reload_users(self) -> None:
        assert self._store is not None
        table = await self._store.users.ha1_table()
        # Replace in place: the authenticator holds this dict's bound `get`.
        self._users.clear()
        self._users.update(table)
        if self.registrar is not None:
            self.registrar.forget(set(table))

    async def _watch_users(self) -> None:
        """Notice user changes made by `pbx user …` in another process (once a second)."""
        assert self._store is not None
        version = await self._store.data_version()
        while True:
            await asyncio.sleep(1.0)
            now = await self._store.data_version()
            if now != version:
                version = now
                await self._reload_users()
                log.debug("users reloaded: %d", len(self._users))


async def serve(
    settings: Settings,
    stop: asyncio.Event | None = None,
    applications: Sequence[Application] = (),
    voicemail: VoicemailService | None = None,
) -> None:
    """Run a server until `stop` is set (or SIGINT/SIGTERM arrives)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    server = PbxServer(settings, applications=applications, voicemail=voicemail)
    try:
        await server.start()
        tune_gc()
        await stop.wait()
    finally:
        await server.stop()


def run(
    settings: Settings,
    applications: Sequence[Application] = (),
    voicemail: VoicemailService | None = None,
) -> None:
    """Blocking entry point of `pbx serve` (uvloop when importable)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings, applications=applications, voicemail=voicemail))
    else:
        uvloop.run(serve(settings, applications=applications, voicemail=voicemail))
