"""The VADs measured against each other for the endpointing choice (bench/endpointing.py).

Each turns int16 16 kHz audio into a P(speech) per frame, streaming from the start of the array,
with its frame length: what vad.VoiceEndpointer decides on. Silero VAD is the device's own
(edgeml/neural_vad.py); pymicro-vad and webrtcvad are the lighter candidates, installed only in
the development environment (requirements-dev.txt), never on the device.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeml.neural_vad import CHUNK_SAMPLES, SileroVAD

RATE = 16000


_SILERO: list[SileroVAD] = []


def silero(audio: np.ndarray) -> np.ndarray:
    """The device's VAD (one model session, reset for each input as the recorder does)."""
    if not _SILERO:
        _SILERO.append(SileroVAD())
    vad = _SILERO[0]
    vad.reset()
    return vad.probabilities(audio)


def pymicro(audio: np.ndarray) -> np.ndarray:
    """pymicro-vad (microWakeWord's VAD model, TFLite Micro inside): 10 ms frames; it answers
    -1 until it has enough context, read as 0 here."""
    from pymicro_vad import MicroVad

    vad = MicroVad()
    data = np.asarray(audio, dtype=np.int16).tobytes()
    step = 320  # 10 ms of int16
    out = [vad.process_10ms(data[i : i + step]) for i in range(0, len(data) - step + 1, step)]
    return np.maximum(np.array(out, dtype=np.float32), 0.0)


def webrtc(audio: np.ndarray, mode: int = 3) -> np.ndarray:
    """webrtcvad (a GMM, mode 3 = most aggressive against noise): speech yes/no per 30 ms."""
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    data = np.asarray(audio, dtype=np.int16).tobytes()
    step = 960
    return np.array(
        [
            float(vad.is_speech(data[i : i + step], RATE))
            for i in range(0, len(data) - step + 1, step)
        ],
        dtype=np.float32,
    )


CANDIDATES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "silero-vad": (silero, CHUNK_SAMPLES / RATE),
    "pymicro-vad": (pymicro, 0.01),
    "webrtcvad": (webrtc, 0.03),
}
