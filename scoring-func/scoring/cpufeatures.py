"""What the CPU can do natively, read from /proc/cpuinfo: it decides what PRECISION=auto means.

bf16 pays only where the CPU computes in bf16 itself: Intel AMX (`amx_bf16`, Sapphire Rapids and
later: Azure's current general-purpose VMs), AVX-512 BF16 (`avx512_bf16`: Cooper Lake, AMD Zen 4
and later) or Arm's BF16 extension (`bf16`, Graviton 3, Neoverse V1/N2). Elsewhere the runtimes
emulate it with conversions and bf16 is slower than fp32 as well as less exact, so `auto` picks
fp32 there. The flags are recorded with every benchmark result for the same reason.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from functools import lru_cache

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
# The flags that decide fp32/bf16/int8 speed of matrix work, in the order they are reported.
REPORTED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimddp",
    "bf16",
    "i8mm",
)
_CPUINFO_BYTES = 1 << 20  # cpuinfo of a 256-core machine is about 400 KB


@dataclass(frozen=True)
class CpuFeatures:
    model: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        """True where bf16 matrix work runs in hardware (AMX, AVX-512 BF16 or Arm BF16)."""
        return any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    @property
    def amx(self) -> bool:
        return "amx_bf16" in self.flags or "amx_int8" in self.flags

    def reported(self) -> list[str]:
        """The flags that matter for inference speed, for logs and benchmark results."""
        return [flag for flag in REPORTED_FLAGS if flag in self.flags]

    def record(self) -> dict:
        """What benchmark results store about the machine they ran on."""
        return {
            "cpu": self.model,
            "cores": os.cpu_count(),
            "flags": self.reported(),
            "native_bf16": self.native_bf16,
            "amx": self.amx,
        }

    def describe(self) -> str:
        return f"{self.model} ({' '.join(self.reported()) or 'no AVX2'})"


def parse_cpuinfo(text: str) -> CpuFeatures:
    """Model name and flags of the first processor listed (x86 `flags`, Arm `Features`)."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return CpuFeatures(model or platform.processor() or platform.machine(), flags)


@lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """This machine's CPU (cached: the answer does not change while the process runs)."""
    text = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        text = handle.read(_CPUINFO_BYTES)
    return parse_cpuinfo(text)
