"""The web console service: an aiohttp site of its own inside `pbx serve` (same loop).

`WebConsole(acd, host, port)` is a Service (and an Application that answers no number):
started after the ACD, it listens on the web address (default 127.0.0.1:8080) and
serves the login page, the agent desktop and the wallboard (static/), the JSON API
(acd.web.api) and one WebSocket per open page (acd.web.live).

Rules of every request (the `_guard` middleware):
- no session: a page redirects to /login, anything else gets 401 (JSON);
- a state-changing method (POST, PUT, DELETE) needs the session's CSRF token;
- answers carry a strict Content-Security-Policy (scripts and styles from this origin
  only, no inline script), nosniff, no referrer, no framing; API answers are not cached.
"""

from __future__ import annotations

import asyncio
import html
import importlib.resources
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from acd.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    MAX_FIELD,
    SESSION_SECONDS,
    LoginThrottle,
    cookie_attributes,
    new_token,
    same_token,
)
from acd.web.webhook import SECRET_KEY, URL_KEY, Webhook
from pbx.api import (
    SESSION_ID_CHARS,
    BanPolicy,
    Call,
    Customer,
    PbxError,
    Switch,
    WebSession,
    token_hash,
)

if TYPE_CHECKING:
    from acd.app import AcdApplication
    from acd.dialer import Dialer
    from acd.web.live import LiveHub
    from acd.web.phone import PhoneService

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Principal", "WebConsole"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_MAX_BODY = 256 * 1024
_STATIC = ("desktop.js", "wallboard.js", "admin.js", "common.js", "console.css", "phone.js")
_PAGES = {"/desktop": "desktop.html", "/wallboard": "wallboard.html", "/admin": "admin.html"}
_SUPERVISORS = ("supervisor", "admin")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
    " form-action 'self'"
)
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from: the user (an extension) and its role."""

    user: str
    role: str
    csrf: str
    token: str

    @property
    def supervisor(self) -> bool:
        return self.role in _SUPERVISORS


#: Where the guard leaves the request's Principal (aiohttp >= 3.14 wants a typed key).
_PRINCIPAL: Any = (
    web.RequestKey("principal", Principal) if hasattr(web, "RequestKey") else "principal"
)


def principal(request: web.Request) -> Principal:
    """The request's logged-in user (the guard let it through)."""
    found = request.get(_PRINCIPAL)
    assert isinstance(found, Principal)
    return found


def static_text(name: str) -> str:
    return (importlib.resources.files("acd.web") / "static" / name).read_text("utf-8")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=stylesheet href="/static/console.css"></head>'
        f"<body>{body}</body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html")


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


