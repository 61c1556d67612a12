"""Synthetic answering calls for AMD tests and benchmarks: espeak-ng speech made telephone-like.

Each phrase is spoken by espeak-ng, band-limited to 300–3400 Hz and resampled
to 8 kHz by sox (an implementation independent of `media.wav`), trimmed, then
assembled in numpy into what a caller hears after answer: a lead-in silence,
then either a person (a short phrase, then silence as they wait — sometimes a
second short phrase after a pause) or a machine (a long greeting, optionally a
beep). The line then adds a gain change, band-limited noise at a given SNR
(relative to the speech's active level) and a G.711 round trip.

Synthetic speech is not real speech: espeak-ng is strongly periodic, evenly
paced and has no breath, room echo, background talk or codec artefacts beyond
G.711; the people here never say a long sentence and the machines never pause
for a second after "Hello". Accuracy on this corpus bounds nothing on real calls.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

RATE = 8000
Audio = npt.NDArray[np.float64]


@cache
def speak(text: str, voice: str, speed: int) -> Audio:
    """`text` spoken at 8 kHz through a 300–3400 Hz band, leading/trailing silence trimmed."""
    espeak = shutil.which("espeak-ng") or "espeak-ng"
    sox = shutil.which("sox") or "sox"
    wav = subprocess.run(
        [espeak, "--stdout", "-v", voice, "-s", str(speed), text],
        capture_output=True,
        check=True,
    ).stdout
    raw = subprocess.run(
        [
            sox,
            "-q",
            "-t",
            "wav",
            "-",
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-c",
            "1",
            "-r",
            str(RATE),
            "-",
            "sinc",
            "300-3400",
        ],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout
    x = np.frombuffer(raw, "<i2").astype(np.float64)
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    return x[loud[0] : loud[-1] + 1] if loud.size else x


def silence(seconds: float) -> Audio:
    return np.zeros(round(seconds * RATE))


def tone(hz: float, seconds: float, amplitude: float) -> Audio:
    t = np.arange(round(seconds * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005) if t.size else t  # 5 ms edges
    return amplitude * ramp * np.sin(2 * np.pi * hz * t)


def active_power(x: Audio) -> float:
    """Mean power of the 20 ms frames within 25 dB of the loudest (the speech's active level)."""
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    power = (frames**2).mean(axis=1)
    return float(power[power >= power.max() * 10 ** (-25 / 10)].mean())


def band_noise(rng: np.random.Generator, n: int) -> Audio:
    """White noise limited to 300–3400 Hz, unit power."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise**2) + 1e-12)


@dataclass(frozen=True, slots=True)
class Call:
    """One synthetic answered call: what was heard and the truth about it."""

    name: str
    label: str  # "HUMAN" or "MACHINE"
    audio: npt.NDArray[np.int16]
    speech_start: float  # seconds after answer
    beep_start: float | None = None
    beep_end: float | None = None


def line(rng: np.random.Generator, x: Audio, speech_power: float, snr_db: float) -> Audio:
    """Gain change, band noise at `snr_db` below the speech, and a G.711 round trip."""
    gain = 10 ** (rng.uniform(-12.0, 3.0) / 20)
    noise = band_noise(rng, x.size) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    y = np.clip((x + noise) * gain, -32768, 32767)
    if rng.random() < 0.5:
        return ulaw_decode(ulaw_encode(y)).astype(np.float64)
    return alaw_decode(alaw_encode(y)).astype(np.float64)


def human_call(
    rng: np.random.Generator,
    name: str,
    phrases: list[str],
    voice: str,
    speed: int,
    snr_db: float,
    lead: tuple[float, float] = (0.2, 1.0),
) -> Call:
    """A person: a short phrase, silence; half the time a second short phrase after 1–2.5 s."""
    first = speak(str(rng.choice(phrases)), voice, speed)
    lead_s = rng.uniform(*lead)
    parts = [silence(lead_s), first]
    if rng.random() < 0.5:
        parts += [silence(rng.uniform(1.0, 2.5)), speak(str(rng.choice(phrases)), voice, speed)]
    parts.append(silence(3.0))
    x = np.concatenate(parts)
    audio = line(rng, x, active_power(first), snr_db)
    return Call(name, "HUMAN", np.round(audio).astype(np.int16), lead_s)


def machine_call(
    rng: np.random.Generator,
    name: str,
    greetings: list[str],
    voice: str,
    speed: int,
    snr_db: float,
    beep: bool,
    lead: tuple[float, float] = (0.2, 1.0),
) -> Call:
    """A machine: a greeting, then (if `beep`) a pause and a 0.3–1 s tone, then silence."""
    greeting = speak(str(rng.choice(greetings)), voice, speed)
    lead_s = rng.uniform(*lead)
    parts = [silence(lead_s), greeting]
    beep_start = beep_end = None
    if beep:
        pause = rng.uniform(0.3, 1.0)
        length = rng.uniform(0.3, 1.0)
        hz = float(rng.choice([440.0, 850.0, 1000.0, 1400.0, 2000.0]))
        amplitude = np.sqrt(2 * active_power(greeting)) * 10 ** (rng.uniform(-6, 3) / 20)
        beep_start = lead_s + greeting.size / RATE + pause
        beep_end = beep_start + length
        parts += [silence(pause), tone(hz, length, amplitude)]
    parts.append(silence(1.5))
    x = np.concatenate(parts)
    audio = line(rng, x, active_power(greeting), snr_db)
    return Call(name, "MACHINE", np.round(audio).astype(np.int16), lead_s, beep_start, beep_end)
