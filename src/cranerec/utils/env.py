"""Facts about the running environment recorded with every result."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def git_sha() -> str:
    """The commit of the cranerec source tree, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``), so that a run's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_peak_rss_mb() -> float | None:
    """This process's peak RSS in MiB since the last :func:`reset_peak_rss` (``VmHWM``), or
    ``None`` where ``/proc`` does not say."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_gpu_suffix(device: str) -> str:
    """``", peak GPU memory N MB"`` on a CUDA device (since its last peak reset), else ``""``:
    what the benchmarks append to their figures."""
    if not device.startswith("cuda"):
        return ""
    import torch

    return f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB"


def usable_physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads of one core count
    once): the default number of torch threads. More threads than cores slows training down
    badly on a busy machine. Falls back to the usable logical CPUs where the topology is
    unknown (not Linux)."""
    import os

    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topo / "physical_package_id").read_text().strip()
            core = (topo / "core_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return max(1, len(cores))


def resolve_device(name: str) -> torch.device:
    """A ``torch.device`` from ``cpu`` or ``cuda[:N]``; a clear error when CUDA, or GPU N, is
    asked for but absent."""
    import torch

    if not (name == "cpu" or name.startswith("cuda")):
        raise ValueError(f"device must be cpu or cuda[:N], got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but this torch build has no usable CUDA")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise RuntimeError(f"device {name!r} requested but this machine has {count} GPU(s)")
    return device
