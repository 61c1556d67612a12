"""ivr.prompts: import and conversion, synthesis with espeak-ng, the default set and its tones."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ivr.player import PromptPlayer
from ivr.prompts import DEFAULT_PROMPTS, RATE, PromptError, PromptStore, tone_pattern
from media.wav import read_wav, to_int16, write_wav
from tests.tools import need

BAD_NAMES = ["", "A", "Welcome", "a" * 65, "a/b", "../x", "a.b", "a b", "ü", "x.wav"]
GOOD_NAMES = ["a", "a" * 64, "ivr-welcome_2", "0", "-", "_x"]


@pytest.fixture
def store(tmp_path: Path) -> PromptStore:
    return PromptStore(tmp_path / "prompts")


@pytest.fixture
def no_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(
        "ivr.prompts.shutil.which", lambda cmd, *a, **k: None if cmd == "espeak-ng" else real(cmd)
    )


def peak_hz(x: npt.NDArray[np.int16], rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spectrum))])


def rms(x: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_add_converts_16khz_stereo_to_8khz_mono(store: PromptStore, tmp_path: Path) -> None:
    t = np.arange(24000) / 16000  # 1.5 s
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    wide = tmp_path / "in.wav"
    write_wav(wide, to_int16(np.stack([left, np.zeros_like(left)], axis=1)), 16000)
    path = store.add("greeting", wide)
    assert path == store.root / "greeting.wav"
    stored = read_wav(path)
    assert (stored.rate, stored.channels, stored.samples.shape[0]) == (8000, 1, 12000)
    audio = store.load("greeting")
    assert audio.dtype == np.int16 and audio.shape == (12000,)
    assert peak_hz(audio) == 1000.0
    # the channels are averaged: half of the left channel's 0.5 amplitude
    assert rms(audio[1000:-1000]) == pytest.approx(0.25 * 32768 / np.sqrt(2), rel=0.01)
    assert store.duration("greeting") == 1.5
    assert store.names() == ["greeting"]
    assert sorted(p.name for p in store.root.iterdir()) == ["greeting.wav"]  # no temp file left


def test_add_replaces_an_existing_prompt(store: PromptStore, tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    write_wav(src, np.full(800, 1000, np.int16), 8000)
    store.add("p", src)
    write_wav(src, np.full(1600, -1000, np.int16), 8000)
    store.add("p", src)
    assert store.load("p").tolist() == [-1000] * 1600


def test_add_rejects_unreadable_and_empty_files(store: PromptStore, tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all")
    with pytest.raises(PromptError) as info:
        store.add("p", junk)
    assert str(info.value) == f"{junk}: not a RIFF/WAVE file"
    with pytest.raises(PromptError) as info:
        store.add("p", tmp_path / "missing.wav")
    assert str(info.value) == f"{tmp_path / 'missing.wav'}: No such file or directory"
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0, np.int16), 8000)
    with pytest.raises(PromptError) as info:
        store.add("p", empty)
    assert str(info.value) == f"{empty}: no audio in the file"
    assert store.names() == []


def test_load_missing_and_corrupt(store: PromptStore) -> None:
    with pytest.raises(PromptError) as info:
        store.load("nothing")
    assert str(info.value) == f"no prompt 'nothing' in {store.root}"
    store.root.mkdir(parents=True)
    (store.root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(PromptError) as info:
        store.load("broken")
    assert str(info.value) == "prompt 'broken' is corrupt: no fmt chunk"
    with pytest.raises(PromptError):
        store.duration("broken")
    assert store.names() == ["broken"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_rejected(store: PromptStore, tmp_path: Path, name: str) -> None:
    src = tmp_path / "ok.wav"
    write_wav(src, np.ones(80, np.int16), 8000)
    message = f"bad prompt name {name!r}: use 1-64 characters of a-z, 0-9, - and _"
    for call in (
        lambda: store.path(name),
        lambda: store.load(name),
        lambda: store.add(name, src),
        lambda: store.say(name, "hello"),
        lambda: store.delete(name),
    ):
        with pytest.raises(PromptError) as info:
            call()
        assert str(info.value) == message
    assert not store.root.exists()


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(store: PromptStore, name: str) -> None:
    assert store.path(name) == store.root / f"{name}.wav"


def test_names_ignore_other_files(store: PromptStore) -> None:
    store.root.mkdir(parents=True)
    for f in ("b.wav", "a.wav", "Upper.wav", "notes.txt", ".a.x1.tmp", "a.wav.bak"):
        (store.root / f).write_bytes(b"")
    (store.root / "dir.wav").mkdir()
    assert store.names() == ["a", "b"]
    assert PromptStore(store.root / "absent").names() == []


def test_delete(store: PromptStore, tmp_path: Path) -> None:
    src = tmp_path / "ok.wav"
    write_wav(src, np.ones(80, np.int16), 8000)
    store.add("gone", src)
    store.delete("gone")
    assert store.names() == []
    with pytest.raises(PromptError) as info:
        store.delete("gone")
    assert str(info.value) == f"no prompt 'gone' in {store.root}"


def test_say_with_espeak(store: PromptStore) -> None:
    need("espeak-ng")
    store.say("hello", "Hello, this is a test of the prompt store.")
    stored = read_wav(store.path("hello"))
    assert (stored.rate, stored.channels) == (8000, 1)
    audio = store.load("hello")
    assert 1.5 < audio.size / RATE < 5.0  # about a dozen syllables
    assert rms(audio) > 300  # speech, not silence
    store.say("dash", "-1 is a number", voice="en-us")  # text starting with "-" is not an option
    assert store.load("dash").size > RATE // 2


def test_say_errors(store: PromptStore) -> None:
    need("espeak-ng")
    with pytest.raises(PromptError) as info:
        store.say("x", "hello", voice="zzqq")
    assert str(info.value).startswith("espeak-ng failed: ")
    with pytest.raises(PromptError) as info:
        store.say("x", "  ")
    assert str(info.value) == "the text to say is empty"
    assert store.names() == []


def test_say_without_espeak(store: PromptStore, no_espeak: None) -> None:
    with pytest.raises(PromptError) as info:
        store.say("x", "hello")
    assert str(info.value) == "espeak-ng is not installed"


def test_ensure_defaults_spoken(store: PromptStore) -> None:
    need("espeak-ng")
    assert store.ensure_defaults() == list(DEFAULT_PROMPTS)
    assert store.names() == sorted(DEFAULT_PROMPTS)
    for name, text in DEFAULT_PROMPTS.items():
        audio = store.load(name)
        if text is None:
            assert audio.tolist() == tone_pattern(name).tolist()
        else:
            assert audio.tolist() != tone_pattern(name).tolist()  # speech, not the fallback
            assert 0.3 < audio.size / RATE < 12.0 and rms(audio) > 300
    assert store.ensure_defaults() == []


def test_ensure_defaults_keeps_existing(store: PromptStore, tmp_path: Path) -> None:
    src = tmp_path / "mine.wav"
    write_wav(src, np.full(400, 1234, np.int16), 8000)
    store.add("ivr-welcome", src)
    store.add("vm-beep", src)
    before = store.path("ivr-welcome").read_bytes()
    created = store.ensure_defaults()
    assert created == [n for n in DEFAULT_PROMPTS if n not in ("ivr-welcome", "vm-beep")]
    assert store.path("ivr-welcome").read_bytes() == before
    assert store.load("vm-beep").tolist() == [1234] * 400


_OWN_PATTERNS = (
    "ivr-welcome",
    "ivr-invalid",
    "ivr-timeout",
    "ivr-goodbye",
    "vm-unavailable",
    "vm-beep",
)


def test_ensure_defaults_falls_back_to_tones(store: PromptStore, no_espeak: None) -> None:
    assert store.ensure_defaults() == list(DEFAULT_PROMPTS)
    patterns = {name: store.load(name) for name in DEFAULT_PROMPTS}
    for name, audio in patterns.items():
        assert audio.tolist() == tone_pattern(name).tolist()
        assert rms(audio) > 3000
    assert len({p.tobytes() for p in patterns.values()}) == len(patterns)  # each one distinct
    sizes = {n: p.size for n, p in patterns.items()}
    assert {n: sizes[n] for n in _OWN_PATTERNS} == {
        "ivr-welcome": 4480,  # 200 + 60 + 300 ms
        "ivr-invalid": 5280,  # 4 x 120 ms + 3 x 60 ms
        "ivr-timeout": 6880,
        "ivr-goodbye": 4480,
        "vm-unavailable": 6960,
        "vm-beep": 2400,
    }
    assert peak_hz(patterns["vm-beep"]) == pytest.approx(1000.0, abs=4)
    assert peak_hz(patterns["ivr-welcome"][:1600]) == pytest.approx(440.0, abs=6)
    assert peak_hz(patterns["ivr-goodbye"][:1600]) == pytest.approx(620.0, abs=6)
    assert store.ensure_defaults() == []


def test_tone_pattern_unknown() -> None:
    with pytest.raises(PromptError) as info:
        tone_pattern("nope")
    assert str(info.value) == "'nope' is not a default prompt"


def test_prompt_error_is_a_pbx_error() -> None:
    from pbx.errors import PbxError

    assert issubclass(PromptError, PbxError)


def test_tone_fallbacks_are_replaced_once_espeak_is_installed(
    store: PromptStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    need("espeak-ng")
    with monkeypatch.context() as m:
        m.setattr("ivr.prompts.shutil.which", lambda _name: None)
        with caplog.at_level("INFO", logger="ivr.prompts"):
            assert store.ensure_defaults() == list(DEFAULT_PROMPTS)
    spoken = [n for n, text in DEFAULT_PROMPTS.items() if text is not None]
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # no line per prompt
    assert f"{len(spoken)} prompts are tone patterns" in caplog.records[0].getMessage()
    assert all(store.is_tone_fallback(n) for n in DEFAULT_PROMPTS)
    mine = store.root / "mine.wav"
    write_wav(mine, np.full(400, 1234, np.int16), 8000)
    store.add("ivr-welcome", mine)  # an admin's own recording is never replaced
    caplog.clear()
    with caplog.at_level("INFO", logger="ivr.prompts"):
        assert store.ensure_defaults() == []  # without the flag nothing changes ...
    [warning] = caplog.messages  # ... but a (re)start says what to run
    assert warning.startswith(f"{len(spoken) - 1} prompts are still tone patterns")
    replaced = store.ensure_defaults(replace_tones=True)
    assert replaced == [n for n in spoken if n != "ivr-welcome"]
    assert not any(store.is_tone_fallback(n) for n in replaced)
    assert store.load("ivr-welcome").tolist() == [1234] * 400
    assert store.is_tone_fallback("vm-beep")  # a beep stays a beep


async def test_the_player_loads_a_prompt_once_for_callers_asking_at_once(
    store: PromptStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many calls asking for one prompt at once (a campaign's first lines) share one
    load from disk; a changed file is loaded again."""
    source = store.root.parent / "hello-source.wav"
    t = np.arange(1600) / RATE
    write_wav(source, (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), RATE)
    store.add("hello", source)
    loads: list[str] = []
    real = store.load

    def counted(name: str) -> npt.NDArray[np.int16]:
        loads.append(name)
        return real(name)

    monkeypatch.setattr(store, "load", counted)
    player = PromptPlayer(store)
    got = await asyncio.gather(*(player.audio("hello") for _ in range(50)))
    assert loads == ["hello"] and all(g is got[0] for g in got) and len(got[0]) == 1600
    path = store.path("hello")
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    await player.audio("hello")
    assert loads == ["hello", "hello"]
