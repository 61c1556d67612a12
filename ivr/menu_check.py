"""What a new IVR document refers to that does not exist (yet), as warnings (pure).

A document that parses (`ivr.menu.parse_toml`) may still name a prompt nobody recorded,
a mailbox of no user, or an extension nobody has: the document is stored anyway (the
admin may add them next), and each of these is reported in one line. Trunks and queues
are checked by the store when the document is stored (`pbx.store.ivr`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from ivr.menu import Action, Menu, Schedule

__all__ = ["answered_numbers", "extension_targets", "problems"]


def answered_numbers(menus: Sequence[Menu], schedules: Sequence[Schedule]) -> list[str]:
    """The numbers the menus and schedules answer."""
    return [m.number for m in menus if m.number] + [s.number for s in schedules if s.number]


def _actions(menu: Menu) -> Iterator[tuple[str, Action]]:
    yield from ((f"key {k}", a) for k, a in menu.options.items())
    yield "fallback", menu.fallback


def _elsewhere(target: str) -> bool:
    return target.startswith(("trunk:", "queue:"))


def extension_targets(menus: Sequence[Menu], schedules: Sequence[Schedule]) -> set[str]:
    """The extensions the menus dial that the document itself does not answer: the
    numbers whose owners the caller looks up for `problems`."""
    own = set(answered_numbers(menus, schedules))
    return {
        action.target
        for menu in menus
        for _, action in _actions(menu)
        if action.kind == "extension"
        and action.target
        and not _elsewhere(action.target)
        and action.target not in own
    }


def problems(
    menus: Sequence[Menu],
    schedules: Sequence[Schedule],
    *,
    prompts: Collection[str],
    mailboxes: Collection[str],
    owned: Collection[str],
) -> list[str]:
    """One line per reference to something that does not exist: a prompt not in
    `prompts`, a mailbox not in `mailboxes`, an extension of `extension_targets` not in
    `owned` (the ones a user, ring group or queue has)."""
    missing = extension_targets(menus, schedules) - set(owned)
    found: list[str] = []
    for menu in menus:
        for field_name in ("greeting", "invalid_prompt", "timeout_prompt"):
            prompt = getattr(menu, field_name)
            if prompt not in prompts:
                found.append(f"menu {menu.name!r}: {field_name} {prompt!r} is no prompt")
        for where, action in _actions(menu):
            target = action.target or ""
            if action.kind == "voicemail" and target not in mailboxes:
                found.append(f"menu {menu.name!r} {where}: no mailbox {target}")
            if action.kind == "extension" and target in missing:
                found.append(f"menu {menu.name!r} {where}: no extension or ring group {target}")
    return found
