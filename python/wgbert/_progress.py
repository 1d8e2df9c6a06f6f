"""A small progress bar on stderr, drawn from the library's progress observer (weight
uploads, downloads) and from ``encode``'s chunks."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Bar:
    """Receives ``start(what, total)``, ``advance(n, item)`` and ``finish()``."""

    def __init__(self, label: Optional[str] = None, stream: Optional[TextIO] = None) -> None:
        self.label = label
        self.stream = stream
        self.what = ""
        self.total = 0
        self.done = 0
        self.started = 0.0
        self.drawn = 0.0

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def start(self, what: str, total: int) -> None:
        self.what = self.label or what
        self.total = int(total)
        self.done = 0
        self.started = time.monotonic()
        self.drawn = 0.0
        self._draw(force=True)

    def advance(self, n: int, item: str = "") -> None:
        self.done += int(n)
        self._draw(force=self.done >= self.total)

    def finish(self) -> None:
        self._draw(force=True)
        try:
            self._out().write("\n")
            self._out().flush()
        except (OSError, ValueError):
            pass

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.drawn < 0.1:
            return
        self.drawn = now
        width = 30
        frac = min(1.0, self.done / self.total) if self.total else 0.0
        filled = int(frac * width)
        rate = self.done / max(now - self.started, 1e-9)
        line = (
            f"\r{self.what} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} ({rate:.1f}/s)"
        )
        try:
            self._out().write(line)
            self._out().flush()
        except (OSError, ValueError):
            pass
