"""Where a task's stages read and write: the locations every task shares, each task's `Paths` adds its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar


@dataclasses.dataclass(frozen=True)
class TaskPaths:
    """Every location relative to `root` (the repo, or a test's tmp dir); subclasses set `task`."""

    root: Path = Path(".")
    task: ClassVar[str] = ""

    def _p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def raw(self) -> Path:
        return self._p("data", self.task, "raw")

    @property
    def prepared(self) -> Path:
        return self._p("data", self.task, "prepared")

    @property
    def plots(self) -> Path:
        return self._p("plots", self.task)

    @property
    def report(self) -> Path:
        return self._p("reports", f"{self.task}.md")

    @property
    def downloads(self) -> Path:
        """Scratch space for fetched archives (git- and DVC-ignored)."""
        return self._p(".cache", "downloads", self.task)

    @property
    def checkpoints(self) -> Path:
        """Scratch space for resumable training checkpoints (git- and DVC-ignored)."""
        return self._p(".cache", "checkpoints", self.task)

    def timings(self, stage: str) -> Path:
        """Wall-clock figures of one stage run (a DVC out, not a metric: they differ run to run)."""
        return self._p("timings", f"{stage}.json")
