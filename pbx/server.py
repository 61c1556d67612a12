"""Server lifecycle: open the store, wire the services, listen, run, stop cleanly.

`run(settings)` is what `pbx serve` calls: it installs uvloop when importable,
runs `PbxServer` until SIGINT/SIGTERM and flushes everything on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import ipaddress
import logging
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from media.moh import MOH_DIR, MohSource
from media.ports import PortAllocator
from pbx.api import Application, Service, Switch, VoicemailService
from pbx.auth import Authenticator, AuthResult, NonceManager
from pbx.b2bua import B2bua
from pbx.bans import BanList
from pbx.calls import CallManager, InboundCall
from pbx.config import Settings
from pbx.control import ControlServer
from pbx.errors import ConfigError, ControlError
from pbx.events import EventBus
from pbx.inbound import InboundTrust, TrunkCaller, caller_number, did_candidates, pick_did
from pbx.instance import DataDirLock
from pbx.mwi import EVENT as MWI_EVENT
from pbx.mwi import MwiPolicy, MwiService
from pbx.originate import new_id, originate
from pbx.registrar import Registrar, RegistrarPolicy
from pbx.store import Store
from pbx.tasks import spawn
from pbx.trace import SipTracer
from pbx.trunks import TrunkService
from sip.endpoint import Endpoint
from sip.message import Request, Response, make_response
from sip.peer import Peer
from sip.transaction import Timers

log = logging.getLogger(__name__)

T = TypeVar("T")

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


#: Click-to-calls (POST /calls) in progress at once; each ends by its ring timeouts.
MAX_ORIGINATIONS = 100

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
        self._started_services: list[Service] = []
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
        self.trunks: TrunkService | None = None
        #: Which INVITEs a trunk vouches for (pbx.inbound), kept up with the trunks.
        self.inbound = InboundTrust(
            lambda name: self.trunks.registrar_address(name) if self.trunks is not None else None
        )
        self.bans = BanList(settings.ban_policy, settings.trusted_networks)
        self._lock = DataDirLock(settings.data_dir)
        self._listening: list[str] = []
        #: Everything that happens to calls and registrations (pbx.events; GET /events).
        self.events = EventBus()
        self._up = False  # start() completed: stop() then says "stopped"
        self.switch: Switch | None = None
        #: Click-to-calls in progress (POST /calls), cancelled by stop(), and how many
        #: may be at once (more are refused 503).
        self._originations: set[asyncio.Task[None]] = set()
        self.max_originations = MAX_ORIGINATIONS

    async def start(self) -> None:
        """Open everything and start listening.

        Raises: AlreadyRunningError (another server has the data directory), StoreError
        (database), ConfigError (an address cannot be listened on: in use, not local).
        """
        s = self.settings
        # -- admin: one server per data directory, held until stop() ----------------
        self._lock.acquire()
        store = self._store = await Store.open(s.db_path)
        self.realm = await store.settings.set_default("realm", s.realm)
        secret = await store.settings.set_default("nonce_secret", secrets.token_hex(32))
        await self._reload_users()
        await self._reload_trust()
        auth = Authenticator(
            self.realm,
            self._users.get,
            NonceManager(bytes.fromhex(secret), s.nonce_lifetime),
            self.bans,
            algorithms=s.digest_algorithms,
        )
        self.registrar = Registrar(
            auth, store, RegistrarPolicy.from_settings(s), clock=self._clock, events=self.events
        )
        loaded = await self.registrar.load()
        endpoint = self._endpoint = Endpoint(
            timers=Timers(t1=s.t1, t2=s.t2, t4=s.t4), server_header=SERVER_NAME
        )
        endpoint.route("REGISTER", self.registrar.handle)
        if s.sip_trace:  # admin: --sip-trace
            endpoint.on_trace = SipTracer()
        last_alive = await self._last_alive()
        interrupted = await store.cdrs.close_interrupted(last_alive)
        if interrupted:
            log.warning("closed %d CDRs of calls that were up when the server stopped", interrupted)
        queued = await store.queue_events.close_interrupted(last_alive)
        if queued.callers or queued.agents:
            log.warning(
                "closed %d queue callers and freed %d agents left when the server stopped",
                len(queued.callers),
                len(queued.agents),
            )
        self.sip_port = await _listening(
            endpoint.listen(s.sip_host, s.sip_port, udp=s.udp, tcp=s.tcp),
            f"SIP on {_hostport(s.sip_host, s.sip_port)}",
        )
        self._listening = [
            f"{t} {_hostport(s.sip_host, self.sip_port)}"
            for t, on in (("udp", s.udp), ("tcp", s.tcp))
            if on
        ]
        self.calls = CallManager(
            endpoint,
            authenticate=self._authenticate_invite,
            sip_host=s.sip_host,
            sip_port=self.sip_port,
            clock=self._clock,
            events=self.events,
        )
        self.calls.media_timeout = s.media_timeout or None
        self.calls.hold_timeout = s.hold_timeout or None
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
        self.b2bua.applications[:] = self._applications
        self.b2bua.voicemail = self._voicemail
        # The API the applications see: the router runs them through it.
        self.switch = switch = Switch(self.b2bua)
        self.calls.on_incoming = self._incoming
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
        self.trunks = TrunkService(
            endpoint,
            self.calls,
            retry_min=s.trunk_retry_min,
            retry_max=s.trunk_retry_max,
            clock=self._clock,
            channels=self.b2bua.trunk_channels,
        )
        self.b2bua.outbound.service_route = self.trunks.service_route
        switch.trunk_status = self.trunks.status
        await self._reload_trunks()
        # Services (the ACD) start once the switch is up, before the control API
        # listens, so the routes they add are served with the server's own.
        for service in self._services():
            await service.start(switch)
            self._started_services.append(service)
        self._control = ControlServer(
            s,
            {
                **switch.routes,
                "GET /status": lambda _: self.status(),
                "GET /calls": lambda _: self.live_calls(),
                "POST /hangup": self._hangup,
                "POST /mwi": self._mwi,
                "GET /bans": lambda _: self.ban_list(),
                "POST /bans/lift": self._lift_ban,
                "GET /trunks": lambda _: self.trunk_status(),
                "GET /conferences": lambda _: switch.live_conferences(),
                "POST /conferences/kick": switch.kick,
            },
            events=self.events,
            body_routes={**switch.body_routes, "POST /calls": self._originate},
        )
        await _listening(
            self._control.start(),
            f"the control API on {_hostport(s.control_host, s.control_port)}",
        )
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
        self._up = True

    def _services(self) -> list[Service]:
        """The applications that are services too (they have `start` and `close`)."""
        return [
            cast(Service, app)
            for app in self._applications
            if callable(getattr(app, "start", None)) and callable(getattr(app, "close", None))
        ]

    async def stop(self) -> None:
        """Stop listening, flush the registrar, close the store."""
        if self._control is not None:
            await self._control.close()
        for service in reversed(self._started_services):
            try:
                await service.close()
            except Exception:
                log.exception("a service did not close cleanly")
        self._started_services.clear()
        for task in list(self._originations):  # each hangs up what it placed
            task.cancel()
        if self._originations:
            await asyncio.gather(*self._originations, return_exceptions=True)
        if self.trunks is not None:
            await self.trunks.close()  # un-REGISTER while the endpoint still runs
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
        if self._up:
            log.info("aiopbx stopped")
        self._up = False
        self._lock.release()

    def status(self) -> dict[str, Any]:
        """The control API's /status."""
        regs = self.registrar.snapshot() if self.registrar is not None else []
        return {
            "registrations": regs,
            "uptime": round(time.monotonic() - self._started, 3),
            "sip_port": self.sip_port,
            "realm": self.realm,
            "listening": list(self._listening),
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

    # -- click-to-call: POST /calls ---------------------------------------------------

    async def _originate(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The control API's POST /calls {"from": A, "to": B, "caller_id"?: X}: ring A
        (an extension), then B, and bridge them (pbx.originate), in a task this server
        owns; answers 202 with the originate's id at once."""
        fields = {k: body.get(k) for k in ("from", "to", "caller_id")}
        a, b, caller_id = fields["from"], fields["to"], fields["caller_id"]
        if not isinstance(a, str) or not a or not isinstance(b, str) or not b:
            return 400, {"error": '"from" and "to" must be non-empty strings'}
        if caller_id is not None and (not isinstance(caller_id, str) or not caller_id):
            return 400, {"error": '"caller_id" must be a non-empty string'}
        if any(c in v for v in (a, b, caller_id or "") for c in '\r\n\0<>" '):
            return 400, {"error": "a number may not hold spaces, quotes or angle brackets"}
        if a not in self._users:
            raise ControlError(f"no extension {a!r}")
        if self.switch is None:
            return 503, {"error": "the server is not running"}
        if len(self._originations) >= self.max_originations:
            return 503, {"error": f"{len(self._originations)} click-to-calls in progress already"}
        oid = new_id()

        async def run(switch: Switch) -> None:
            await originate(switch, a, b, caller_id=caller_id, id=oid)

        spawn(self._originations, run(self.switch), f"originate {oid}")
        log.info("control: originate %s: %s -> %s", oid, a, b)
        return 202, {"id": oid, "from": a, "to": b}

    def ban_list(self) -> dict[str, Any]:
        """The control API's /bans: addresses banned and users refused, with time left."""
        now = self._clock()
        return {
            "bans": [
                {
                    "address": e.address,
                    "user": e.user,
                    "seconds_left": round(e.seconds_left, 1),
                    "reason": e.reason,
                }
                for e in self.bans.entries(now)
            ],
            "trusted": [str(n) for n in self.bans.trusted],
        }

    def trunk_status(self) -> dict[str, Any]:
        """The control API's /trunks: each trunk's registration state (`pbx trunk status`)."""
        return {"trunks": self.trunks.status() if self.trunks is not None else []}

    def _lift_ban(self, params: dict[str, str]) -> dict[str, Any]:
        """The control API's POST /bans/lift?address=…[&user=…]: lift a ban or refusals."""
        address = params.get("address", "").strip()
        with contextlib.suppress(ValueError):  # the form peers are keyed by (IPv6 compressed)
            address = str(ipaddress.ip_address(address.strip("[]")))
        user = params.get("user") or None
        lifted = self.bans.lift(address, user)
        if not lifted:
            who = f"user {user!r} from {address}" if user else address
            raise ControlError(f"nothing is banned or refused for {who}")
        log.info("auth: admin lifted %d bans/refusals of %s (user %r)", lifted, address, user)
        return {"address": address, "user": user, "lifted": lifted}

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

    def _authenticate_invite(self, request: Request, peer: Peer) -> str | Response | None:
        """A new INVITE: a trunk's (by its source address: no digest, no ban counting;
        the caller is the number its From names, never a local user), else digest-checked
        as `_authenticate_call`."""
        trunk = self.inbound.trunk_for(peer.host, peer.port)
        if trunk is not None:
            return TrunkCaller(caller_number(request), trunk)
        return self._authenticate_call(request, peer)

    async def _incoming(self, inbound: InboundCall) -> None:
        """The CallManager's on_incoming hook: a trunk's call is marked with the trunk
        and addressed to its DID (the CDR's callee) before the B2BUA routes it."""
        assert self.b2bua is not None and self._store is not None
        if isinstance(inbound.caller, TrunkCaller):
            inbound.trunk = inbound.caller.trunk
            inbound.caller = str(inbound.caller)
            try:
                inbound.callee = await pick_did(self._store.dids, did_candidates(inbound.request))
            except Exception:
                log.exception("call %s from trunk %s: DID lookup failed", inbound.id, inbound.trunk)
                await inbound.reject(500, "Server Error")
                return
            log.info(
                "call %s: from trunk %s, caller %s, DID %r",
                inbound.id,
                inbound.trunk,
                inbound.caller,
                inbound.callee,
            )
        await self.b2bua.route(inbound)

    async def _reload_trunks(self) -> None:
        """Trunks changed (or the server starts): registrations and inbound trust."""
        assert self._store is not None
        trunks = await self._store.trunks.all()
        self.inbound.update(trunks)
        if self.trunks is not None:
            await self.trunks.reload(trunks)

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

    async def _reload_trust(self) -> None:
        """Trusted networks: the ones given to `pbx serve --trust` and the stored ones."""
        assert self._store is not None
        stored = await self._store.trusted.all()
        try:
            self.bans.set_trusted([*self.settings.trusted_networks, *stored])
        except ConfigError as exc:  # only a hand-edited database has a bad row
            log.warning("trusted networks not reloaded: %s", exc)

    async def _watch_users(self) -> None:
        """Notice user (and trusted network) changes made by `pbx …` in another process
        (once a second)."""
        assert self._store is not None
        version = await self._store.data_version()
        while True:
            await asyncio.sleep(1.0)
            now = await self._store.data_version()
            if now != version:
                version = now
                self._store.forget_cached()
                await self._reload_users()
                await self._reload_trust()
                log.debug("users reloaded: %d", len(self._users))
                await self._reload_trunks()
                if self.switch is not None:
                    await self.switch.config_changed()


# -- admin: start-up errors as one line -------------------------------------------
_BIND_REASONS = {
    errno.EADDRINUSE: "the address is already in use (another server?)",
    errno.EADDRNOTAVAIL: "that address is not one of this machine's",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _listening(start: Awaitable[T], what: str) -> T:
    """Await a listen call; turn its OSError into one ConfigError line.

    Raises: ConfigError naming what could not be listened on and why.
    """
    try:
        return await start
    except OSError as exc:
        # uvloop wraps the bind error: the errno is on its __cause__.
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        code = exc.errno or cause.errno or 0
        reason = _BIND_REASONS.get(code) or cause.strerror or exc.strerror or str(exc)
        raise ConfigError(f"cannot listen for {what}: {reason}") from None


async def serve(
    settings: Settings,
    stop: asyncio.Event | None = None,
    applications: Sequence[Application] = (),
    voicemail: VoicemailService | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Run a server until `stop` is set (or SIGINT/SIGTERM arrives).

    `on_started` runs once the server listens (not when the start fails): the CLI
    starts slow preparations there (default prompts), so a failed start prints nothing
    but its one error line.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    server = PbxServer(settings, applications=applications, voicemail=voicemail)
    try:
        await server.start()
        if on_started is not None:
            on_started()
        tune_gc()
        await stop.wait()
    finally:
        await server.stop()


def run(
    settings: Settings,
    applications: Sequence[Application] = (),
    voicemail: VoicemailService | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Blocking entry point of `pbx serve` (uvloop when importable)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    main = serve(settings, applications=applications, voicemail=voicemail, on_started=on_started)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
