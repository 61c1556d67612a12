"""The local control API: loopback HTTP/JSON between `pbx` commands and the running server.

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
(`&user=NAME` to lift one user's refusal only; answers how many were lifted).
A route raises `ControlError` for a request it cannot serve (answered 404 with
the message), e.g. an unknown call id.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pbx.config import Settings
from pbx.errors import ControlError
from pbx.instance import pid_alive

log = logging.getLogger(__name__)

Route = Callable[[dict[str, str]], Awaitable[dict[str, Any]] | dict[str, Any]]

_MAX_HEAD = 16_384
#: A connection that has not sent its request head by then is closed (quietly).
HEAD_TIMEOUT = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


class ControlServer:
    """A tiny HTTP/1.1 server for JSON GET routes, one request per connection."""

    def __init__(
        self, settings: Settings, routes: dict[str, Route], head_timeout: float = HEAD_TIMEOUT
    ) -> None:
        self._settings = settings
        self._head_timeout = head_timeout
        self._routes = routes
        self._token = secrets.token_urlsafe(32)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen and publish control.json. Raises: OSError if the port is taken."""
        self._server = await asyncio.start_server(
            self._serve, self._settings.control_host, self._settings.control_port
        )
        self.port = self._server.sockets[0].getsockname()[1]
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
        """Stop listening and remove control.json."""
        with contextlib.suppress(FileNotFoundError):
            self._settings.control_file.unlink()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, payload = await self._answer(reader)
            body = json.dumps(payload).encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            log.debug("control: connection dropped: %s", exc)
        except TimeoutError:
            # An idle client (a port scan, a stuck script) is not an error of the server.
            log.debug("control: no request within %g s; connection closed", self._head_timeout)
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._head_timeout)
        if len(head) > _MAX_HEAD:
            return 400, {"error": "request head too large"}
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return 400, {"error": "bad request line"}
        method, target, _ = parts
        path, _, query = target.partition("?")
        params = dict(urllib.parse.parse_qsl(query))
        token = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "authorization":
                scheme, _, token = value.strip().partition(" ")
                if scheme.lower() != "bearer":
                    token = ""
        if not hmac.compare_digest(token.strip().encode(), self._token.encode()):
            return 401, {"error": "missing or wrong control token"}
        route = self._routes.get(f"{method} {path}")
        if route is None:
            return 404, {"error": f"no route {method} {path}"}
        try:
            result = route(params)
            if not isinstance(result, dict):
                result = await result
        except ControlError as exc:
            return 404, {"error": str(exc)}
        return 200, result


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
    settings: Settings, target: str, timeout: float = 5.0, method: str = "GET"
) -> dict[str, Any]:
    """Ask the running server for `target` (blocking; for the CLI).

    Raises: ControlError when the server is not running or answers an error.
    """
    info = _read_info(settings.control_file)
    conn = http.client.HTTPConnection(str(info["host"]), int(info["port"]), timeout=timeout)
    try:
        conn.request(method, target, headers={"Authorization": f"Bearer {info['token']}"})
        response = conn.getresponse()
        data = json.loads(response.read() or b"{}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ControlError(
            f"cannot reach the server at {info['host']}:{info['port']} ({exc});"
            " is 'pbx serve' running?"
        ) from None
    finally:
        conn.close()
    if response.status != 200:
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


def fetch_bans(settings: Settings) -> dict[str, Any]:
    """The running server's bans and refusals. Raises: ControlError."""
    return request(settings, "/bans")


def lift_ban(settings: Settings, address: str, user: str | None = None) -> dict[str, Any]:
    """Lift the ban of `address` and its refusals (only `user`'s when given).

    Raises: ControlError (server not running, or nothing to lift).
    """
    query = {"address": address, **({"user": user} if user else {})}
    return request(settings, "/bans/lift?" + urllib.parse.urlencode(query), method="POST")
