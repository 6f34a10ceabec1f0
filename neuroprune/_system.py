"""What the machine has: the memory free on a device, and byte counts written for people.
Asked by every layer (data generation, model checks, the engine's chunking) before it
allocates, so that what cannot fit is refused in one line instead of killed by the system."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import UserError


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device`` (CUDA: as the driver reports; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def cache_root() -> Path:
    """neuroprune's cache folder: ``$NEUROPRUNE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/neuroprune``, else ``~/.cache/neuroprune`` (not created here)."""
    root = os.environ.get("NEUROPRUNE_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "neuroprune"


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def require_memory(need: int, what: str, fix: str, device: str | torch.device = "cpu",
                   share: float = 0.8) -> None:
    """Refuse, before allocating, ``need`` bytes that would not fit in ``share`` of the free
    memory of ``device``: a one-line :class:`~neuroprune.errors.UserError` saying ``what``
    needs them and how to ``fix`` it."""
    free = free_memory(torch.device(device))
    if need > share * free:
        raise UserError(f"{what} needs about {human(need)} but {device} has {human(free)} "
                        f"free; {fix}")
