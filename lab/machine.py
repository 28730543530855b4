"""What machine a measurement ran on: CPU model, SIMD flags, cores, memory, Python."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

SIMD = ("avx", "avx2", "avx512f", "avx512_vnni", "fma", "f16c", "neon", "asimd")


def machine_info(engine: object | None = None) -> dict:
    """The machine, and when an engine is given, the CPU features its runtime was built to use (a llama.cpp
    built without AVX-512 runs at AVX2 speed on an AVX-512 machine)."""
    info: dict = {"cpu": "", "flags": [], "cores": os.cpu_count(), "python": platform.python_version(),
                  "platform": platform.platform()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not info["cpu"]:
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith(("flags", "Features")) and not info["flags"]:
                info["flags"] = [f for f in line.split(":", 1)[1].split() if f in SIMD]
    with contextlib.suppress(OSError, ValueError, IndexError):
        info["mem_total_mb"] = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    info["cpu"] = info["cpu"] or platform.processor()
    if getattr(engine, "build", ""):
        info["runtime_build"] = engine.build
    return info


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that over fork and exec, so a worker started by a parent that once
    held 500 MB reports at least 500 MB whatever it used itself. VmHWM belongs to the process's own memory map."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
