"""The local control API: loopback HTTP/JSON (aiohttp) between `pbx` commands and the server.

The server listens on the control host (127.0.0.1 unless told) and writes
`control.json` (mode 0600) into the data directory with its address, its PID
and a random bearer token made at start; only someone who can read the data
directory can talk to it. Live CLI commands (`pbx status` …) read that file
and make one request each.

Routes are "METHOD /path" with query parameters: `GET /status` (registrations,
uptime), `GET /calls` (live calls), `POST /hangup?id=CALL` (end a call),
`POST /mwi?box=BOX` (a mailbox's counts changed, e.g. `pbx vm delete` in another
process: the server sends the box's phones a message-summary NOTIFY and answers
`{"box": BOX, "notified": N}`, N being how many phones get one),
`GET /bans` (addresses banned and users refused for failed logins, with the
seconds left, and the trusted networks in effect), `POST /bans/lift?address=IP`
(`&user=NAME` to lift one user's refusal only; answers how many were lifted),
`GET /conferences` (rooms with members) and `POST /conferences/kick?room=R&party=P`
(hang up a member, by call id or caller number).
`POST /calls` with a JSON body `{"from": A, "to": B, "caller_id"?: X}` (click-to-call,
pbx.originate: answered 202 `{"id": ...}` at once; 400 for a bad body, 404 for an
unknown A, 503 when too many are in progress).
A route raises `ControlError` for a request it cannot serve (answered 404 with
the message), e.g. an unknown call id. Every answer is a JSON object; errors are
`{"error": "..."}` with 400/401/404/405/500/503.

`GET /events` is a WebSocket (RFC 6455) streaming the event bus (pbx.events) as JSON
lines: each text message holds one or more events, one flat JSON object a line
(`pbx.events.to_json`); events that queued up while the previous message was being
written go out together, and each event is encoded once for every client. The token is
checked before the upgrade (a wrong one gets 401, no WebSocket). Each client is a
bus subscriber with a bounded queue: a client that does not read fast enough is
dropped by the bus (its WebSocket closed with 1013 "try again later"); calls never
wait for it. Messages from the client are read and ignored.

The server is an aiohttp application: the web console will grow on it. It keeps
the old server's guards: a connection that sends no complete request within
`head_timeout` is closed, request heads and bodies are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http.client
import json
import logging
import os
import secrets
import urllib.parse
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbx.config import Settings
from pbx.errors import ControlError
from pbx.events import Event, EventBus, Subscription, to_json
from pbx.instance import pid_alive

if TYPE_CHECKING:  # aiohttp is imported where used: the CLI's one-shot commands never load it
    from aiohttp import web

log = logging.getLogger(__name__)

Route = Callable[[dict[str, str]], Awaitable[dict[str, Any]] | dict[str, Any]]
#: A route that takes a JSON object as its body and answers (HTTP status, JSON object).
BodyRoute = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]

#: A connection that has sent no complete request by then is closed (quietly).
HEAD_TIMEOUT = 10.0
#: Events a WebSocket client may have waiting before it is dropped.
WS_QUEUE = 1000
#: How long closing a dropped client's WebSocket may take before its socket is aborted.
WS_CLOSE_TIMEOUT = 2.0
_MAX_BODY = 65_536
#: Recent events kept encoded (clients a little behind the others reuse the text).
_ENCODED = 4096


class _HttpLog(logging.Logger):
    """aiohttp's own log of a connection: a malformed request from a local client (a port
    scan, a bad script) is answered 400 and logged as one DEBUG line, not as an ERROR with
    a traceback; anything else that reaches aiohttp keeps its traceback."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            log.debug("control: bad request: %s", str(exc).replace("\n", " "))
        else:
            log.error(msg, *args, **{"exc_info": True, **kwargs})


_HTTP_LOG = _HttpLog("pbx.control.http")


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    from aiohttp import web

    return web.json_response(payload, status=status)


