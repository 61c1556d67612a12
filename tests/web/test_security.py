"""Acceptance 3 of issue 15 at the HTTP level (a real server on loopback, aiohttp's
client): no route without a session, login checked and throttled, cookies and CSRF,
agents confined to their own tickets and offered customers, markup shown as text."""

from __future__ import annotations

from pathlib import Path

from acd.web.console import WebConsole
from pbx.api import BanPolicy
from pbx.store import CustomerFields
from tests.web.console import SUPERVISOR, client, console_server, logged_in, login

#: Every route of the console with a method, as a client without a session tries it.
ROUTES = [
    ("GET", "/"),
    ("GET", "/desktop"),
    ("GET", "/wallboard"),
    ("GET", "/static/desktop.js"),
    ("GET", "/static/common.js"),
    ("GET", "/ws"),
    ("GET", "/api/sessions"),
    ("DELETE", "/api/sessions/0123456789abcdef"),
    ("GET", "/ws/phone"),
    ("POST", "/logout"),
    ("GET", "/api/me"),
    ("POST", "/api/agent"),
    ("POST", "/api/escalate"),
    ("POST", "/api/transfer"),
    ("POST", "/api/customers"),
    ("GET", "/api/customers?q=a"),
    ("GET", "/api/customers.csv"),
    ("GET", "/api/customers/1"),
    ("PUT", "/api/customers/1"),
    ("POST", "/api/customers/1/call"),
    ("GET", "/api/callbacks"),
    ("POST", "/api/callbacks"),
    ("POST", "/api/callbacks/1/cancel"),
    ("GET", "/api/tickets"),
    ("POST", "/api/tickets"),
    ("GET", "/api/tickets/1"),
    ("POST", "/api/tickets/1/notes"),
    ("GET", "/api/kb?q=x"),
    ("POST", "/api/kb"),
    ("GET", "/api/kb/1"),
    ("PUT", "/api/kb/1"),
    ("POST", "/api/dispositions"),
    ("GET", "/api/wallboard"),
    ("GET", "/api/report"),
    ("GET", "/api/report.csv"),
    ("POST", "/api/supervise"),
    ("GET", "/admin"),
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users/1001/role"),
    ("GET", "/api/admin/queues"),
    ("GET", "/api/admin/ivr"),
    ("PUT", "/api/admin/ivr"),
    ("PATCH", "/api/admin/queues/support"),
    ("GET", "/api/admin/trunks"),
    ("POST", "/api/admin/queues/support/members"),
    ("DELETE", "/api/admin/queues/support/members/1001"),
    ("GET", "/api/admin/recordings"),
    ("GET", "/api/admin/recordings/1.wav"),
]


