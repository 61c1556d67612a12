"""The admin page's routes (`/api/admin/...`, admins only): users and their roles, queues
and their members (added and removed here; the running ACD follows), the IVR menus
(TOML), trunks' registration state and the DIDs, recordings with playback in the
browser."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from acd.web.api import _body  # the JSON-object body check the desktop's routes use
from acd.web.console import principal
from pbx.api import ConfigError, NotFoundError, PbxError

if TYPE_CHECKING:
    from acd.web.console import WebConsole

__all__ = ["add_admin_routes"]


def _admin(request: web.Request) -> None:
    if principal(request).role != "admin":
        raise web.HTTPForbidden(reason="for admins")


class Admin:
    def __init__(self, console: WebConsole) -> None:
        self.console = console

    async def users(self, request: web.Request) -> web.StreamResponse:
        _admin(request)
        return web.json_response({"users": await self.console.switch.users()})

    async def set_role(self, request: web.Request) -> web.StreamResponse:
        _admin(request)
        name = request.match_info["name"]
        role = (await _body(request)).get("role")
        if not isinstance(role, str):
            raise web.HTTPBadRequest(reason="role must be a string")
        if name == principal(request).user and role != "admin":
            raise web.HTTPConflict(reason="an admin cannot take away their own role")
        try:
            await self.console.switch.set_user_role(name, role)
        except NotFoundError as exc:
            raise web.HTTPNotFound(reason=str(exc)) from None
        except ConfigError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        return web.json_response({"name": name, "role": role})

    async def queues(self, request: web.Request) -> web.StreamResponse:
        _admin(request)
        store = self.console.switch.queue_store
        members = await store.all_members()
        return web.json_response(
            {
                "queues": [
                    {
                        "name": q.name,
                        "number": q.number,
                        "strategy": q.strategy,
                        "members": [m.agent for m in members.get(q.name, ())],
                    }
                    for q in await store.all()
                ]
            }
        )

    async def add_member(self, request: web.Request) -> web.StreamResponse:
        """Make an agent a member of a queue ({agent, penalty?}); the ACD follows at once."""
        _admin(request)
        queue = request.match_info["queue"]
        body = await _body(request)
        agent, penalty = body.get("agent"), body.get("penalty", 0)
        if not isinstance(agent, str) or not isinstance(penalty, int) or isinstance(penalty, bool):
            raise web.HTTPBadRequest(reason="agent is a string, penalty an integer")
        switch = self.console.switch
        try:
            await switch.queue_store.add_member(queue, agent.strip(), penalty)
        except NotFoundError as exc:
            raise web.HTTPNotFound(reason=str(exc)) from None
        except PbxError as exc:  # already a member, a bad penalty
            raise web.HTTPConflict(reason=str(exc)) from None
        await switch.config_changed()
        return web.json_response({"queue": queue, "agent": agent.strip(), "penalty": penalty})

    async def delete_member(self, request: web.Request) -> web.StreamResponse:
        """Take an agent out of a queue; the ACD follows at once."""
        _admin(request)
        queue, agent = request.match_info["queue"], request.match_info["agent"]
        switch = self.console.switch
        try:
            await switch.queue_store.delete_member(queue, agent)
        except NotFoundError as exc:
            raise web.HTTPNotFound(reason=str(exc)) from None
        await switch.config_changed()
        return web.json_response({"queue": queue, "agent": agent, "removed": True})

    async def ivr(self, request: web.Request) -> web.StreamResponse:
        _admin(request)
        return web.json_response({"toml": await self.console.switch.ivr_menus()})

    async def trunks(self, request: web.Request) -> web.StreamResponse:
        """Each trunk's registration state and channels in use, and the DIDs."""
        _admin(request)
        switch = self.console.switch
        return web.json_response({"trunks": switch.trunk_status(), "dids": await switch.dids()})

    async def recordings(self, request: web.Request) -> web.StreamResponse:
        _admin(request)
        return web.json_response({"recordings": await self.console.switch.recordings()})

    async def recording(self, request: web.Request) -> web.StreamResponse:
        _admin(request)
        text = request.match_info["id"]
        if not text.isdigit() or len(text) > 12:
            raise web.HTTPNotFound()
        try:
            path = await self.console.switch.recording_file(int(text))
        except NotFoundError as exc:
            raise web.HTTPNotFound(reason=str(exc)) from None
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


def add_admin_routes(app: web.Application, console: WebConsole) -> None:
    admin = Admin(console)
    app.router.add_get("/api/admin/users", admin.users)
    app.router.add_post("/api/admin/users/{name}/role", admin.set_role)
    app.router.add_get("/api/admin/queues", admin.queues)
    app.router.add_post("/api/admin/queues/{queue}/members", admin.add_member)
    app.router.add_delete("/api/admin/queues/{queue}/members/{agent}", admin.delete_member)
    app.router.add_get("/api/admin/ivr", admin.ivr)
    app.router.add_get("/api/admin/trunks", admin.trunks)
    app.router.add_get("/api/admin/recordings", admin.recordings)
    app.router.add_get("/api/admin/recordings/{id}.wav", admin.recording)