class ControlServer:
    """The control API's aiohttp application on the loopback address."""

    def __init__(
        self,
        settings: Settings,
        routes: dict[str, Route],
        head_timeout: float = HEAD_TIMEOUT,
        *,
        events: EventBus | None = None,
        ws_queue: int = WS_QUEUE,
        body_routes: dict[str, BodyRoute] | None = None,
    ) -> None:
        self._settings = settings
        self._head_timeout = head_timeout
        self._routes = routes
        self._body_routes = body_routes or {}
        self._events = events
        #: Events each WebSocket client may have waiting (read as it connects).
        self.ws_queue = ws_queue
        self._token = secrets.token_urlsafe(32)
        self._runner: web.AppRunner | None = None
        self._streams: set[Subscription] = set()
        #: Recent events' JSON lines by id(event); the event is kept beside its line, so
        #: its id cannot be reused while cached (events with a dict, such as a queue
        #: event's data, are not hashable, and hashing every field would cost more).
        self._lines: dict[int, tuple[Event, str]] = {}
        self.port = 0

    def _encoded(self, event: Event) -> str:
        """`event` as a JSON line, encoded once for all the clients that send it."""
        cached = self._lines.get(id(event))
        if cached is not None and cached[0] is event:
            return cached[1]
        text = json.dumps(to_json(event))
        self._lines[id(event)] = (event, text)
        if len(self._lines) > _ENCODED:
            del self._lines[next(iter(self._lines))]  # the oldest
        return text

    def _app(self) -> web.Application:
        from aiohttp import web

        @web.middleware
        async def guard(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            return await self._guard(request, handler)

        app = web.Application(middlewares=[guard], client_max_size=_MAX_BODY)
        for key, route in self._routes.items():
            method, _, path = key.partition(" ")
            app.router.add_route(method, path, self._handler(route))
        for key, body_route in self._body_routes.items():
            method, _, path = key.partition(" ")
            app.router.add_route(method, path, self._body_handler(body_route))
        if self._events is not None:
            app.router.add_get("/events", self._stream)
        return app

    async def start(self) -> None:
        """Listen and publish control.json. Raises: OSError if the port is taken."""
        from aiohttp import web

        runner = web.AppRunner(
            self._app(),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self._head_timeout,
            shutdown_timeout=WS_CLOSE_TIMEOUT,
            logger=_HTTP_LOG,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._settings.control_host, self._settings.control_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        info = {
            "host": self._settings.control_host,
            "port": self.port,
            "token": self._token,
            "pid": os.getpid(),
        }
        path = self._settings.control_file
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, path)

    async def close(self) -> None:
        """Stop listening, end the event streams and remove control.json."""
        with contextlib.suppress(FileNotFoundError):
            self._settings.control_file.unlink()
        for sub in list(self._streams):
            sub.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorised(self, request: web.BaseRequest) -> bool:
        scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        return hmac.compare_digest(token.strip().encode(), self._token.encode())

    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The token first (401 before anything else, before a WebSocket upgrade), then
        every error as a JSON object."""
        from aiohttp import web

        if not self._authorised(request):
            return _json(401, {"error": "missing or wrong control token"})
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _json(404, {"error": f"no route {request.method} {request.path}"})
        except web.HTTPMethodNotAllowed:
            return _json(405, {"error": f"no route {request.method} {request.path}"})
        except web.HTTPException as exc:
            return _json(exc.status, {"error": exc.reason})

    def _handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                result = route(dict(request.query))
                if not isinstance(result, dict):
                    result = await result
            except ControlError as exc:
                return _json(404, {"error": str(exc)})
            except Exception as exc:
                log.exception("control: %s %s failed", request.method, request.path)
                return _json(500, {"error": f"internal error: {type(exc).__name__}"})
            return _json(200, result)

        return handle

    def _body_handler(self, route: BodyRoute) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A JSON-body route: 400 for a body that is not a JSON object, 404 for its
        ControlError, else its own status and object."""

        async def handle(request: web.Request) -> web.Response:
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                return _json(400, {"error": "the body is not JSON"})
            if not isinstance(body, dict):
                return _json(400, {"error": "the body is not a JSON object"})
            try:
                status, result = await route(body)
            except ControlError as exc:
                return _json(404, {"error": str(exc)})
            except Exception as exc:
                log.exception("control: %s %s failed", request.method, request.path)
                return _json(500, {"error": f"internal error: {type(exc).__name__}"})
            return _json(status, result)

        return handle

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """GET /events: the bus as WebSocket text messages until either side ends."""
        from aiohttp import WSCloseCode, WSMsgType, web

        assert self._events is not None
        ws = web.WebSocketResponse(heartbeat=30.0, timeout=WS_CLOSE_TIMEOUT, max_msg_size=4096)
        await ws.prepare(request)
        sub = self._events.subscribe(self.ws_queue, name=f"websocket {request.remote}")
        self._streams.add(sub)
        log.info("control: %s listens to events", sub.name)

        async def send() -> None:
            async for event in sub:
                lines = [self._encoded(event)]
                lines.extend(self._encoded(e) for e in sub.take())
                await ws.send_str("\n".join(lines))

        async def receive() -> None:
            async for msg in ws:  # ends with the client's close (or a broken socket)
                if msg.type is WSMsgType.ERROR:
                    break

        tasks = [
            asyncio.ensure_future(send()),
            asyncio.ensure_future(receive()),
            asyncio.ensure_future(sub.wait_ended()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # The tasks' CancelledErrors come back as results; our own cancellation
            # (the server stopping) still propagates.
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, Exception) and not isinstance(result, ConnectionError):
                    log.error("control: %s failed", sub.name, exc_info=result)
            self._streams.discard(sub)
            dropped = sub.dropped
            sub.close()
        if dropped:
            # Its socket buffer may be full: a close frame may never get out.
            try:
                async with asyncio.timeout(WS_CLOSE_TIMEOUT):
                    await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
            except (TimeoutError, ConnectionError):
                if request.transport is not None:
                    request.transport.abort()
        elif not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.close(code=WSCloseCode.GOING_AWAY)
        log.info("control: %s stopped listening%s", sub.name, " (dropped)" if dropped else "")
        return ws


def _read_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise ControlError(
            f"the server is not running (no {path.name} in {path.parent});"
            " start it with 'pbx serve'"
        ) from None
    except (OSError, ValueError) as exc:
        raise ControlError(f"cannot read {path}: {exc}") from None
    if not isinstance(info, dict) or not {"host", "port", "token"} <= info.keys():
        raise ControlError(f"{path} is not a control file of this server")
    pid = info.get("pid")
    if isinstance(pid, int) and not pid_alive(pid):
        # kill -9 leaves the file behind; the next `pbx serve` replaces it.
        raise ControlError(
            f"the server is not running ({path.name} in {path.parent} is left from"
            f" PID {pid}, which has ended); start it with 'pbx serve'"
        )
    return info


def request(
    settings: Settings,
    target: str,
    timeout: float = 5.0,
    method: str = "GET",
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ask the running server for `target` (blocking; for the CLI), with `body` as JSON.

    Raises: ControlError when the server is not running or answers an error.
    """
    info = _read_info(settings.control_file)
    conn = http.client.HTTPConnection(str(info["host"]), int(info["port"]), timeout=timeout)
    headers = {"Authorization": f"Bearer {info['token']}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(
            method, target, body=None if body is None else json.dumps(body), headers=headers
        )
        response = conn.getresponse()
        data = json.loads(response.read() or b"{}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ControlError(
            f"cannot reach the server at {info['host']}:{info['port']} ({exc});"
            " is 'pbx serve' running?"
        ) from None
    finally:
        conn.close()
    if not 200 <= response.status < 300:
        raise ControlError(f"server refused {target}: {data.get('error', response.status)}")
    if not isinstance(data, dict):
        raise ControlError(f"server answered {target} with something that is not an object")
    return data


def fetch_status(settings: Settings) -> dict[str, Any]:
    """The running server's live registrations and uptime. Raises: ControlError."""
    return request(settings, "/status")


def fetch_calls(settings: Settings) -> dict[str, Any]:
    """The running server's live calls. Raises: ControlError."""
    return request(settings, "/calls")


def hangup(settings: Settings, call_id: str) -> dict[str, Any]:
    """Ask the running server to end a call. Raises: ControlError (e.g. no such call)."""
    return request(settings, "/hangup?" + urllib.parse.urlencode({"id": call_id}), method="POST")


def mailbox_changed(settings: Settings, box: str) -> dict[str, Any]:
    """Tell the running server that `box`'s message counts changed (MWI NOTIFYs follow).

    Raises: ControlError (server not running, or no such mailbox).
    """
    return request(settings, "/mwi?" + urllib.parse.urlencode({"box": box}), method="POST")


def originate(settings: Settings, a: str, b: str, caller_id: str | None = None) -> dict[str, Any]:
    """Ask the running server to connect `a` and `b` (click-to-call: ring `a`, then `b`);
    answers at once with the originate's id. Raises: ControlError (e.g. unknown `a`)."""
    body = {"from": a, "to": b, **({"caller_id": caller_id} if caller_id else {})}
    return request(settings, "/calls", method="POST", body=body)


def fetch_bans(settings: Settings) -> dict[str, Any]:
    """The running server's bans and refusals. Raises: ControlError."""
    return request(settings, "/bans")


def lift_ban(settings: Settings, address: str, user: str | None = None) -> dict[str, Any]:
    """Lift the ban of `address` and its refusals (only `user`'s when given).

    Raises: ControlError (server not running, or nothing to lift).
    """
    query = {"address": address, **({"user": user} if user else {})}
    return request(settings, "/bans/lift?" + urllib.parse.urlencode(query), method="POST")


def fetch_conferences(settings: Settings) -> dict[str, Any]:
    """The running server's conference rooms with members. Raises: ControlError."""
    return request(settings, "/conferences")


def kick(settings: Settings, room: str, party: str) -> dict[str, Any]:
    """Hang up `party` (call id or caller number) in conference `room`.

    Raises: ControlError (server not running, or no such member).
    """
    query = urllib.parse.urlencode({"room": room, "party": party})
    return request(settings, "/conferences/kick?" + query, method="POST")


async def stream_events(settings: Settings) -> AsyncGenerator[dict[str, Any], None]:
    """The running server's events as JSON objects, live, until the server stops.

    Raises: ControlError when the server is not running, refuses the token, or drops
    this listener for not keeping up.
    """
    import aiohttp
    from aiohttp import WSCloseCode

    info = _read_info(settings.control_file)
    host = str(info["host"])
    url = f"http://{f'[{host}]' if ':' in host else host}:{int(info['port'])}/events"
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(
                url, headers={"Authorization": f"Bearer {info['token']}"}, heartbeat=30.0
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise ControlError(f"server refused /events: {exc.status} {exc.message}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ControlError(
                f"cannot reach the server at {host}:{info['port']} ({exc}); is 'pbx serve' running?"
            ) from None
        async with ws:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                for line in str(msg.data).splitlines():
                    try:
                        data = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(data, dict):
                        yield data
        if ws.close_code == WSCloseCode.TRY_AGAIN_LATER:
            raise ControlError("the server dropped this listener: it did not read fast enough")
