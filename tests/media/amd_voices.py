"""Speech for the AMD corpus from three independent synthesizers, made telephone-like.

The engines differ in how they make speech, which is the point of holding one out:

- espeak-ng: formant synthesis (rules drive resonators); accents by speaking English
  text with another language's rules (de, fr-fr, es), speed in words per minute.
- flite: CMU's small engine, diphone (kal16) and statistical parametric clustergen
  voices (awb Scottish male, rms US male, slt US female); slower or faster with
  `duration_stretch`.
- festival: the Edinburgh engine, residual-excited LPC diphones (kal, ked US males) and
  an HMM (HTS) voice (slt US female); `Duration_Stretch` likewise.

(flite's and festival's slt come from the same recorded speaker, through different
synthesis methods; the fold unit is the engine.) Each phrase is rendered once
(cached), band-limited to 300–3400 Hz and resampled to 8 kHz by sox, and trimmed of
leading and trailing silence. All are Debian packages (.ci/run installs them);
nothing downloads at run time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 8000
Audio = npt.NDArray[np.float64]

ENGINES = ("espeak-ng", "flite", "festival")
#: What each engine needs installed: programs, and for festival its voice directories.
PROGRAMS = {"espeak-ng": ("espeak-ng", "sox"), "flite": ("flite", "sox"),
            "festival": ("text2wave", "sox")}  # fmt: skip
FESTIVAL_VOICES = {
    "kal": ("voice_kal_diphone", "/usr/share/festival/voices/english/kal_diphone"),
    "ked": ("voice_ked_diphone", "/usr/share/festival/voices/english/ked_diphone"),
    "slt": ("voice_cmu_us_slt_arctic_hts", "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
}
#: Longest a synthesizer may take for one phrase (seconds).
TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class Voice:
    """One synthesizer voice at one speed: `stretch` > 1 is slower speech."""

    engine: str
    name: str
    stretch: float = 1.0

    def __str__(self) -> str:
        return f"{self.engine}:{self.name}@{self.stretch:g}"


#: The voices of each engine (male, female, accented, fast and slow come from `stretch`).
VOICES: dict[str, tuple[str, ...]] = {
    "espeak-ng": ("en-us", "en-gb", "en-us+f3", "en+m7", "en-gb-scotland", "en-029",
                  "en-us+f2", "de", "fr-fr", "es"),
    "flite": ("awb", "rms", "slt", "kal16"),
    "festival": ("kal", "ked", "slt"),
}  # fmt: skip


def missing(engine: str) -> list[str]:
    """What `engine` needs that is not installed (empty when it can speak)."""
    gone = [p for p in PROGRAMS[engine] if shutil.which(p) is None]
    if engine == "festival":
        gone += [d for _, d in FESTIVAL_VOICES.values() if not os.path.isdir(d)]
    return gone


def _command(voice: Voice, text: str, out: Path) -> tuple[list[str], bytes | None]:
    if voice.engine == "espeak-ng":
        wpm = round(170 / voice.stretch)
        return ["espeak-ng", "-v", voice.name, "-s", str(wpm), "-w", str(out), "--", text], None
    if voice.engine == "flite":
        stretch = f"duration_stretch={voice.stretch:g}"
        return ["flite", "-voice", voice.name, "--setf", stretch, "-t", text, "-o", str(out)], None
    if voice.engine == "festival":
        select, _ = FESTIVAL_VOICES[voice.name]
        stretch = f"(Parameter.set 'Duration_Stretch {voice.stretch:g})"
        command = ["text2wave", "-eval", f"({select})", "-eval", stretch, "-o", str(out)]
        return command, text.encode()
    raise ValueError(f"unknown engine {voice.engine!r}")


_spoken: dict[tuple[Voice, str], Audio] = {}


def _telephone(path: Path) -> Audio:
    """A synthesizer's WAV at 8 kHz through a 300–3400 Hz band (sox), silence trimmed."""
    raw = subprocess.run(
        ["sox", "-q", str(path), "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1",
         "-r", str(RATE), "-", "sinc", "300-3400"],
        capture_output=True, check=True, timeout=TIMEOUT,
    ).stdout  # fmt: skip
    x = np.frombuffer(raw, "<i2").astype(np.float64)
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max()) if x.size else x
    return x[loud[0] : loud[-1] + 1] if loud.size else x


def speak(voice: Voice, text: str) -> Audio:
    """`text` spoken by `voice` at 8 kHz through a 300–3400 Hz band, silence trimmed
    (rendered once, then cached).

    Raises: subprocess.CalledProcessError or TimeoutExpired when a synthesizer fails.
    """
    key = (voice, text)
    if key not in _spoken:
        with tempfile.TemporaryDirectory(prefix="amd-voice-") as tmp:
            out = Path(tmp) / "say.wav"
            command, stdin = _command(voice, text, out)
            subprocess.run(command, input=stdin, capture_output=True, check=True,
                           timeout=TIMEOUT)  # fmt: skip
            _spoken[key] = _telephone(out)
    return _spoken[key]


def _festival_batch(voice: Voice, texts: list[str]) -> None:
    """Render many phrases of one festival voice in one run (festival starts slowly)."""
    select, _ = FESTIVAL_VOICES[voice.name]
    with tempfile.TemporaryDirectory(prefix="amd-voice-") as tmp:
        lines = [f"({select})", f"(Parameter.set 'Duration_Stretch {voice.stretch:g})"]
        for i, text in enumerate(texts):
            quoted = text.replace("\\", "\\\\").replace('"', '\\"')
            out = Path(tmp) / f"{i}.wav"
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{out}" \'riff)')
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n")
        subprocess.run(["festival", "--batch", str(script)], capture_output=True, check=True,
                       timeout=TIMEOUT * 4)  # fmt: skip
        for i, text in enumerate(texts):
            _spoken[(voice, text)] = _telephone(Path(tmp) / f"{i}.wav")


def prepare(wanted: list[tuple[Voice, str]], workers: int = 4) -> None:
    """Render every (voice, text) not cached yet, in parallel subprocesses."""
    todo = [u for u in dict.fromkeys(wanted) if u not in _spoken]
    batches: dict[Voice, list[str]] = {}
    singles: list[tuple[Voice, str]] = []
    for voice, text in todo:
        if voice.engine == "festival":
            batches.setdefault(voice, []).append(text)
        else:
            singles.append((voice, text))
    with ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(_festival_batch, v, t) for v, t in batches.items()]
        jobs += [pool.submit(speak, v, t) for v, t in singles]
        for job in jobs:
            job.result()
