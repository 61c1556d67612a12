"""The prompt set: the recorded phrases IVR menus and voicemail play to callers.

A prompt is one 8 kHz mono 16-bit WAV file, `NAME.wav`, in the prompt directory
of the data directory (`data_dir / "prompts"`); a name is 1–64 characters of
a-z, 0-9, "-" and "_", so it is safe as a file name and in a menu's TOML. The
admin changes the set with `pbx prompt …`: `add` imports any WAV (converted to
8 kHz mono), `say` synthesizes one with espeak-ng. `ensure_defaults` gives a
fresh install the system prompts of IVR and voicemail: spoken when espeak-ng is
installed, else a short tone pattern distinct per prompt, so a call never meets
a missing prompt.

Files are replaced atomically (temporary file in the same directory, then
`os.replace`): a call playing a prompt while the admin replaces it reads either
the old file or the new one, never half of one. Every method does blocking file
(and possibly subprocess) work: call it from a thread (`asyncio.to_thread`)
when on the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.wav import WavError, load_mono, write_wav
from pbx.api import PbxError

__all__ = [
    "BEEP",
    "DEFAULT_PROMPTS",
    "ESPEAK_TIMEOUT",
    "RATE",
    "PromptError",
    "PromptStore",
    "check_name",
    "tone_pattern",
]

log = logging.getLogger(__name__)

RATE = 8000
"""Sample rate of every stored prompt (narrowband telephony)."""

ESPEAK_TIMEOUT = 30.0
"""Seconds espeak-ng may take for one prompt before it is killed."""

BEEP = "vm-beep"
"""The tone voicemail plays before recording: always 1 kHz for 0.3 s."""

DEFAULT_PROMPTS: dict[str, str | None] = {
    "ivr-welcome": "Welcome.",
    "ivr-invalid": "That is not a valid choice.",
    "ivr-timeout": "Sorry, I did not hear your choice.",
    "ivr-goodbye": "Goodbye.",
    "vm-unavailable": (
        "The person you are calling is not available. Please leave a message after the tone."
    ),
    BEEP: None,  # a tone, never speech
    "vm-busy": "The person you are calling is on the phone. Please leave a message after the tone.",
    "vm-saved": "Your message has been saved. Goodbye.",
    "vm-full": "Sorry, this mailbox is full. Goodbye.",
    "vm-pin": "Please enter your PIN, then press pound.",
    "vm-box": "Please enter your mailbox number, then press pound.",
    "vm-incorrect": "That PIN is not correct.",
    "vm-no-pin": "This mailbox has no PIN yet. Please ask the administrator to set one. Goodbye.",
    "vm-you-have": "You have",
    "vm-new": "new",
    "vm-old": "old",
    "vm-and": "and",
    "vm-messages": "messages.",
    "vm-main-menu": (
        "Press 1 to listen to your messages. Press 0 for mailbox options. Press pound to hang up."
    ),
    "vm-message": "Message",
    "vm-message-menu": (
        "Press 5 to hear it again, 4 for the previous message, 6 for the next one, "
        "7 to delete it, 9 to keep it, or pound for the main menu."
    ),
    "vm-deleted": "Message deleted.",
    "vm-kept": "Message kept.",
    "vm-no-more": "No more messages.",
    "vm-options": (
        "Press 1 to record your unavailable greeting. Press 2 to record your busy greeting. "
        "Press pound to go back."
    ),
    "vm-record-greeting": "Record your greeting after the tone. Press pound when you are done.",
    "vm-greeting-saved": "Your greeting has been saved.",
    # The ACD (acd.app): queued callers and agents' feature codes.
    "queue-you-are": "You are number",
    "queue-in-line": "in line.",
    "queue-wait-about": "Your estimated wait is about",
    "queue-minutes": "minutes.",
    "queue-less-than-minute": "less than a minute.",
    "queue-callback-offer": "Press 1 to be called back without losing your place.",
    "queue-callback-saved": "We will call you back when it is your turn. Goodbye.",
    "queue-unavailable": "Sorry, nobody can take your call now. Goodbye.",
    "queue-callback-for": "Callback for",
    "agent-logged-in": "You are logged in.",
    "agent-logged-out": "You are logged out.",
    "agent-paused": "You are paused.",
    "agent-unpaused": "You are available again.",
    "agent-not-member": "You are not an agent of any queue.",
    "supervisor-denied": "You are not allowed to supervise agents. Goodbye.",
    "supervisor-no-call": "That agent is not on a queue call. Goodbye.",
    **{
        f"digit-{d}": word
        for d, word in enumerate(
            ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
        )
    },
}
"""The system prompt set: name -> the text spoken (None: a tone)."""

# Fallback when no synthesizer exists: (frequency Hz, milliseconds) segments,
# 60 ms of silence between them; each prompt gets its own pattern so a caller
# (and a test) can tell them apart.
_LOW, _HIGH = 440.0, 620.0
_TONES: dict[str, tuple[tuple[float, int], ...]] = {
    "ivr-welcome": ((_LOW, 200), (_HIGH, 300)),
    "ivr-invalid": ((_HIGH, 120), (_LOW, 120), (_HIGH, 120), (_LOW, 120)),
    "ivr-timeout": ((_LOW, 400), (_LOW, 400)),
    "ivr-goodbye": ((_HIGH, 200), (_LOW, 300)),
    "vm-unavailable": ((_LOW, 250), (_HIGH, 250), (_LOW, 250)),
    BEEP: ((1000.0, 300),),
    # The ACD's: frequencies no derived pattern uses (440/520/620/740), so a test can
    # tell them apart from the rest.
    "queue-you-are": ((880.0, 300), (1180.0, 300)),
    "queue-in-line": ((1180.0, 200), (880.0, 200)),
    "queue-callback-offer": ((960.0, 200), (960.0, 200), (1260.0, 300)),
    "queue-callback-saved": ((1260.0, 300), (960.0, 300)),
    "queue-unavailable": ((340.0, 300), (340.0, 300)),
    "queue-callback-for": ((1400.0, 300), (1100.0, 300)),
    "agent-logged-in": ((1100.0, 200), (1400.0, 200)),
    "agent-logged-out": ((1400.0, 200), (1100.0, 200)),
    "agent-paused": ((1100.0, 400),),
    "agent-unpaused": ((1400.0, 400),),
    "agent-not-member": ((340.0, 150), (1400.0, 150)),
    "supervisor-denied": ((_HIGH, 150), (_HIGH, 150), (_LOW, 450)),
    "supervisor-no-call": ((_LOW, 150), (_LOW, 150), (_HIGH, 450)),
}
_GAP_MS = 60
_LEVEL = 0.25  # about -12 dBFS
_RAMP_MS = 5  # fade in and out: no clicks at the edges

_NAME = re.compile(r"[a-z0-9_-]{1,64}")


class PromptError(PbxError):
    """A prompt that is missing, unreadable or cannot be made; the message is one line."""


def check_name(name: str) -> str:
    """Return `name` when it is a valid prompt name.

    Raises:
        PromptError: not 1–64 characters of a-z, 0-9, "-", "_".
    """
    if not _NAME.fullmatch(name):
        raise PromptError(f"bad prompt name {name!r}: use 1-64 characters of a-z, 0-9, - and _")
    return name


def _tone(freq: float, ms: int) -> npt.NDArray[np.float64]:
    n = RATE * ms // 1000
    x: npt.NDArray[np.float64] = _LEVEL * np.sin(2.0 * np.pi * freq * np.arange(n) / RATE)
    ramp = min(n // 2, RATE * _RAMP_MS // 1000)
    if ramp:
        fade = np.linspace(0.0, 1.0, ramp, endpoint=False)
        x[:ramp] *= fade
        x[n - ramp :] *= fade[::-1]
    return x


def tone_pattern(name: str) -> npt.NDArray[np.int16]:
    """The tone stand-in of a default prompt at 8 kHz (the beep itself for `vm-beep`).

    Raises:
        PromptError: `name` is not in the default set.
    """
    if name not in DEFAULT_PROMPTS:
        raise PromptError(f"{name!r} is not a default prompt")
    segments = _TONES.get(name) or _derived_pattern(name)
    gap = np.zeros(RATE * _GAP_MS // 1000)
    parts: list[npt.NDArray[np.float64]] = []
    for i, (freq, ms) in enumerate(segments):
        if i:
            parts.append(gap)
        parts.append(_tone(freq, ms))
    return np.round(np.concatenate(parts) * 32767.0).astype(np.int16)


def _derived_pattern(name: str) -> tuple[tuple[float, int], ...]:
    """A stable pattern of three tones for a prompt without a pattern of its own."""
    code = hashlib.sha256(name.encode()).digest()
    steps = (440.0, 520.0, 620.0, 740.0)
    return tuple((steps[code[i] % len(steps)], 120 + 40 * (code[i + 3] % 4)) for i in range(3))


class PromptStore:
    """The prompt files in one directory (`data_dir / "prompts"`), one `NAME.wav` each."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """Names of the stored prompts, sorted (an absent directory holds none)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.stem for p in self.root.glob("*.wav") if _NAME.fullmatch(p.stem) and p.is_file()
        )

    def path(self, name: str) -> Path:
        """Where prompt `name` lives (it need not exist). Raises: PromptError for a bad name."""
        return self.root / f"{check_name(name)}.wav"

    def exists(self, name: str) -> bool:
        """Whether prompt `name` is stored. Raises: PromptError for a bad name."""
        return self.path(name).is_file()

    def load(self, name: str) -> npt.NDArray[np.int16]:
        """The samples of prompt `name`, mono int16 at 8 kHz.

        Raises:
            PromptError: a bad name, no such prompt, or a file that is not a readable WAV.
        """
        path = self.path(name)
        if not path.is_file():
            raise PromptError(f"no prompt {name!r} in {self.root}")
        try:
            return load_mono(path, RATE)
        except WavError as exc:
            raise PromptError(f"prompt {name!r} is corrupt: {_one_line(exc.reason)}") from None

    def duration(self, name: str) -> float:
        """Length of prompt `name` in seconds. Raises: PromptError as `load` does."""
        return len(self.load(name)) / RATE

    def add(self, name: str, wav_path: Path) -> Path:
        """Import any WAV file as prompt `name` (converted to 8 kHz mono), replacing one.

        Raises:
            PromptError: a bad name, or a file that cannot be read, or holds no audio.
        """
        path, seconds = self._import(name, wav_path)
        log.info("prompt %s: %.2f s from %s", name, seconds, wav_path)
        return path

    def say(self, name: str, text: str, voice: str | None = None) -> Path:
        """Synthesize `text` with espeak-ng as prompt `name`, replacing one.

        Raises:
            PromptError: a bad name, empty text, espeak-ng not installed, or it failed.
        """
        path, seconds = self._speak(name, text, voice)
        log.info("prompt %s: %.2f s spoken by espeak-ng", name, seconds)
        return path

    def _import(self, name: str, wav_path: Path) -> tuple[Path, float]:
        """`add` without its log line; returns the path and the length in seconds."""
        path = self.path(name)
        try:
            samples = load_mono(wav_path, RATE)
        except WavError as exc:
            raise PromptError(f"{wav_path}: {_one_line(exc.reason)}") from None
        if samples.size == 0:
            raise PromptError(f"{wav_path}: no audio in the file")
        self._write(path, samples)
        return path, samples.size / RATE

    def _speak(self, name: str, text: str, voice: str | None) -> tuple[Path, float]:
        """`say` without its log line."""
        self.path(name)  # reject a bad name before running anything
        if not text.strip():
            raise PromptError("the text to say is empty")
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise PromptError("espeak-ng is not installed")
        with tempfile.TemporaryDirectory(prefix="aiopbx-say-") as tmp:
            out = Path(tmp) / "say.wav"
            command = [exe, "-w", str(out)]
            if voice is not None:
                command += ["-v", voice]
            command += ["--", text]  # "--": text starting with "-" is not an option
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=ESPEAK_TIMEOUT, check=False
                )
            except subprocess.TimeoutExpired:
                raise PromptError(f"espeak-ng took over {ESPEAK_TIMEOUT:g} s") from None
            except OSError as exc:
                raise PromptError(f"cannot run espeak-ng: {exc.strerror or exc}") from None
            if done.returncode != 0 or not out.is_file():
                reason = _one_line(done.stderr) or f"exit status {done.returncode}"
                raise PromptError(f"espeak-ng failed: {reason}")
            return self._import(name, out)

    def delete(self, name: str) -> None:
        """Remove prompt `name`. Raises: PromptError for a bad name or no such prompt."""
        path = self.path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise PromptError(f"no prompt {name!r} in {self.root}") from None
        except OSError as exc:
            raise PromptError(f"cannot delete {path}: {exc.strerror or exc}") from None
        log.info("prompt %s deleted", name)

    def ensure_defaults(self, replace_tones: bool = False) -> list[str]:
        """Create each missing prompt of the default set; return the names created.

        Spoken by espeak-ng when it is installed (a failure falls back to the tone
        pattern), tones otherwise; an existing prompt is never replaced, except that
        `replace_tones` re-speaks the ones that are still their tone fallback (once a
        synthesizer is installed). Nothing is logged per prompt (the caller sums up);
        a warning says when callers will hear tones instead of words.

        Raises:
            PromptError: a prompt file cannot be written.
        """
        speak = shutil.which("espeak-ng") is not None
        created: list[str] = []
        toned: list[str] = []
        failure = ""
        for name, text in DEFAULT_PROMPTS.items():
            if self.path(name).exists() and not (
                replace_tones and speak and text is not None and self.is_tone_fallback(name)
            ):
                continue
            if speak and text is not None:
                try:
                    self._speak(name, text, None)
                except PromptError as exc:
                    failure = str(exc)
                    self._write(self.path(name), tone_pattern(name))
                    toned.append(name)
            else:
                self._write(self.path(name), tone_pattern(name))
                if text is not None:
                    toned.append(name)
            created.append(name)
        if toned:
            why = f"espeak-ng failed ({failure})" if failure else "espeak-ng is not installed"
            log.warning(
                "%d prompts are tone patterns, not words: %s; install it (Debian: apt install"
                " espeak-ng), then run `pbx prompt defaults` to replace them",
                len(toned),
                why,
            )
        elif speak and not replace_tones:
            left = [
                n
                for n, text in DEFAULT_PROMPTS.items()
                if text is not None and n not in created and self.is_tone_fallback(n)
            ]
            if left:
                log.warning(
                    "%d prompts are still tone patterns from before espeak-ng was installed;"
                    " `pbx prompt defaults` replaces them by speech",
                    len(left),
                )
        return created

    def is_tone_fallback(self, name: str) -> bool:
        """Whether prompt `name` is exactly the tone pattern written when no voice was
        available (so `pbx prompt defaults` may replace it by speech)."""
        try:
            samples = self.load(name)
        except PromptError:
            return False
        pattern = tone_pattern(name)
        return samples.shape == pattern.shape and bool(np.array_equal(samples, pattern))

    def _write(self, path: Path, samples: npt.NDArray[np.int16]) -> None:
        """Write `samples` to `path` atomically. Raises: PromptError on an OS error."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{path.stem}.", suffix=".tmp")
        except OSError as exc:
            raise PromptError(f"cannot write to {self.root}: {exc.strerror or exc}") from None
        try:
            os.close(fd)
            write_wav(tmp, samples, RATE)
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise PromptError(f"cannot write {path}: {exc.strerror or exc}") from None
            raise


def _one_line(text: str) -> str:
    return " ".join(text.split())
