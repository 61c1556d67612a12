"""pbx.store.numbering: who owns a number, across users, ring groups, IVR and codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.errors import AlreadyExistsError
from pbx.store import RingGroup, Store
from pbx.store.numbering import FEATURE_CODES, IVR_KINDS, Owner, ivr_numbers

IVR = """
[[menu]]
name = "main"
number = "800"
greeting = "ivr-welcome"
[[menu]]
name = "inner"
greeting = "ivr-welcome"
[[schedule]]
name = "office"
number = "700"
open_menu = "main"
closed_menu = "main"
"""


def test_ivr_numbers_tolerates_anything() -> None:
    assert ivr_numbers(IVR) == [
        Owner("IVR menu", "main", "800"),
        Owner("IVR schedule", "office", "700"),
    ]
    assert ivr_numbers("not [toml") == []
    assert ivr_numbers("menu = 3\nschedule = [1, {number = 5}]") == []


async def test_owner_across_tables(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "pbx.sqlite3") as store:
        await store.users.add("1001", "Secret-Password-1", "aiopbx")
        await store.dialplan.add_ring_group(RingGroup("600", ("1001",)))
        await store.ivr.put(IVR, ["800", "700"])
        plan = store.numbering
        assert str(await plan.owner("1001")) == "user 1001"
        assert str(await plan.owner("600")) == "ring group 600"
        assert str(await plan.owner("800")) == "IVR menu 'main'"
        assert str(await plan.owner("700")) == "IVR schedule 'office'"
        assert str(await plan.owner("*97")) == "feature code *97 (own mailbox)"
        assert str(await plan.owner("*1")) == "feature code *1 (record on demand)"
        assert await plan.owner("1002") is None
        assert await plan.owner("800", ignore=IVR_KINDS) is None
        with pytest.raises(AlreadyExistsError, match="number 800 is already taken by IVR menu"):
            await store.users.add("800", "Secret-Password-1", "aiopbx")
        with pytest.raises(AlreadyExistsError, match="number 600 is already taken by ring group"):
            await store.ivr.put('[[menu]]\nname = "x"\nnumber = "600"\ngreeting = "g"\n', ["600"])
        await store.ivr.put(IVR, ["800", "700"])  # its own old numbers do not count


def test_feature_codes_match_the_code_that_answers_them() -> None:
    from acd.app import ACD_CODES
    from acd.supervisor import BARGE_CODE, LISTEN_CODE, WHISPER_CODE
    from ivr.voicemail import ANY_BOX_CODE, FEATURE_CODE
    from pbx.bridge import AUTOMON

    acd = set(ACD_CODES)  # answered by the ACD application
    assert {LISTEN_CODE, WHISPER_CODE, BARGE_CODE} <= acd
    assert set(FEATURE_CODES) == {FEATURE_CODE, ANY_BOX_CODE, AUTOMON} | acd
