"""The admin page's routes (`/api/admin/...`, admins only): users and their roles, queues
and their members (added and removed here; the running ACD follows), the IVR menus
(TOML), trunks' registration state and the DIDs, recordings with playback in the
browser."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from acd.model import Strategy
from acd.web.api import _body  # the JSON-object body check the desktop's routes use
from acd.web.console import principal
from ivr.menu import parse_toml, to_toml
from ivr.menu_check import answered_numbers, extension_targets, problems
from ivr.prompts import DEFAULT_PROMPTS
from pbx.api import AlreadyExistsError, ConfigError, NotFoundError, PbxError, Queue

if TYPE_CHECKING:
    from acd.web.console import WebConsole

__all__ = ["QUEUE_SETTINGS", "add_admin_routes"]

#: The queue settings the admin page edits, with the JSON type each takes (None: may be
#: cleared). Skills, relax rules and empty conditions stay with `pbx queue set`.
QUEUE_SETTINGS: dict[str, tuple[type, ...]] = {
    "number": (str,),
    "strategy": (str,),
    "ring_seconds": (int, float),
    "retry_seconds": (int, float),
    "wrapup_seconds": (int, float),
    "max_callers": (int,),
    "max_wait_seconds": (int, float),
    "overflow": (str, type(None)),
    "service_level_seconds": (int, float),
    "announce_frequency": (int, float),
    "periodic_announce": (str, type(None)),
    "periodic_frequency": (int, float),
    "music": (str, type(None)),
    "weight": (int,),
    "ring_in_use": (bool,),
    "autopause_after": (int,),
    "callback_key": (str, type(None)),
    "voicemail_key": (str, type(None)),
    "callback_attempts": (int,),
}


def queue_changes(body: dict[str, object]) -> dict[str, object]:
    """The Queue fields a settings form sends, type-checked (pure).

    Raises: ConfigError naming the first field that is unknown or of the wrong type.
    """
    changes: dict[str, object] = {}
    for name, value in body.items():
        types = QUEUE_SETTINGS.get(name)
        if types is None:
            raise ConfigError(f"{name!r} is not a queue setting this page changes")
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            kinds = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"{name}: {value!r} is not a {kinds}")
        changes[name] = float(value) if float in types and isinstance(value, int) else value
    return changes


#: The largest IVR document the page may send.
MAX_IVR_BYTES = 256 * 1024


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
                "strategies": [s.value for s in Strategy],
                "queues": [
                    {
                        "name": q.name,
                        **_queue_settings(q),
                        "members": [m.agent for m in members.get(q.name, ())],
                    }
                    for q in await store.all()
                ],
            }
        )

    async def queue_settings(self, request: web.Request) -> web.StreamResponse:
        """Change some of a queue's settings ({field: value, ...}); the ACD follows at once."""
        _admin(request)
        name = request.match_info["queue"]
        switch = self.console.switch
        try:
            queue = await switch.queue_store.update(name, **queue_changes(await _body(request)))
        except NotFoundError as exc:
            raise web.HTTPNotFound(reason=str(exc)) from None
        except ConfigError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        except PbxError as exc:  # the number is taken
            raise web.HTTPConflict(reason=str(exc)) from None
        await switch.config_changed()
        return web.json_response(_queue_settings(queue))

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

    async def put_ivr(self, request: web.Request) -> web.StreamResponse:
        """Replace the IVR menus with the TOML text sent ({toml}): checked as `pbx ivr
        import` checks a file (the same warnings for missing prompts, mailboxes and
        extensions); running calls keep their menu, new calls get the new one."""
        _admin(request)
        text = (await _body(request)).get("toml")
        if not isinstance(text, str) or len(text.encode()) > MAX_IVR_BYTES:
            raise web.HTTPBadRequest(
                reason=f"toml must be a string of at most {MAX_IVR_BYTES} bytes"
            )
        switch = self.console.switch
        try:
            menus, schedules = parse_toml(text)
            await switch.put_ivr_menus(
                to_toml(menus, schedules), answered_numbers(menus, schedules)
            )
        except ConfigError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        except (AlreadyExistsError, NotFoundError) as exc:
            raise web.HTTPConflict(reason=str(exc)) from None
        await switch.config_changed()
        prompts = set(self.console.acd.prompts.store.names()) | set(DEFAULT_PROMPTS)
        mailboxes = {u["name"] for u in await switch.users()}
        owned = await switch.owned_numbers(extension_targets(menus, schedules))
        warnings = problems(menus, schedules, prompts=prompts, mailboxes=mailboxes, owned=owned)
        return web.json_response(
            {
                "toml": await switch.ivr_menus(),
                "menus": [m.name for m in menus],
                "schedules": [s.name for s in schedules],
                "warnings": warnings,
            }
        )

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


def _queue_settings(queue: Queue) -> dict[str, object]:
    return {name: getattr(queue, name) for name in QUEUE_SETTINGS}


def add_admin_routes(app: web.Application, console: WebConsole) -> None:
    admin = Admin(console)
    app.router.add_get("/api/admin/users", admin.users)
    app.router.add_post("/api/admin/users/{name}/role", admin.set_role)
    app.router.add_get("/api/admin/queues", admin.queues)
    app.router.add_patch("/api/admin/queues/{queue}", admin.queue_settings)
    app.router.add_post("/api/admin/queues/{queue}/members", admin.add_member)
    app.router.add_delete("/api/admin/queues/{queue}/members/{agent}", admin.delete_member)
    app.router.add_get("/api/admin/ivr", admin.ivr)
    app.router.add_put("/api/admin/ivr", admin.put_ivr)
    app.router.add_get("/api/admin/trunks", admin.trunks)
    app.router.add_get("/api/admin/recordings", admin.recordings)
    app.router.add_get("/api/admin/recordings/{id}.wav", admin.recording)
