"""TensorBoard: event files in ``<run>/tb`` (nested runs in ``<run>/tb/<name>``), written with
``torch.utils.tensorboard``. ``tensorboard --logdir runs/`` shows every run, and overlays the
cells of a sweep and the strategies of an activation search."""

from __future__ import annotations

from pathlib import Path

from .base import Tracker


class TensorBoardTracker(Tracker):
    name = "tensorboard"
    requires = ("tensorboard", "tensorboard", "tensorboard")

    def __init__(self, logdir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = Path(logdir)
        self.writer = SummaryWriter(str(self.logdir))

    @classmethod
    def open(cls, run_dir: Path, experiment: str) -> "TensorBoardTracker":
        return cls(Path(run_dir) / "tb")

    def log_params(self, params: dict[str, str]) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("config", f"| key | value |\n| --- | --- |\n{rows}")

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def child(self, name: str) -> "TensorBoardTracker":
        return TensorBoardTracker(self.logdir / name)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()
