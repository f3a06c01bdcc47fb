"""Overlapping windows for long audio, aligned to the CTC model's frame step.

A CTC model's cost and memory grow with the length it sees (attention is quadratic), so audio
longer than one window is cut into windows of `chunk` samples that overlap by `stride` samples on
each side. Each window keeps only the frames of its middle part, whose context is complete, and
the kept frames of all windows tile the audio exactly: window starts and the kept edges are
multiples of the model's frame step (320 samples for wav2vec2), so every output frame comes from
exactly one window and the total frame count equals that of one pass over the whole audio.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """Samples [start, end) go into the model; frames for samples [keep_start, keep_end) are kept."""

    start: int
    end: int
    keep_start: int
    keep_end: int
    last: bool

    def kept_frames(self, frames_out: int, step: int) -> tuple[int, int]:
        """Frame range of this window's output to keep (`frames_out` = frames the model gave)."""
        first = (self.keep_start - self.start) // step
        stop = frames_out if self.last else (self.keep_end - self.start) // step
        return first, stop


def plan_windows(n_samples: int, chunk: int, stride: int, step: int) -> list[Window]:
    """Windows covering `n_samples`; one window (the whole audio) when it fits in `chunk`."""
    chunk = max(step, chunk // step * step)
    stride = max(step, stride // step * step) if n_samples > chunk else 0
    if n_samples <= chunk:
        return [Window(0, n_samples, 0, n_samples, True)]
    if 2 * stride >= chunk:
        raise ValueError(f"stride {stride} must be less than half of chunk {chunk}")
    advance = chunk - 2 * stride
    windows: list[Window] = []
    start = 0
    while True:
        end = start + chunk
        keep_start = 0 if start == 0 else start + stride
        if end >= n_samples:
            windows.append(Window(start, n_samples, keep_start, n_samples, True))
            return windows
        windows.append(Window(start, end, keep_start, end - stride, False))
        start += advance