async def test_every_route_needs_a_session(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c, client() as http:
        registered = {
            (r.method, r.resource.canonical)
            for r in c.web._runner.app.router.routes()  # type: ignore[union-attr]
            if r.resource is not None and r.method != "HEAD"
        }
        public = {("GET", "/login"), ("POST", "/login"), ("GET", "/static/{name}")}
        tried = {(m, p.split("?")[0]) for m, p in ROUTES}
        canonical = {(m, p.replace("/1", "/{id}")) for m, p in tried}
        canonical = {(m, "/api/tickets/{id}/{what}" if p.endswith("/notes") else p)
                     for m, p in canonical}  # fmt: skip
        canonical = {(m, p.replace("/1/", "/{id}/")) for m, p in canonical}
        canonical |= {
            ("POST", "/api/admin/users/{name}/role"),
            ("GET", "/api/admin/recordings/{id}.wav"),
            ("PATCH", "/api/admin/queues/{queue}"),
            ("DELETE", "/api/sessions/{id}"),
            ("POST", "/api/admin/queues/{queue}/members"),
            ("DELETE", "/api/admin/queues/{queue}/members/{agent}"),
        }
        assert registered - public - canonical == set()  # the list covers every route
        for method, path in ROUTES:
            async with http.request(method, c.base + path, allow_redirects=False) as r:
                if method == "GET" and path in ("/", "/desktop", "/wallboard", "/admin"):
                    assert (r.status, r.headers["Location"]) == (303, "/login"), path
                else:
                    assert r.status == 401, (method, path, r.status)
                    assert await r.json() == {"error": "log in first"}
        # A forged cookie is no session either.
        http.cookie_jar.update_cookies({"pbx_session": "forged"})
        async with http.get(c.base + "/api/me") as r:
            assert r.status == 401


async def test_login_cookie_logout_and_csrf(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c, client() as http:
        response = await login(http, c.base, "1001")
        assert (response.status, response.headers["Location"]) == (303, "/desktop")
        cookie = next(v for v in response.headers.getall("Set-Cookie") if "pbx_session=" in v)
        attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
        assert {"httponly", "path", "max-age"} <= attributes
        assert "samesite=strict" in cookie.lower() and "secure" not in attributes  # plain HTTP
        token = cookie.split(";")[0].split("=", 1)[1]
        db = c.store.path.read_bytes() + c.store.path.with_name("pbx.sqlite3-wal").read_bytes()
        assert token.encode() not in db  # only its hash is stored
        async with http.get(c.base + "/desktop") as r:
            assert r.status == 200 and "Agent desktop" in await r.text()
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get(c.base + "/api/me") as r:
            me = await r.json()
        assert (me["user"], me["role"], me["agent"]["state"]) == ("1001", "agent", "logged-out")
        # A state-changing request without (or with a wrong) CSRF token is refused.
        for headers in ({}, {"X-CSRF-Token": "nope"}):
            async with http.post(
                c.base + "/api/tickets", json={"subject": "x"}, headers=headers
            ) as r:
                assert r.status == 403
                assert await r.json() == {"error": "missing or wrong CSRF token"}
        async with http.post(
            c.base + "/api/tickets", json={"subject": "x"}, headers={"X-CSRF-Token": me["csrf"]}
        ) as r:
            assert r.status == 201
        # The wallboard is a supervisor's page.
        async with http.get(c.base + "/wallboard") as r:
            assert r.status == 403
        async with http.get(c.base + "/api/wallboard") as r:
            assert r.status == 403
        async with http.post(
            c.base + "/logout", data={"csrf": me["csrf"]}, allow_redirects=False
        ) as r:
            assert (r.status, r.headers["Location"]) == (303, "/login")
        async with http.get(c.base + "/api/me") as r:
            assert r.status == 401
        # The login form's own token: a post without it (a cross-site form) is refused.
        async with client() as other:
            form = {"username": "1001", "password": "Xk3-secret-pass", "csrf": "guess"}
            async with other.post(c.base + "/login", data=form, allow_redirects=False) as r:
                assert r.status == 403


async def test_wrong_passwords_are_throttled_like_sip(tmp_path: Path) -> None:
    policy = BanPolicy(user_failures=3, scan_users=5)
    async with console_server(tmp_path, policy=policy) as c, client() as http:
        statuses = [(await login(http, c.base, "1001", "wrong-Pass-1")).status for _ in range(4)]
        assert statuses == [401, 401, 429, 429]
        # Refused now even with the right password; another extension is not touched.
        assert (await login(http, c.base, "1001")).status == 429
        assert (await login(http, c.base, "1002")).status == 303
        # An unknown extension is answered as a wrong password (no enumeration).
        assert (await login(http, c.base, "9999", "whatever-Pass-1")).status == 401
        # Failures for many extensions ban the address as a whole.
        for user in ("u1", "u2", "u3", "u4"):
            await login(http, c.base, "1002" if user == "u4" else user, "bad-Pass-0")
        assert (await login(http, c.base, SUPERVISOR)).status == 429
        first = c.web.throttle.bans.entries(c.web.clock())[0]
        assert (first.address, first.user) == ("127.0.0.1", None)  # the whole address


async def test_agents_see_only_their_tickets_and_offered_customers(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        ada = await c.store.customers.add(CustomerFields("+442079460123", "Ada"))
        bob = await c.store.customers.add(CustomerFields("+442079460124", "Bob"))
        await c.store.customers.offered(ada.id, "1001", "call-1", "support", 1.0)
        theirs = await c.store.tickets.open("1002", "not yours", customer=bob.id)
        mine = await c.store.tickets.open("1001", "mine", customer=ada.id)
        agent, csrf = await logged_in(c.base, "1001")
        boss, _ = await logged_in(c.base, SUPERVISOR)
        async with agent, boss:
            for path, status in [
                (f"/api/customers/{ada.id}", 200),
                (f"/api/customers/{bob.id}", 403),
                (f"/api/customers/{bob.id + 100}", 404),
                (f"/api/tickets/{mine.id}", 200),
                (f"/api/tickets/{theirs.id}", 403),
            ]:
                async with agent.get(c.base + path) as r:
                    assert r.status == status, (path, r.status)
            async with agent.put(
                c.base + f"/api/customers/{bob.id}",
                json={"name": "stolen"},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 403
            async with agent.post(
                c.base + f"/api/tickets/{theirs.id}/notes",
                json={"body": "x"},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 403
            async with agent.post(
                c.base + "/api/tickets",
                json={"subject": "peek", "customer": bob.id},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 403
            async with agent.get(c.base + "/api/tickets") as r:
                assert [t["id"] for t in (await r.json())["tickets"]] == [mine.id]
            for path in (f"/api/customers/{bob.id}", f"/api/tickets/{theirs.id}"):
                async with boss.get(c.base + path) as r:
                    assert r.status == 200
            async with boss.get(c.base + f"/api/customers/{ada.id}") as r:
                view = await r.json()
            assert [t["subject"] for t in view["tickets"]] == ["mine"]
            assert [(o["agent"], o["call_id"]) for o in view["calls"]] == [("1001", "call-1")]


async def test_markup_in_articles_is_text_and_only_supervisors_write(tmp_path: Path) -> None:
    async with console_server(tmp_path) as c:
        agent, agent_csrf = await logged_in(c.base, "1001")
        boss, csrf = await logged_in(c.base, SUPERVISOR)
        body = (
            "# Reset\n<script>alert(1)</script>\n\n"
            "[click](javascript:alert(2)) and **bold** <img src=x onerror=alert(3)>"
        )
        async with agent, boss:
            article = {"title": "<b>Reset</b>", "body": body, "tags": "support"}
            async with agent.post(
                c.base + "/api/kb", json=article, headers={"X-CSRF-Token": agent_csrf}
            ) as r:
                assert r.status == 403
            async with boss.post(
                c.base + "/api/kb", json=article, headers={"X-CSRF-Token": csrf}
            ) as r:
                assert r.status == 201
                created = await r.json()
            async with agent.get(c.base + f"/api/kb/{created['id']}") as r:
                shown = await r.json()
            html = shown["html"]
            assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
            assert "<img" not in html and "&lt;img src=x onerror=alert(3)&gt;" in html
            assert "<a" not in html  # a javascript: link is left as text
            assert "<strong>bold</strong>" in html and "<h1>Reset</h1>" in html
            assert shown["title"] == "<b>Reset</b>"  # JSON text; the page puts it as text
            async with agent.get(c.base + "/api/kb?q=reset") as r:
                assert [a["id"] for a in (await r.json())["articles"]] == [created["id"]]


def test_console_is_a_service_answering_no_number() -> None:
    assert callable(WebConsole.start) and callable(WebConsole.close)


async def test_websocket_needs_same_origin_and_is_bounded(tmp_path: Path) -> None:
    from acd.web.live import MAX_PAGES_PER_USER

    async with console_server(tmp_path) as c:
        agent, _ = await logged_in(c.base, "1001")
        async with agent:
            async with agent.get(c.base + "/ws", headers={"Origin": "https://evil.example"}) as r:
                assert r.status == 403
            sockets = [await agent.ws_connect(c.base + "/ws") for _ in range(MAX_PAGES_PER_USER)]
            hello = await sockets[0].receive_json()
            assert (hello["type"], hello["user"]) == ("hello", "1001")
            async with agent.get(c.base + "/ws") as r:
                assert r.status == 429
            for ws in sockets:
                await ws.close()