class WebConsole:
    """The web console (see the module doc)."""

    def __init__(
        self,
        acd: AcdApplication,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        clock: Callable[[], float] = time.time,
        policy: BanPolicy | None = None,
        webhook_retry: float = 1.0,
        ssl_context: ssl.SSLContext | None = None,
        phone_codec: str = "opus",
        dialer: Dialer | None = None,
    ) -> None:
        self.acd = acd
        #: The outbound dialer, whose campaigns the wallboard shows (None: no campaigns).
        self.dialer = dialer
        self.host = host
        self.port = port
        self.clock = clock
        #: HTTPS when set (`pbx serve --web-tls`, acd.web.tls).
        self.ssl_context = ssl_context
        #: What the browser phones prefer: "opus" or "g711" (`--web-phone-codec`).
        self.phone_codec = phone_codec
        self.throttle = LoginThrottle(policy)
        self._runner: web.AppRunner | None = None
        self._switch: Switch | None = None
        self._live: LiveHub | None = None
        self.webhook = Webhook(self._webhook_settings, first_retry=webhook_retry, clock=clock)
        #: Click-to-calls in progress, by agent (one each; the console owns the tasks).
        self.dialling: dict[str, asyncio.Task[None]] = {}
        self.phones: PhoneService | None = None

    @property
    def switch(self) -> Switch:
        assert self._switch is not None, "the web console has not started"
        return self._switch

    @property
    def live(self) -> LiveHub:
        assert self._live is not None, "the web console has not started"
        return self._live

    # -- Application: the console answers no number --------------------------------

    async def handles(self, number: str, switch: Switch) -> bool:
        return False

    async def run(self, call: Call, switch: Switch) -> str:
        raise PbxError("the web console answers no calls")

    # -- Service -------------------------------------------------------------------

    async def start(self, switch: Switch) -> None:
        """Listen on the web address; when it is taken, log it and run without."""
        from acd.web.admin import add_admin_routes
        from acd.web.api import add_routes
        from acd.web.figures import Figures
        from acd.web.live import LiveHub

        self._switch = switch
        self._live = LiveHub(self)
        self.figures = Figures(
            switch, self.clock, campaigns=self.dialer.all_figures if self.dialer else None
        )
        app = web.Application(middlewares=[self._guard], client_max_size=_MAX_BODY)
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.router.add_get("/", self._home)
        for path in _PAGES:
            app.router.add_get(path, self._static_page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self.live.websocket)
        app.router.add_get("/api/sessions", self._sessions)
        app.router.add_delete("/api/sessions/{id}", self._revoke)
        from acd.web.phone import PhoneService  # the browser phone (acd.web.phone)

        self.phones = PhoneService(self, self.phone_codec)
        app.router.add_get("/ws/phone", self.phones.websocket)
        add_routes(app, self)
        add_admin_routes(app, self)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            # The phones matter more than the console: the switch runs on without it.
            await runner.cleanup()
            log.error(
                "the web console cannot listen on %s:%d (%s); running without it",
                self.host,
                self.port,
                exc.strerror or exc,
            )
            return
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        await self.live.start()
        self.webhook.start()
        scheme = "https" if self.ssl_context is not None else "http"
        log.info("web console on %s://%s:%d/", scheme, self.host, self.port)

    async def close(self) -> None:
        await self.webhook.close()
        for task in list(self.dialling.values()):
            task.cancel()
        await asyncio.gather(*self.dialling.values(), return_exceptions=True)
        if self._live is not None:
            await self._live.close()
        if self.phones is not None:
            await self.phones.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- click-to-call ---------------------------------------------------------------

    def click_to_call(self, agent: str, number: str) -> bool:
        """Ring `agent`'s phone, then `number`, and connect them, in a task the console
        owns; False when the agent has one in progress already."""
        running = self.dialling.get(agent)
        if running is not None and not running.done():
            return False

        async def run() -> None:
            try:
                result = await self.switch.originate(agent, number)
                log.info("web: click-to-call %s -> %s: %s", agent, number, result["stage"])
            finally:
                if self.dialling.get(agent) is task:
                    del self.dialling[agent]

        task = asyncio.create_task(run(), name=f"web click-to-call {agent}")
        self.dialling[agent] = task
        return True

    # -- the CRM webhook ---------------------------------------------------------------

    async def _webhook_settings(self) -> tuple[str, str] | None:
        url = await self.switch.setting(URL_KEY)
        secret = await self.switch.setting(SECRET_KEY)
        return (url, secret) if url and secret else None

    def notify(
        self, event: str, agent: str, call: dict[str, Any], customer: Customer | None
    ) -> None:
        """Queue the webhook's message for an offer, answer or end (never waits)."""
        payload = {
            "agent": agent,
            "call": call,
            "customer": customer.to_json() if customer is not None else None,
        }
        self.webhook.submit(event, payload)

    # -- the guard -----------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await self._checked(request, handler)
        except web.HTTPException as exc:
            if request.path.startswith("/api/"):
                response = web.json_response({"error": exc.reason}, status=exc.status)
            else:
                raise
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.path.startswith("/api/") or request.path in ("/login", *_PAGES):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == "/login" or path == "/static/console.css":
            return await handler(request)
        session = await self._session(request)
        if session is None:
            if request.method == "GET" and (path in _PAGES or path == "/"):
                return _redirect("/login")
            return web.json_response({"error": "log in first"}, status=401)
        role = await self.switch.user_role(session.username)
        if role is None:  # the user was deleted
            return web.json_response({"error": "log in first"}, status=401)
        token = request.cookies.get(COOKIE, "")
        request[_PRINCIPAL] = Principal(session.username, role, session.csrf, token)
        if request.method in _UNSAFE:
            given = request.headers.get("X-CSRF-Token")
            if given is None and request.content_type == "application/x-www-form-urlencoded":
                given = str((await request.post()).get("csrf", ""))
            if not same_token(given, session.csrf):
                return web.json_response({"error": "missing or wrong CSRF token"}, status=403)
        return await handler(request)

    async def _session(self, request: web.Request) -> WebSession | None:
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 128:
            return None
        return await self.switch.web_session_store.get(token)

    # -- pages ---------------------------------------------------------------------

    async def _home(self, request: web.Request) -> web.StreamResponse:
        return _redirect("/wallboard" if principal(request).supervisor else "/desktop")

    async def _static_page(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/wallboard" and not principal(request).supervisor:
            return _page("Forbidden", "<p>The wallboard is for supervisors.</p>", 403)
        if request.path == "/admin" and principal(request).role != "admin":
            return _page("Forbidden", "<p>This page is for admins.</p>", 403)
        return web.Response(text=static_text(_PAGES[request.path]), content_type="text/html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(text=static_text(name), content_type=kind)

    def _login_page(
        self, request: web.Request, message: str = "", status: int = 200
    ) -> web.Response:
        token = new_token()
        notice = f"<p class=error role=alert>{html.escape(message)}</p>" if message else ""
        body = (
            "<main class=login><h1>aiopbx console</h1>"
            + notice
            + '<form method=post action="/login">'
            f'<input type=hidden name=csrf value="{html.escape(token)}">'
            "<label>Extension <input name=username id=username autocomplete=username"
            f" required maxlength={MAX_FIELD}></label>"
            "<label>SIP password <input name=password id=password type=password"
            f" autocomplete=current-password required maxlength={MAX_FIELD}></label>"
            "<button type=submit id=login>Log in</button></form></main>"
        )
        response = _page("Log in", body, status)
        response.set_cookie(LOGIN_COOKIE, token, **cookie_attributes(request.secure))  # type: ignore[arg-type]
        return response

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        return self._login_page(request)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        if not same_token(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")):
            return self._login_page(request, "The form expired; log in again.", 403)
        if not user or len(user) > MAX_FIELD or len(password) > MAX_FIELD:
            return self._login_page(request, "Wrong extension or password.", 401)
        address = request.remote or "?"
        now = self.clock()
        attempt = self.throttle.check(address, user, now)
        if not attempt.allowed:
            return self._login_page(request, attempt.reason, 429)
        if not await self.switch.verify_password(user, password):
            verdict = self.throttle.failed(address, user, now)
            if verdict.value in ("refuse", "ban"):
                return self._login_page(request, "Too many failed logins; try later.", 429)
            return self._login_page(request, "Wrong extension or password.", 401)
        self.throttle.succeeded(address, user)
        token = new_token()
        await self.switch.web_session_store.create(token, user, new_token(), SESSION_SECONDS)
        log.info("web: %s logged in from %s", user, address)
        role = await self.switch.user_role(user)
        response = _redirect("/wallboard" if role in _SUPERVISORS else "/desktop")
        response.set_cookie(
            COOKIE,
            token,
            **cookie_attributes(request.secure, int(SESSION_SECONDS)),  # type: ignore[arg-type]
        )
        response.del_cookie(LOGIN_COOKIE, path="/")
        return response

    async def _sessions(self, request: web.Request) -> web.StreamResponse:
        """The caller's own live sessions (an admin's `?all=1`: everyone's); the one the
        request comes from is marked `current`."""
        who = principal(request)
        everyone = request.query.get("all") == "1" and who.role == "admin"
        current = token_hash(who.token)[:SESSION_ID_CHARS]
        found = await self.switch.web_session_store.list(None if everyone else who.user)
        return web.json_response(
            {"sessions": [{**s.to_json(), "current": s.id == current} for s in found]}
        )

    async def _revoke(self, request: web.Request) -> web.StreamResponse:
        """End one session: one's own, or anyone's for an admin. Its open pages close at
        once; its next request gets 401. Unknown and someone else's are both 404."""
        who = principal(request)
        owner = None if who.role == "admin" else who.user
        revoked = await self.switch.web_session_store.revoke(request.match_info["id"], owner)
        if revoked is None:
            return web.json_response({"error": "no such session"}, status=404)
        self.live.drop_hashed(revoked)
        log.info("web: %s ended a session", who.user)
        return web.json_response({"revoked": True})

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        await self.switch.web_session_store.delete(who.token)
        self.live.drop_session(who.token)
        log.info("web: %s logged out", who.user)
        response = _redirect("/login")
        response.del_cookie(COOKIE, path="/")
        return response
