"""An audio end-of-turn model on the device: Pipecat's Smart Turn v3.2, run with onnxruntime.

    recording so far (int16, up to the pause) --last 8 s, Whisper log-mel--> Smart Turn
        --> P(turn complete)            (SmartTurn.probability; one call per offered pause)
    TurnModelWorker: the same, on its own thread, answered by a deadline (never blocks audio)

Why an audio model: the transcript hint (turn.py) comes back only after the speculative
request's round trip, so it cannot end a turn sooner than that; and the VAD hears only that
the speaker is quiet, not how they stopped. Smart Turn hears intonation and the shape of the
last words: a falling, finished phrase against a level "...and" or a digit still to come. It is
a fast signal for ends and a weak one inside sentences (issue 22, FIELD-NOTES: ends judged
complete 79-97 %, inner pauses judged incomplete only 16-50 %), so turn.py uses it only
together with the other signals, never alone.

The model file is `edgeml/models/smart_turn_v3.2.onnx`:
`pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx` from the `pipecat-ai` 1.14.0
wheel on PyPI (BSD-2-Clause, `edgeml/models/smart_turn_v3.2.LICENSE`; 8.7 MB, int8: a Whisper
tiny encoder and a classifier head, whose output is already the probability), copied because
pipecat-ai pulls many packages the device does not need. It is fed as pipecat feeds it (the
facts, not its code): the last 8 s of the recording up to the moment of the call, zero-padded
on the LEFT to 128,000 samples, the padded buffer normalised to zero mean and unit variance,
then Whisper's log-mel features (80 mel bands, 25 ms Hann window, 10 ms hop, 800 frames).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml.audioformat import INT16_SCALE, SAMPLE_RATE
from edgeml.onnxmodel import load_session

log = logging.getLogger("edgeml.smart_turn")

MODEL_PATH = Path(__file__).resolve().parent / "models" / "smart_turn_v3.2.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
WINDOW_SAMPLES = 8 * SAMPLE_RATE  # the model hears the last 8 s
N_FFT, HOP, N_MELS = 400, 160, 80  # Whisper's analysis: 25 ms window, 10 ms hop, 80 bands
FRAMES = WINDOW_SAMPLES // HOP  # 800 feature frames
LOG_FLOOR = 1e-10  # power below this is clamped before the log
DYNAMIC_RANGE = 8.0  # log10 units kept below the loudest band (Whisper's 80 dB)


class TurnModelUnavailable(RuntimeError):
    """The audio turn model cannot run here (onnxruntime or the model file missing/damaged)."""


@dataclass(frozen=True)
class SmartTurnConfig:
    """The audio turn model (part of turn.TurnConfig, the recorder's config)."""

    enabled: bool = False  # off by default: turn.TurnConfig says why (--turn-model 1)
    model_path: Path = MODEL_PATH
    threads: int = 1  # one core: the keyword model, the VAD and the capture need the rest
    # an answer later than this (wall clock, from the offer) counts as no signal: on a slow
    # core (a Pi under load, arm64 emulation) the recording then ends by the other signals
    deadline_seconds: float = 0.8


# ---------------------------------------------------------------------- features
def _mel_scale(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (Whisper's): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(
        hz < 1000.0, hz * 3.0 / 200.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / step
    )


def _hz(mel: np.ndarray) -> np.ndarray:
    step = np.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp((mel - 15.0) * step))


def mel_filters(n_fft: int = N_FFT, n_mels: int = N_MELS, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters (n_fft // 2 + 1, n_mels), equally spaced on the Slaney scale from 0 Hz
    to Nyquist, each scaled to unit area (2 / its width in Hz), as Whisper's front end."""
    edges = _hz(np.linspace(0.0, float(_mel_scale(rate / 2)), n_mels + 2))
    bins = np.linspace(0.0, rate / 2, n_fft // 2 + 1)[:, None]
    lo, mid, hi = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rising = (bins - lo) / (mid - lo)
    falling = (hi - bins) / (hi - mid)
    tri = np.clip(np.minimum(rising, falling), 0.0, None)
    return (tri * (2.0 / (hi - lo))).astype(np.float32)


_FILTERS = mel_filters()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic


def window_of(samples: np.ndarray) -> np.ndarray:
    """The model's input audio: the last 8 s of int16 `samples` as float, left-padded with
    zeros to 8 s (the model was trained on turns that end at the right edge)."""
    x = np.asarray(samples[-WINDOW_SAMPLES:], dtype=np.float32) / INT16_SCALE
    return np.concatenate([np.zeros(WINDOW_SAMPLES - len(x), np.float32), x])


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's log-mel features (80, 800) of 8 s of float audio, normalised first to zero
    mean and unit variance (padding included). Float32 throughout: the model is int8, and the
    features agree with transformers' WhisperFeatureExtractor to ~1e-3 (tests/edge)."""
    x = np.asarray(audio, dtype=np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    half = N_FFT // 2
    padded = np.pad(x, (half, half), mode="reflect")  # centred frames
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:FRAMES]
    spectrum = np.fft.rfft(frames * _WINDOW, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)  # (800, 201)
    mel = np.einsum("fb,bm->mf", power, _FILTERS)  # no BLAS threads (they spin on a Pi)
    logs = np.log10(np.maximum(mel, LOG_FLOOR))
    logs = np.maximum(logs, logs.max() - DYNAMIC_RANGE)
    return ((logs + 4.0) / 4.0).astype(np.float32)


# ---------------------------------------------------------------------- the model
class SmartTurn:
    """P(the turn is complete) of the audio so far, one onnxruntime call."""

    def __init__(self, config: SmartTurnConfig | None = None) -> None:
        self.config = config or SmartTurnConfig()
        self._session = load_session(
            Path(self.config.model_path),
            shipped=MODEL_PATH,
            sha256=MODEL_SHA256,
            threads=self.config.threads,
            error=TurnModelUnavailable,
            what="the turn model",
        )

    def probability(self, samples: np.ndarray) -> float:
        """P(turn complete) for int16 `samples`: the recording up to now, pause included."""
        features = log_mel(window_of(samples))[None]
        out = self._session.run(None, {"input_features": features})[0]
        return float(np.clip(np.asarray(out).reshape(-1)[0], 0.0, 1.0))


TurnProbability = Callable[[], "float | None"]  # the answer so far: None = none (yet, or late)


class TurnModelWorker:
    """Runs SmartTurn on its own thread so audio capture never waits for it.

    The model is loaded on that thread too (a second or more under arm64 emulation): the app
    starts listening at once, and an offer made before it is loaded is simply answered late.
    `offer(samples)` returns at once with a callable the recorder asks while the pause lasts:
    the probability once it is computed within `deadline_seconds` of the offer, None before
    and forever after a late or failed answer (a late answer is no signal). A newer offer
    replaces one not yet started (only the latest pause matters)."""

    def __init__(self, config: SmartTurnConfig | None = None) -> None:
        self.config = config or SmartTurnConfig()
        self.deadline = self.config.deadline_seconds
        self.model: SmartTurn | None = None
        self.error: str | None = None
        self._cond = threading.Condition()
        self._job: tuple[int, np.ndarray, float] | None = None
        self._answers: dict[int, float | None] = {}
        self._next = 0
        self._stop = False
        self.calls = 0
        self.late = 0
        self._thread = threading.Thread(target=self._run, name="smart-turn", daemon=True)
        self._thread.start()

    def _load(self) -> bool:
        try:
            self.model = SmartTurn(self.config)
        except TurnModelUnavailable as exc:
            self.error = str(exc)
            log.warning("%s: the end of turn is decided without it", exc)
            return False
        log.info("end of turn also by the audio turn model (Smart Turn): loaded")
        return True

    def offer(self, samples: np.ndarray) -> TurnProbability:
        with self._cond:
            self._next += 1
            key = self._next
            self._job = (key, np.array(samples, dtype=np.int16), time.monotonic())
            self._answers = {k: v for k, v in self._answers.items() if k > key - 4}
            self._cond.notify_all()

        def answer() -> float | None:
            with self._cond:
                value = self._answers.get(key)
            return value if value is not None and value >= 0 else None

        return answer

    def _run(self) -> None:
        if not self._load():
            return  # every offer stays unanswered: no signal
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait(1.0)
                if self._stop:
                    return
                key, samples, offered = self._job
                self._job = None
            try:
                p: float | None = self.model.probability(samples)
            except Exception:  # noqa: BLE001 - a turn model must never break a recording
                log.exception("the turn model failed; the other signals decide")
                p = None
            late = time.monotonic() - offered > self.deadline
            with self._cond:
                self._answers[key] = -1.0 if (p is None or late) else p
                self.late += late
                self.calls += 1

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
